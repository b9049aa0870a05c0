"""A request's headers are limited in size (MAX_HEADER_BYTES): 431 in the API's error shape,
before the server holds more than about that much of them in memory."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import LiveServer, Servers, SocketServer, make_settings, serve_in_process

LIMIT = 4096


@pytest.fixture
async def limited(servers: Servers) -> AsyncIterator[SocketServer]:
    settings = make_settings(
        servers, max_header_bytes=LIMIT, redis_prefix=f"{servers.prefix}{uuid.uuid4().hex[:8]}:"
    )
    server, stop = await serve_in_process(settings)
    yield server
    await stop()


def _port(server: SocketServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _request(header_bytes: int, *, complete: bool = True) -> bytes:
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: " + b"a" * header_bytes
    return head + (b"\r\n\r\n" if complete else b"")


async def _exchange(server: SocketServer, request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(server))
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    writer.close()
    return int(status_line.split()[1]), headers, body


async def test_headers_over_the_limit_are_431_in_the_error_shape(limited: SocketServer) -> None:
    status, _, _ = await _exchange(limited, _request(LIMIT - 200))
    assert status == 200
    for request in (_request(LIMIT + 200), _request(LIMIT + 200, complete=False)):
        status, headers, body = await _exchange(limited, request)
        assert status == 431
        assert headers["content-type"] == "application/json"
        assert headers["connection"] == "close"
        assert json.loads(body) == {
            "error": f"The request's headers are larger than {LIMIT} bytes.",
            "code": "HEADERS_TOO_LARGE",
        }
    status, _, _ = await _exchange(limited, _request(10))  # the server is fine
    assert status == 200


async def test_an_8_mb_header_is_never_taken_in(limited: SocketServer) -> None:
    """The server stops reading and closes long before 8 MB (the sender cannot even finish);
    before, it read them all and answered 200."""
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(limited))
    sent = 0
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: ")
        while sent < 8 * 1024 * 1024:
            writer.write(b"a" * 65536)
            await writer.drain()
            sent += 65536
        writer.write(b"\r\n\r\n")
        await writer.drain()
        answer = await reader.read(100)
    except ConnectionError:
        answer = b""
    finally:
        writer.close()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer


async def test_replyhq_serve_limits_headers_to_16_kb_by_default(live_server: LiveServer) -> None:
    port = int(live_server.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_request(16384 + 100))
    await writer.drain()
    assert (await reader.readline()).startswith(b"HTTP/1.1 431 ")
    writer.close()
    assert httpx.get(live_server.url + "/healthz", headers={"X-Filler": "a" * 8000}).is_success
