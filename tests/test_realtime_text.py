"""Socket.IO events refuse the NUL character as HTTP does (PostgreSQL cannot store it): a refused
handshake or a failed acknowledgement with NUL_CHARACTER, and nothing stored."""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import SocketServer, Tenant, identify, start_conversation
from tests.realtime_clients import Recorder, refused
from tests.staff import signed_in


async def test_a_nul_in_a_handshake_or_an_event_is_refused_and_changes_nothing(
    socket_server: SocketServer, tenant: Tenant
) -> None:
    async with httpx.AsyncClient(base_url=socket_server.url) as http:
        await identify(http, tenant, "nul-phone")
        conversation = await start_conversation(http, tenant, "nul-phone", body="first")
        agent = await signed_in(socket_server.runtime, http, tenant, "AGENT")
        auth = {"app_id": str(tenant.id), "api_key": tenant.sdk_key, "device_id": "nul-phone"}

        refusal = await refused(socket_server.url, auth | {"device_id": "nul\x00phone"})
        assert refusal["code"] == "NUL_CHARACTER", refusal

        phone, desk = Recorder(), Recorder()
        await phone.connect(socket_server.url, auth)
        await desk.connect(socket_server.url, {"token": agent.access}, namespace="/admin")
        for recorder in (phone, desk):
            for body in ("a\x00b", "\x00"):
                send = {
                    "conversation_id": conversation["id"],
                    "body": body,
                    "client_msg_id": uuid.uuid4().hex,
                }
                ack = await recorder.call("message:send", send)
                assert ack["ok"] is False, ack
                assert ack["code"] == "NUL_CHARACTER", ack
            ok = await recorder.call(
                "typing", {"conversation_id": conversation["id"], "typing": True}
            )
            assert ok["ok"] is True, ok  # the socket still works
        await phone.close()
        await desk.close()

        history = await http.get(
            f"/v1/conversations/{conversation['id']}/messages", headers=tenant.sdk("nul-phone")
        )
        assert [m["body"] for m in history.json()["items"]] == ["first"]
