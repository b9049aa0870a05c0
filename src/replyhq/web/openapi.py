"""The OpenAPI schema states the error shape the API really answers with.

FastAPI documents a 422 `HTTPValidationError` on every operation that takes input; our handlers
(web/errors.py) answer invalid input with 400 `{error, code, details}` and never use 422. Clients
generated from the schema (the dashboard's among them) must see what they will receive.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

_SCHEMAS = "#/components/schemas/"


class ErrorDetail(BaseModel):
    field: str = Field(description="Dotted path of the offending input, or `body`.")
    reason: str


class ErrorBody(BaseModel):
    """Every error response: a sentence for people, a code for programs."""

    error: str = Field(description="What went wrong, in a sentence.")
    code: str = Field(description="A stable machine code, e.g. `VALIDATION_ERROR`.")
    details: list[ErrorDetail] | None = Field(
        None, description="For `VALIDATION_ERROR` and `MALFORMED_JSON`: each bad field."
    )


_INVALID_INPUT = {
    "description": "Invalid input (`VALIDATION_ERROR` or `MALFORMED_JSON`, with `details`).",
    "content": {"application/json": {"schema": {"$ref": f"{_SCHEMAS}Error"}}},
}


def _error_shaped(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for fastapi_model in ("HTTPValidationError", "ValidationError"):
        components.pop(fastapi_model, None)
    components["ErrorDetail"] = ErrorDetail.model_json_schema()
    error = ErrorBody.model_json_schema(ref_template=_SCHEMAS + "{model}")
    error.pop("$defs", None)
    error["title"] = "Error"
    components["Error"] = error
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None:
                responses.setdefault("400", _INVALID_INPUT)
    return schema


def install_error_shaped_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _error_shaped(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
