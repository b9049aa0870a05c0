"""A browser origin missing from ALLOWED_ORIGINS is refused (HTTP CORS and the Socket.IO
handshake) and the operator hears of it: one warning per origin per process, naming the origin
and the setting to change. Allowed origins and the server's own pages are never reported."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import SocketServer

ALLOWED = "https://customer.example"  # make_settings' ALLOWED_ORIGINS
POLLING = {"EIO": "4", "transport": "polling"}


def _preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-app-id, x-api-key, x-device-id, content-type",
    }


def refusals(output: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if line["event"] == "origin_refused"]


async def test_each_refused_origin_is_logged_once_with_the_setting_to_change(
    socket_server: SocketServer, capsys: pytest.CaptureFixture[str]
) -> None:
    shop = f"https://shop-{uuid.uuid4().hex[:8]}.example"
    blog = f"https://blog-{uuid.uuid4().hex[:8]}.example"
    capsys.readouterr()
    async with httpx.AsyncClient(base_url=socket_server.url) as http:
        for _ in range(3):  # the messenger retries: the log says it once
            refused = await http.options("/v1/identify", headers=_preflight(shop))
            assert "access-control-allow-origin" not in refused.headers
        await http.get("/healthz", headers={"Origin": shop})
        handshake = await http.get("/socket.io/", params=POLLING, headers={"Origin": shop})
        assert handshake.status_code == 400
        for _ in range(2):
            handshake = await http.get("/socket.io/", params=POLLING, headers={"Origin": blog})
            assert handshake.status_code == 400

        # Allowed: the listed origin, and the server's own pages (the dashboard, /demo).
        allowed = await http.options("/v1/identify", headers=_preflight(ALLOWED))
        assert allowed.headers["access-control-allow-origin"] == ALLOWED
        own = await http.get("/socket.io/", params=POLLING, headers={"Origin": socket_server.url})
        assert own.status_code == 200
        await http.post("/admin/api/auth/login", json={}, headers={"Origin": socket_server.url})

    logged = refusals(capsys.readouterr().out)
    assert sorted(line["origin"] for line in logged) == sorted([shop, blog])
    for line in logged:
        assert line["level"] == "warning"
        assert line["setting"] == "ALLOWED_ORIGINS"
        assert "ALLOWED_ORIGINS" in line["hint"]
        assert line["origin"] in line["hint"]
