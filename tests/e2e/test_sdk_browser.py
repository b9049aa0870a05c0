"""@replyhq/sdk unchanged in Chromium, on a customer's page (another origin, in ALLOWED_ORIGINS):
anonymous identify, a conversation, an agent's reply live, localStorage keeping the device and
read positions across a reload (nothing shown twice), and the queue of a message written while
the browser is offline."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.e2e.conftest import Demo, Pages
from tests.e2e.test_embed import customer_site
from tests.test_sdk_js import SDK, built_sdk

PAGE = """<!doctype html><html><body><h1>Shop</h1>
<script>{bundle}</script>
<script>
  window.received = [];
  window.client = new ReplyHQSDK.ReplyHQ({config});
  client.on("message", (m) => window.received.push(m));
  window.ready = client.identify({{ name: "Visitor" }}).then(() => client.conversations());
</script></body></html>"""


async def test_the_sdk_runs_in_chromium(demo: Demo, pages: Pages) -> None:
    built_sdk()
    bundle = (SDK / "dist" / "replyhq.browser.js").read_text()
    config = json.dumps(
        {"url": demo.url, "appId": demo.app["id"], "sdkKey": demo.app["sdk_key"], "platform": "web"}
    )
    html = PAGE.format(bundle=bundle.replace("</script", "<\\/script"), config=config)
    secret = {"X-App-Id": demo.app["id"], "X-Api-Key": demo.app["secret_key"]}
    with customer_site(demo.customer_site, html):
        page = await pages.new()
        await page.goto(f"{demo.customer_site}/shop")
        await page.evaluate("window.ready")
        await page.wait_for_function("window.client.state === 'connected'")
        conversation: dict[str, Any] = await page.evaluate(
            "client.startConversation({ body: 'Hi from Chromium' })"
        )
        device = await page.evaluate("client.device()")
        async with httpx.AsyncClient(base_url=demo.url) as http:
            reply = await http.post(
                f"/admin/api/conversations/{conversation['id']}/messages",
                headers=secret,
                json={"body": "Hello, browser", "client_msg_id": "browser-reply-1"},
            )
            assert reply.status_code == 201, reply.text
            await page.wait_for_function("window.received.length === 2")
            assert await page.evaluate("received.map((m) => m.body)") == [
                "Hi from Chromium",
                "Hello, browser",
            ]
            assert await page.evaluate("client.unreadCount") == 1

            # A reload: the same device (localStorage), the same conversation, nothing again.
            await page.reload()
            await page.evaluate("window.ready")
            assert await page.evaluate("client.device()") == device
            listed = await page.evaluate("window.ready")
            assert [c["id"] for c in listed] == [conversation["id"]]
            await page.wait_for_function("window.client.state === 'connected'")

            # Offline in the browser: the message waits in localStorage, and goes once online.
            await page.context.set_offline(True)
            await page.wait_for_function("window.client.state !== 'connected'", timeout=30_000)
            await page.evaluate(  # not awaited: it resolves only once stored
                f"void client.send('{conversation['id']}', 'Written offline')"
            )
            await page.wait_for_function("client.pending.length === 1")
            stored = await page.evaluate("localStorage.length")
            assert stored >= 2  # device, state and the queue
            await page.context.set_offline(False)
            await page.wait_for_function(
                "window.received.some((m) => m.body === 'Written offline')", timeout=30_000
            )
            assert await page.evaluate("received.map((m) => m.body)") == ["Written offline"]
            history = await http.get(
                f"/admin/api/conversations/{conversation['id']}/messages", headers=secret
            )
            bodies = [m["body"] for m in history.json()["items"]]
            assert bodies == ["Hi from Chromium", "Hello, browser", "Written offline"]
