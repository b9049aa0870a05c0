"""The test console screen in Chromium: an OWNER watches a device's traffic live, filters it by
type and device, pauses (entries wait) and resumes, copies what is shown as JSON, and clears; an
AGENT is told the screen is not theirs. Tracked events show (redacted, filterable), the list
follows the newest entry unless auto-scroll is off, and a messenger on a site not in
ALLOWED_ORIGINS shows as ORIGIN_REFUSED."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
from playwright.async_api import expect

from replyhq.runtime import Runtime
from tests.conftest import free_port
from tests.e2e.conftest import Demo, Pages, sign_in, staff_for
from tests.e2e.test_embed import customer_site


async def test_the_console_screen_filters_pauses_copies_and_clears(
    demo: Demo, pages: Pages, runtime: Runtime
) -> None:
    owner = await pages.new()
    await owner.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=demo.url)
    await sign_in(owner, demo.url, await staff_for(runtime, demo.app_id, "OWNER"))
    await owner.get_by_test_id("nav-console").click()
    await expect(owner.get_by_test_id("console-status")).to_have_text("Live")
    entries = owner.get_by_test_id("console-entry")
    a, b = f"phone-{uuid.uuid4().hex[:6]}", f"tablet-{uuid.uuid4().hex[:6]}"

    def sdk(device: str, key: str | None = None) -> dict[str, str]:
        return {
            "X-App-Id": demo.app["id"],
            "X-Api-Key": key or demo.app["sdk_key"],
            "X-Device-Id": device,
        }

    async with httpx.AsyncClient(base_url=demo.url) as http:
        for device in (a, b):
            await http.post("/v1/identify", headers=sdk(device), json={"platform": "web"})
        await http.post("/v1/identify", headers=sdk(a, "rhq_sdk_wrong"), json={"platform": "web"})
        await expect(entries).to_have_count(3)
        refused = entries.and_(owner.locator("[data-type=refused]"))
        await expect(refused).to_contain_text("INVALID_CREDENTIALS")
        await expect(refused).not_to_contain_text("rhq_sdk_wrong")

        await owner.get_by_test_id("console-device").fill(b)
        await expect(entries).to_have_count(1)
        await owner.get_by_test_id("console-device").fill("")

        await owner.get_by_test_id("console-pause").click()
        await http.post("/v1/identify", headers=sdk(b), json={"platform": "ios"})
        await expect(owner.get_by_test_id("console-resume")).to_have_text("Resume (1 new)")
        await expect(entries).to_have_count(3)
        await owner.get_by_test_id("console-resume").click()
        await expect(entries).to_have_count(4)

    await owner.get_by_test_id("console-type").select_option("identify")
    await owner.get_by_test_id("console-copy").click()
    copied = json.loads(await owner.evaluate("navigator.clipboard.readText()"))
    assert [e["type"] for e in copied] == ["identify"] * 3
    assert [e["device_id"] for e in copied] == [a, b, b]
    await owner.get_by_test_id("console-clear").click()
    await expect(entries).to_have_count(0)

    agent = await pages.new()
    await sign_in(agent, demo.url, await staff_for(runtime, demo.app_id, "AGENT"))
    await expect(agent.get_by_test_id("nav-console")).to_have_count(0)
    await agent.goto(f"{demo.url}/dashboard/console")
    await expect(agent.get_by_test_id("needs-role")).to_have_attribute("data-screen", "console")


async def _from_bottom(page: Any) -> float:
    distance: float = await page.get_by_test_id("console-entries").evaluate(
        "e => e.scrollHeight - e.scrollTop - e.clientHeight"
    )
    return distance


async def test_the_console_shows_tracked_events_and_refused_origins_and_follows_the_newest(
    demo: Demo, pages: Pages, runtime: Runtime
) -> None:
    owner = await pages.new()
    await sign_in(owner, demo.url, await staff_for(runtime, demo.app_id, "OWNER"))
    await owner.get_by_test_id("nav-console").click()
    await expect(owner.get_by_test_id("console-status")).to_have_text("Live")
    entries = owner.get_by_test_id("console-entry")
    device = f"shop-{uuid.uuid4().hex[:6]}"
    headers = {"X-App-Id": demo.app["id"], "X-Api-Key": demo.app["sdk_key"], "X-Device-Id": device}

    async def track(*names: str) -> None:
        events = [
            {"name": n, "properties": {"plan": "pro", "token": "tok-secret-1"}} for n in names
        ]
        answer = await http.post("/v1/events", headers=headers, json={"events": events})
        assert answer.status_code == 202, answer.text

    async with httpx.AsyncClient(base_url=demo.url) as http:
        await http.post("/v1/identify", headers=headers, json={"platform": "web"})
        await track("checkout", "viewed_pricing")
        await expect(entries).to_have_count(3)
        # Tracked events are entries of their own type, filterable, with secrets redacted.
        await owner.get_by_test_id("console-type").select_option("event")
        await expect(entries).to_have_count(2)
        await expect(entries.first).to_contain_text("checkout")
        await expect(entries.first).to_contain_text("[redacted]")
        await expect(entries.first).not_to_contain_text("tok-secret-1")
        await owner.get_by_test_id("console-type").select_option("")

        # Auto-scroll: the list follows the newest entry...
        await track(*(f"step_{n}" for n in range(40)))
        await expect(entries).to_have_count(43)
        assert await _from_bottom(owner) < 2
        # ...until it is turned off: then what one reads stays put.
        await owner.get_by_test_id("console-follow").uncheck()
        await owner.get_by_test_id("console-entries").evaluate("e => { e.scrollTop = 0; }")
        await track(*(f"later_{n}" for n in range(20)))
        await expect(entries).to_have_count(63)
        assert await owner.get_by_test_id("console-entries").evaluate("e => e.scrollTop") == 0
        await owner.get_by_test_id("console-follow").check()
        for _ in range(50):  # followed again at once
            if await _from_bottom(owner) < 2:
                break
            await asyncio.sleep(0.1)
        assert await _from_bottom(owner) < 2

    # The snippet on a site that is not in ALLOWED_ORIGINS: the messenger's probe names the app,
    # so the developer sees why in the console.
    elsewhere = f"http://127.0.0.1:{free_port()}"
    html = f"""<!doctype html><html><body>
      <script src="{demo.url}/widget.js" data-app-id="{demo.app["id"]}"
              data-api-key="{demo.app["sdk_key"]}"></script></body></html>"""
    with customer_site(elsewhere, html):
        stranger = await pages.new()
        await stranger.goto(f"{elsewhere}/")
        await stranger.get_by_test_id("rhq-launcher").click()
        await expect(stranger.get_by_test_id("rhq-blocked")).to_be_visible()
    refused = entries.and_(owner.locator("[data-type=refused]")).filter(has_text="ORIGIN_REFUSED")
    await expect(refused.first).to_contain_text(elsewhere)
    await expect(refused.first).to_contain_text("ALLOWED_ORIGINS")
