"""The single exception handler: every failure of the API becomes the contract's error body.

    {"error": {"code": "<snake_case>", "message": "<human text>", "details": {...}}}

Domain refusals (`common.errors.ApplicationError`) keep their code, message, details and status. DRF's
own exceptions (parse errors, validation, authentication, scopes, 404, 405, 415, throttling) get stable
codes. Anything else is a 500 whose body says nothing about the internals; it is logged with the
request id that the `Request-Id` header returns.
"""

import logging
import math

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from api.middleware import request_id_of
from common.errors import ApplicationError

logger = logging.getLogger("api")

# DRF exception class -> our code. Looked up along the class's MRO, most specific first.
DRF_CODES: dict[type, str] = {
    exceptions.ParseError: "malformed_request",
    exceptions.ValidationError: "validation_error",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}

# Every code the infrastructure itself can answer, with its status (documented in the schema).
INFRASTRUCTURE_ERRORS: dict[int, list[str]] = {
    400: ["malformed_request", "validation_error", "invalid_idempotency_key"],
    401: ["not_authenticated", "authentication_failed"],
    403: ["insufficient_scope"],
    404: ["not_found"],
    405: ["method_not_allowed"],
    409: ["idempotency_key_reused", "idempotency_request_in_progress"],
    413: ["request_too_large"],
    415: ["unsupported_media_type"],
    429: ["throttled"],
    500: ["internal_error"],
}


class ApiError(exceptions.APIException):
    """An infrastructure refusal with our own code (scope missing, idempotency key reused, ...)."""

    def __init__(self, code: str, message: str, status_code: int, details: dict | None = None):
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.message = message
        self.details = details or {}


# The message of a 400 `validation_error` given by an input serializer (what the schema states), as opposed
# to one a service gives for a rule of the whole document (which has its own message).
INVALID_BODY_MESSAGE = "The request body is not valid."


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": str(message), "details": details or {}}}


def _validation_details(detail) -> dict:
    if isinstance(detail, dict):
        return detail
    return {"non_field_errors": detail if isinstance(detail, list) else [detail]}


def _as_field_lists(details: dict) -> dict:
    """`validation_error` has one shape whichever layer refused: a list of messages per field, as DRF's
    serializers give it. The services collect one message per field (`common.validation`)."""
    return {field: message if isinstance(message, list) else [message] for field, message in details.items()}


def _message_of(detail, default: str) -> str:
    if isinstance(detail, str):
        return detail
    return default


def request_too_large() -> "ApiError":
    """A body above `DATA_UPLOAD_MAX_MEMORY_SIZE` (Django's `RequestDataTooBig`, or refused before reading)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return ApiError("request_too_large", f"The request body is larger than {limit} bytes.", 413, {"max_bytes": limit})


def exception_handler(exc, context):
    request = context.get("request")
    if isinstance(exc, RequestDataTooBig):
        exc = request_too_large()
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    headers: dict[str, str] = {}
    if isinstance(exc, ApplicationError):
        set_rollback()
        details = exc.details
        if exc.code == "validation_error":
            details = _as_field_lists(details)
        return Response(error_body(exc.code, exc.message, details), status=exc.status)

    if isinstance(exc, ApiError):
        set_rollback()
        return Response(error_body(exc.error_code, exc.message, exc.details), status=exc.status_code)

    if isinstance(exc, exceptions.APIException):
        code = next((DRF_CODES[k] for k in type(exc).__mro__ if k in DRF_CODES), "request_refused")
        details: dict = {}
        if isinstance(exc, exceptions.ValidationError):
            details = _validation_details(exc.detail)
            message = INVALID_BODY_MESSAGE
        else:
            message = _message_of(exc.detail, "The request was refused.")
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if isinstance(exc, exceptions.Throttled):
            wait = max(1, math.ceil(exc.wait)) if exc.wait is not None else 1
            headers["Retry-After"] = str(wait)
            details = {"retry_after": wait}
            message = f"Too many requests; retry in {wait} s."
        set_rollback()
        return Response(error_body(code, message, details), status=exc.status_code, headers=headers)

    rid = request_id_of(request) if request is not None else "unknown"
    view = context.get("view")
    logger.error("unhandled exception in %s, request_id=%s", type(view).__name__ if view else "?", rid, exc_info=exc)
    set_rollback()
    return Response(
        error_body(
            "internal_error",
            "An unexpected error occurred. Quote the request id when reporting it.",
            {"request_id": rid},
        ),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
