"""Signing in to the dashboard: a stale access token is renewed silently (HTTP and socket),
and logging out ends the sign-in on the server too."""

from __future__ import annotations

import json

import httpx
from playwright.async_api import expect

from replyhq.runtime import Runtime
from tests.e2e.conftest import Demo, Pages, sign_in, staff_for

SESSION = "replyhq:dashboard:session"


async def test_silent_refresh_and_logout(demo: Demo, pages: Pages, runtime: Runtime) -> None:
    page = await pages.new()
    await sign_in(page, demo.url, await staff_for(runtime, demo.app_id, "AGENT"))
    before = json.loads(await page.evaluate(f"() => localStorage.getItem('{SESSION}')"))

    # The access token goes bad (as after its 15 minutes): the next load renews it unseen.
    stale = {**before, "access_token": "expired.token.value", "expires_at": 9999999999999}
    await page.evaluate(f"(s) => localStorage.setItem('{SESSION}', s)", json.dumps(stale))
    await page.reload()
    await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "connected")
    await expect(page.get_by_test_id("my-role")).to_have_text("AGENT")
    after = json.loads(await page.evaluate(f"() => localStorage.getItem('{SESSION}')"))
    assert after["access_token"] not in (before["access_token"], stale["access_token"])
    assert after["refresh_token"] != before["refresh_token"]  # rotated, the old one spent

    await page.get_by_test_id("logout").click()
    await expect(page.get_by_test_id("login-submit")).to_be_visible()
    assert await page.evaluate(f"() => localStorage.getItem('{SESSION}')") is None
    refused = httpx.post(
        f"{demo.url}/admin/refresh", json={"refresh_token": after["refresh_token"]}
    )
    assert refused.status_code == 401
