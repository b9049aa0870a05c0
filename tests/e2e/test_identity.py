"""A shared device: after logout and a new identify, the messenger shows only the new person's
conversations, never the previous one's."""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from tests.e2e.conftest import Demo, Pages
from tests.e2e.test_chat import user_send


async def sign_in_as(page: Any, who: str) -> None:
    await page.get_by_role("button", name=who).click()
    await expect(page.locator("#who")).to_have_text(
        {"Continue as a visitor": "a visitor", "Sign in as Ann": "Ann Lee"}.get(who, "Bob Stone")
    )
    await expect(page.get_by_test_id("rhq-status")).to_have_attribute("data-state", "connected")


async def test_identity_switching_shows_only_the_new_persons_conversations(
    demo: Demo, pages: Pages
) -> None:
    page = await pages.new()
    await page.goto(f"{demo.url}/demo")
    await page.get_by_test_id("rhq-launcher").click()
    await sign_in_as(page, "Sign in as Ann")
    await user_send(page, "Ann's private question")
    await expect(page.get_by_test_id("rhq-message")).to_have_count(1)
    await expect(page.get_by_test_id("rhq-message")).to_contain_text("Ann's private question")

    await sign_in_as(page, "Sign in as Bob")
    panel = page.get_by_test_id("rhq-panel")
    await expect(panel).to_be_visible()
    await expect(page.get_by_test_id("rhq-conversation-item")).to_have_count(0)
    await expect(page.get_by_test_id("rhq-message")).to_have_count(0)
    await expect(panel).not_to_contain_text("Ann")
    await user_send(page, "Bob says hi")
    await expect(page.get_by_test_id("rhq-message")).to_have_count(1)

    # A visitor after Bob: a fresh start again.
    await sign_in_as(page, "Continue as a visitor")
    await expect(page.get_by_test_id("rhq-conversation-item")).to_have_count(0)
    await expect(page.get_by_test_id("rhq-message")).to_have_count(0)
    await expect(panel).not_to_contain_text("Bob says hi")

    # Ann again: her conversation only.
    await sign_in_as(page, "Sign in as Ann")
    items = page.get_by_test_id("rhq-conversation-item")
    await expect(items).to_have_count(1)
    await expect(items).to_contain_text("Ann's private question")
    await expect(panel).not_to_contain_text("Bob says hi")
    # Nothing of another person is left in this browser's storage either.
    stored = await page.evaluate("() => JSON.stringify(Object.entries(localStorage))")
    assert "Bob says hi" not in stored
    assert pages.errors == []
