"""The protocol's JSON Schemas (src/replyhq/realtime/schemas/) are the server's own models, and
what a real server sends over real sockets matches them: events, acknowledgements, refusals."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import jsonschema
import pytest
import socketio

from replyhq.realtime import protocol
from tests.conftest import SocketServer, Tenant
from tests.realtime_clients import Recorder, refused
from tests.staff import secret, signed_in
from tests.test_realtime_devices import device_auth, identify


def schema_of(direction: str, event: str) -> dict[str, Any]:
    name = f"{direction}.{event.replace(':', '.')}.json"
    loaded: dict[str, Any] = json.loads((protocol.SCHEMAS / name).read_text())
    return loaded


def check(direction: str, event: str, data: Any, *, ack: bool = False) -> None:
    schema = schema_of(direction, event)
    if ack:
        schema = {"$defs": schema["$defs"], "$ref": "#/$defs/ack"}
    jsonschema.validate(data, schema, format_checker=jsonschema.FormatChecker())


def test_the_committed_schemas_are_the_servers_models() -> None:
    """A change to a payload model without `python -m replyhq.realtime.protocol --write` fails."""
    assert protocol.main([]) == 0, "run: python -m replyhq.realtime.protocol --write"
    on_disk = {p.name for p in protocol.SCHEMAS.glob("*.json")}
    assert on_disk == set(protocol.generated())
    for text in protocol.generated().values():
        jsonschema.Draft202012Validator.check_schema(json.loads(text))


def test_the_schemas_refuse_what_the_server_refuses() -> None:
    good = {"conversation_id": str(uuid.uuid4()), "body": "hi", "client_msg_id": "a-1"}
    check("client", "message:send", good)
    for bad in (
        {**good, "client_msg_id": "has space"},
        {**good, "body": ""},
        {**good, "extra": 1},
        {"conversation_id": "nope", "body": "hi", "client_msg_id": "a"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            check("client", "message:send", bad)
        with pytest.raises(ValueError, match="validation error"):
            protocol.SendIn.model_validate(bad)
    with pytest.raises(jsonschema.ValidationError):
        check("client", "sync", {"conversation_id": str(uuid.uuid4()), "after_seq": 2**31})


async def test_live_events_and_acks_match_the_schemas(
    socket_server: SocketServer, http: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = socket_server.url
    await identify(http, tenant, "phone", "ann")
    auth = device_auth(tenant, "phone", user_id="ann", user_hash=tenant.user_hash("ann"))
    check("handshake", "auth", auth)
    started = await http.post("/v1/conversations", headers=tenant.sdk("phone"), json={})
    conversation_id = started.json()["id"]

    refused = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    refused.on("connect_error", errors.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.connect(url, auth={**auth, "api_key": "wrong"}, transports=["websocket"])
    check("handshake", "connect_error", errors[0]["data"])

    staff = await signed_in(socket_server.runtime, http, tenant, "AGENT", name="Sam")
    agent, device = Recorder(), Recorder()
    await agent.connect(url, {"token": staff.access}, namespace="/admin")
    await device.connect(url, auth)
    try:
        mine, other = conversation_id, str(uuid.uuid4())
        acks: list[dict[str, Any]] = []
        for event, payload in (
            ("message:send", {"conversation_id": mine, "body": "Hi", "client_msg_id": "c1"}),
            ("message:send", {"conversation_id": mine, "body": "", "client_msg_id": "c2"}),
            ("typing", {"conversation_id": mine, "typing": True}),
            ("read", {"conversation_id": mine, "seq": 1}),
            ("read", {"conversation_id": mine, "seq": 99}),
            ("sync", {"conversation_id": mine, "after_seq": 0}),
            ("sync", {"conversation_id": other, "after_seq": 0}),
        ):
            acks.append(await device.call(event, payload))
            check("client", event, acks[-1], ack=True)
        assert [a["ok"] for a in acks] == [True, False, True, True, False, True, False]
        assert [a.get("code") for a in acks if not a["ok"]] == [
            "VALIDATION_ERROR",
            "SEQ_OUT_OF_RANGE",
            "CONVERSATION_NOT_FOUND",
        ]
        agent_typing = await agent.call("typing", {"conversation_id": mine, "typing": True})
        check("client", "typing", agent_typing, ack=True)
        reply = await http.post(
            f"/admin/api/conversations/{conversation_id}/messages",
            headers=secret(tenant),
            json={"body": "Hello", "client_msg_id": "r1"},
        )
        assert reply.status_code == 201, reply.text
        closed = await http.patch(
            f"/admin/api/conversations/{conversation_id}",
            headers=secret(tenant),
            json={"status": "closed"},
        )
        assert closed.status_code == 200, closed.text
        await device.wait_for("message:new", 2)
        await device.wait_for("conversation:updated", 1)
        await device.wait_for("typing", 1)
        await agent.wait_for("read", 1)
        await agent.wait_for("presence", 0)
        seen = 0
        for recorder in (device, agent):
            for event, payloads in recorder.events.items():
                for payload in payloads:
                    check("server", event, payload)
                    seen += 1
        assert {"message:new", "conversation:updated", "typing"} <= set(device.events)
        assert seen >= 6
    finally:
        await device.close()
        await agent.close()


async def test_the_handshake_is_validated_by_its_schema(
    socket_server: SocketServer, http: httpx.AsyncClient, tenant: Tenant
) -> None:
    """handshake.auth.json is what the server enforces: an `auth` it refuses is refused at the
    handshake with the code docs/protocol.md gives for its field, the fields in `details`, and
    the refusal valid against handshake.connect_error.json."""
    await identify(http, tenant, "phone", "ann")
    good = device_auth(tenant, "phone", user_id="ann", user_hash=tenant.user_hash("ann"))
    check("handshake", "auth", good)
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({**good, "user_id": 42}, "VALIDATION_ERROR", "user_id"),  # was taken as anonymous
        ({**good, "user_id": ""}, "VALIDATION_ERROR", "user_id"),
        ({**good, "user_id": "a" * 256}, "VALIDATION_ERROR", "user_id"),
        ({**good, "user_hash": "not-hex"}, "INVALID_USER_HASH", "user_hash"),
        ({**good, "user_hash": ["a" * 64]}, "INVALID_USER_HASH", "user_hash"),
        ({**good, "device_id": "d" * 129}, "DEVICE_ID_REQUIRED", "device_id"),
        ({**good, "device_id": 7}, "DEVICE_ID_REQUIRED", "device_id"),
    ]
    for auth, code, field in cases:
        with pytest.raises(jsonschema.ValidationError):
            check("handshake", "auth", auth)
        error = await refused(socket_server.url, auth)
        check("handshake", "connect_error", error)
        assert error["code"] == code, (auth, error)
        assert [d["field"] for d in error["details"]] == [field], error
    # Bad credentials are still only INVALID_CREDENTIALS, whatever else is wrong.
    error = await refused(socket_server.url, {**good, "api_key": 1, "user_id": 42})
    assert error == {"code": "INVALID_CREDENTIALS", "error": error["error"]}
    # The same auth, valid, is let in: nothing else changed.
    accepted = Recorder()
    await accepted.connect(socket_server.url, good)
    await accepted.close()

    staff_refusal = await refused(socket_server.url, {"token": 5}, namespace="/admin")
    assert staff_refusal["code"] == "AUTH_REQUIRED"
    with pytest.raises(jsonschema.ValidationError):
        check("handshake", "admin_auth", {"token": 5})


async def test_every_client_event_of_the_catalogue_is_validated_by_its_schema(
    socket_server: SocketServer, http: httpx.AsyncClient, tenant: Tenant
) -> None:
    """For each client event of protocol.EVENTS, on each namespace it is listed for, a payload
    its schema refuses is refused by the server with VALIDATION_ERROR (an event added to the
    catalogue without validation fails here)."""
    await identify(http, tenant, "phone", "ann")
    auth = device_auth(tenant, "phone", user_id="ann", user_hash=tenant.user_hash("ann"))
    staff = await signed_in(socket_server.runtime, http, tenant, "OWNER", name="Olga")
    sockets = {"/": Recorder(), "/admin": Recorder()}
    await sockets["/"].connect(socket_server.url, auth)
    await sockets["/admin"].connect(socket_server.url, {"token": staff.access}, "/admin")
    client_events = [spec for spec in protocol.EVENTS if spec.direction == "client"]
    assert {spec.name for spec in client_events} >= {"message:send", "track", "sync", "read"}
    try:
        checked = []
        for spec in client_events:
            for bad in ({"unexpected": 1}, "not an object"):
                with pytest.raises(jsonschema.ValidationError):
                    check("client", spec.name, bad)
                for namespace in spec.namespaces:
                    socket = sockets[namespace]
                    ack = await socket.client.call(spec.name, bad, namespace=namespace, timeout=10)
                    check("client", spec.name, ack, ack=True)
                    assert ack["ok"] is False and ack["code"] == "VALIDATION_ERROR", (
                        spec.name,
                        namespace,
                        bad,
                        ack,
                    )
                    checked.append((spec.name, namespace))
        assert ("track", "/") in checked and ("console:subscribe", "/admin") in checked
    finally:
        for socket in sockets.values():
            await socket.close()
