"""The test console screen in Chromium: an OWNER watches a device's traffic live, filters it by
device, pauses (entries wait) and resumes, copies what is shown as JSON, and clears; an AGENT
is told the screen is not theirs."""

from __future__ import annotations

import json
import uuid

import httpx
from playwright.async_api import expect

from replyhq.runtime import Runtime
from tests.e2e.conftest import Demo, Pages, sign_in, staff_for


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
