"""OpenAPI helpers: the API-key security scheme, the error body, and per-operation error codes."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import get_override
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers

from api.errors import INFRASTRUCTURE_ERRORS
from common.events import EVENT_TYPES


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`: a key of one integration of one tenant "
            "(`manage.py create_api_key <tenant-slug> <integration-name>`).",
        }


class ApiAutoSchema(AutoSchema):
    """drf-spectacular's schema with two changes for every API view (`api.base.ApiView.schema`):

    - a serializer's docstring is not its component's description (docstrings are written for the code's
      readers, and a subclass would show its base's, such as `InputSerializer`'s); the fields' help texts
      are the documentation, and `extend_schema_serializer(description=...)` still sets one;
    - a serializer with `unknown_fields = "refused"` (its body goes whole to a service that refuses
      unknown keys) is an object with `additionalProperties: false`.
    """

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if not get_override(serializer, "description", None):
            schema.pop("description", None)
        if getattr(serializer, "unknown_fields", "ignored") == "refused":
            schema["additionalProperties"] = False
        if direction == "request":
            for field in serializer.fields.values():
                prop = schema.get("properties", {}).get(field.field_name)
                trimmed = isinstance(field, serializers.CharField) and field.trim_whitespace and not field.allow_blank
                if trimmed and prop and prop.get("type") == "string" and "pattern" not in prop:
                    prop["pattern"] = r"\S"  # DRF trims the text: whitespace alone is blank, refused
        return schema


class DecimalStringField(OpenApiSerializerFieldExtension):
    """A decimal string as DRF's `DecimalField` takes it: at least one digit (an empty string is refused), at
    most its whole and decimal digits, and no sign when its `min_value` is 0 or more."""

    target_class = "rest_framework.fields.DecimalField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        sign = "" if field.min_value is not None and field.min_value >= 0 else "-?"
        whole = f"{{1,{field.max_whole_digits}}}" if field.max_whole_digits is not None else "+"
        places = f"(?:\\.\\d{{1,{field.decimal_places}}})?" if field.decimal_places else ""
        return {"type": "string", "format": "decimal", "pattern": f"^{sign}\\d{whole}{places}$"}


IDEMPOTENCY_KEY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 255}


class ErrorInnerSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable snake_case error code.")
    message = serializers.CharField(help_text="Human-readable text; do not parse it.")
    details = serializers.DictField(help_text="Field errors for 400, or context such as `required_scope`.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorInnerSerializer()


STATUS_TEXT = {
    400: "Malformed request or invalid fields",
    401: "Missing, invalid, revoked or expired API key",
    403: "The API key lacks the scope",
    404: "Not found (or another tenant's)",
    405: "Method not allowed",
    409: "Conflict",
    413: "The request body is larger than the upload limit",
    415: "Unsupported media type",
    422: "Refused by a business rule",
    429: "Throttled; see the Retry-After header",
    500: "Unexpected error; the body holds the request id",
}


def error_response(status: int, codes) -> OpenApiResponse:
    listed = ", ".join(f"`{c}`" for c in sorted(set(codes)))
    return OpenApiResponse(ErrorSerializer, description=f"{STATUS_TEXT.get(status, 'Error')}. Codes: {listed}.")


def api_schema(
    *,
    summary: str,
    responses: dict,
    request=None,
    errors: dict[int, list[str]] | None = None,
    write: bool = False,
    idempotent: bool = False,
    tags=None,
    description: str = "",
    parameters=None,
):
    """`extend_schema` with the error responses every API operation can give, plus its own codes."""
    all_errors: dict[int, list[str]] = {
        401: INFRASTRUCTURE_ERRORS[401],
        403: INFRASTRUCTURE_ERRORS[403],
        429: INFRASTRUCTURE_ERRORS[429],
        500: INFRASTRUCTURE_ERRORS[500],
    }
    if write:
        all_errors[400] = ["malformed_request", "validation_error"]
        all_errors[415] = INFRASTRUCTURE_ERRORS[415]
    if write or idempotent:  # every POST, PUT and PATCH (a body above the upload limit)
        all_errors[413] = INFRASTRUCTURE_ERRORS[413]
    if idempotent:
        all_errors.setdefault(400, []).append("invalid_idempotency_key")
        all_errors[409] = list(INFRASTRUCTURE_ERRORS[409])
    for status, codes in (errors or {}).items():
        all_errors.setdefault(status, [])
        all_errors[status] = all_errors[status] + list(codes)
    parameters = list(parameters or [])
    if idempotent:
        parameters.append(
            OpenApiParameter(
                "Idempotency-Key",
                IDEMPOTENCY_KEY_SCHEMA,
                OpenApiParameter.HEADER,
                required=False,
                description="1-255 characters. A retry with the same key and body replays the first response "
                "(header `Idempotent-Replayed: true`); another body with the same key is 409 "
                "`idempotency_key_reused`. Kept at least 24 h.",
            )
        )
    merged = dict(responses)
    for status, codes in all_errors.items():
        merged.setdefault(status, error_response(status, codes))
    return extend_schema(
        summary=summary,
        description=description or summary,
        request=request,
        responses=merged,
        tags=tags,
        parameters=parameters or None,
    )


def add_webhook_components(result, generator, request, public):
    """Document the webhook envelope and its event types as schema components (`WebhookEventEnvelope`)."""

    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["WebhookEventEnvelope"] = {
        "type": "object",
        "description": "What a webhook endpoint receives: POSTed as JSON with the header "
        '`Loyalty-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed with the endpoint '
        "secret>`. Deduplicate on `id` (delivery is at least once).",
        "required": ["id", "type", "created_at", "tenant", "data"],
        "properties": {
            "id": {"type": "string", "example": "evt_8f14e45fceea167a5a36dedd4bea2543"},
            "type": {"type": "string", "enum": list(EVENT_TYPES)},
            "created_at": {"type": "string", "format": "date-time"},
            "tenant": {"type": "string", "description": "The tenant's slug."},
            "data": {"type": "object", "additionalProperties": True, "description": "The event's own payload."},
        },
    }
    return result
