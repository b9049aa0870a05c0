"""An end user on /demo and an agent in /dashboard chat live, in two real browsers."""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from replyhq.runtime import Runtime
from tests.e2e.conftest import Demo, Pages, sign_in, staff_for


async def open_messenger(page: Any, base_url: str) -> None:
    await page.goto(f"{base_url}/demo")
    await page.get_by_test_id("rhq-launcher").click()
    await expect(page.get_by_test_id("rhq-status")).to_have_attribute("data-state", "connected")


async def user_send(page: Any, text: str) -> None:
    composer = page.get_by_test_id("rhq-composer")
    await composer.fill(text)
    await composer.press("Enter")


async def agent_send(page: Any, text: str) -> None:
    composer = page.get_by_test_id("composer")
    await composer.fill(text)
    await composer.press("Enter")


def bodies(locator: Any) -> Any:
    return locator.locator(".rhq-body, .body")


async def test_end_user_and_agent_chat_live(demo: Demo, pages: Pages, runtime: Runtime) -> None:
    agent = await pages.new()
    await sign_in(agent, demo.url, await staff_for(runtime, demo.app_id, "AGENT"))
    user = await pages.new()
    await open_messenger(user, demo.url)

    # The end user writes; the agent's inbox shows it live, without a reload. (How fast is the
    # realtime benchmark's to say, send -> delivery p99 in docs/benchmarks-realtime.md: a timed
    # assertion here failed on a loaded machine with the conversation on its way.)
    await user_send(user, "Hello, my order has not arrived")
    item = agent.get_by_test_id("inbox-item").filter(has_text="Hello, my order has not arrived")
    await expect(item).to_be_visible()
    await expect(item.get_by_test_id("unread-badge")).to_have_text("1")
    await expect(item.get_by_test_id("presence")).to_have_attribute("data-online", "yes")

    # The agent opens it (the unread badge goes), and sees the end user typing.
    await item.click()
    messages = agent.get_by_test_id("message")
    await expect(messages).to_have_count(1)
    await expect(item.get_by_test_id("unread-badge")).to_have_count(0)
    await user.get_by_test_id("rhq-composer").press_sequentially("Any news", delay=20)
    await expect(agent.get_by_test_id("typing")).to_be_visible()

    # The agent types (the end user sees it) and replies (the end user sees the reply).
    await agent.get_by_test_id("composer").press_sequentially("Let me", delay=20)
    await expect(user.get_by_test_id("rhq-typing")).to_be_visible()
    await agent.get_by_test_id("composer").fill("")
    await agent_send(agent, "Let me check that for you.\nOne moment.")
    reply = user.get_by_test_id("rhq-message").filter(has_text="Let me check that for you.")
    await expect(reply).to_be_visible()
    await expect(reply).to_have_attribute("data-sender", "agent")

    # The end user's next message, with Shift+Enter making a new line, not a send.
    composer = user.get_by_test_id("rhq-composer")
    await composer.fill("")
    await composer.type("Thanks!")
    await composer.press("Shift+Enter")
    await composer.type("Second line")
    await expect(user.get_by_test_id("rhq-message")).to_have_count(2)
    await composer.press("Enter")
    await expect(agent.get_by_test_id("message")).to_have_count(3)
    assert await agent.get_by_test_id("message").nth(2).inner_text() != ""
    last = agent.get_by_test_id("message").nth(2).locator(".body")
    assert "Second line" in await last.inner_text()
    assert [await m.get_attribute("data-seq") for m in await messages.all()] == ["1", "2", "3"]
    assert pages.errors == []


async def test_unread_badge_presence_and_drafts(demo: Demo, pages: Pages, runtime: Runtime) -> None:
    agent = await pages.new()
    await sign_in(agent, demo.url, await staff_for(runtime, demo.app_id, "AGENT"))
    user = await pages.new()
    await open_messenger(user, demo.url)
    await user_send(user, "Is anyone there?")
    await user.get_by_test_id("rhq-launcher").click()  # closes the panel
    await expect(user.get_by_test_id("rhq-panel")).to_have_count(0)

    found = agent.get_by_test_id("inbox-item").filter(has_text="Is anyone there?")
    item = agent.locator(f"[data-id='{await found.get_attribute('data-id')}']")
    await item.click()
    await agent_send(agent, "Yes! How can I help?")
    # Closed panel: the launcher shows an unread badge, and the page's onUnreadCountChange hears.
    await expect(user.get_by_test_id("rhq-badge")).to_have_text("1")
    await expect(user.locator("#unread")).to_have_text("1")
    await user.get_by_test_id("rhq-launcher").click()
    await expect(user.get_by_test_id("rhq-message")).to_have_count(2)
    await expect(user.get_by_test_id("rhq-badge")).to_have_count(0)
    await expect(user.locator("#unread")).to_have_text("0")
    # The end user read it: the agent sees the receipt.
    await expect(agent.get_by_test_id("seen")).to_be_visible()

    # A draft survives a reload of the dashboard, per conversation.
    await agent.get_by_test_id("composer").fill("A reply I have not finished")
    await agent.reload()
    await expect(agent.get_by_test_id("composer")).to_have_value("A reply I have not finished")
    # Read receipts come from the server too, so they survive a reload on both sides.
    await expect(agent.get_by_test_id("seen")).to_be_visible()
    await expect(user.get_by_test_id("rhq-seen")).to_be_visible()
    await user.reload()
    await user.get_by_test_id("rhq-launcher").click()
    await user.get_by_test_id("rhq-conversation-item").first.click()
    await expect(user.get_by_test_id("rhq-message")).to_have_count(2)
    await expect(user.get_by_test_id("rhq-seen")).to_be_visible()

    # The end user leaves: the agent's online dot goes out without a reload.
    await expect(item.get_by_test_id("presence")).to_have_attribute("data-online", "yes")
    await user.close()
    await expect(item.get_by_test_id("presence")).to_have_attribute("data-online", "no")
