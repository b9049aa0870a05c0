"""Namespace `/`: end users' devices over real websockets."""

from __future__ import annotations

import asyncio
import gc
import json
import uuid
from typing import Any

import httpx
import socketio
from engineio.packet import MESSAGE, Packet
from sqlalchemy import text
from websockets.asyncio.client import connect as websocket

from replyhq.apps import service as apps_service
from replyhq.realtime.base import KEPT_AFTER_CONNECT
from replyhq.realtime.server import DirectSocketServer
from replyhq.realtime.websocket import KEPT_IN_SCOPE, DirectSocket, LeanWebSocketProtocol
from tests.conftest import (
    MakeTenant,
    Servers,
    SocketServer,
    Tenant,
    make_settings,
    serve_asgi,
    serve_in_process,
)
from tests.realtime_clients import Recorder, refused


def device_auth(tenant: Tenant, device_id: str = "device-1", **extra: str) -> dict[str, str]:
    return {"app_id": str(tenant.id), "api_key": tenant.sdk_key, "device_id": device_id, **extra}


async def identify(http: httpx.AsyncClient, tenant: Tenant, device: str, user_id: str) -> None:
    body = {"platform": "ios", "user_id": user_id, "user_hash": tenant.user_hash(user_id)}
    response = await http.post("/v1/identify", headers=tenant.sdk(device), json=body)
    assert response.status_code == 200, response.text


async def connect(
    server: SocketServer, recorders: list[Recorder], auth: dict[str, Any]
) -> Recorder:
    recorder = Recorder()
    await recorder.connect(server.url, auth)
    recorders.append(recorder)
    return recorder


async def conversation_of(http: httpx.AsyncClient, tenant: Tenant, device: str) -> str:
    response = await http.post("/v1/conversations", headers=tenant.sdk(device), json={})
    assert response.status_code == 201
    cid: str = response.json()["id"]
    return cid


async def test_bad_credentials_are_refused_at_the_handshake(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient
) -> None:
    await identify(http, tenant, "phone", "ann")
    cases = [
        ({}, "INVALID_CREDENTIALS"),
        (device_auth(tenant, "phone") | {"api_key": "rhq_sdk_wrong"}, "INVALID_CREDENTIALS"),
        (device_auth(tenant, "phone") | {"api_key": tenant.secret_key}, "INVALID_CREDENTIALS"),
        (device_auth(tenant, "phone") | {"app_id": str(uuid.uuid4())}, "INVALID_CREDENTIALS"),
        ({k: v for k, v in device_auth(tenant).items() if k != "device_id"}, "DEVICE_ID_REQUIRED"),
        (device_auth(tenant, "never-identified"), "DEVICE_UNKNOWN"),
        (device_auth(tenant, "phone", user_id="bob"), "INVALID_USER_HASH"),
        (device_auth(tenant, "phone", user_id="ann", user_hash="0" * 64), "INVALID_USER_HASH"),
    ]
    for auth, code in cases:
        error = await refused(socket_server.url, auth)
        assert error["code"] == code, (auth, error)


