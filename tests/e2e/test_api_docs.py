"""/docs works on a machine without internet: in Chromium with every non-local request refused,
Swagger UI loads from the server itself and renders the API's operations."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from playwright.async_api import async_playwright, expect

from tests.conftest import LiveServer
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, _missing

LOCAL = {"127.0.0.1", "localhost"}


async def test_docs_render_with_the_internet_cut_off(live_server: LiveServer) -> None:
    if not Path(CHROMIUM).exists():
        _missing(f"{CHROMIUM} is missing: apt-get install -y chromium")
    refused: list[str] = []

    async def offline(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if urlsplit(url).hostname in LOCAL:
            await route.continue_()  # type: ignore[attr-defined]
        else:
            refused.append(url)
            await route.abort("internetdisconnected")  # type: ignore[attr-defined]

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context()
            context.set_default_timeout(15000)
            await context.route("**/*", offline)
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))

            await page.goto(f"{live_server.url}/docs")
            operation = page.locator(".opblock-summary-path", has_text="/v1/identify")
            await expect(operation.first).to_be_visible(timeout=60000)  # a loaded CI machine
            assert await page.locator(".opblock").count() > 20
            await expect(page.locator(".info .title")).to_contain_text("ReplyHQ")

            assert errors == []
        finally:
            await browser.close()
    assert refused == [], "the docs pages asked the internet for something"
