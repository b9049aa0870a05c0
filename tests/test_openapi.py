"""The OpenAPI schema documents the error shape the API answers with: 400 `Error`, never 422."""

from __future__ import annotations

import httpx

from replyhq.settings import DEV_MASTER_KEY

MASTER = {"X-Master-Key": DEV_MASTER_KEY}
ERROR_REF = {"$ref": "#/components/schemas/Error"}


def _operations(schema: dict[str, object]) -> list[tuple[str, str, dict[str, object]]]:
    paths = schema["paths"]
    assert isinstance(paths, dict)
    return [(path, method, op) for path, item in paths.items() for method, op in item.items()]


async def test_no_operation_documents_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert '"422"' not in response.text
    assert "HTTPValidationError" not in response.text


async def test_every_operation_with_input_documents_the_400_error_shape(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    with_input = [
        (path, method, op)
        for path, method, op in _operations(schema)
        if op.get("parameters") or op.get("requestBody")
    ]
    assert len(with_input) > 10
    for path, method, op in with_input:
        responses = op["responses"]
        assert isinstance(responses, dict)
        invalid = responses.get("400")
        assert invalid, f"{method.upper()} {path} documents no 400"
        assert invalid["content"]["application/json"]["schema"] == ERROR_REF, (method, path)
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "code"}
    assert set(error["properties"]) == {"error", "code", "details"}
    detail = schema["components"]["schemas"]["ErrorDetail"]
    assert set(detail["properties"]) == {"field", "reason"}


async def test_a_real_validation_error_has_the_documented_shape(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    documented = set(schema["components"]["schemas"]["Error"]["properties"])
    detail_fields = set(schema["components"]["schemas"]["ErrorDetail"]["properties"])
    response = await client.post("/setup/apps", headers=MASTER, json={"name": 42})
    assert response.status_code == 400
    body = response.json()
    assert set(body) <= documented
    assert body["code"] == "VALIDATION_ERROR"
    assert all(set(detail) == detail_fields for detail in body["details"])
