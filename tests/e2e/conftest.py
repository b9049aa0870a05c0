"""Browser tests: the real dashboard and messenger in Debian's Chromium (never a downloaded
browser), driven by Playwright, against a real `replyhq serve --demo` process."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from replyhq.runtime import Runtime
from tests.conftest import LiveServer, Servers, free_port, start_server
from tests.staff import PASSWORD, Staff, add_staff

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STATIC = Path(__file__).resolve().parents[2] / "src" / "replyhq" / "static"


def _missing(reason: str) -> None:
    # In CI a missing browser or build is a failure, never a silent skip.
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def built() -> None:
    if not (STATIC / "dashboard" / "index.html").is_file() or not (STATIC / "widget.js").is_file():
        _missing("web/ is not built: run `make web` (make test does)")
    if not Path(CHROMIUM).exists():
        _missing(f"{CHROMIUM} is missing: apt-get install -y chromium (make test does in CI)")


@dataclass
class Demo:
    """The server of `make dev`: its URL and the demo app it created (keys, owner login)."""

    server: LiveServer
    app: dict[str, str]
    customer_site: str  # another origin, in ALLOWED_ORIGINS: a customer's site (test_embed.py)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def app_id(self) -> uuid.UUID:
        return uuid.UUID(self.app["id"])


@pytest.fixture(scope="package")  # stopped once the browser tests are done
def demo(built: None, servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    data_dir = tmp_path_factory.mktemp("demo-data")
    # On loopback too: Chromium keeps public pages from loading from loopback (Private Network
    # Access), which a real deployment, on a public address, never meets.
    customer_site = f"http://127.0.0.1:{free_port()}"
    server = start_server(
        servers,
        data_dir,
        "--demo",
        DATA_DIR=str(data_dir),
        ALLOWED_ORIGINS=customer_site,
        DB_POOL_SIZE="5",
        DB_MAX_OVERFLOW="5",
    )
    try:
        yield Demo(server, json.loads((data_dir / "demo-app.json").read_text()), customer_site)
    finally:
        server.stop()


@pytest.fixture(scope="package")
async def browser(built: None) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


class Pages:
    """Fresh browser contexts (separate storage, like separate people), each page watched for
    dialogs (an executed XSS payload would open one) and script errors."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser
        self.contexts: list[Any] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []

    async def new(self) -> Any:
        context = await self.browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(5000)
        self.contexts.append(context)
        page = await context.new_page()

        async def dialog(d: Any) -> None:
            # Our own confirmations ("Rotate the keys?") are accepted; anything else is recorded
            # (an executed XSS payload opens an alert).
            self.dialogs.append(f"{d.type}: {d.message}")
            if d.type == "confirm":
                await d.accept()
            else:
                await d.dismiss()

        page.on("dialog", dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        # A Content-Security-Policy refusal means a page needs something its policy forbids.
        page.on(
            "console",
            lambda m: "Content Security Policy" in m.text and self.errors.append(m.text),
        )
        return page

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@pytest.fixture
async def pages(browser: Any) -> AsyncIterator[Pages]:
    opened = Pages(browser)
    yield opened
    await opened.close()
    assert opened.errors == [], "script errors or CSP refusals in a page"


async def staff_for(
    runtime: Runtime, app_id: uuid.UUID, role: str, name: str | None = None
) -> Staff:
    return await add_staff(runtime, app_id, role, name=name or f"{role.title()} Tester")


async def sign_in(page: Any, base_url: str, staff: Staff) -> None:
    await page.goto(f"{base_url}/dashboard")
    await page.get_by_test_id("login-email").fill(staff.email)
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await page.get_by_test_id("connection").and_(page.locator("[data-state=connected]")).wait_for()
