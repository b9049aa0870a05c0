"""The message POST and /v1/events answered by web/hot.py answer exactly as FastAPI's routes do.

A `Content-Type: application/x.same+json` request is parsed as JSON by FastAPI but is not one the
fast path takes, so the same request can be answered both ways and the answers compared.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from replyhq.analytics import routes as analytics_routes
from replyhq.messaging import routes as messaging_routes
from replyhq.web import hot
from replyhq.web.hot import HotRoutes, hot_route
from tests.conftest import Tenant, identify, start_conversation

SLOW = {"Content-Type": "application/x.same+json"}  # FastAPI's own route answers it
FAST = {"Content-Type": "application/json"}
# Headers that differ between any two answers.
VARYING = {"x-request-id", "ratelimit-remaining", "ratelimit-reset", "date"}


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the fast path answered itself."""
    answered: list[str] = []
    original = HotRoutes._send

    async def spy(self: HotRoutes, scope: Any, *args: Any) -> None:
        answered.append(scope["path"])
        await original(self, scope, *args)

    monkeypatch.setattr(HotRoutes, "_send", spy)
    return answered


async def _post(
    client: httpx.AsyncClient,
    path: str,
    headers: dict[str, str],
    content: bytes,
    kind: dict[str, str],
) -> httpx.Response:
    return await client.post(path, headers={**headers, **kind}, content=content)


def _headers(response: httpx.Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.multi_items() if k not in VARYING]


def _same(fast: httpx.Response, slow: httpx.Response) -> None:
    assert fast.status_code == slow.status_code
    assert _headers(fast) == _headers(slow)
    assert [k for k, _ in fast.headers.multi_items()] == [k for k, _ in slow.headers.multi_items()]


async def test_a_send_and_its_retry_answer_as_fastapi_does(
    client: httpx.AsyncClient, tenant: Tenant, taken: list[str]
) -> None:
    await identify(client, tenant)
    cid = (await start_conversation(client, tenant))["id"]
    path = f"/v1/conversations/{cid}/messages"
    sdk = tenant.sdk()

    fast = await _post(client, path, sdk, b'{"body": "hi *there*", "client_msg_id": "f-1"}', FAST)
    slow = await _post(client, path, sdk, b'{"body": "hi *there*", "client_msg_id": "s-1"}', SLOW)
    assert taken == [path]
    assert fast.status_code == 201
    _same(fast, slow)
    assert fast.json()["seq"] + 1 == slow.json()["seq"]
    assert fast.json()["body_html"] == slow.json()["body_html"]

    # A retry of the same message: both ways give the stored message, to the byte.
    fast_retry = await _post(client, path, sdk, b'{"body":"x","client_msg_id":"f-1"}', FAST)
    slow_retry = await _post(client, path, sdk, b'{"body":"x","client_msg_id":"f-1"}', SLOW)
    assert fast_retry.status_code == 200
    _same(fast_retry, slow_retry)
    assert fast_retry.content == slow_retry.content == fast.content


@pytest.mark.parametrize(
    "case",
    ["unknown conversation", "unknown device", "wrong key", "no device", "blank body"],
)
async def test_refusals_answer_as_fastapi_does(
    client: httpx.AsyncClient, tenant: Tenant, case: str, taken: list[str]
) -> None:
    await identify(client, tenant)
    cid = (await start_conversation(client, tenant))["id"]
    sdk = tenant.sdk()
    body = {"body": "hello", "client_msg_id": uuid.uuid4().hex}
    if case == "unknown conversation":
        cid = str(uuid.uuid4())
    elif case == "unknown device":
        sdk = tenant.sdk("never-identified")
    elif case == "wrong key":
        sdk = {**sdk, "X-Api-Key": "rhq_sdk_wrong"}
    elif case == "no device":
        del sdk["X-Device-Id"]
    elif case == "blank body":
        body["body"] = "   "
    path = f"/v1/conversations/{cid}/messages"
    fast = await _post(client, path, sdk, json.dumps(body).encode(), FAST)
    slow = await _post(client, path, sdk, json.dumps(body).encode(), SLOW)
    assert taken == [path]
    assert fast.status_code in (400, 401, 404)
    _same(fast, slow)
    assert fast.content == slow.content


@pytest.mark.parametrize(
    "content",
    [b'{"body": "hi"', b'{"body": "hi"}', b'{"body": "hi", "client_msg_id": "a", "x": 1}', b""],
)
async def test_bodies_it_does_not_take_get_fastapis_answer(
    client: httpx.AsyncClient, tenant: Tenant, content: bytes, taken: list[str]
) -> None:
    await identify(client, tenant)
    cid = (await start_conversation(client, tenant))["id"]
    path = f"/v1/conversations/{cid}/messages"
    fast = await _post(client, path, tenant.sdk(), content, FAST)
    slow = await _post(client, path, tenant.sdk(), content, SLOW)
    assert taken == []  # replayed to FastAPI, which read the same body
    assert fast.status_code == 400
    _same(fast, slow)
    assert fast.content == slow.content


