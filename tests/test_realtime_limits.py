"""Limits on what a socket may send: per-socket rates for typing/read/sync, seq bounds, and the
Engine.IO polling body limit."""

from __future__ import annotations

import uuid

import httpx

from replyhq.web.bounds import INT4_MAX
from tests.conftest import SocketServer, Tenant
from tests.realtime_clients import Recorder
from tests.staff import signed_in
from tests.test_realtime_devices import conversation_of, device_auth, identify


async def test_a_typing_flood_is_refused_and_not_fanned_out(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    await identify(http, tenant, "phone", "ann")
    cid = await conversation_of(http, tenant, "phone")
    staff = await signed_in(socket_server.runtime, http, tenant, "AGENT")
    agent = Recorder()
    await agent.connect(socket_server.url, {"token": staff.access}, namespace="/admin")
    phone = Recorder()
    await phone.connect(socket_server.url, device_auth(tenant, "phone"))
    recorders += [agent, phone]

    acks = [
        await phone.call("typing", {"conversation_id": cid, "typing": i % 2 == 0})
        for i in range(300)
    ]
    accepted = [a for a in acks if a["ok"]]
    refused = [a for a in acks if not a["ok"]]
    assert 0 < len(accepted) < 50
    assert {a["code"] for a in refused} == {"RATE_LIMITED"}
    assert all(a["retry_after"] >= 1 for a in refused)
    # A message sent after the flood reaches the agent after every typing event that was fanned
    # out (one socket, in order): by then the agent has all it will ever get.
    body = {"conversation_id": cid, "body": "after", "client_msg_id": uuid.uuid4().hex}
    assert (await phone.call("message:send", body))["ok"] is True
    await agent.wait_for("message:new")
    assert len(agent.events["typing"]) == len(accepted)


async def test_read_and_sync_floods_are_refused_per_socket(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    await identify(http, tenant, "phone", "ann")
    cid = await conversation_of(http, tenant, "phone")
    staff = await signed_in(socket_server.runtime, http, tenant, "AGENT")
    agent = Recorder()
    await agent.connect(socket_server.url, {"token": staff.access}, namespace="/admin")
    phone = Recorder()
    await phone.connect(socket_server.url, device_auth(tenant, "phone"))
    recorders += [agent, phone]
    for recorder in (phone, agent):
        for event, payload in (
            ("sync", {"conversation_id": cid, "after_seq": 0}),
            ("read", {"conversation_id": cid, "seq": 0}),
        ):
            codes = {(await recorder.call(event, payload)).get("code") for _ in range(150)}
            assert codes == {None, "RATE_LIMITED"}, (recorder.namespace, event, codes)
    # Another socket of the same person has its own allowance.
    tablet = Recorder()
    await tablet.connect(socket_server.url, device_auth(tenant, "phone"))
    recorders.append(tablet)
    assert (await tablet.call("sync", {"conversation_id": cid, "after_seq": 0}))["ok"] is True


async def test_seqs_beyond_the_column_are_a_clear_error(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    await identify(http, tenant, "phone", "ann")
    cid = await conversation_of(http, tenant, "phone")
    staff = await signed_in(socket_server.runtime, http, tenant, "AGENT")
    agent = Recorder()
    await agent.connect(socket_server.url, {"token": staff.access}, namespace="/admin")
    phone = Recorder()
    await phone.connect(socket_server.url, device_auth(tenant, "phone"))
    recorders += [agent, phone]
    for recorder in (phone, agent):
        for event, payload in (
            ("sync", {"conversation_id": cid, "after_seq": INT4_MAX + 1}),
            ("sync", {"conversation_id": cid, "after_seq": 2**63}),
            ("read", {"conversation_id": cid, "seq": INT4_MAX + 1}),
        ):
            ack = await recorder.call(event, payload)
            assert ack["ok"] is False and ack["code"] == "VALIDATION_ERROR", (event, ack)
        ack = await recorder.call("sync", {"conversation_id": cid, "after_seq": INT4_MAX})
        assert ack["ok"] is True and ack["messages"] == []


async def test_a_polling_post_over_the_body_limit_is_answered_413(
    socket_server: SocketServer,
) -> None:
    limit = socket_server.runtime.settings.max_body_bytes
    async with httpx.AsyncClient(base_url=socket_server.url, timeout=10) as http:
        opened = await http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
        assert opened.status_code == 200
        sid = opened.text[opened.text.index("{") :].split('"sid":"')[1].split('"')[0]
        query = {"EIO": "4", "transport": "polling", "sid": sid}
        big = "4" + "x" * (limit + 1)
        response = await http.post("/socket.io/", params=query, content=big)
        assert response.status_code == 413
        assert response.json()["code"] == "PAYLOAD_TOO_LARGE"
