"""Errors that carry their HTTP status and machine code; one handler renders them all."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status_code = 400
    code = "BAD_REQUEST"
    message = "The request is invalid."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.headers = headers or {}
        self.extra = extra
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "code": self.code, **self.extra}


class BadRequest(AppError):
    pass


class Unauthorized(AppError):
    status_code = 401
    code = "UNAUTHORIZED"
    message = "Missing or invalid credentials."


class DeviceUnknown(Unauthorized):
    code = "DEVICE_UNKNOWN"
    message = "Unknown device: call /v1/identify first."


class DeviceUnverified(Unauthorized):
    code = "DEVICE_UNVERIFIED"
    message = (
        "This device was identified without a user_hash, which its user or app now requires: "
        "call /v1/identify again with user_id and user_hash."
    )


class Forbidden(AppError):
    status_code = 403
    code = "FORBIDDEN"
    message = "You are not allowed to do that."


class NotFound(AppError):
    status_code = 404
    code = "NOT_FOUND"
    message = "Not found."


class Conflict(AppError):
    status_code = 409
    code = "CONFLICT"
    message = "The request conflicts with the current state."


class PayloadTooLarge(AppError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"
    message = "The request body is too large."


class HeadersTooLarge(AppError):
    status_code = 431
    code = "HEADERS_TOO_LARGE"
    message = "The request's headers are too large."


class RateLimited(AppError):
    status_code = 429
    code = "RATE_LIMITED"
    message = "Too many requests; slow down."


class ServiceUnavailable(AppError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"
    message = "A service this request needs is unavailable; retry shortly."


class DatabaseUnavailable(ServiceUnavailable):
    code = "DATABASE_UNAVAILABLE"
    message = "The database is unavailable; retry shortly."
