from typing import Any


class ApplicationError(Exception):
    """A domain refusal with a stable snake_case code; the API turns it into the contract's error body."""

    status = 422

    def __init__(self, code: str, message: str = "", details: dict[str, Any] | None = None, status: int | None = None):
        super().__init__(message or code)
        self.code = code
        self.message = message or code.replace("_", " ")
        self.details = details or {}
        if status is not None:
            self.status = status


class NotFound(ApplicationError):
    status = 404


class Conflict(ApplicationError):
    status = 409
