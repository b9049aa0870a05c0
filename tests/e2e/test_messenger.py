"""The messenger as an end user meets it: keyboard and screen-reader use, an app that requires
verified users, messages queued through a reload during an outage, a conversation support closed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from playwright.async_api import expect
from sqlalchemy import update

from replyhq.apps.models import App
from replyhq.runtime import Runtime
from replyhq.users.service import user_hash
from tests.conftest import MakeTenant
from tests.e2e.conftest import Demo, Pages, staff_for
from tests.e2e.test_chat import open_messenger, user_send
from tests.e2e.test_embed import customer_site
from tests.staff import login


@asynccontextmanager
async def support_desk(demo: Demo, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """An agent of the demo app on the admin API (what the dashboard calls)."""
    staff = await staff_for(runtime, demo.app_id, "ADMIN")
    async with httpx.AsyncClient(base_url=demo.url) as http:
        await login(http, staff)
        http.headers["Authorization"] = f"Bearer {staff.access}"
        yield http


async def conversation_with(http: httpx.AsyncClient, text: str) -> str:
    response = await http.get("/admin/api/conversations", params={"limit": 100})
    assert response.status_code == 200, response.text
    for item in response.json()["items"]:
        if item["last_message"] and item["last_message"]["body"] == text:
            return str(item["id"])
    raise AssertionError(f"no conversation ends with {text!r}")


async def agent_reply(http: httpx.AsyncClient, conversation_id: str, text: str) -> None:
    response = await http.post(
        f"/admin/api/conversations/{conversation_id}/messages",
        json={"body": text, "client_msg_id": uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.text


async def test_the_launcher_icon_is_svg_not_an_emoji(demo: Demo, pages: Pages) -> None:
    page = await pages.new()
    await page.goto(f"{demo.url}/demo")
    launcher = page.get_by_test_id("rhq-launcher")
    # Drawn as SVG, so it shows without an emoji font; no emoji character in it.
    await expect(launcher.locator("svg")).to_have_count(1)
    assert "💬" not in await launcher.inner_text()
    await launcher.click()
    await expect(launcher.locator("svg")).to_have_count(1)  # the close icon too
    assert await launcher.inner_text() == ""


async def test_opening_focuses_the_composer_and_escape_closes_back_to_the_launcher(
    demo: Demo, pages: Pages
) -> None:
    page = await pages.new()
    await open_messenger(page, demo.url)
    launcher = page.get_by_test_id("rhq-launcher")
    await expect(page.get_by_test_id("rhq-composer")).to_be_focused()
    await page.keyboard.type("typed straight away")
    await expect(page.get_by_test_id("rhq-composer")).to_have_value("typed straight away")
    await page.keyboard.press("Escape")
    await expect(page.get_by_test_id("rhq-panel")).to_have_count(0)
    await expect(launcher).to_be_focused()
    await page.keyboard.press("Enter")  # the focused launcher opens it again
    await expect(page.get_by_test_id("rhq-composer")).to_be_focused()


async def test_new_messages_from_support_are_announced_to_screen_readers(
    demo: Demo, pages: Pages, runtime: Runtime
) -> None:
    page = await pages.new()
    await open_messenger(page, demo.url)
    text = f"Where is order {uuid.uuid4().hex[:6]}?"
    await user_send(page, text)
    await expect(page.get_by_test_id("rhq-message")).to_have_count(1)
    live = page.locator("[aria-live]")
    await expect(live).to_have_count(1)
    assert await live.get_attribute("aria-live") == "polite"
    await expect(live).not_to_contain_text(text)  # one's own words are not read back
    async with support_desk(demo, runtime) as http:
        await agent_reply(http, await conversation_with(http, text), "It ships tomorrow.")
    await expect(page.get_by_test_id("rhq-message")).to_have_count(2)
    await expect(live).to_contain_text("It ships tomorrow.")
    await page.get_by_test_id("rhq-launcher").click()  # closed: still announced
    async with support_desk(demo, runtime) as http:
        await agent_reply(http, await conversation_with(http, "It ships tomorrow."), "Tracking: 42")
    await expect(page.get_by_test_id("rhq-badge")).to_have_text("1")
    await expect(live).to_contain_text("Tracking: 42")


async def test_an_app_requiring_verified_users_asks_the_visitor_to_sign_in(
    demo: Demo, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("Verified only")
    async with runtime.db.system_session() as session:
        await session.execute(
            update(App).where(App.id == tenant.id).values(identity_verification_required=True)
        )
    html = f"""<!doctype html><html><body><h1>Bank</h1>
      <script src="{demo.url}/widget.js" data-app-id="{tenant.id}"
              data-api-key="{tenant.sdk_key}"></script></body></html>"""
    page = await pages.new()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    with customer_site(demo.customer_site, html):
        await page.goto(f"{demo.customer_site}/bank")
        await page.get_by_test_id("rhq-launcher").click()
        panel = page.get_by_test_id("rhq-panel")
        await expect(page.get_by_test_id("rhq-blocked")).to_contain_text(
            "Sign in to chat with support"
        )
        # No developer text, no false "Offline", nothing to type into that could never send.
        await expect(panel).not_to_contain_text("user_hash")
        await expect(panel).not_to_contain_text("Offline")
        await expect(page.get_by_test_id("rhq-composer")).to_have_count(0)
        hints = [line for line in console if "identify(" in line and "user_hash" in line]
        assert len(hints) == 1, console

        # The page identifies the signed-in person: the messenger works.
        proof = user_hash(tenant.identity_secret, "client-7")
        await page.evaluate(
            "([id, hash]) => ReplyHQ.identify({user_id: id, user_hash: hash, name: 'Cleo'})",
            ["client-7", proof],
        )
        await expect(page.get_by_test_id("rhq-blocked")).to_have_count(0)
        await expect(page.get_by_test_id("rhq-status")).to_have_attribute("data-state", "connected")
        await user_send(page, "I am signed in now")
        await expect(page.get_by_test_id("rhq-message")).to_have_count(1)


async def block_support(page: Any, demo: Demo) -> None:
    """ReplyHQ's API is unreachable (the page itself and widget.js still load)."""
    await page.route(f"{demo.url}/v1/**", lambda route: route.abort("connectionrefused"))


