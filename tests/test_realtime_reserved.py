"""Event names Socket.IO reserves for its own handshake and teardown never reach a handler when a
connected client sends them as ordinary events."""

from __future__ import annotations

import uuid

import httpx

from replyhq.observability.metrics import SOCKETIO_CONNECTIONS
from replyhq.realtime.server import RealtimeServer
from tests.conftest import SocketServer, Tenant
from tests.realtime_clients import Recorder
from tests.staff import signed_in
from tests.test_realtime_devices import device_auth, identify

RESERVED = ("connect", "disconnect", "connect_error", "disconnecting")


def gauge(namespace: str) -> float:
    value: float = SOCKETIO_CONNECTIONS.labels(namespace)._value.get()
    return value


async def online(server: SocketServer, tenant: Tenant, kind: str, person: str) -> bool:
    realtime: RealtimeServer = server.app.state.realtime
    assert realtime.presence is not None
    found = await realtime.presence.online(tenant.id, kind, [uuid.UUID(person)])  # type: ignore[arg-type]
    return found[0]


async def test_reserved_names_sent_by_a_device_run_no_handler(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient
) -> None:
    await identify(http, tenant, "phone", "ann")
    recorder = Recorder()
    await recorder.connect(socket_server.url, device_auth(tenant, "phone"))
    try:
        realtime: RealtimeServer = socket_server.app.state.realtime
        live = next(v for v in realtime.local.values() if v.device_id == "phone")
        person = str(live.person_id)
        assert await online(socket_server, tenant, "user", person)
        before = gauge("/")
        checks = socket_server.runtime.keys.bcrypt_checks
        # An attacker-chosen key the server has never checked: re-running the handshake would
        # pay a bcrypt for it.
        forged = {**device_auth(tenant, "phone"), "api_key": "rhq_sdk_" + "x" * 40}
        for name in RESERVED:
            ack = await recorder.call(name, forged)
            assert ack["ok"] is False and ack["code"] == "RESERVED_EVENT", (name, ack)
            ack = await recorder.call(name, device_auth(tenant, "phone"))
            assert ack["code"] == "RESERVED_EVENT", (name, ack)
        assert socket_server.runtime.keys.bcrypt_checks == checks
        assert gauge("/") == before
        assert await online(socket_server, tenant, "user", person)
        assert recorder.client.connected and not recorder.disconnected.is_set()
        # The socket still works.
        cid = (await http.post("/v1/conversations", headers=tenant.sdk("phone"), json={})).json()
        ack = await recorder.call("sync", {"conversation_id": cid["id"], "after_seq": 0})
        assert ack["ok"] is True
    finally:
        await recorder.close()


async def test_reserved_names_sent_by_staff_run_no_handler(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient
) -> None:
    staff = await signed_in(socket_server.runtime, http, tenant, "AGENT")
    recorder = Recorder()
    await recorder.connect(socket_server.url, {"token": staff.access}, namespace="/admin")
    try:
        assert await online(socket_server, tenant, "staff", str(staff.id))
        before = gauge("/admin")
        for name in RESERVED:
            ack = await recorder.call(name, {"token": staff.access})
            assert ack["ok"] is False and ack["code"] == "RESERVED_EVENT", (name, ack)
        assert gauge("/admin") == before
        assert await online(socket_server, tenant, "staff", str(staff.id))
        assert recorder.client.connected and not recorder.disconnected.is_set()
    finally:
        await recorder.close()