async def test_a_rate_limited_send_answers_as_fastapi_does(
    client: httpx.AsyncClient, tenant: Tenant, taken: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await identify(client, tenant)
    cid = (await start_conversation(client, tenant))["id"]
    path = f"/v1/conversations/{cid}/messages"
    runtime = client._transport.app.state.runtime  # type: ignore[attr-defined]
    from limits import parse

    monkeypatch.setattr(runtime.limiter, "v1", parse("2/minute"))
    answers = []
    for n, kind in enumerate([FAST, FAST, FAST, SLOW]):
        content = json.dumps({"body": "hi", "client_msg_id": f"r-{n}"}).encode()
        answers.append(await _post(client, path, tenant.sdk(), content, kind))
    assert [a.status_code for a in answers] == [201, 201, 429, 429]
    _same(answers[2], answers[3])
    assert answers[2].json() == answers[3].json()
    assert answers[2].headers["retry-after"]


async def test_access_log_metrics_and_request_id_name_the_route(
    client: httpx.AsyncClient, tenant: Tenant, taken: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    await identify(client, tenant)
    cid = (await start_conversation(client, tenant))["id"]
    path = f"/v1/conversations/{cid}/messages"
    capsys.readouterr()
    content = json.dumps({"body": "hi", "client_msg_id": "m-1"}).encode()
    response = await _post(
        client, path, {**tenant.sdk(), "X-Request-Id": "req-hot-1"}, content, FAST
    )
    assert taken == [path]
    assert response.headers["x-request-id"] == "req-hot-1"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    access = [e for e in lines if e.get("event") == "request" and e.get("path") == path]
    assert len(access) == 1
    entry = access[0]
    assert entry["route"] == "/v1/conversations/{conversation_id}/messages"
    assert entry["status"] == 201 and entry["request_id"] == "req-hot-1"
    assert entry["app_id"] == str(tenant.id)
    metrics = (await client.get("/metrics")).text
    label = 'route="/v1/conversations/{conversation_id}/messages",status="201"'
    assert any(
        line.startswith("http_request_duration_seconds_count{") and label in line
        for line in metrics.splitlines()
    )


def test_the_routes_take_what_the_fast_path_gives(app: FastAPI) -> None:
    """Fails when an upgrade or an edit changes a route function's parameters: the fast path
    would turn itself off (and the route lose its speed) without this."""
    route = hot_route(app, hot.SEND)
    assert route is not None
    assert route.endpoint is messaging_routes.send_message
    assert route.path == "/v1/conversations/{conversation_id}/messages"
    assert route.status_code == 201
    assert hot.SEND.parameters == ("conversation_id", "body", "caller", "runtime", "response")
    route = hot_route(app, hot.TRACK)
    assert route is not None
    assert route.endpoint is analytics_routes.track_events
    assert route.path == "/v1/events"
    assert route.status_code == 202
    assert hot.TRACK.parameters == ("body", "caller", "runtime")


# --- POST /v1/events -------------------------------------------------------------------------


async def _stored_events(client: httpx.AsyncClient, tenant: Tenant) -> list[str]:
    runtime = client._transport.app.state.runtime  # type: ignore[attr-defined]
    async with runtime.db.tenant_session(tenant.id) as session:
        rows = await session.execute(text("SELECT name FROM events ORDER BY name"))
        return list(rows.scalars())


async def test_a_tracked_batch_answers_as_fastapi_does(
    client: httpx.AsyncClient, tenant: Tenant, taken: list[str]
) -> None:
    await identify(client, tenant)
    sdk = tenant.sdk()
    fast = await _post(
        client, "/v1/events", sdk, b'{"events": [{"name": "a"}, {"name": "b"}]}', FAST
    )
    slow = await _post(
        client, "/v1/events", sdk, b'{"events": [{"name": "c"}, {"name": "d"}]}', SLOW
    )
    assert taken == ["/v1/events"]
    assert fast.status_code == 202
    _same(fast, slow)
    assert fast.content == slow.content == b'{"accepted":2}'
    assert await _stored_events(client, tenant) == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    "case", ["unknown device", "wrong key", "no device", "timestamp too old", "too many events"]
)
async def test_tracking_refusals_answer_as_fastapi_does(
    client: httpx.AsyncClient, tenant: Tenant, case: str, taken: list[str]
) -> None:
    await identify(client, tenant)
    sdk = tenant.sdk()
    events: list[dict[str, Any]] = [{"name": "x"}]
    if case == "unknown device":
        sdk = tenant.sdk("never-identified")
    elif case == "wrong key":
        sdk = {**sdk, "X-Api-Key": "rhq_sdk_wrong"}
    elif case == "no device":
        del sdk["X-Device-Id"]
    elif case == "timestamp too old":
        events = [{"name": "x"}, {"name": "y", "timestamp": "2001-01-01T00:00:00Z"}]
    elif case == "too many events":
        events = [{"name": "x"}] * 101
    content = json.dumps({"events": events}).encode()
    fast = await _post(client, "/v1/events", sdk, content, FAST)
    slow = await _post(client, "/v1/events", sdk, content, SLOW)
    # The model refuses 101 events: FastAPI answers that one, with the body replayed.
    assert taken == ([] if case == "too many events" else ["/v1/events"])
    assert fast.status_code in (400, 401)
    _same(fast, slow)
    assert fast.content == slow.content
    assert await _stored_events(client, tenant) == []