async def test_messages_queued_in_an_outage_survive_a_reload_and_are_sent_once(
    demo: Demo, pages: Pages, runtime: Runtime
) -> None:
    page = await pages.new()
    await open_messenger(page, demo.url)
    first = f"Before the outage {uuid.uuid4().hex[:6]}"
    await user_send(page, first)
    await expect(page.get_by_test_id("rhq-message")).to_have_count(1)

    await page.context.set_offline(True)
    await expect(page.get_by_test_id("rhq-status")).to_have_attribute("data-state", "offline")
    await user_send(page, "queued one")
    await user_send(page, "queued two")
    await expect(page.get_by_test_id("rhq-pending")).to_have_count(2)

    await block_support(page, demo)
    await page.context.set_offline(False)
    await page.reload()
    await page.get_by_test_id("rhq-launcher").click()
    pending = page.get_by_test_id("rhq-pending")
    await expect(pending).to_have_count(2)
    await expect(pending.nth(0)).to_contain_text("queued one")
    await expect(pending.nth(1)).to_contain_text("queued two")
    await expect(pending.nth(0)).to_contain_text("Not sent yet")

    await page.unroute(f"{demo.url}/v1/**")  # support is back: sent by themselves, once
    messages = page.get_by_test_id("rhq-message")
    await expect(messages).to_have_count(3, timeout=15000)
    await expect(pending).to_have_count(0)
    async with support_desk(demo, runtime) as http:
        conversation_id = await conversation_with(http, "queued two")
        stored = await http.get(f"/admin/api/conversations/{conversation_id}/messages")
    assert [m["body"] for m in stored.json()["items"]] == [first, "queued one", "queued two"]
    await page.reload()
    await page.get_by_test_id("rhq-launcher").click()
    await page.get_by_test_id("rhq-conversation-item").first.click()
    await expect(messages).to_have_count(3)
    await expect(pending).to_have_count(0)


async def test_a_first_message_written_while_support_is_unreachable_survives_a_reload(
    demo: Demo, pages: Pages, runtime: Runtime
) -> None:
    page = await pages.new()
    await block_support(page, demo)  # from the very first visit: no conversation exists yet
    await page.goto(f"{demo.url}/demo")
    await page.get_by_test_id("rhq-launcher").click()
    first = f"Hello from a train {uuid.uuid4().hex[:6]}"
    await user_send(page, first)
    pending = page.get_by_test_id("rhq-pending")
    await expect(pending).to_contain_text("Not sent yet")

    await page.reload()
    await page.get_by_test_id("rhq-launcher").click()
    await expect(pending).to_have_count(1)
    await expect(pending).to_contain_text(first)

    await page.unroute(f"{demo.url}/v1/**")
    messages = page.get_by_test_id("rhq-message")
    await expect(messages).to_have_count(1, timeout=15000)
    await expect(pending).to_have_count(0)
    async with support_desk(demo, runtime) as http:
        conversation_id = await conversation_with(http, first)
        stored = await http.get(f"/admin/api/conversations/{conversation_id}/messages")
    assert [m["body"] for m in stored.json()["items"]] == [first]


async def test_the_end_user_sees_a_closed_conversation_and_writing_reopens_it(
    demo: Demo, pages: Pages, runtime: Runtime
) -> None:
    page = await pages.new()
    await open_messenger(page, demo.url)
    text = f"Can I change my plan? {uuid.uuid4().hex[:6]}"
    await user_send(page, text)
    await expect(page.get_by_test_id("rhq-message")).to_have_count(1)
    closed = page.get_by_test_id("rhq-closed")
    await expect(closed).to_have_count(0)

    async with support_desk(demo, runtime) as http:
        conversation_id = await conversation_with(http, text)
        response = await http.patch(
            f"/admin/api/conversations/{conversation_id}", json={"status": "closed"}
        )
        assert response.status_code == 200, response.text
        # Live, without a reload, and read out to screen readers.
        await expect(closed).to_contain_text("This conversation was closed")
        # The closing is in the timeline as a line (an event, not a message bubble).
        event = page.get_by_test_id("rhq-event")
        await expect(event).to_contain_text("closed the conversation")
        await expect(page.get_by_test_id("rhq-message")).to_have_count(1)
        await expect(page.locator("[aria-live]")).to_contain_text("closed")
        # Still closed after a reload (the list says so too).
        await page.reload()
        await page.get_by_test_id("rhq-launcher").click()
        # Its last item is now the closing (the visitor's only conversation in this browser).
        item = page.get_by_test_id("rhq-conversation-item").filter(
            has_text="closed the conversation"
        )
        await expect(item).to_contain_text("Closed")
        await item.click()
        await expect(closed).to_be_visible()

        # Writing again reopens the same conversation for support.
        await user_send(page, "Actually, one more question")
        await expect(page.get_by_test_id("rhq-message")).to_have_count(2)
        await expect(closed).to_have_count(0)
        reopened = await http.get(f"/admin/api/conversations/{conversation_id}")
        assert reopened.json()["status"] == "open"
