"""The test console: an app's SDK traffic, live, to its OWNERs and ADMINs who asked for it, with
secrets redacted; an AGENT and another app's owner see nothing; a console in one server process
hears traffic handled by another. Every refusal reason reaches it: a bad key, a wrong user_hash
(HTTP and socket), a rate limit, a browser origin not allowed (when the request names the app),
the plan's limit; and so do tracked events (HTTP and socket)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import socketio
from sqlalchemy import update

from replyhq.billing.models import Subscription
from replyhq.billing.service import subscription_of, utcnow
from tests.billing_support import Billing
from tests.conftest import Servers, SocketServer, make_settings, serve_in_process
from tests.newcomers import Newcomer, sign_up
from tests.realtime_clients import Recorder
from tests.staff import add_staff, login
from tests.test_protocol import check


async def console(server: SocketServer, token: str, recorders: list[Recorder]) -> Recorder:
    recorder = Recorder()
    await recorder.connect(server.url, {"token": token}, namespace="/admin")
    recorders.append(recorder)
    ack = await recorder.call("console:subscribe", {})
    assert ack == {"ok": True}, ack
    return recorder


def device_auth(owner: Newcomer, device: str, **extra: str) -> dict[str, str]:
    app = owner.tenant
    return {"app_id": str(app.id), "api_key": app.sdk_key, "device_id": device, **extra}


def entries(recorder: Recorder) -> list[dict[str, Any]]:
    return [entry for batch in recorder.events["console:entries"] for entry in batch["entries"]]


async def entries_until(recorder: Recorder, kind: str, count: int = 1) -> list[dict[str, Any]]:
    async def enough() -> None:
        while len([e for e in entries(recorder) if e["type"] == kind]) < count:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(enough(), 5)
    return [e for e in entries(recorder) if e["type"] == kind]


async def test_the_console_shows_an_apps_sdk_traffic_with_secrets_redacted(
    socket_server: SocketServer, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    owner = await sign_up(http)
    app = owner.tenant
    watcher = await console(socket_server, owner.access, recorders)

    # An identify with proof: shown, without the user_hash.
    proof = owner.user_hash("ann")
    identified = await http.post(
        "/v1/identify",
        headers=app.sdk("phone"),
        json={"platform": "ios", "user_id": "ann", "user_hash": proof, "push_token": "tok-123"},
    )
    assert identified.status_code == 200
    [identify] = await entries_until(watcher, "identify")
    assert identify["device_id"] == "phone" and identify["user_id"] == "ann"
    assert identify["data"]["verified"] is True and identify["data"]["platform"] == "ios"

    # A socket connects, sends, types, and goes.
    device = Recorder()
    await device.connect(
        socket_server.url, device_auth(owner, "phone", user_id="ann", user_hash=proof)
    )
    started = await http.post("/v1/conversations", headers=app.sdk("phone"), json={})
    conversation_id = started.json()["id"]
    sent = await device.call(
        "message:send",
        {"conversation_id": conversation_id, "body": "Hello from the SDK", "client_msg_id": "m1"},
    )
    assert sent["ok"] is True
    typing = await device.call("typing", {"conversation_id": conversation_id, "typing": True})
    assert typing["ok"] is True
    refused = await device.call("read", {"conversation_id": conversation_id, "seq": 99})
    assert refused["ok"] is False
    await device.close()
    [connected] = await entries_until(watcher, "connect")
    assert connected["device_id"] == "phone"
    [message] = await entries_until(watcher, "message")
    assert message["data"]["body"] == "Hello from the SDK"
    assert message["data"]["sender"] == "user"
    await entries_until(watcher, "typing")
    [socket_refusal] = await entries_until(watcher, "refused")
    assert socket_refusal["data"]["event"] == "read"
    assert socket_refusal["data"]["code"] == "SEQ_OUT_OF_RANGE"
    await entries_until(watcher, "disconnect")

    # Refused calls, each with its reason: a bad key, a wrong user_hash, a bad handshake.
    bad_key = {**app.sdk("phone"), "X-Api-Key": "rhq_sdk_wrong"}
    assert (
        await http.post("/v1/identify", headers=bad_key, json={"platform": "web"})
    ).status_code == 401
    wrong_hash = await http.post(
        "/v1/identify",
        headers=app.sdk("phone"),
        json={"platform": "web", "user_id": "ann", "user_hash": "0" * 64},
    )
    assert wrong_hash.status_code == 401
    stranger = Recorder()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await stranger.connect(socket_server.url, device_auth(owner, "tablet", api_key="nope"))
    refusals = await entries_until(watcher, "refused", 3)
    http_refusals = [r for r in refusals if r["data"]["transport"] == "http"]
    assert [(r["data"]["status"], r["data"]["code"]) for r in http_refusals] == [
        (401, "INVALID_CREDENTIALS"),  # the bad key
        (401, "INVALID_USER_HASH"),
    ]
    assert all(r["data"]["path"] == "/v1/identify" for r in http_refusals)
    assert all(r["data"]["reason"] for r in http_refusals)
    [handshake] = await entries_until(watcher, "connect_refused")
    assert handshake["device_id"] == "tablet"
    assert handshake["data"]["code"] == "INVALID_CREDENTIALS"

    everything = json.dumps(watcher.events["console:entries"])
    for secret in (proof, "tok-123", app.sdk_key, "rhq_sdk_wrong", "nope", "0" * 64):
        assert secret not in everything
    for batch in watcher.events["console:entries"]:
        check("server", "console:entries", batch)


async def test_an_agent_and_another_apps_owner_see_nothing(
    socket_server: SocketServer, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    owner = await sign_up(http)
    other = await sign_up(http, "Other")
    runtime = socket_server.runtime
    agent = await login(http, await add_staff(runtime, owner.tenant.id, "AGENT"))
    admin = await login(http, await add_staff(runtime, owner.tenant.id, "ADMIN"))

    agent_socket = Recorder()
    await agent_socket.connect(socket_server.url, {"token": agent.access}, namespace="/admin")
    recorders.append(agent_socket)
    denied = await agent_socket.call("console:subscribe", {})
    assert denied["ok"] is False and denied["code"] == "PERMISSION_DENIED"
    check("client", "console:subscribe", denied, ack=True)
    admin_console = await console(socket_server, admin.access, recorders)
    other_console = await console(socket_server, other.access, recorders)

    app = owner.tenant
    await http.post("/v1/identify", headers=app.sdk("d1"), json={"platform": "web"})
    await http.post(
        "/v1/identify", headers={**app.sdk("d1"), "X-Api-Key": "bad"}, json={"platform": "web"}
    )
    await entries_until(admin_console, "identify")
    await entries_until(admin_console, "refused")
    await asyncio.sleep(0.3)
    assert agent_socket.events["console:entries"] == []
    assert other_console.events["console:entries"] == []

    # Unsubscribed: nothing more arrives.
    assert await admin_console.call("console:unsubscribe", {}) == {"ok": True}
    await http.post("/v1/identify", headers=app.sdk("d2"), json={"platform": "web"})
    await asyncio.sleep(0.3)
    assert len([e for e in entries(admin_console) if e["type"] == "identify"]) == 1


async def test_an_origin_refused_at_the_handshake_is_shown_when_the_app_is_named(
    socket_server: SocketServer, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    owner = await sign_up(http)
    watcher = await console(socket_server, owner.access, recorders)
    client = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            f"{socket_server.url}?app_id={owner.app_id}",
            headers={"Origin": "https://not-allowed.example"},
            auth=device_auth(owner, "d1"),
            transports=["websocket"],
        )
    [refused] = await entries_until(watcher, "connect_refused")
    assert refused["data"]["code"] == "ORIGIN_REFUSED"
    assert refused["data"]["origin"] == "https://not-allowed.example"


async def test_refused_for_rate_limits(servers: Servers, recorders: list[Recorder]) -> None:
    server, stop = await serve_in_process(make_settings(servers, rate_limit_v1="2/minute"))
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            owner = await sign_up(http)
            watcher = await console(server, owner.access, recorders)
            headers = owner.tenant.sdk("busy")
            statuses = [
                (
                    await http.post("/v1/identify", headers=headers, json={"platform": "web"})
                ).status_code
                for _ in range(3)
            ]
            assert statuses == [200, 200, 429]
            [limited] = await entries_until(watcher, "refused")
            assert limited["data"]["code"] == "RATE_LIMITED"
            assert limited["data"]["retry_after"] > 0
            assert limited["device_id"] == "busy"
            # The same device's socket handshake, over its limit too.
            device = Recorder()
            with pytest.raises(socketio.exceptions.ConnectionError):
                await device.connect(server.url, device_auth(owner, "busy"))
            [handshake] = await entries_until(watcher, "connect_refused")
            assert handshake["device_id"] == "busy"
            assert handshake["data"]["code"] == "RATE_LIMITED"
    finally:
        for recorder in recorders:
            await recorder.close()
        recorders.clear()
        await stop()


@pytest.fixture
async def second_server(servers: Servers) -> AsyncIterator[SocketServer]:
    server, stop = await serve_in_process(make_settings(servers, presence_ttl_seconds=3))
    yield server
    await stop()


async def test_a_console_hears_traffic_another_process_handles(
    socket_server: SocketServer,
    second_server: SocketServer,
    http: httpx.AsyncClient,
    recorders: list[Recorder],
) -> None:
    owner = await sign_up(http)
    watcher = await console(socket_server, owner.access, recorders)
    await asyncio.sleep(1.5)  # the other process reads who watches once a second
    async with httpx.AsyncClient(base_url=second_server.url) as elsewhere:
        answer = await elsewhere.post(
            "/v1/identify", headers=owner.tenant.sdk("far"), json={"platform": "android"}
        )
        assert answer.status_code == 200
    [entry] = await entries_until(watcher, "identify")
    assert entry["device_id"] == "far"


async def test_tracked_events_are_shown_redacted_from_http_and_the_socket(
    socket_server: SocketServer, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    owner = await sign_up(http)
    app = owner.tenant
    watcher = await console(socket_server, owner.access, recorders)
    assert (
        await http.post("/v1/identify", headers=app.sdk("shop"), json={"platform": "web"})
    ).status_code == 200
    tracked = await http.post(
        "/v1/events",
        headers=app.sdk("shop"),
        json={
            "events": [
                {"name": "checkout", "properties": {"plan": "pro", "password": "hunter2-secret"}},
                {"name": "viewed_pricing", "timestamp": "2026-12-01T10:00:00+00:00"},
            ]
        },
    )
    assert tracked.status_code == 202, tracked.text
    device = Recorder()
    await device.connect(socket_server.url, device_auth(owner, "shop"))
    recorders.append(device)
    ack = await device.call("track", {"events": [{"name": "opened_app", "properties": {"n": 2}}]})
    assert ack == {"ok": True, "accepted": 1}, ack

    shown = await entries_until(watcher, "event", 3)
    assert [(e["data"]["name"], e["data"]["transport"]) for e in shown] == [
        ("checkout", "http"),
        ("viewed_pricing", "http"),
        ("opened_app", "socket"),
    ]
    assert all(e["device_id"] == "shop" for e in shown)
    assert shown[0]["data"]["properties"] == {"plan": "pro", "password": "[redacted]"}
    assert shown[1]["data"]["timestamp"].startswith("2026-12-01T10:00:00")
    assert shown[2]["data"]["properties"] == {"n": 2}
    assert "hunter2-secret" not in json.dumps(watcher.events["console:entries"])
    for batch in watcher.events["console:entries"]:
        check("server", "console:entries", batch)

    # An event refused (the device never identified) is a refusal, not an event.
    refused = await http.post(
        "/v1/events", headers=app.sdk("stranger"), json={"events": [{"name": "x"}]}
    )
    assert refused.status_code == 401
    [refusal] = await entries_until(watcher, "refused")
    assert refusal["device_id"] == "stranger" and refusal["data"]["path"] == "/v1/events"
    assert len([e for e in entries(watcher) if e["type"] == "event"]) == 3


async def test_a_wrong_user_hash_at_the_socket_handshake_is_shown(
    socket_server: SocketServer, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    owner = await sign_up(http)
    watcher = await console(socket_server, owner.access, recorders)
    proof = owner.user_hash("ann")
    assert (
        await http.post(
            "/v1/identify",
            headers=owner.tenant.sdk("laptop"),
            json={"platform": "web", "user_id": "ann", "user_hash": proof},
        )
    ).status_code == 200
    impostor = Recorder()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await impostor.connect(
            socket_server.url, device_auth(owner, "laptop", user_id="ann", user_hash="0" * 64)
        )
    [refused] = await entries_until(watcher, "connect_refused")
    assert refused["device_id"] == "laptop" and refused["user_id"] == "ann"
    assert refused["data"]["code"] == "INVALID_USER_HASH"
    assert refused["data"]["reason"]
    assert "0" * 64 not in json.dumps(watcher.events["console:entries"])


def _origin_refusals(recorder: Recorder) -> list[dict[str, Any]]:
    return [e for e in entries(recorder) if e["data"].get("code") == "ORIGIN_REFUSED"]


async def test_http_calls_from_a_refused_origin_are_shown_when_they_name_the_app(
    socket_server: SocketServer, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    owner = await sign_up(http)
    app = owner.tenant
    watcher = await console(socket_server, owner.access, recorders)
    site = "https://not-allowed.example"
    preflight = {
        "Origin": site,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-app-id, x-api-key, x-device-id, content-type",
    }

    # A bare preflight names no app: it cannot be shown (the server log has it).
    bare = await http.options("/v1/identify", headers=preflight)
    assert "access-control-allow-origin" not in bare.headers
    # A call that names its app in X-App-Id (a browser would never send it after a refused
    # preflight, but any other client may): answered without CORS headers, and shown.
    call = await http.post(
        "/v1/identify", headers={**app.sdk("web-1"), "Origin": site}, json={"platform": "web"}
    )
    assert "access-control-allow-origin" not in call.headers
    [shown] = await _until(watcher, lambda: _origin_refusals(watcher), 1)
    assert shown["type"] == "refused" and shown["device_id"] == "web-1"
    assert shown["data"]["transport"] == "http" and shown["data"]["path"] == "/v1/identify"
    assert shown["data"]["origin"] == site and site in shown["data"]["reason"]
    assert "ALLOWED_ORIGINS" in shown["data"]["reason"]

    # A preflight, or the messenger's no-cors probe, that names the app in its address.
    named = await http.options(f"/v1/identify?app_id={app.id}", headers=preflight)
    assert named.status_code == 400
    probe = await http.post(f"/healthz?app_id={app.id}", headers={"Origin": site})
    assert probe.status_code == 405  # the messenger's probe: only that it was answered matters
    refusals = await _until(watcher, lambda: _origin_refusals(watcher), 3)
    assert [(r["data"]["method"], r["data"]["path"]) for r in refusals[1:]] == [
        ("OPTIONS", "/v1/identify"),
        ("POST", "/healthz"),
    ]
    assert "preflight" in refusals[1]["data"]["reason"]

    # An allowed origin is not a refusal; another app's console hears nothing of this one.
    allowed = await http.post(
        "/v1/identify",
        headers={**app.sdk("web-2"), "Origin": "https://customer.example"},
        json={"platform": "web"},
    )
    assert allowed.headers["access-control-allow-origin"] == "https://customer.example"
    await entries_until(watcher, "identify", 2)
    await asyncio.sleep(0.3)
    assert len(_origin_refusals(watcher)) == 3


async def _until(
    recorder: Recorder, found: Any, count: int, timeout: float = 5
) -> list[dict[str, Any]]:
    async def enough() -> list[dict[str, Any]]:
        while len(found()) < count:
            await asyncio.sleep(0.02)
        result: list[dict[str, Any]] = found()
        return result

    return await asyncio.wait_for(enough(), timeout)


async def test_a_call_over_the_plan_is_shown_with_its_reason(
    billing: Billing, recorders: list[Recorder]
) -> None:
    async with httpx.AsyncClient(base_url=billing.server.url) as http:
        owner = await sign_up(http)
        app = owner.tenant
        watcher = await console(billing.server, owner.access, recorders)
        assert (
            await http.post("/v1/identify", headers=app.sdk("d1"), json={"platform": "web"})
        ).status_code == 200
        async with billing.runtime.db.tenant_session(app.id) as session:  # the trial is over
            await subscription_of(session, billing.settings, app.id)
            await session.execute(
                update(Subscription)
                .where(Subscription.app_id == app.id)
                .values(trial_ends_at=utcnow() - dt.timedelta(days=1))
            )
        refused = await http.post(
            "/v1/conversations",
            headers=app.sdk("d1"),
            json={"first_message": {"body": "hi", "client_msg_id": "c1"}},
        )
        assert refused.status_code == 402
        [shown] = await entries_until(watcher, "refused")
        assert shown["device_id"] == "d1" and shown["data"]["status"] == 402
        assert shown["data"]["code"] == "PLAN_LIMIT_REACHED"
        assert shown["data"]["reason"] == refused.json()["error"]
