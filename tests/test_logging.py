"""Logs: JSON lines on stdout with ISO timestamps; every line of a request, a socket event or a job
carries its request id (and app id, job id); secrets are redacted wherever they appear, nested
included."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from replyhq.db.migrate import autovacuum_is_on
from replyhq.jobs import enqueue
from replyhq.jobs.worker import JobWorker
from replyhq.observability.redact import REDACTED, redact
from replyhq.runtime import Runtime
from tests import job_tasks
from tests.conftest import LiveServer, SocketServer, Tenant, identify, start_conversation
from tests.jobs_support import lines, wait_for
from tests.realtime_clients import Recorder, refused
from tests.staff import signed_in

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzdGFmZiJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$")


def json_lines(output: str) -> list[dict[str, Any]]:
    """Every line of the output, which must all be JSON objects with the basic fields."""
    parsed = []
    for line in output.splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)  # not JSON: the test fails here
        assert ISO.match(entry["timestamp"]), entry
        assert entry["level"] in {"debug", "info", "warning", "error", "critical"}
        assert isinstance(entry["event"], str)
        parsed.append(entry)
    return parsed


async def test_a_request_and_a_job_log_json_with_context_and_no_secret(
    client: httpx.AsyncClient,
    tenant: Tenant,
    runtime: Runtime,
    job_worker: JobWorker,
    job_queue: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await identify(client, tenant)
    conversation = await start_conversation(client, tenant)
    capsys.readouterr()  # from here on, only what this test causes

    # A full request, carrying every kind of credential in its headers.
    headers = {
        **tenant.sdk("device-1"),
        "X-Request-Id": "req-logs-1",
        "Authorization": f"Bearer {JWT}",
        "Cookie": "rhq_session=cookie-value-that-is-secret",
        "X-Master-Key": "master-key-that-is-secret",
    }
    response = await client.post(
        f"/v1/conversations/{conversation['id']}/messages",
        headers=headers,
        json={"body": "Hi", "client_msg_id": uuid.uuid4().hex},
    )
    assert response.status_code == 201
    assert response.headers["X-Request-Id"] == "req-logs-1"
    generated = await client.get("/v1/conversations", headers=tenant.sdk("device-1"))
    generated_id = generated.headers["X-Request-Id"]

    # A library logging through the standard library, inside a request's context.
    with structlog.contextvars.bound_contextvars(request_id="req-logs-2"):
        logging.getLogger("uvicorn.error").warning(
            "client sent %s with %s", f"Bearer {JWT}", tenant.secret_key
        )

    # A job enqueued by a request (req-logs-3), for the tenant, logging secrets of its own.
    path = tmp_path / "job"
    with structlog.contextvars.bound_contextvars(request_id="req-logs-3"):
        async with runtime.db.tenant_session(tenant.id) as session:
            job_id = await enqueue(
                session,
                job_tasks.tenant_count,
                app_id=tenant.id,
                path=str(path),
                secret="push-token-value-secret",
                queue=job_queue,
            )
    await wait_for(lambda: bool(lines(path)))
    output = ""
    for _ in range(100):
        output += capsys.readouterr().out
        if '"job_succeeded"' in output:
            break
        await asyncio.sleep(0.05)
    entries = json_lines(output)

    # The request: one access line, with its route template, status, app and request id.
    request_lines = [e for e in entries if e.get("request_id") == "req-logs-1"]
    assert request_lines, output
    access = [e for e in request_lines if e["event"] == "request"]
    assert len(access) == 1
    assert access[0]["method"] == "POST"
    assert access[0]["route"] == "/v1/conversations/{conversation_id}/messages"
    assert access[0]["status"] == 201
    assert access[0]["app_id"] == str(tenant.id)
    assert access[0]["duration_ms"] >= 0
    assert all(e["app_id"] == str(tenant.id) for e in request_lines)
    assert any(e["event"] == "request" and e["request_id"] == generated_id for e in entries), (
        "a generated request id is logged as echoed"
    )

    # Standard-library logging comes out as the same JSON, with the same context.
    library = [e for e in entries if e.get("logger") == "uvicorn.error"]
    assert library and library[0]["request_id"] == "req-logs-2"
    assert library[0]["event"] == f"client sent Bearer {REDACTED} with {REDACTED}"

    # The job: its lines carry the job id, task, attempt, app, and the request that caused it.
    job_lines = [e for e in entries if e.get("job_id") == job_id]
    assert {e["event"] for e in job_lines} >= {"tenant_job_ran", "job_succeeded"}
    for entry in job_lines:
        assert entry["request_id"] == "req-logs-3"
        assert entry["task"] == "test.tenant_count"
        assert entry["attempt"] == 1
        assert entry["app_id"] == str(tenant.id)
    ran = next(e for e in job_lines if e["event"] == "tenant_job_ran")
    assert ran["push_token"] == REDACTED
    assert ran["details"] == {"password": REDACTED}

    # Nothing secret anywhere in the output.
    for secret in (
        tenant.sdk_key,
        tenant.secret_key,
        JWT,
        "cookie-value-that-is-secret",
        "master-key-that-is-secret",
        "push-token-value-secret",
    ):
        assert secret not in output


def test_redaction_by_name_at_any_depth() -> None:
    event = {
        "headers": {"Authorization": "Bearer x", "X-Api-Key": "k", "Cookie": "c", "Accept": "*/*"},
        "asgi_headers": [(b"x-master-key", b"m"), (b"content-type", b"application/json")],
        "body": {"user": {"password": "p", "push_token": "t", "name": "Ada"}},
        "list": [{"refresh_token": "r"}, {"identity_secret": "s"}, {"user_hash": "h"}],
        "absent_key": None,
    }
    assert redact(event) == {
        "headers": {
            "Authorization": REDACTED,
            "X-Api-Key": REDACTED,
            "Cookie": REDACTED,
            "Accept": "*/*",
        },
        # bytes come out as text (JSON has no bytes)
        "asgi_headers": [("x-master-key", REDACTED), ("content-type", "application/json")],
        "body": {"user": {"password": REDACTED, "push_token": REDACTED, "name": "Ada"}},
        "list": [
            {"refresh_token": REDACTED},
            {"identity_secret": REDACTED},
            {"user_hash": REDACTED},
        ],
        "absent_key": None,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key rhq_sdk_AbCdEf0123456789xyz failed", f"key {REDACTED} failed"),
        ("rotated to rhq_sk_Zz-_09aaaaaaaaaaaa.", f"rotated to {REDACTED}."),
        (f"got {JWT} from client", f"got {REDACTED} from client"),
        ("Authorization: Bearer abc.def-ghi_jkl", f"Authorization: Bearer {REDACTED}"),
        ("postgresql://owner:hunter2@db:5432/app", f"postgresql://owner:{REDACTED}@db:5432/app"),
        ("login password=hunter2&next=/", f"login password={REDACTED}&next=/"),
        ("{'api_key': 'abc123', 'n': 1}", f"{{'api_key': '{REDACTED}', 'n': 1}}"),
        ("a plain sentence about tokens and keys", "a plain sentence about tokens and keys"),
        # What PostgreSQL quotes back of the values a statement was given.
        (
            "duplicate key\nDETAIL:  Key (email)=(ada@example.com) already exists.",
            f"duplicate key\nDETAIL:  Key (email)=({REDACTED})",
        ),
        (
            "DETAIL:  Key (lower(email::text))=(ada@example.com) already exists.",
            f"DETAIL:  Key (lower(email::text))=({REDACTED})",
        ),
        (
            "not-null\nDETAIL:  Failing row contains (1, ada@example.com, null).\nnext",
            f"not-null\nDETAIL:  Failing row contains ({REDACTED})\nnext",
        ),
        (
            'invalid input syntax for type uuid: "my message"\nCONTEXT: x',
            f'invalid input syntax for type uuid: "{REDACTED}"\nCONTEXT: x',
        ),
        (
            "[SQL: SELECT 1]\n[parameters: {'body': 'my message'}]\n(Background",
            f"[SQL: SELECT 1]\n[parameters: {REDACTED}]\n(Background",
        ),
    ],
)
def test_redaction_of_secrets_inside_text(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact({"message": [text]}) == {"message": [expected]}


@pytest.mark.slow
async def test_a_real_server_writes_only_json_with_one_access_line_per_request(
    live_server: LiveServer, tenant: Tenant, runtime: Runtime
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        response = await client.post(
            "/v1/identify",
            headers={**tenant.sdk("device-live"), "X-Request-Id": "req-live-1"},
            json={"platform": "ios", "push_token": "apns-token-that-is-secret"},
        )
        assert response.status_code == 200
        assert (await client.get("/nowhere", headers={"X-Request-Id": "req-live-2"})).status_code
    await asyncio.to_thread(live_server.stop)
    output = live_server.log.read_text()
    entries = json_lines(output)  # every line, uvicorn's included, is JSON
    requests = [e for e in entries if e["event"] == "request"]
    by_id = {e["request_id"]: e for e in requests}
    assert by_id["req-live-1"]["route"] == "/v1/identify"
    assert by_id["req-live-1"]["app_id"] == str(tenant.id)
    assert by_id["req-live-2"]["status"] == 404
    for request_id in ("req-live-1", "req-live-2"):
        assert [e["request_id"] for e in requests].count(request_id) == 1
    assert not [e for e in entries if e.get("logger") == "uvicorn.access"]
    assert any(e.get("logger") == "uvicorn.error" for e in entries)  # uvicorn's own, as JSON
    # Without autovacuum (this CI's PostgreSQL), one warning at startup, as JSON too.
    async with runtime.db.engine.connect() as connection:
        autovacuum = await connection.run_sync(autovacuum_is_on)
    warned = [e for e in entries if e["event"] == "autovacuum_off"]
    assert len(warned) == (0 if autovacuum else 1), output
    assert all(e["level"] == "warning" and "ANALYZE" in e["advice"] for e in warned)
    for secret in (tenant.sdk_key, "apns-token-that-is-secret"):
        assert secret not in output


async def test_every_line_of_a_socket_event_carries_its_request_id_and_app(
    socket_server: SocketServer, tenant: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real Socket.IO clients: each event (connect, message:send, disconnect, in both
    namespaces) gets a request id of its own, the caller's app on every line, one
    `socket_event` line with its outcome, and nothing secret."""
    async with httpx.AsyncClient(base_url=socket_server.url) as http:
        await identify(http, tenant, "log-phone")
        conversation = await start_conversation(http, tenant, "log-phone")
        agent = await signed_in(socket_server.runtime, http, tenant, "AGENT")
    capsys.readouterr()  # from here on, only the socket events

    phone, desk = Recorder(), Recorder()
    auth = {"app_id": str(tenant.id), "api_key": tenant.sdk_key, "device_id": "log-phone"}
    await phone.connect(socket_server.url, auth)
    send = {"conversation_id": conversation["id"], "body": "Hi", "client_msg_id": "log-1"}
    assert (await phone.call("message:send", send))["ok"] is True
    assert (await phone.call("message:send", {"body": 1}))["code"] == "VALIDATION_ERROR"
    await desk.connect(socket_server.url, {"token": agent.access}, namespace="/admin")
    await phone.close()
    await desk.close()
    assert await refused(socket_server.url, auth | {"api_key": "rhq_sdk_wrong"})
    output = ""
    for _ in range(100):  # the disconnects are handled by the server a moment later
        output += capsys.readouterr().out
        if output.count('"socket_event": "disconnect"') == 2:
            break
        await asyncio.sleep(0.05)
    entries = json_lines(output)

    events = [e for e in entries if e["event"] == "socket_event"]
    seen = [(e["namespace"], e["socket_event"], e["ok"], e.get("code")) for e in events]
    assert sorted(seen, key=str) == sorted(
        [
            ("/", "connect", True, None),
            ("/", "message:send", True, None),
            ("/", "message:send", False, "VALIDATION_ERROR"),
            ("/admin", "connect", True, None),
            ("/", "disconnect", True, None),
            ("/admin", "disconnect", True, None),
            ("/", "connect", False, "INVALID_CREDENTIALS"),
        ],
        key=str,
    )
    refusal = next(e for e in events if e["ok"] is False and e["socket_event"] == "connect")
    accepted = [e for e in events if e is not refusal]
    assert len({e["request_id"] for e in events}) == len(events)  # one id per event
    assert all(e["app_id"] == str(tenant.id) for e in accepted)
    staff_lines = [e for e in accepted if e["namespace"] == "/admin"]
    assert [e.get("staff_id") for e in staff_lines] == [str(agent.id)] * 2
    assert "app_id" not in refusal  # refused before the key was verified
    for event in accepted:  # every line of the event, not only its own, carries the context
        lines = [e for e in entries if e.get("request_id") == event["request_id"]]
        assert all(e.get("app_id") == str(tenant.id) for e in lines), lines
    for secret in (tenant.sdk_key, agent.access):
        assert secret not in output
