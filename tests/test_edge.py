"""Edge protection (CORS, body and attribute limits, rate limits) and the operations routes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text

from replyhq.app import create_app
from replyhq.runtime import Runtime
from replyhq.settings import DEV_MASTER_KEY
from tests.conftest import (
    LiveServer,
    MakeTenant,
    Servers,
    SocketServer,
    Tenant,
    free_port,
    identify,
    make_settings,
    start_conversation,
    start_server,
)

MASTER = {"X-Master-Key": DEV_MASTER_KEY}
ALLOWED = "https://customer.example"
EVIL = "https://evil.example"
LIMIT = 10240


@contextlib.asynccontextmanager
async def app_with(servers: Servers, **overrides: object) -> AsyncIterator[FastAPI]:
    """A separate app instance; its own Redis prefix gives it fresh rate-limit counters."""
    prefix = f"{servers.prefix}{uuid.uuid4().hex[:8]}:"
    application = create_app(make_settings(servers, redis_prefix=prefix, **overrides))
    async with LifespanManager(application):
        yield application


def client_of(application: FastAPI, address: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=application, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def _message_bodies(runtime: Runtime, tenant: Tenant, conversation_id: object) -> list[str]:
    async with runtime.db.tenant_session(tenant.id) as session:
        rows = await session.execute(
            text("SELECT body FROM messages WHERE conversation_id = :c ORDER BY seq"),
            {"c": conversation_id},
        )
        return list(rows.scalars())


# --- CORS ----------------------------------------------------------------------------------------


def _preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-app-id, x-api-key, x-device-id, content-type",
    }


async def test_cors_allows_only_the_configured_origins(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    allowed = await client.options("/v1/conversations", headers=_preflight(ALLOWED))
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    allowed_headers = allowed.headers["access-control-allow-headers"].lower()
    for header in ("x-app-id", "x-api-key", "x-device-id", "content-type"):
        assert header in allowed_headers
    assert "POST" in allowed.headers["access-control-allow-methods"]

    refused = await client.options("/v1/conversations", headers=_preflight(EVIL))
    assert "access-control-allow-origin" not in refused.headers
    assert refused.status_code >= 400

    await identify(client, tenant)
    simple = await client.get("/v1/conversations", headers={**tenant.sdk(), "Origin": EVIL})
    assert "access-control-allow-origin" not in simple.headers
    mine = await client.get("/v1/conversations", headers={**tenant.sdk(), "Origin": ALLOWED})
    assert mine.headers["access-control-allow-origin"] == ALLOWED
    exposed = mine.headers["access-control-expose-headers"].lower()
    for header in ("x-request-id", "ratelimit-remaining", "retry-after"):
        assert header in exposed
    # A look-alike origin is not the origin.
    for origin in ("https://customer.example.evil.example", "http://customer.example", "null"):
        response = await client.options("/v1/conversations", headers=_preflight(origin))
        assert "access-control-allow-origin" not in response.headers, origin


async def test_socket_io_accepts_browsers_only_from_the_configured_origins(
    socket_server: SocketServer,
) -> None:
    async with httpx.AsyncClient(base_url=socket_server.url) as http:
        params = {"EIO": "4", "transport": "polling"}
        evil = await http.get("/socket.io/", params=params, headers={"Origin": EVIL})
        assert evil.status_code == 400
        assert "access-control-allow-origin" not in evil.headers
        mine = await http.get("/socket.io/", params=params, headers={"Origin": ALLOWED})
        assert mine.status_code == 200
        assert mine.headers["access-control-allow-origin"] == ALLOWED


# --- body limit ----------------------------------------------------------------------------------


def _too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    assert response.json() == {
        "error": f"The request body is larger than {LIMIT} bytes.",
        "code": "PAYLOAD_TOO_LARGE",
    }


async def test_a_body_over_10_kb_is_413_before_anything_reads_it(
    client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime
) -> None:
    await identify(client, tenant)
    conversation = await start_conversation(client, tenant)
    url = f"/v1/conversations/{conversation['id']}/messages"
    big = {"body": "x" * LIMIT, "client_msg_id": "big"}
    _too_large(await client.post(url, headers=tenant.sdk(), json=big))
    # Before authentication and before JSON parsing: neither is reported.
    _too_large(await client.post(url, headers={"X-Api-Key": "nope"}, json=big))
    _too_large(
        await client.post(
            url,
            headers={**tenant.sdk(), "Content-Type": "application/json"},
            content=b"{" * (LIMIT + 1),
        )
    )

    # A body streamed in chunks, without Content-Length, is cut off as it passes the limit.
    def chunks() -> Iterator[bytes]:
        yield b'{"client_msg_id": "chunked", "body": "'
        for _ in range(11):
            yield b"y" * 1024
        yield b'"}'

    chunked = await client.post(url, headers=tenant.sdk(), content=_aiter(chunks()))
    _too_large(chunked)
    # Exactly at the limit is fine.
    envelope = len(b'{"body": "", "client_msg_id": "fits"}')
    fits = await client.post(
        url,
        headers={**tenant.sdk(), "Content-Type": "application/json"},
        content=b'{"body": "' + b"z" * (LIMIT - envelope) + b'", "client_msg_id": "fits"}',
    )
    assert fits.status_code != 413
    assert await _message_bodies(runtime, tenant, conversation["id"]) == ["Hello"] + (
        [] if fits.status_code >= 400 else [fits.json()["body"]]
    )


async def _aiter(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


@pytest.fixture(scope="module")
def edge_server(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(servers, tmp_path_factory.mktemp("edge"), "--no-migrate")
    yield server
    server.stop()


def _raw(server: LiveServer, head: str, body_parts: list[bytes]) -> str:
    """Sends a request over a plain socket and returns the response the server wrote."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(head.encode())
        for part in body_parts:
            connection.sendall(part)
        received = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
                data = connection.recv(65536)
                if not data:
                    break
                received += data
    return received.decode("latin-1")


