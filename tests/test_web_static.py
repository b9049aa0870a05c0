"""The browser faces as HTTP: /dashboard (a single-page app with a Content-Security-Policy),
/widget.js, the dev-only /demo page, and invitation links."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from replyhq.settings import Settings
from replyhq.web import static
from tests.conftest import Servers, make_settings

built = pytest.mark.skipif(
    not (static.DASHBOARD / "index.html").is_file() or not (static.STATIC / "widget.js").is_file(),
    reason="web/ is not built (make web)",
)


@built
async def test_dashboard_screens_get_the_app_with_a_strict_csp(client: httpx.AsyncClient) -> None:
    for path in ("/dashboard", "/dashboard/", "/dashboard/inbox/123", "/dashboard/team"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert '<div id="root">' in response.text
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"


@built
async def test_dashboard_assets_are_served_and_cached_for_good(client: httpx.AsyncClient) -> None:
    page = (await client.get("/dashboard")).text
    script = page.split('src="', 1)[1].split('"', 1)[0]
    assert script.startswith("/dashboard/assets/")
    response = await client.get(script)
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    assert "immutable" in response.headers["cache-control"]


async def test_no_file_outside_the_build_is_reachable(client: httpx.AsyncClient) -> None:
    for path in (
        "/dashboard/assets/../../app.py",
        "/dashboard/assets/..%2f..%2fapp.py",
        "/dashboard/assets/missing.js",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert "create_app" not in response.text


@built
async def test_widget_js_is_one_script(client: httpx.AsyncClient) -> None:
    response = await client.get("/widget.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert "max-age=300" in response.headers["cache-control"]
    assert "attachShadow" in response.text


async def test_invitation_links_lead_to_the_dashboard(client: httpx.AsyncClient) -> None:
    response = await client.get("/invite")
    assert response.status_code == 307
    assert response.headers["location"] == "/dashboard/invite"


async def test_demo_page_is_not_served_without_serve_demo(client: httpx.AsyncClient) -> None:
    response = await client.get("/demo")
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


def _demo_settings(servers: Servers, tmp_path: Path, **overrides: object) -> Settings:
    demo = {"id": "6b1d6d0e-0000-4000-8000-000000000001", "sdk_key": "rhq_sdk_demo<x>"}
    demo |= {"identity_secret": "s" * 64, "owner_email": "demo@replyhq.local"}
    (tmp_path / "demo-app.json").write_text(json.dumps(demo))
    return make_settings(servers, data_dir=tmp_path, **overrides)


async def _get(settings: Settings, path: str) -> httpx.Response:
    from asgi_lifespan import LifespanManager

    from replyhq.app import create_app

    app: FastAPI = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return await http.get(path)


async def test_demo_page_in_development_with_serve_demo(
    servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(static.DEMO_ENV, "1")
    response = await _get(_demo_settings(servers, tmp_path), "/demo")
    assert response.status_code == 200
    page = response.text
    assert 'data-app-id="6b1d6d0e-0000-4000-8000-000000000001"' in page
    assert 'data-api-key="rhq_sdk_demo&lt;x&gt;"' in page  # attribute values escaped
    assert "s" * 64 not in page  # the identity secret never reaches the page, only hashes
    csp = response.headers["content-security-policy"]
    nonce = csp.split("'nonce-", 1)[1].split("'", 1)[0]
    assert f'<script nonce="{nonce}">' in page
    assert "'unsafe-inline'" not in csp

    production = _demo_settings(
        servers,
        tmp_path,
        environment="production",
        master_api_key="m" * 32,
        jwt_secret="j" * 32,
        jwt_refresh_secret="r" * 32,
    )
    assert (await _get(production, "/demo")).status_code == 404
