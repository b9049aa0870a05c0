"""Every error leaves in the shape of API.md, {"error", "code"[, "details"]}, with a request id."""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest
import structlog
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from replyhq.app import create_app
from replyhq.settings import DEV_MASTER_KEY
from replyhq.web import errors as web_errors
from tests.conftest import Servers, Tenant, identify, make_settings, start_conversation

MASTER = {"X-Master-Key": DEV_MASTER_KEY}
GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


def _shape(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, object] = response.json()
    assert body["code"] == code
    assert isinstance(body["error"], str)
    assert body["error"]
    assert set(body) <= {"error", "code", "details"}
    return body


async def test_unknown_route_is_404(client: httpx.AsyncClient) -> None:
    for path in ("/nope", "/v1/nope", "/setup/apps/x/y/z", "/v2/conversations"):
        body = _shape(await client.get(path), 404, "NOT_FOUND")
        assert body == {"error": "Not found.", "code": "NOT_FOUND"}


async def test_wrong_method_is_405(client: httpx.AsyncClient) -> None:
    response = await client.post("/healthz")
    body = _shape(response, 405, "METHOD_NOT_ALLOWED")
    assert body == {"error": "Method not allowed.", "code": "METHOD_NOT_ALLOWED"}
    assert response.headers["allow"] == "GET"
    _shape(await client.delete("/setup/apps", headers=MASTER), 405, "METHOD_NOT_ALLOWED")


async def test_validation_errors_name_the_field_and_the_reason(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await identify(client, tenant)
    conversation = await start_conversation(client, tenant)
    cases: list[tuple[httpx.Response, str, str]] = [
        (
            await client.post(
                f"/v1/conversations/{conversation['id']}/messages",
                headers=tenant.sdk(),
                json={"client_msg_id": "c1"},
            ),
            "body",
            "a message needs a body or attachment_ids",
        ),
        (
            await client.post("/setup/apps", headers=MASTER, json={"name": ""}),
            "name",
            "at least 1 character",
        ),
        (
            await client.post("/setup/apps", headers=MASTER, json={"name": "A", "extra": 1}),
            "extra",
            "Extra inputs are not permitted",
        ),
        (
            await client.post("/setup/apps", headers=MASTER),
            "body",
            "required",
        ),
        (
            await client.post("/v1/identify", headers=tenant.sdk(), json={"platform": "tv"}),
            "platform",
            "should be",
        ),
        (
            await client.post(
                "/v1/conversations",
                headers=tenant.sdk(),
                json={"first_message": {"client_msg_id": "c1"}},
            ),
            "first_message.body",
            "a message needs a body or attachment_ids",
        ),
        (
            await client.get("/v1/conversations", params={"limit": 0}, headers=tenant.sdk()),
            "query.limit",
            "greater than or equal to 1",
        ),
        (
            await client.get("/v1/conversations/not-a-uuid", headers=tenant.sdk()),
            "path.conversation_id",
            "valid UUID",
        ),
    ]
    for response, field, reason in cases:
        body = _shape(response, 400, "VALIDATION_ERROR")
        details = body["details"]
        assert isinstance(details, list)
        assert [d["field"] for d in details] == [field], details
        assert reason.lower() in details[0]["reason"].lower(), details


async def test_validation_errors_do_not_echo_the_input(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    secret = "s3cr3t-value-" + "x" * 300
    response = await client.post(
        "/v1/identify", headers=tenant.sdk(), json={"platform": "ios", "name": secret}
    )
    _shape(response, 400, "VALIDATION_ERROR")
    assert "s3cr3t" not in response.text


async def test_malformed_json_is_400_and_changes_nothing(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await identify(client, tenant)
    conversation = await start_conversation(client, tenant)
    for raw in (b"{bad", b'{"body": "hi", "client_msg_id": "c1"', b"\xff\xfe", b"[1, 2,]"):
        response = await client.post(
            f"/v1/conversations/{conversation['id']}/messages",
            headers={**tenant.sdk(), "Content-Type": "application/json"},
            content=raw,
        )
        body = _shape(response, 400, "MALFORMED_JSON")
        assert body["error"] == "The request body is not valid JSON."
        details = body["details"]
        assert isinstance(details, list)
        assert details[0]["field"] == "body"
        assert details[0]["reason"]
    history = await client.get(
        f"/v1/conversations/{conversation['id']}/messages", headers=tenant.sdk()
    )
    assert [m["seq"] for m in history.json()["items"]] == [1]


# --- unexpected faults --------------------------------------------------------------------------


@pytest.fixture
async def faulty_app(servers: Servers) -> AsyncIterator[FastAPI]:
    """A test-only instance with a route that fails the way a bug would."""
    application = create_app(make_settings(servers))

    @application.get("/boom")
    async def boom() -> None:
        raise RuntimeError("connection to db.internal:5432 failed, password=hunter2")

    async with LifespanManager(application):
        yield application


async def test_an_unexpected_fault_is_500_reveals_nothing_and_logs_the_cause(
    faulty_app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    logged = io.StringIO()
    monkeypatch.setattr(
        web_errors,
        "log",
        structlog.wrap_logger(
            structlog.PrintLogger(logged),
            processors=[structlog.processors.format_exc_info, structlog.processors.JSONRenderer()],
        ),
    )
    transport = httpx.ASGITransport(app=faulty_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/boom", headers={"X-Request-Id": "support-ticket-42"})
    assert response.status_code == 500
    assert response.json() == {
        "error": "Something went wrong on our side.",
        "code": "INTERNAL_ERROR",
    }
    for leak in ("hunter2", "db.internal", "RuntimeError", "Traceback"):
        assert leak not in response.text
    assert response.headers["x-request-id"] == "support-ticket-42"

    line = json.loads(logged.getvalue().splitlines()[0])
    assert line["event"] == "unhandled_error"
    assert line["request_id"] == "support-ticket-42"
    assert line["path"] == "/boom"
    assert "RuntimeError: connection to db.internal:5432 failed" in line["exception"]


# --- request ids ----------------------------------------------------------------------------------


async def test_request_id_is_echoed_or_made_on_every_answer(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await identify(client, tenant)
    given = {"X-Request-Id": "abc-123.DEF:9_z"}
    ok = await client.get("/v1/conversations", headers={**tenant.sdk(), **given})
    assert ok.status_code == 200
    assert ok.headers["x-request-id"] == "abc-123.DEF:9_z"
    for response in (
        await client.get("/nope", headers=given),
        await client.post("/healthz", headers=given),
        await client.post("/setup/apps", headers={**MASTER, **given}, json={}),
        await client.get("/setup/apps", headers=given),
        await client.post("/v1/identify", headers={**tenant.sdk(), **given}, content=b"x" * 20_000),
    ):
        assert response.status_code >= 400
        assert response.headers["x-request-id"] == "abc-123.DEF:9_z"

    made = await client.get("/healthz")
    assert GENERATED_ID.match(made.headers["x-request-id"])
    assert made.headers["x-request-id"] != (await client.get("/healthz")).headers["x-request-id"]
    # Anything that could smuggle text into logs or headers is replaced, not echoed.
    for bad in ("has space", "x" * 129, "new\tline", "<script>"):
        response = await client.get("/healthz", headers={"X-Request-Id": bad})
        assert GENERATED_ID.match(response.headers["x-request-id"]), bad
