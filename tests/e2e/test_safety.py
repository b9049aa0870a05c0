"""What people type (message bodies, names, attributes, app names) is shown as text or the
server's sanitised HTML: no payload runs, and no element it names exists in either page."""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from replyhq.runtime import Runtime
from tests.e2e.conftest import Demo, Pages, sign_in, staff_for
from tests.e2e.test_chat import agent_send, open_messenger, user_send

IMG = "<img src=x onerror=\"alert('img');window.__pwned=1\">"
SVG = "<svg onload=\"alert('svg');window.__pwned=1\"></svg>"
LINK = "[click me](javascript:alert('link'))"
SCRIPT = "<script>alert('script')</script>"
PAYLOADS = [IMG, SVG, LINK, SCRIPT]


async def assert_inert(page: Any) -> None:
    """No element a payload would create, anywhere (Playwright's CSS pierces shadow roots)."""
    for selector in (
        "img[src='x']",
        "svg[onload]",
        "[onerror]",
        "[onload]",
        "a[href^='javascript' i]",
        "script:not([src]):not([type='application/json']):not([nonce])",
    ):
        assert await page.locator(selector).count() == 0, selector
    assert await page.evaluate("() => window.__pwned === undefined")


async def test_payloads_never_execute(demo: Demo, pages: Pages, runtime: Runtime) -> None:
    owner = await staff_for(runtime, demo.app_id, "OWNER", name=IMG)  # the agent's name too
    user = await pages.new()
    await open_messenger(user, demo.url)
    await user.evaluate(
        """(p) => ReplyHQ.identify({name: p.svg, email: 'x@example.com',
             attributes: {plan: p.img, note: p.svg, link: p.link, nested: {html: p.script}}})""",
        {"img": IMG, "svg": SVG, "link": LINK, "script": SCRIPT},
    )
    await expect(user.get_by_test_id("rhq-status")).to_have_attribute("data-state", "connected")
    for payload in PAYLOADS:
        await user_send(user, payload)
    await expect(user.get_by_test_id("rhq-message")).to_have_count(len(PAYLOADS))

    agent = await pages.new()
    await sign_in(agent, demo.url, owner)
    item = agent.get_by_test_id("inbox-item").filter(has_text="alert('script')")
    await item.click()
    await expect(agent.get_by_test_id("message")).to_have_count(len(PAYLOADS))
    # The end user's name and attributes are shown, as text.
    await expect(agent.get_by_test_id("profile-name")).to_have_text(SVG)
    attributes = agent.get_by_test_id("attributes")
    await expect(attributes).to_contain_text(IMG)
    await expect(attributes).to_contain_text(LINK)
    await expect(attributes).to_contain_text(SCRIPT)
    # Raw HTML in a body is shown as text; the javascript: link is not a link.
    bodies = agent.get_by_test_id("message").locator(".body")
    await expect(bodies.nth(0)).to_contain_text("<img src=x onerror=")
    await expect(bodies.nth(1)).to_contain_text("<svg onload=")

    for payload in PAYLOADS:
        await agent_send(agent, payload)
    await expect(user.get_by_test_id("rhq-message")).to_have_count(2 * len(PAYLOADS))
    # The agent's name (a payload) labels the replies, as text.
    await expect(user.locator(".rhq-author").first).to_have_text(IMG)
    await agent.reload()  # and once more from stored data, not only live events
    await expect(agent.get_by_test_id("message")).to_have_count(2 * len(PAYLOADS))

    for page in (user, agent):
        await assert_inert(page)
    assert pages.dialogs == []
    assert pages.errors == []
