"""The messenger on a customer's own site (another origin, hostile CSS): one script tag, calls
across origins allowed by ALLOWED_ORIGINS, and none of the page's styles reach it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import expect

from tests.conftest import free_port
from tests.e2e.conftest import Demo, Pages
from tests.e2e.test_chat import user_send

HOSTILE_CSS = """
  * { font-size: 40px !important; color: red !important; font-family: serif !important; }
  button { display: none !important; }
  div { border: 5px solid lime !important; }
"""


async def test_messenger_on_another_origin_is_isolated_and_works(demo: Demo, pages: Pages) -> None:
    page = await pages.new()
    html = f"""<!doctype html><html><head><style>{HOSTILE_CSS}</style></head>
      <body><h1>Customer shop</h1>
      <script src="{demo.url}/widget.js" data-app-id="{demo.app["id"]}"
              data-api-key="{demo.app["sdk_key"]}"></script></body></html>"""

    with customer_site(demo.customer_site, html):
        await page.goto(f"{demo.customer_site}/shop")
        await check_messenger(page)

    # A site that is not in ALLOWED_ORIGINS gets the script but no conversation; the end user
    # is told plainly, the developer in the console and the operator in the server log, once.
    elsewhere = f"http://127.0.0.1:{free_port()}"
    with customer_site(elsewhere, html):
        stranger = await pages.new()
        console: list[str] = []
        stranger.on("console", lambda m: console.append(m.text))
        await stranger.goto(f"{elsewhere}/shop")
        await stranger.get_by_test_id("rhq-launcher").click()
        await expect(stranger.get_by_test_id("rhq-blocked")).to_contain_text(
            "Support chat is not available on this site"
        )
        await expect(stranger.get_by_test_id("rhq-composer")).to_have_count(0)
        hints = [line for line in console if "ALLOWED_ORIGINS" in line and elsewhere in line]
        assert len(hints) == 1, console
        await stranger.reload()  # the same origin again: nothing more in the server log
        await stranger.get_by_test_id("rhq-launcher").click()
        await expect(stranger.get_by_test_id("rhq-blocked")).to_be_visible()
    refused = [
        json.loads(line)
        for line in demo.server.log.read_text().splitlines()
        if '"origin_refused"' in line
    ]
    assert [r["setting"] for r in refused if r["origin"] == elsewhere] == ["ALLOWED_ORIGINS"]


@contextmanager
def customer_site(origin: str, html: str) -> Iterator[None]:
    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    address = urlsplit(origin)
    server = ThreadingHTTPServer((address.hostname or "", address.port or 80), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


async def check_messenger(page: Any) -> None:
    launcher = page.get_by_test_id("rhq-launcher")
    await expect(launcher).to_be_visible()  # `button {display: none}` did not reach it
    await launcher.click()
    await expect(page.get_by_test_id("rhq-status")).to_have_attribute("data-state", "connected")
    await user_send(page, "Hello from the shop")
    message = page.get_by_test_id("rhq-message")
    await expect(message).to_have_attribute("data-seq", "1")

    styles = await page.get_by_test_id("rhq-composer").evaluate(
        """(el) => { const s = getComputedStyle(el);
                     return [s.fontSize, s.color, s.fontFamily, s.borderTopColor]; }"""
    )
    assert styles[0] == "14px"
    assert styles[1] != "rgb(255, 0, 0)"
    assert "serif" not in styles[2].split(",")[0]
    assert styles[3] != "rgb(0, 255, 0)"