async def test_a_real_server_refuses_big_bodies_without_waiting_for_them(
    edge_server: LiveServer, tenant: Tenant, runtime: Runtime
) -> None:
    async with httpx.AsyncClient(base_url=edge_server.url, timeout=10) as http:
        await identify(http, tenant)
        conversation = await start_conversation(http, tenant)
    path = f"/v1/conversations/{conversation['id']}/messages"
    headers = "".join(f"{k}: {v}\r\n" for k, v in tenant.sdk().items())
    host = edge_server.url.removeprefix("http://")

    # Chunked, never finished: the server answers once 10 KB have passed, not at the end.
    chunk = b"a" * 1024
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{headers}"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    opening = b'{"client_msg_id": "raw", "body": "'
    parts = [f"{len(opening):x}\r\n".encode() + opening + b"\r\n"]
    parts += [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(11)]
    started = time.monotonic()
    response = _raw(edge_server, head, parts)
    assert response.startswith("HTTP/1.1 413"), response
    assert '"code":"PAYLOAD_TOO_LARGE"' in response.replace(" ", "")
    assert time.monotonic() - started < 4

    # A declared length over the limit is refused from the headers alone.
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{headers}"
        "Content-Type: application/json\r\nContent-Length: 50000\r\n\r\n"
    )
    response = _raw(edge_server, head, [])
    assert response.startswith("HTTP/1.1 413"), response

    # httpx streaming a generator (chunked) gets the same answer.
    def generated() -> Iterator[bytes]:
        yield b'{"client_msg_id": "gen", "body": "'
        for _ in range(12):
            yield b"g" * 1024
        yield b'"}'

    with httpx.Client(base_url=edge_server.url, timeout=10) as http:
        streamed = http.post(path, headers=tenant.sdk(), content=generated())
    _too_large(streamed)
    assert await _message_bodies(runtime, tenant, conversation["id"]) == ["Hello"]


# --- attribute limits ----------------------------------------------------------------------------