async def test_send_by_socket_is_acknowledged_with_the_stored_message_once(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    await identify(http, tenant, "phone", "ann")
    cid = await conversation_of(http, tenant, "phone")
    phone = await connect(socket_server, recorders, device_auth(tenant, "phone", user_id="ann"))
    send = {"conversation_id": cid, "body": "from the socket", "client_msg_id": "s-1"}
    first, again = await phone.call("message:send", send), await phone.call("message:send", send)
    assert first["ok"] is True and first["message"]["seq"] == 1 and first["created"] is True
    assert again["ok"] is True and again["message"] == first["message"]
    assert again["created"] is False
    history = await http.get(f"/v1/conversations/{cid}/messages", headers=tenant.sdk("phone"))
    assert [m["body"] for m in history.json()["items"]] == ["from the socket"]
    bad = await phone.call("message:send", {"conversation_id": cid, "body": ""})
    assert bad["ok"] is False and bad["code"] == "VALIDATION_ERROR"
    other = await phone.call(
        "message:send", {"conversation_id": str(uuid.uuid4()), "body": "x", "client_msg_id": "z"}
    )
    assert other == {
        "ok": False,
        "code": "CONVERSATION_NOT_FOUND",
        "error": "No such conversation.",
    }


async def test_socket_sends_store_each_client_msg_id_once_with_gap_free_seq(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    """Concurrent sends from two devices of one person, each retried at once (the same
    client_msg_id three times, from both devices): one message per id, seq 1..n."""
    await identify(http, tenant, "phone", "ann")
    await identify(http, tenant, "tablet", "ann")
    cid = await conversation_of(http, tenant, "phone")
    phone = await connect(socket_server, recorders, device_auth(tenant, "phone"))
    tablet = await connect(socket_server, recorders, device_auth(tenant, "tablet"))

    def send(device: Recorder, i: int) -> Any:
        body = {"conversation_id": cid, "body": f"m{i}", "client_msg_id": f"c{i}"}
        return device.call("message:send", body)

    acks = await asyncio.gather(
        *(send(device, i) for i in range(10) for device in (phone, tablet, phone))
    )
    assert all(ack["ok"] for ack in acks), acks
    by_id: dict[str, set[str]] = {}
    for ack in acks:
        by_id.setdefault(ack["message"]["client_msg_id"], set()).add(ack["message"]["id"])
    assert all(len(ids) == 1 for ids in by_id.values()) and len(by_id) == 10
    assert sum(ack["created"] for ack in acks) == 10
    history = await http.get(
        f"/v1/conversations/{cid}/messages", params={"limit": 100}, headers=tenant.sdk("phone")
    )
    stored = history.json()["items"]
    assert [m["seq"] for m in stored] == list(range(1, 11))
    assert sorted(m["client_msg_id"] for m in stored) == sorted(by_id)
    summary = await http.get(f"/v1/conversations/{cid}", headers=tenant.sdk("phone"))
    assert summary.json()["last_seq"] == 10
    assert summary.json()["unread_count"] == 0  # the sender's own messages moved its marker


async def test_socket_send_is_committed_before_its_events_and_acked_with_them(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    """The other device's message:new is the acknowledged message, readable once it arrives; the
    author is the device's person as the database has them now (their latest name)."""
    body = {"platform": "ios", "user_id": "ann", "user_hash": tenant.user_hash("ann")}
    await http.post("/v1/identify", headers=tenant.sdk("phone"), json=body | {"name": "Ann"})
    await identify(http, tenant, "tablet", "ann")
    cid = await conversation_of(http, tenant, "phone")
    phone = await connect(socket_server, recorders, device_auth(tenant, "phone"))
    tablet = await connect(socket_server, recorders, device_auth(tenant, "tablet"))
    renamed = await http.post(
        "/v1/identify", headers=tenant.sdk("phone"), json=body | {"name": "Ann B."}
    )
    assert renamed.status_code == 200
    ack = await phone.call(
        "message:send", {"conversation_id": cid, "body": "*hi*", "client_msg_id": "e-1"}
    )
    assert ack["ok"] is True and ack["created"] is True
    (event,) = await tablet.wait_for("message:new")
    assert event["message"] == ack["message"]
    assert ack["message"]["author"]["name"] == "Ann B."
    assert ack["message"]["body_html"] == "<p><em>hi</em></p>"
    (own,) = await phone.wait_for("message:new")  # the sender's socket hears it too
    assert own == event
    history = await http.get(f"/v1/conversations/{cid}/messages", headers=tenant.sdk("tablet"))
    assert history.json()["items"] == [ack["message"]]


async def test_socket_send_refusals_match_the_http_send(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    await identify(http, tenant, "phone", "ann")
    await identify(http, tenant, "bob-phone", "bob")
    bobs = await conversation_of(http, tenant, "bob-phone")
    phone = await connect(socket_server, recorders, device_auth(tenant, "phone"))
    theirs = await phone.call(
        "message:send", {"conversation_id": bobs, "body": "hi Bob", "client_msg_id": "x-1"}
    )
    assert theirs == {
        "ok": False,
        "code": "CONVERSATION_NOT_FOUND",
        "error": "No such conversation.",
    }
    mine = await conversation_of(http, tenant, "phone")
    blank = await phone.call(
        "message:send", {"conversation_id": mine, "body": "  ", "client_msg_id": "x-2"}
    )
    assert blank["ok"] is False and blank["code"] == "VALIDATION_ERROR"
    assert blank["details"] == [{"field": "body", "reason": "is blank"}]
    too_long = await phone.call(
        "message:send", {"conversation_id": mine, "body": "x" * 8_001, "client_msg_id": "x-3"}
    )
    assert too_long["ok"] is False and too_long["code"] == "VALIDATION_ERROR"
    # The device forgotten while its socket is still open (before any revocation reaches it):
    # the same 401 as the HTTP send gives.
    async with socket_server.runtime.db.tenant_session(tenant.id) as session:
        await session.execute(text("DELETE FROM devices WHERE device_id = 'phone'"))
    gone = await phone.call(
        "message:send", {"conversation_id": mine, "body": "hello?", "client_msg_id": "x-4"}
    )
    assert gone["ok"] is False and gone["code"] == "DEVICE_UNKNOWN"
    async with socket_server.runtime.db.tenant_session(tenant.id) as session:
        stored = await session.scalar(text("SELECT count(*) FROM messages"))
        last_seqs = (await session.execute(text("SELECT last_seq FROM conversations"))).scalars()
        assert stored == 0 and set(last_seqs) == {0}


async def test_socket_sends_count_against_the_devices_limit(
    servers: Servers, tenant: Tenant, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    """v1's per-device limit (the handshake counts one): a refused send stores nothing."""
    await identify(http, tenant, "phone", "ann")
    cid = await conversation_of(http, tenant, "phone")
    limited, stop = await serve_in_process(make_settings(servers, rate_limit_v1="3/minute"))
    try:
        phone = await connect(limited, recorders, device_auth(tenant, "phone"))
        acks = [
            await phone.call(
                "message:send", {"conversation_id": cid, "body": f"m{i}", "client_msg_id": f"l{i}"}
            )
            for i in range(3)
        ]
        assert [a["ok"] for a in acks] == [True, True, False]
        assert acks[2]["code"] == "RATE_LIMITED"
        page = await http.get(f"/v1/conversations/{cid}/messages", headers=tenant.sdk("phone"))
        assert [m["body"] for m in page.json()["items"]] == ["m0", "m1"]
    finally:
        for recorder in recorders:
            await recorder.close()
        recorders.clear()
        await stop()


async def test_events_reach_only_the_end_users_own_devices(
    socket_server: SocketServer,
    make_tenant: MakeTenant,
    http: httpx.AsyncClient,
    recorders: list[Recorder],
) -> None:
    acme, other_app = await make_tenant("Acme"), await make_tenant("Other")
    await identify(http, acme, "ann-phone", "ann")
    await identify(http, acme, "ann-tablet", "ann")
    await identify(http, acme, "bob-phone", "bob")
    await identify(http, other_app, "ann-phone", "ann")  # same names, another tenant
    tablet = await connect(socket_server, recorders, device_auth(acme, "ann-tablet"))
    bob = await connect(socket_server, recorders, device_auth(acme, "bob-phone"))
    stranger = await connect(socket_server, recorders, device_auth(other_app, "ann-phone"))

    cid = await conversation_of(http, acme, "ann-phone")
    sent = await http.post(
        f"/v1/conversations/{cid}/messages",
        headers=acme.sdk("ann-phone"),
        json={"body": "sent over HTTP", "client_msg_id": "h-1"},
    )
    assert sent.status_code == 201
    (event,) = await tablet.wait_for("message:new")
    assert event["message"] == sent.json()
    await asyncio.sleep(0.3)
    assert bob.events["message:new"] == [] and stranger.events["message:new"] == []
    assert bob.events["conversation:updated"] == []


async def test_sync_returns_every_missed_message_once_in_order(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    await identify(http, tenant, "phone", "ann")
    cid = await conversation_of(http, tenant, "phone")
    for i in range(5):
        await http.post(
            f"/v1/conversations/{cid}/messages",
            headers=tenant.sdk("phone"),
            json={"body": f"m{i}", "client_msg_id": f"c{i}"},
        )
    phone = await connect(socket_server, recorders, device_auth(tenant, "phone"))
    synced = await phone.call("sync", {"conversation_id": cid, "after_seq": 2})
    assert synced["ok"] is True and synced["has_more"] is False
    assert [m["seq"] for m in synced["messages"]] == [3, 4, 5]
    paged = await phone.call("sync", {"conversation_id": cid, "after_seq": 0, "limit": 2})
    assert [m["seq"] for m in paged["messages"]] == [1, 2] and paged["has_more"] is True
    foreign = await phone.call("sync", {"conversation_id": str(uuid.uuid4()), "after_seq": 0})
    assert foreign["ok"] is False and foreign["code"] == "CONVERSATION_NOT_FOUND"


async def test_read_over_socket_moves_the_marker(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    await identify(http, tenant, "phone", "ann")
    await identify(http, tenant, "tablet", "ann")
    cid = await conversation_of(http, tenant, "phone")
    phone = await connect(socket_server, recorders, device_auth(tenant, "phone"))
    tablet = await connect(socket_server, recorders, device_auth(tenant, "tablet"))
    await phone.call("message:send", {"conversation_id": cid, "body": "hi", "client_msg_id": "r1"})
    ack = await phone.call("read", {"conversation_id": cid, "seq": 1})
    assert ack == {"ok": True, "seq": 1}
    (read,) = await tablet.wait_for("read")
    assert read == {
        "conversation_id": cid,
        "who": {"type": "user", "id": read["who"]["id"]},
        "seq": 1,
    }
    past = await phone.call("read", {"conversation_id": cid, "seq": 7})
    assert past["ok"] is False and past["code"] == "SEQ_OUT_OF_RANGE"


async def test_typing_is_checked_against_the_conversation(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    await identify(http, tenant, "phone", "ann")
    await identify(http, tenant, "bob-phone", "bob")
    cid = await conversation_of(http, tenant, "phone")
    bob = await connect(socket_server, recorders, device_auth(tenant, "bob-phone"))
    spoof = await bob.call("typing", {"conversation_id": cid, "typing": True})
    assert spoof["ok"] is False and spoof["code"] == "CONVERSATION_NOT_FOUND"
    phone = await connect(socket_server, recorders, device_auth(tenant, "phone"))
    assert (await phone.call("typing", {"conversation_id": cid, "typing": True}))["ok"] is True
    await asyncio.sleep(0.2)
    assert bob.events["typing"] == []


async def test_changing_identity_disconnects_the_devices_sockets(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    await identify(http, tenant, "kiosk", "alice")
    kiosk = await connect(socket_server, recorders, device_auth(tenant, "kiosk"))
    await identify(http, tenant, "kiosk", "alice")  # same person again: stays connected
    await asyncio.sleep(0.3)
    assert not kiosk.disconnected.is_set()
    await identify(http, tenant, "kiosk", "bob")
    await asyncio.wait_for(kiosk.disconnected.wait(), 5)


async def test_rotating_keys_disconnects_every_device(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    await identify(http, tenant, "phone", "ann")
    phone = await connect(socket_server, recorders, device_auth(tenant, "phone"))
    runtime = socket_server.runtime
    async with runtime.db.tenant_session(tenant.id) as session:
        await apps_service.rotate_keys(session, tenant.id, rounds=4, verifier=runtime.keys)
    await asyncio.wait_for(phone.disconnected.wait(), 5)
    error = await refused(socket_server.url, device_auth(tenant, "phone"))
    assert error["code"] == "INVALID_CREDENTIALS"


async def test_handshake_cors_allows_only_allowed_origins(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    await identify(http, tenant, "phone", "ann")
    for origin, allowed in (("https://customer.example", True), ("https://evil.example", False)):
        recorder = Recorder()
        try:
            await recorder.client.connect(
                socket_server.url,
                auth=device_auth(tenant, "phone"),
                transports=["websocket"],
                headers={"Origin": origin},
                wait_timeout=5,
            )
            connected = True
            recorders.append(recorder)
        except Exception:
            connected = False
        assert connected is allowed, origin
    preflight = await http.get(
        "/socket.io/?EIO=4&transport=polling", headers={"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in preflight.headers


async def test_a_process_without_sockets_delivers_through_redis(
    socket_server: SocketServer,
    servers: Servers,
    tenant: Tenant,
    http: httpx.AsyncClient,
    recorders: list[Recorder],
) -> None:
    """A job worker has no Socket.IO server: its committed events still reach every socket."""
    from redis.asyncio import Redis

    from replyhq.db import Database
    from replyhq.messaging import service as messaging
    from replyhq.messaging.service import Participant
    from replyhq.realtime.delivery import WriterSink

    await identify(http, tenant, "phone", "ann")
    cid = await conversation_of(http, tenant, "phone")
    phone = await connect(socket_server, recorders, device_auth(tenant, "phone"))
    settings = socket_server.runtime.settings
    redis = Redis.from_url(servers.redis_url)
    worker_db = Database.from_settings(settings, servers.database_url)
    worker_db.event_sink = sink = WriterSink(settings, servers.redis_url, redis)
    try:
        async with worker_db.tenant_session(tenant.id) as session:
            bot = Participant("agent", tenant.id, "Reminder bot")
            await messaging.send_message(
                session, tenant.id, uuid.UUID(cid), bot, "Still there?", "job-1"
            )
        (event,) = await phone.wait_for("message:new")
        assert event["message"]["author"]["name"] == "Reminder bot"
        from replyhq.events import Revoke

        await worker_db.event_sink(Revoke(tenant.id, device_id="phone"))
        await asyncio.wait_for(phone.disconnected.wait(), 5)
    finally:
        await worker_db.dispose()
        await sink.aclose()
        await redis.aclose()


async def test_an_open_socket_keeps_nothing_of_its_handshake_and_still_works(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    """What an idle socket costs in memory: after connect, neither python-socketio's environ,
    nor uvicorn's scope and protocol, keep the handshake's headers (docs/benchmarks-realtime.md),
    and the socket still sends, receives and closes."""
    await identify(http, tenant, "phone", "ann")
    await identify(http, tenant, "tablet", "ann")
    cid = await conversation_of(http, tenant, "phone")
    phone = await connect(socket_server, recorders, device_auth(tenant, "phone"))
    tablet = await connect(socket_server, recorders, device_auth(tenant, "tablet"))

    # This test's own two sockets: the shared server may hold others' mid-handshake or refused ones.
    environs = socket_server.app.state.realtime.sio.environ
    own = [environs[recorder.client.eio.sid] for recorder in (phone, tablet)]
    for environ in own:
        assert set(environ) <= KEPT_AFTER_CONNECT
        if environ["asgi.scope"]["type"] == "websocket":
            assert set(environ["asgi.scope"]) == KEPT_IN_SCOPE
    protocols = [o for o in gc.get_objects() if isinstance(o, LeanWebSocketProtocol)]
    accepted = [p for p in protocols if p.handshake_complete and not p.disconnected]
    assert len(accepted) >= 2
    assert not any(hasattr(p, "request") or hasattr(p, "response") for p in accepted)

    send = {"conversation_id": cid, "body": "still here", "client_msg_id": "lean-1"}
    ack = await phone.call("message:send", send)
    assert ack["ok"] is True
    (event,) = await tablet.wait_for("message:new")
    assert event["message"] == ack["message"]
    await tablet.close()
    await asyncio.wait_for(tablet.disconnected.wait(), 5)


async def test_frames_sent_at_once_and_then_a_close_arrive_whole_and_in_order() -> None:
    """`replyhq serve`'s protocol writes a socket's frames of one event-loop iteration in one
    write (realtime/websocket.py): a burst sent without a pause, then a close, reaches the peer
    whole, in order, with the close last; a close from the peer is answered before the socket
    is shut (uvicorn writes the answer and closes the transport at once)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        if scope["path"] == "/listen":
            while (await receive())["type"] != "websocket.disconnect":
                pass
            return
        for n in range(500):
            await send({"type": "websocket.send", "text": f"frame {n}"})
        await send({"type": "websocket.close", "code": 1000, "reason": "done"})

    port, stop = await serve_asgi(app)
    try:
        async with websocket(f"ws://127.0.0.1:{port}/") as peer:
            received = [message async for message in peer]
        assert received == [f"frame {n}" for n in range(500)]
        assert (peer.close_code, peer.close_reason) == (1000, "done")

        async with websocket(f"ws://127.0.0.1:{port}/listen", close_timeout=5) as peer:
            await peer.close(1000, "bye")
        assert peer.protocol.close_rcvd is not None  # answered, not cut off
        assert (peer.close_code, peer.close_reason) == (1000, "bye")
    finally:
        await stop()


async def test_packets_written_directly_or_queued_while_writes_are_paused_arrive_in_order() -> None:
    """A socket of `replyhq serve` writes a packet itself while nothing waits before it
    (DirectSocket); while the server's writes are paused (the transport's buffer is full),
    packets queue for Engine.IO's writer, and one sent just as writes resume waits behind those
    still queued or held by the writer. The peer gets every packet once, in order."""

    sio = DirectSocketServer(async_mode="asgi")
    port, stop = await serve_asgi(socketio.ASGIApp(sio))
    try:
        url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
        async with websocket(url) as peer:
            assert (await peer.recv()).startswith("0")  # Engine.IO's open packet
            (socket,) = sio.eio.sockets.values()
            assert isinstance(socket, DirectSocket)
            protocol = socket._protocol
            assert isinstance(protocol, LeanWebSocketProtocol)

            async def send(numbers: range) -> None:
                for n in numbers:
                    await socket.send(Packet(MESSAGE, f'2["n",{n}]'))

            await send(range(10))
            assert socket.queue.empty()  # written directly, not handed to the writer

            protocol.pause_writing()  # what the transport does when its buffer is full
            await send(range(10, 20))
            assert socket.queue.qsize() == 10
            await asyncio.sleep(0.05)  # the writer takes them and waits for writes to resume
            assert socket.queue.empty()
            protocol.resume_writing()
            await send(range(20, 30))  # before the writer has run again
            await asyncio.sleep(0.05)
            assert socket.queue.empty()  # all written: the writer waits for packets again

            protocol.pause_writing()
            await send(range(30, 40))
            protocol.resume_writing()
            await send(range(40, 50))  # before the writer has taken the queued ones

            await socket.send(Packet(MESSAGE, b"\x00\x01"))  # binary, as Engine.IO sends it

            received = [await asyncio.wait_for(peer.recv(), 5) for _ in range(51)]
        assert received == [f'42["n",{n}]' for n in range(50)] + [b"\x00\x01"]
    finally:
        await stop()


async def test_packets_queued_while_polling_arrive_in_order_after_the_upgrade() -> None:
    """Official clients start with long-polling and upgrade to a websocket (Engine.IO's probe).
    Packets queued before the upgrade and not yet fetched are written over the websocket first,
    then later ones, which the socket writes itself once the queue is empty (DirectSocket)."""

    sio = DirectSocketServer(async_mode="asgi")
    port, stop = await serve_asgi(socketio.ASGIApp(sio))
    try:
        path = f"127.0.0.1:{port}/socket.io/?EIO=4"
        async with httpx.AsyncClient() as http:
            opened = (await http.get(f"http://{path}&transport=polling")).text
            assert opened.startswith("0")
            sid = json.loads(opened[1:])["sid"]
            (socket,) = sio.eio.sockets.values()
            assert isinstance(socket, DirectSocket)

            async def send(*texts: str) -> None:
                for text in texts:
                    await socket.send(Packet(MESSAGE, text))

            await send("p0")
            assert (await http.get(f"http://{path}&transport=polling&sid={sid}")).text == "4p0"
            await send("p1", "p2")  # queued, not fetched

            async with websocket(f"ws://{path}&transport=websocket&sid={sid}") as ws:
                await ws.send("2probe")
                assert await ws.recv() == "3probe"
                await ws.send("5")  # upgrade
                async with asyncio.timeout(5):
                    while not socket.upgraded:
                        await asyncio.sleep(0.01)
                await send("p3", "p4")

                frames: list[str | bytes] = []
                async with asyncio.timeout(5):
                    while len([f for f in frames if f != "6"]) < 4:  # "6": Engine.IO's noop
                        frames.append(await ws.recv())
                assert [f for f in frames if f != "6"] == ["4p1", "4p2", "4p3", "4p4"]

                await send("p5")
                assert socket.queue.empty()  # written directly: nothing was waiting
                assert await asyncio.wait_for(ws.recv(), 5) == "4p5"
    finally:
        await stop()
