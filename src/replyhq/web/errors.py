"""Every error leaves as {"error", "code"[, "details"]}: our own, validation, routing and faults."""

from __future__ import annotations

from typing import Any

import psycopg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException

from replyhq.db import errors as db_errors
from replyhq.errors import AppError, DatabaseUnavailable

log = structlog.get_logger(__name__)

_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
}
# What a client is told to wait when PostgreSQL is unreachable (a restart takes seconds).
DATABASE_RETRY_AFTER_SECONDS = 5
_HTTP_MESSAGES = {404: "Not found.", 405: "Method not allowed."}


def _detail(error: dict[str, Any]) -> dict[str, str]:
    loc = list(error.get("loc", ()))
    # Only the leading "body" is FastAPI's; a field may itself be called "body" (a message's).
    location = [str(part) for part in (loc[1:] if loc[:1] == ["body"] else loc)]
    return {"field": ".".join(location) or "body", "reason": str(error.get("msg", "invalid"))}


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)


def _json_detail(error: dict[str, Any]) -> dict[str, str]:
    loc = error.get("loc", ())
    position = f" at character {loc[-1]}" if len(loc) > 1 else ""
    cause = (error.get("ctx") or {}).get("error")
    return {"field": "body", "reason": f"{cause or 'not valid JSON'}{position}"}


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        details = [_json_detail(e) for e in errors if e.get("type") == "json_invalid"]
        body = {
            "error": "The request body is not valid JSON.",
            "code": "MALFORMED_JSON",
            "details": details,
        }
        return JSONResponse(body, status_code=400)
    details = [_detail(e) for e in errors]
    body = {"error": "The request is invalid.", "code": "VALIDATION_ERROR", "details": details}
    return JSONResponse(body, status_code=400)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    message = _HTTP_MESSAGES.get(status) or (
        exc.detail if isinstance(exc.detail, str) else "The request failed."
    )
    body = {"error": message, "code": _HTTP_CODES.get(status, "HTTP_ERROR")}
    return JSONResponse(body, status_code=status, headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette answers faults outside every middleware, so the request id is added here.
    request_id: str | None = getattr(request.state, "request_id", None)
    log.exception(
        "unhandled_error", path=request.url.path, method=request.method, request_id=request_id
    )
    body = {"error": "Something went wrong on our side.", "code": "INTERNAL_ERROR"}
    headers = {"X-Request-Id": request_id} if request_id else None
    return JSONResponse(body, status_code=500, headers=headers)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if not db_errors.unavailable(exc):
        raise exc  # a fault of ours: logged, reported and answered as any other (a 500)
    # One line, no traceback: during an outage every request says the same.
    reason = str(getattr(exc, "orig", None) or exc).split("\n", 1)[0]
    log.warning("database_unavailable", path=request.url.path, reason=reason)
    error = DatabaseUnavailable(headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})
    return await _app_error(request, error)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    for database_error in (sa_exc.DBAPIError, sa_exc.TimeoutError, psycopg.Error):
        app.add_exception_handler(database_error, _database_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
