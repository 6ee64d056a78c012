"""A request id on every request: returned in the `Request-Id` header and written in error logs."""

import logging
import re
import uuid

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse

logger = logging.getLogger("api")

_VALID_INCOMING = re.compile(r"^[A-Za-z0-9._:-]{8,100}$")


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_of(request) -> str:
    """The id of `request` (a Django or DRF request); one is made if the middleware did not run."""
    rid = getattr(request, "request_id", None)
    if not rid:
        rid = new_request_id()
        try:
            request.request_id = rid
        except AttributeError:  # pragma: no cover - read-only request objects
            pass
    return rid


class RequestIdMiddleware:
    """Tags each request with an id (a caller's well-formed `Request-Id` is kept, for tracing)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("Request-Id", "")
        request.request_id = incoming if _VALID_INCOMING.match(incoming) else new_request_id()
        response = self.get_response(request)
        response["Request-Id"] = request.request_id
        return response

    def process_exception(self, request, exception):
        """Last resort for the API: an exception that escaped the views still gets the error body."""
        if not request.path.startswith("/api/"):
            return None
        rid = request_id_of(request)
        if isinstance(exception, RequestDataTooBig):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            return JsonResponse(
                {
                    "error": {
                        "code": "request_too_large",
                        "message": f"The request body is larger than {limit} bytes.",
                        "details": {"max_bytes": limit},
                    }
                },
                status=413,
            )
        logger.error("unhandled exception, request_id=%s", rid, exc_info=exception)
        return JsonResponse(
            {
                "error": {
                    "code": "internal_error",
                    "message": "An unexpected error occurred. Quote the request id when reporting it.",
                    "details": {"request_id": rid},
                }
            },
            status=500,
        )
