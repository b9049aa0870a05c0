"""Both browsers lose the network while both sides write; back online, every message arrives
exactly once and in the same order on both sides, each side's own messages in the order written."""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from replyhq.runtime import Runtime
from tests.e2e.conftest import Demo, Pages, sign_in, staff_for
from tests.e2e.test_chat import agent_send, open_messenger, user_send


async def shown(page: Any, test_id: str) -> list[tuple[str, str]]:
    """(seq, text) of the confirmed messages on screen, top to bottom."""
    rows = []
    for message in await page.get_by_test_id(test_id).all():
        text = (await message.locator(".rhq-body, .body").inner_text()).strip()
        rows.append((await message.get_attribute("data-seq"), text))
    return rows


async def test_offline_sends_arrive_once_and_in_order(
    demo: Demo, pages: Pages, runtime: Runtime
) -> None:
    agent = await pages.new()
    await sign_in(agent, demo.url, await staff_for(runtime, demo.app_id, "AGENT"))
    user = await pages.new()
    await open_messenger(user, demo.url)
    await user_send(user, "before the tunnel")
    await agent.get_by_test_id("inbox-item").filter(has_text="before the tunnel").click()
    await expect(agent.get_by_test_id("message")).to_have_count(1)

    await user.context.set_offline(True)
    await agent.context.set_offline(True)
    await expect(user.get_by_test_id("rhq-status")).to_have_attribute("data-state", "offline")
    await expect(agent.get_by_test_id("connection")).to_have_attribute("data-state", "offline")
    for n in range(1, 4):
        await user_send(user, f"user {n}")
        await agent_send(agent, f"agent {n}")
    # Shown at once as pending, in the order written, on each side.
    await expect(user.get_by_test_id("rhq-pending")).to_have_count(3)
    await expect(agent.get_by_test_id("pending")).to_have_count(3)

    await user.context.set_offline(False)
    await agent.context.set_offline(False)
    await expect(user.get_by_test_id("rhq-message")).to_have_count(7, timeout=15000)
    await expect(agent.get_by_test_id("message")).to_have_count(7, timeout=15000)
    await expect(user.get_by_test_id("rhq-pending")).to_have_count(0)
    await expect(agent.get_by_test_id("pending")).to_have_count(0)

    on_user, on_agent = await shown(user, "rhq-message"), await shown(agent, "message")
    assert on_user == on_agent  # same messages, same order, on both sides
    assert [seq for seq, _ in on_user] == [str(n) for n in range(1, 8)]
    texts = [text for _, text in on_user]
    assert sorted(texts) == sorted(
        ["before the tunnel", "user 1", "user 2", "user 3", "agent 1", "agent 2", "agent 3"]
    )
    assert [t for t in texts if t.startswith("user")] == ["user 1", "user 2", "user 3"]
    assert [t for t in texts if t.startswith("agent")] == ["agent 1", "agent 2", "agent 3"]
    await expect(agent.get_by_test_id("connection")).to_have_attribute("data-state", "connected")

    # A reload shows the same history from the server: nothing doubled was stored.
    await user.reload()
    await user.get_by_test_id("rhq-launcher").click()
    await user.get_by_test_id("rhq-conversation-item").first.click()
    await expect(user.get_by_test_id("rhq-message")).to_have_count(7)
    assert await shown(user, "rhq-message") == on_agent
