"""The Python SDK as its own distribution (sdk/python, `replyhq-sdk`): it builds into a wheel
that carries only `replyhq_sdk` (typed) and imports nothing of the server; its blocking wrapper
works against a live server; `replyhq.sdk` still imports it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import uuid
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.attachment_support import png
from tests.conftest import SocketServer, Tenant
from tests.staff import secret

ROOT = Path(__file__).resolve().parents[1]


def test_the_distribution_stands_alone(tmp_path: Path) -> None:
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT / "sdk" / "python"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = tmp_path.glob("replyhq_sdk-0.2.0-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {
        "replyhq_sdk/__init__.py",
        "replyhq_sdk/client.py",
        "replyhq_sdk/sync.py",
        "replyhq_sdk/py.typed",
    } <= set(names)
    assert not [n for n in names if n.startswith("replyhq/")]
    metadata = (
        zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    )
    assert "Name: replyhq-sdk" in metadata
    assert "Requires-Dist: python-socketio[asyncio_client]==5.18.1" in metadata
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(wheel).extractall(unpacked)
    probe = (
        "import sys, replyhq_sdk; "
        "assert replyhq_sdk.__file__.startswith(sys.argv[1]), replyhq_sdk.__file__; "
        "assert not [m for m in sys.modules if m == 'replyhq' or m.startswith('replyhq.')]"
    )
    alone = subprocess.run(
        [sys.executable, "-c", probe, str(unpacked)],
        env={"PYTHONPATH": str(unpacked)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert alone.returncode == 0, alone.stderr


def test_the_old_import_path_still_works() -> None:
    from replyhq.sdk.client import ReplyHQError

    import replyhq_sdk
    from replyhq.sdk import ReplyHQClient

    assert ReplyHQClient is replyhq_sdk.ReplyHQClient
    assert ReplyHQError is replyhq_sdk.ReplyHQError


async def test_the_blocking_wrapper_against_a_live_server(
    socket_server: SocketServer, http: httpx.AsyncClient, tenant: Tenant
) -> None:
    from replyhq_sdk import ReplyHQSyncClient

    received: list[dict[str, Any]] = []
    arrived = threading.Event()

    def on_message(message: dict[str, Any]) -> None:
        received.append(message)
        if message["sender"] == "agent":
            arrived.set()

    def as_a_script() -> str:
        client = ReplyHQSyncClient(
            socket_server.url,
            str(tenant.id),
            tenant.sdk_key,
            "sync-1",
            user_id="sy",
            user_hash=tenant.user_hash("sy"),
            on_message=on_message,
        )
        try:
            client.identify(name="Sy")
            conversation_id = client.start_conversation("Blocking")
            client.connect()
            stored = client.send(conversation_id, "Hello from blocking code")
            assert stored["seq"] == 1 and client.pending == 0
            client.typing(conversation_id, True)
            return conversation_id
        finally:
            client.close()

    # The server runs on this test's event loop: the blocking client runs in a thread.
    conversation_id = await asyncio.to_thread(as_a_script)
    assert [m["body"] for m in received] == ["Hello from blocking code"]
    history = await http.get(
        f"/admin/api/conversations/{conversation_id}/messages", headers=secret(tenant)
    )
    assert [m["body"] for m in history.json()["items"]] == ["Hello from blocking code"]


# --- the surface of the JavaScript SDK, against a live server ---------------------------------


def _client(server: SocketServer, tenant: Tenant, user: str | None, **options: Any) -> Any:
    from replyhq_sdk import ReplyHQClient

    return ReplyHQClient(
        server.url,
        str(tenant.id),
        tenant.sdk_key,
        user_id=user,
        user_hash=tenant.user_hash(user) if user else None,
        platform="linux",
        **options,
    )


async def _until(condition: Any, timeout: float = 10) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


async def _agent_says(http: httpx.AsyncClient, tenant: Tenant, cid: str, body: str) -> None:
    reply = await http.post(
        f"/admin/api/conversations/{cid}/messages",
        headers=secret(tenant),
        json={"body": body, "client_msg_id": f"agent-{uuid.uuid4().hex}"},
    )
    assert reply.status_code == 201, reply.text


async def _bodies(http: httpx.AsyncClient, tenant: Tenant, cid: str) -> list[str]:
    history = await http.get(
        f"/admin/api/conversations/{cid}/messages?after_seq=0&limit=200", headers=secret(tenant)
    )
    return [m["body"] for m in history.json()["items"]]


async def test_unread_count_identity_switch_and_logout(
    socket_server: SocketServer, http: httpx.AsyncClient, tenant: Tenant
) -> None:
    from replyhq_sdk import ReplyHQError

    client = _client(socket_server, tenant, "ann")
    seen: list[dict[str, Any]] = []
    unread: list[int] = []
    client.on("message", seen.append)
    client.on("unread", unread.append)
    try:
        assert (await client.identify(name="Ann"))["user_id"] == "ann"
        first_device = client.device_id
        ann_cid = await client.start_conversation("Order", body="Hello")
        await client.connect()
        assert client.state == "connected"
        await _agent_says(http, tenant, ann_cid, "Hi Ann")
        await _until(lambda: client.unread_count == 1)
        assert unread[-1] == 1
        await client.read(ann_cid)  # up to the last delivered message
        assert client.unread_count == 0 and unread[-1] == 0
        listed = await client.conversations()
        assert [(c["id"], c["unread_count"]) for c in listed] == [(ann_cid, 0)]
        # Closing the conversation is delivered as an event, which is not unread.
        closed = await http.patch(
            f"/admin/api/conversations/{ann_cid}", headers=secret(tenant), json={"status": "closed"}
        )
        assert closed.status_code == 200, closed.text
        await _until(lambda: seen[-1].get("kind") == "event")
        assert client.unread_count == 0

        # Another person on this device: nothing of Ann's survives (her push token neither),
        # and the socket follows.
        assert (await client.register_push_token("fcm", "token-of-ann")).supported
        bob = await client.identify(user_id="bob", user_hash=tenant.user_hash("bob"))
        async with socket_server.runtime.db.tenant_session(tenant.id) as session:
            tokens = await session.execute(
                text("SELECT count(*) FROM devices WHERE push_token = 'token-of-ann'")
            )
            assert tokens.scalar_one() == 0
        assert bob["user_id"] == "bob" and client.user == bob
        assert client.device_id != first_device
        assert client.state == "connected"
        assert await client.conversations() == []
        with pytest.raises(ReplyHQError) as not_bobs:
            await client.history(ann_cid)
        assert not_bobs.value.code == "CONVERSATION_NOT_FOUND" and not_bobs.value.status == 404
        before = len(seen)
        await _agent_says(http, tenant, ann_cid, "For Ann only")
        bob_cid = await client.start_conversation(body="I am Bob")
        await _until(lambda: [m["body"] for m in seen[before:]] == ["I am Bob"])
        await asyncio.sleep(0.5)
        assert [m["body"] for m in seen[before:]] == ["I am Bob"]  # not Ann's message

        # Logout: a send still queued is dropped (never stored), the device id changes again.
        await client.sio.disconnect()  # offline, so the send stays queued
        await _until(lambda: client.state == "reconnecting")
        pending = asyncio.create_task(client.send(bob_cid, "never sent"))
        await _until(lambda: client.pending == 1)
        bobs_device = client.device_id
        await client.logout()
        with pytest.raises(ReplyHQError) as dropped:
            await pending
        assert dropped.value.code == "LOGGED_OUT"
        assert client.device_id not in (first_device, bobs_device)
        assert (client.state, client.user, client.pending, client.unread_count) == (
            "idle",
            None,
            0,
            0,
        )
        await asyncio.sleep(1)
        assert await _bodies(http, tenant, bob_cid) == ["I am Bob"]
        # Anonymous after the logout: a new visitor of its own.
        visitor = await client.identify()
        assert visitor["anonymous"] is True and visitor["id"] not in (bob["id"],)
    finally:
        await client.close()


async def test_errors_carry_the_apis_codes(
    socket_server: SocketServer, http: httpx.AsyncClient, tenant: Tenant
) -> None:
    from replyhq_sdk import ReplyHQError

    client = _client(socket_server, tenant, "cy")
    failed: list[Any] = []
    client.on("failed", lambda payload, error: failed.append((payload["body"], error.code)))
    try:
        await client.identify()
        cid = await client.start_conversation()
        await client.connect()
        with pytest.raises(ReplyHQError) as empty:
            await client.send(cid, "")
        assert empty.value.code == "VALIDATION_ERROR" and not empty.value.transient
        assert empty.value.details and empty.value.details[0]["field"] == "body"
        assert failed == [("", "VALIDATION_ERROR")]
        with pytest.raises(ReplyHQError) as missing:
            await client.send(str(uuid.uuid4()), "to nowhere")
        assert missing.value.code == "CONVERSATION_NOT_FOUND"
        with pytest.raises(ReplyHQError) as too_far:
            await client.read(cid, 99)
        assert too_far.value.code == "SEQ_OUT_OF_RANGE"
        assert client.pending == 0
    finally:
        await client.close()

    # A handshake refused for identity reasons: the code, and the client stops ("blocked").
    wrong = _client(socket_server, tenant, "cy")
    try:
        await wrong.identify()
        wrong.user_hash = "0" * 64
        with pytest.raises(ReplyHQError) as refused:
            await wrong.connect()
        assert refused.value.code == "INVALID_USER_HASH" and wrong.state == "blocked"
    finally:
        await wrong.close()
    offline = _client(socket_server, tenant, None)
    offline.base_url = "http://127.0.0.1:9"  # nothing listens there
    with pytest.raises(ReplyHQError) as network:
        await offline.identify()
    assert network.value.code == "NETWORK_ERROR" and network.value.transient
    await offline.close()


async def test_attachments_uploaded_sent_and_started_with(
    socket_server: SocketServer, http: httpx.AsyncClient, tenant: Tenant, tmp_path: Path
) -> None:
    from replyhq_sdk import ReplyHQError

    client = _client(socket_server, tenant, "di")
    try:
        await client.identify()
        # A conversation that starts with a file, from a path (streamed, not read whole).
        receipt = tmp_path / "receipt.txt"
        receipt.write_text("Order 1234 was charged twice\n")
        upfront = await client.upload(receipt)
        assert upfront["conversation_id"] is None and upfront["filename"] == "receipt.txt"
        cid = await client.start_conversation(attachment_ids=[upfront["id"]])
        await client.connect()
        (first,) = await client.history(cid)
        assert [a["id"] for a in first.get("attachments", [])] == [upfront["id"]]
        download = await http.get(client.file_url(first["attachments"][0]["url"]))
        assert download.text == receipt.read_text()

        # An image to the conversation, sent through the queue with an empty body.
        image = await client.upload(png(50, 40), filename="photo.png", conversation_id=cid)
        assert image["kind"] == "image" and image["conversation_id"] == cid
        sent = await client.send(cid, "", attachment_ids=[image["id"]])
        assert [a["id"] for a in sent.get("attachments", [])] == [image["id"]]
        fresh = await client.attachment(image["id"])
        assert fresh["message_id"] == sent["id"]
        assert (await http.get(client.file_url(str(fresh["thumbnail_url"])))).status_code == 200

        with pytest.raises(ReplyHQError) as refused:
            await client.upload(b"MZ\x90\x00" + bytes(500), conversation_id=cid)
        assert refused.value.code == "UNSUPPORTED_ATTACHMENT_TYPE"
        with pytest.raises(ReplyHQError) as reused:
            await client.send(cid, "", attachment_ids=[image["id"]])
        assert reused.value.code == "INVALID_ATTACHMENT"
    finally:
        await client.close()


async def test_push_token_and_track_are_feature_detected(
    socket_server: SocketServer, http: httpx.AsyncClient, tenant: Tenant, monkeypatch: Any
) -> None:
    from replyhq_sdk import Feature
    from replyhq_sdk import client as sdk_client

    runtime = socket_server.runtime
    client = _client(socket_server, tenant, "dee")

    async def device(device_id: str) -> Any:
        async with runtime.db.tenant_session(tenant.id) as session:
            return (
                await session.execute(
                    text("SELECT push_token FROM devices WHERE device_id = :d"), {"d": device_id}
                )
            ).scalar_one()

    async def tracked() -> list[tuple[str, Any]]:
        async with runtime.db.tenant_session(tenant.id) as session:
            rows = await session.execute(text("SELECT name, properties FROM events"))
            return [(r.name, r.properties) for r in rows]

    try:
        await client.identify()
        assert await client.register_push_token("fcm", "tok:123") == Feature(supported=True)
        assert await device(client.device_id) == "tok:123"
        assert await client.track("checkout", {"total": 3}) == Feature(supported=True)
        assert await tracked() == [("checkout", {"total": 3})]

        # An older server without the route (a path this server does not have): not
        # supported, nothing breaks, and it is not asked again.
        monkeypatch.setitem(sdk_client.ROUTES, "track", "/v1/events-from-the-future")
        older = _client(socket_server, tenant, "dee")
        try:
            await older.identify()
            assert await older.track("checkout") == Feature(supported=False)
            assert older._missing == {"track"}
            assert await older.track("again") == Feature(supported=False)
            cid = await older.start_conversation()
            await older.connect()
            assert (await older.send(cid, "still works"))["seq"] == 1
        finally:
            await older.close()
        assert [name for name, _ in await tracked()] == ["checkout"]

        # Logout withdraws the push token: the next person's pushes never reach this phone.
        device_before = client.device_id
        await client.logout()
        assert await device(device_before) is None
    finally:
        await client.close()


async def test_the_async_iterator_and_a_queue_that_survives_a_restart(
    socket_server: SocketServer, http: httpx.AsyncClient, tenant: Tenant, tmp_path: Path
) -> None:
    from replyhq_sdk import FileStorage, ReplyHQError

    state = tmp_path / "replyhq.json"
    first = _client(socket_server, tenant, "eve", storage=FileStorage(state))
    await first.identify()
    cid = await first.start_conversation("Offline")
    # Never connected: the send is queued (in the file), then the program ends.
    pending = asyncio.create_task(first.send(cid, "written offline"))
    await _until(lambda: first.pending == 1)
    await first.close()
    with pytest.raises(ReplyHQError) as closed:
        await pending
    assert closed.value.code == "CLOSED"

    second = _client(socket_server, tenant, "eve", storage=FileStorage(state))
    assert second.device_id == first.device_id and second.pending == 1
    received: list[str] = []

    async def read_all() -> None:
        async for message in second.messages():
            received.append(message["body"])

    reader = asyncio.create_task(read_all())
    try:
        await second.connect()
        await _until(lambda: second.pending == 0)
        await _agent_says(http, tenant, cid, "got it")
        await _until(lambda: received == ["written offline", "got it"])
        assert await _bodies(http, tenant, cid) == ["written offline", "got it"]
    finally:
        await second.close()
    await asyncio.wait_for(reader, 5)  # close() ends the iterator
    third = _client(socket_server, tenant, "eve", storage=FileStorage(state))
    assert third.pending == 0 and third._cursors[cid].last_seq == 2  # read positions kept
    await third.close()


async def test_disconnected_by_the_server_it_comes_back_and_catches_up(
    socket_server: SocketServer, http: httpx.AsyncClient, tenant: Tenant
) -> None:
    """python-socketio does not reconnect after the server's own disconnect (protocol section
    2: access changed); the SDK asks again after a second, and the handshake decides."""
    client = _client(socket_server, tenant, "fay")
    seen: list[str] = []
    client.on("message", lambda message: seen.append(message["body"]))
    realtime = socket_server.app.state.realtime
    try:
        await client.identify()
        cid = await client.start_conversation(body="Hi")
        await client.connect()
        (sid,) = [s for s, live in realtime.local.items() if live.device_id == client.device_id]
        await realtime.sio.disconnect(sid, namespace="/")
        await _until(lambda: client.state == "reconnecting")
        await _agent_says(http, tenant, cid, "while cut")
        await _until(lambda: client.connections == 2 and client.state == "connected")
        await _until(lambda: seen == ["Hi", "while cut"])
    finally:
        await client.close()
