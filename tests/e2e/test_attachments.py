"""Attachments in two real browsers: the end user attaches an image in the messenger and the agent
sees it inline by its thumbnail in the dashboard, live; the agent attaches one back and the end
user sees it inline too; a visitor starts a conversation with an image. The thumbnails are loaded
images (served by their signed URLs)."""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from replyhq.runtime import Runtime
from tests.attachment_support import image_size, jpeg, png
from tests.e2e.conftest import Demo, Pages, sign_in, staff_for
from tests.e2e.test_chat import open_messenger, user_send


async def _loaded(page: Any, image: Any) -> tuple[int, int]:
    """Wait until the <img> has really loaded; its natural size."""
    await expect(image).to_be_visible()
    handle = await image.element_handle()
    await page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=handle)
    size = await image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    return int(size[0]), int(size[1])


async def _agent_and_visitor(demo: Demo, pages: Pages, runtime: Runtime) -> tuple[Any, Any]:
    """An agent signed in to the dashboard, and a visitor with the messenger open."""
    agent = await pages.new()
    await sign_in(agent, demo.url, await staff_for(runtime, demo.app_id, "AGENT"))
    user = await pages.new()
    await open_messenger(user, demo.url)
    return agent, user


async def test_an_image_from_each_side_is_seen_inline_on_the_other(
    demo: Demo, pages: Pages, runtime: Runtime
) -> None:
    agent, user = await _agent_and_visitor(demo, pages, runtime)
    await user_send(user, "My parcel arrived broken")
    item = agent.get_by_test_id("inbox-item").filter(has_text="My parcel arrived broken")
    await item.click()
    await expect(agent.get_by_test_id("message")).to_have_count(1)

    # The end user attaches a photo: the agent sees it inline, by its thumbnail, live.
    photo = png(1000, 750, "firebrick")
    await user.get_by_test_id("rhq-attach-input").set_input_files(
        {"name": "broken.png", "mimeType": "image/png", "buffer": photo}
    )
    seen = agent.get_by_test_id("attachment-image")
    assert await _loaded(agent, seen) == (320, 240)  # the thumbnail, not the 1000 x 750 file
    assert "/thumbnail?" in (await seen.get_attribute("src") or "")
    link = agent.get_by_test_id("attachment").first
    full = await agent.request.get(demo.url + (await link.get_attribute("href") or ""))
    assert full.ok and image_size(await full.body()) == (1000, 750)
    # The end user sees their own photo in the thread too.
    assert await _loaded(user, user.get_by_test_id("rhq-attachment-image")) == (320, 240)

    # The agent attaches a picture back: the end user sees it inline, by its thumbnail.
    label = jpeg(640, 480)
    await agent.get_by_test_id("attach-input").set_input_files(
        {"name": "return-label.jpg", "mimeType": "image/jpeg", "buffer": label}
    )
    theirs = user.get_by_test_id("rhq-message").filter(
        has=user.get_by_test_id("rhq-attachment-image")
    )
    await expect(theirs).to_have_count(2)
    reply = theirs.nth(1)
    await expect(reply).to_have_attribute("data-sender", "agent")
    image = reply.get_by_test_id("rhq-attachment-image")
    assert await _loaded(user, image) == (320, 240)
    assert await image.get_attribute("alt") == "return-label.jpg"
    await expect(agent.get_by_test_id("attachment-image")).to_have_count(2)
    assert pages.errors == []


async def test_a_visitor_starts_a_conversation_with_an_image(
    demo: Demo, pages: Pages, runtime: Runtime
) -> None:
    """No message first: the file is the new conversation's first message."""
    agent, user = await _agent_and_visitor(demo, pages, runtime)
    await user.get_by_test_id("rhq-attach-input").set_input_files(
        {"name": "first.png", "mimeType": "image/png", "buffer": png(900, 600, "navy")}
    )
    assert await _loaded(user, user.get_by_test_id("rhq-attachment-image")) == (320, 213)
    await expect(user.get_by_test_id("rhq-attach-error")).to_have_count(0)

    await agent.get_by_test_id("inbox-item").first.click()
    image = agent.get_by_test_id("attachment-image")
    assert await _loaded(agent, image) == (320, 213)
    assert await image.get_attribute("alt") == "first.png"
    assert pages.errors == []