async def test_attribute_limits_are_400_with_details_and_change_nothing(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    before = await identify(client, tenant, name="Ann", attributes={"plan": "pro"})

    async def refused(attributes: dict[str, object], field: str, reason: str) -> None:
        response = await client.post(
            "/v1/identify",
            headers=tenant.sdk(),
            json={"platform": "ios", "name": "Bob", "attributes": attributes},
        )
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["code"] == "VALIDATION_ERROR"
        assert [d["field"] for d in body["details"]] == [field]
        assert reason in body["details"][0]["reason"]

    await refused({f"k{i}": i for i in range(51)}, "attributes", "50")
    await refused({"bio": "x" * 1023}, "attributes.bio", "1024 bytes")
    await refused({"bio": "é" * 600}, "attributes.bio", "1024 bytes")  # bytes, not characters
    await refused({"nested": {"list": ["x" * 600, "y" * 600]}}, "attributes.nested", "1024")
    # 30 stored + 30 new keys: each request is fine alone, the sum is not.
    await identify(client, tenant, attributes={f"a{i}": i for i in range(29)})
    await refused({f"b{i}": i for i in range(30)}, "attributes", "50")

    after = await identify(client, tenant)
    user = after["user"]
    assert isinstance(user, dict)
    assert user["name"] == "Ann"
    assert user["id"] == before["user"]["id"]  # type: ignore[index]
    assert user["attributes"] == {"plan": "pro", **{f"a{i}": i for i in range(29)}}

    # At the limits exactly: accepted.
    fits = await identify(client, tenant, attributes={"bio": "x" * 1022})
    assert fits["user"]["attributes"]["bio"] == "x" * 1022  # type: ignore[index]
    full = await identify(client, tenant, attributes={f"c{i}": i for i in range(19)})
    assert len(full["user"]["attributes"]) == 50  # type: ignore[index,arg-type]


# --- rate limits ---------------------------------------------------------------------------------


def _limited(response: httpx.Response, limit: int) -> int:
    assert response.status_code == 429, response.text
    assert response.json()["code"] == "RATE_LIMITED"
    assert response.json()["error"]
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert response.headers["ratelimit-limit"] == str(limit)
    assert response.headers["ratelimit-remaining"] == "0"
    return retry_after


async def test_v1_is_limited_per_app_and_device_with_ratelimit_headers(
    servers: Servers, make_tenant: MakeTenant
) -> None:
    tenant, other_app = await make_tenant(), await make_tenant("Other")
    async with app_with(servers, rate_limit_v1="3/minute") as application:
        runtime: Runtime = application.state.runtime
        async with client_of(application) as http:
            first = await http.post("/v1/identify", headers=tenant.sdk(), json={"platform": "ios"})
            conversation = await http.post("/v1/conversations", headers=tenant.sdk(), json={})
            cid = conversation.json()["id"]
            sent = await http.post(
                f"/v1/conversations/{cid}/messages",
                headers=tenant.sdk(),
                json={"body": "one", "client_msg_id": "m1"},
            )
            for response, remaining in ((first, 2), (conversation, 1), (sent, 0)):
                assert response.is_success, response.text
                assert response.headers["ratelimit-limit"] == "3"
                assert response.headers["ratelimit-remaining"] == str(remaining)
                assert 0 <= int(response.headers["ratelimit-reset"]) <= 60

            over = await http.post(
                f"/v1/conversations/{cid}/messages",
                headers=tenant.sdk(),
                json={"body": "two", "client_msg_id": "m2"},
            )
            _limited(over, 3)
            assert await _message_bodies(runtime, tenant, cid) == ["one"]

            # Another device of the same app, and the same device id in another app: not limited.
            other_device = await http.post(
                "/v1/identify", headers=tenant.sdk("device-2"), json={"platform": "ios"}
            )
            assert other_device.status_code == 200
            assert other_device.headers["ratelimit-remaining"] == "2"
            other_tenant = await http.post(
                "/v1/identify", headers=other_app.sdk(), json={"platform": "ios"}
            )
            assert other_tenant.status_code == 200


async def test_v1_has_a_per_address_backstop(servers: Servers, tenant: Tenant) -> None:
    async with (
        app_with(servers, rate_limit_v1_ip="4/minute") as application,
        client_of(application, "10.9.0.1") as busy,
        client_of(application, "10.9.0.2") as calm,
    ):
        for n in range(4):
            response = await busy.post(
                "/v1/identify", headers=tenant.sdk(f"d{n}"), json={"platform": "web"}
            )
            assert response.status_code == 200
        over = await busy.post(
            "/v1/identify", headers=tenant.sdk("fresh-device"), json={"platform": "web"}
        )
        _limited(over, 4)
        ok = await calm.post(
            "/v1/identify", headers=tenant.sdk("fresh-device"), json={"platform": "web"}
        )
        assert ok.status_code == 200


async def test_failed_authentication_is_strictly_limited_per_address(
    servers: Servers, tenant: Tenant
) -> None:
    async with (
        app_with(servers, rate_limit_auth="3/3seconds") as application,
        client_of(application, "10.8.0.1") as attacker,
        client_of(application, "10.8.0.2") as bystander,
    ):
        for n in range(3):  # distinct guesses: one key repeated is counted once
            guess = {**tenant.sdk(), "X-Api-Key": f"rhq_sdk_guess-{n}"}
            response = await attacker.get("/v1/conversations", headers=guess)
            assert response.status_code == 401
        wrong = {**tenant.sdk(), "X-Api-Key": "rhq_sdk_guess-new"}
        await identify(bystander, tenant)

        # Now guesses from that address are not even checked, nor master keys...
        refused = await attacker.get("/v1/conversations", headers=wrong)
        retry_after = _limited(refused, 3)
        assert retry_after <= 3
        master = await attacker.get("/setup/apps", headers=MASTER)
        assert master.status_code == 429
        # ...but a key verified recently is right and costs no bcrypt: the failures of others at
        # this address (stale tabs with a rotated key) never refuse it. (Before issue 13 it
        # waited too.)
        right = await attacker.post("/v1/identify", headers=tenant.sdk(), json={"platform": "ios"})
        assert right.status_code == 200, right.text
        # Other addresses are not affected.
        assert (await bystander.get("/v1/conversations", headers=tenant.sdk())).is_success

        deadline = time.monotonic() + retry_after + 2
        while time.monotonic() < deadline:
            response = await attacker.get("/v1/conversations", headers=wrong)
            if response.status_code == 401:
                break
            assert response.status_code == 429
            await asyncio.sleep(0.25)
        else:
            raise AssertionError("the address stayed blocked after the window")


async def test_bad_master_keys_and_setup_calls_are_limited(servers: Servers) -> None:
    async with (
        app_with(servers, rate_limit_auth="2/minute") as application,
        client_of(application, "10.7.0.1") as http,
    ):
        for _ in range(2):
            response = await http.get("/setup/apps", headers={"X-Master-Key": "guess"})
            assert response.status_code == 401
        _limited(await http.get("/setup/apps", headers=MASTER), 2)

    async with (
        app_with(servers, rate_limit_setup="2/minute") as application,
        client_of(application, "10.7.0.2") as http,
    ):
        for remaining in (1, 0):
            response = await http.get("/setup/apps", headers=MASTER)
            assert response.status_code == 200
            assert response.headers["ratelimit-limit"] == "2"
            assert response.headers["ratelimit-remaining"] == str(remaining)
        over = await http.post("/setup/apps", headers=MASTER, json={"name": "Too many"})
        _limited(over, 2)
        # Refused means not done.
        async with client_of(application, "10.7.0.3") as other:
            names = [a["name"] for a in (await other.get("/setup/apps", headers=MASTER)).json()]
        assert "Too many" not in names


async def test_limits_fail_open_when_redis_is_unreachable(servers: Servers, tenant: Tenant) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    tiny = {f"rate_limit_{n}": "1/minute" for n in ("v1", "v1_ip", "auth", "setup")}
    async with (
        app_with(servers, redis_url=closed, **tiny) as application,
        client_of(application) as http,
    ):
        for _ in range(3):
            response = await http.post(
                "/v1/identify", headers=tenant.sdk(), json={"platform": "ios"}
            )
            assert response.status_code == 200, response.text
        conversation = await start_conversation(http, tenant)
        sent = await http.post(
            f"/v1/conversations/{conversation['id']}/messages",
            headers=tenant.sdk(),
            json={"body": "still served", "client_msg_id": "m"},
        )
        assert sent.status_code == 201
        for _ in range(2):
            assert (await http.get("/setup/apps", headers=MASTER)).status_code == 200
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json() == {
            "error": "Not ready.",
            "code": "NOT_READY",
            "checks": {"database": "ok", "redis": "unavailable"},
        }


# --- operations ----------------------------------------------------------------------------------


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


async def test_readiness_names_an_unreachable_database(servers: Servers) -> None:
    closed = f"postgresql://replyhq@127.0.0.1:{free_port()}/nothing"
    async with (
        app_with(servers, app_database_url=closed) as application,
        client_of(application) as http,
    ):
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"database": "unavailable", "redis": "ok"}
    assert ready.json()["code"] == "NOT_READY"


async def test_docs_and_openapi_list_the_routes(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    schema = (await client.get("/openapi.json")).json()
    assert schema["info"]["title"] == "ReplyHQ"
    paths = schema["paths"]
    expected = {
        "/healthz": {"get"},
        "/readyz": {"get"},
        "/setup/apps": {"get", "post"},
        "/setup/apps/{app_id}": {"patch"},
        "/setup/apps/{app_id}/rotate-keys": {"post"},
        "/v1/identify": {"post"},
        "/v1/conversations": {"get", "post"},
        "/v1/conversations/{conversation_id}": {"get"},
        "/v1/conversations/{conversation_id}/messages": {"get", "post"},
        "/v1/conversations/{conversation_id}/read": {"post"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
