"""The test console: an app's SDK traffic, live, to its OWNERs and ADMINs who asked for it, with
secrets redacted; an AGENT and another app's owner see nothing; a console in one server process
hears traffic handled by another."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import socketio

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
