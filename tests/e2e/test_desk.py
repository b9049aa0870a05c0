"""The agent's desk as issue 13 found it wanting: a phone's screen, who wrote the last message,
closing live for everyone, what Mine lists, the conversation's subject, agents running
conversations (close, take, hand over; the header names the assignee), and reactivation."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from playwright.async_api import expect

from replyhq.runtime import Runtime
from tests.conftest import MakeTenant, Tenant
from tests.e2e.conftest import Demo, Pages, sign_in, staff_for
from tests.staff import PASSWORD, Staff


def _conversation(base_url: str, tenant: Tenant, name: str, subject: str | None = None) -> str:
    device = f"{name.lower()}-{uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=base_url, headers=tenant.sdk(device)) as client:
        assert client.post("/v1/identify", json={"platform": "web", "name": name}).is_success
        body: dict[str, object] = {
            "first_message": {"body": f"Hello from {name}", "client_msg_id": "m-1"}
        }
        if subject:
            body["subject"] = subject
        created = client.post("/v1/conversations", json=body)
        assert created.status_code == 201
        return str(created.json()["id"])


def _as(base_url: str, staff: Staff) -> httpx.Client:
    login = {"email": staff.email, "password": PASSWORD}
    tokens = httpx.post(f"{base_url}/admin/login", json=login).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    return httpx.Client(base_url=f"{base_url}/admin/api/conversations", headers=headers)


def _item(page: Any, conversation_id: str) -> Any:
    return page.locator(f"[data-testid=inbox-item][data-id='{conversation_id}']")


async def test_a_phone_shows_list_then_conversation_then_profile_and_back(
    demo: Demo, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("Pocket")
    cid = _conversation(demo.url, tenant, "Pia", subject="Lost parcel")
    page = await pages.new()
    await page.set_viewport_size({"width": 375, "height": 740})
    await sign_in(page, demo.url, await staff_for(runtime, tenant.id, "AGENT"))

    async def fits() -> None:  # nothing wider than the phone: no sideways scrolling
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, width

    list_, conversation = page.get_by_test_id("inbox"), page.get_by_test_id("conversation")
    profile = page.get_by_test_id("profile")
    await expect(list_).to_be_visible()
    await fits()

    await _item(page, cid).click()
    await expect(conversation).to_be_visible()
    await expect(list_).to_be_hidden()
    await expect(profile).to_be_hidden()
    await expect(page.get_by_test_id("message")).to_have_count(1)
    await expect(page.get_by_test_id("composer")).to_be_visible()
    await fits()

    await page.get_by_test_id("show-profile").click()
    await expect(profile).to_be_visible()
    await expect(page.get_by_test_id("profile-name")).to_have_text("Pia")
    await expect(conversation).to_be_hidden()
    assert page.url.endswith(f"/dashboard/inbox/{cid}/profile")
    await fits()

    await page.get_by_test_id("back-to-conversation").click()
    await expect(conversation).to_be_visible()
    await expect(profile).to_be_hidden()
    await page.get_by_test_id("back-to-list").click()
    await expect(list_).to_be_visible()
    await expect(conversation).to_be_hidden()
    assert cid not in page.url

    # The phone's own Back button walks the same way.
    await _item(page, cid).click()
    await page.get_by_test_id("show-profile").click()
    await expect(profile).to_be_visible()
    await page.go_back()
    await expect(conversation).to_be_visible()
    await page.go_back()
    await expect(list_).to_be_visible()

    # The other screens fit too (an agent is told why team and settings are not theirs).
    for screen in ("team", "settings"):
        await page.goto(f"{demo.url}/dashboard/{screen}")
        await expect(page.get_by_test_id("needs-role")).to_be_visible()
        await fits()


async def test_you_only_before_the_viewers_own_messages(
    demo: Demo, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("Two agents")
    ann = await staff_for(runtime, tenant.id, "AGENT", name="Ann")
    bea = await staff_for(runtime, tenant.id, "AGENT", name="Bea")
    cid = _conversation(demo.url, tenant, "Cal")
    with _as(demo.url, ann) as api:
        reply = {"body": "On it", "client_msg_id": "a-1"}
        assert api.post(f"/{cid}/messages", json=reply).status_code == 201

    seen = {}
    for staff in (ann, bea):
        page = await pages.new()
        await sign_in(page, demo.url, staff)
        seen[staff.email] = _item(page, cid).get_by_test_id("inbox-preview")
    await expect(seen[ann.email]).to_have_text("You: On it")
    await expect(seen[bea.email]).to_have_text("Ann: On it")


async def test_closing_takes_it_out_of_open_at_once_and_live_for_colleagues(
    demo: Demo, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("Closing time")
    cid = _conversation(demo.url, tenant, "Dan")
    other = _conversation(demo.url, tenant, "Eve")
    closer, colleague = await pages.new(), await pages.new()
    await sign_in(closer, demo.url, await staff_for(runtime, tenant.id, "AGENT", name="Cleo"))
    await sign_in(colleague, demo.url, await staff_for(runtime, tenant.id, "AGENT", name="Finn"))
    for page in (closer, colleague):
        await expect(_item(page, cid)).to_have_count(1)
        await expect(_item(page, other)).to_have_count(1)

    await _item(closer, cid).click()
    await closer.get_by_test_id("close").click()
    await expect(closer.get_by_test_id("conversation-status")).to_have_attribute(
        "data-status", "closed"
    )
    # Gone from Open at once for the one who closed it (still on their screen), and live for
    # the colleague, without either switching tabs.
    await expect(_item(closer, cid)).to_have_count(0)
    await expect(closer.get_by_test_id("conversation")).to_be_visible()
    await expect(_item(colleague, cid)).to_have_count(0)
    for page in (closer, colleague):
        await expect(_item(page, other)).to_have_count(1)
        await expect(page.get_by_test_id("filter-open")).to_have_attribute("aria-selected", "true")

    # Reopened: back in Open for both.
    await closer.get_by_test_id("reopen").click()
    for page in (closer, colleague):
        await expect(_item(page, cid)).to_have_count(1)


async def test_mine_lists_my_open_conversations_and_agents_take_and_hand_over(
    demo: Demo, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("Mine only")
    me = await staff_for(runtime, tenant.id, "AGENT", name="Gus")
    await staff_for(runtime, tenant.id, "AGENT", name="Hana")
    open_one = _conversation(demo.url, tenant, "Ivy", subject="Refund for order 42")
    closed_one = _conversation(demo.url, tenant, "Jon")
    page = await pages.new()
    await sign_in(page, demo.url, me)

    # An agent takes both conversations and closes one, from the dashboard.
    for cid in (open_one, closed_one):
        await page.get_by_test_id("filter-open").click()
        await _item(page, cid).click()
        await page.get_by_test_id("assignee").select_option(label="Gus")
        status = page.get_by_test_id("conversation-assignee")
        await expect(status).to_have_text(" · assigned to you")
    await page.get_by_test_id("close").click()
    await expect(page.get_by_test_id("conversation-status")).to_have_attribute(
        "data-status", "closed"
    )

    await page.get_by_test_id("filter-mine").click()
    await expect(page.get_by_test_id("inbox-item")).to_have_count(1)
    await expect(_item(page, open_one)).to_have_count(1)
    await page.get_by_test_id("filter-closed").click()
    await expect(page.get_by_test_id("inbox-item")).to_have_count(1)
    await expect(_item(page, closed_one)).to_have_count(1)

    # The subject the SDK gave shows in the list and the header.
    await page.get_by_test_id("filter-mine").click()
    await expect(_item(page, open_one).get_by_test_id("inbox-subject")).to_have_text(
        "Refund for order 42"
    )
    await _item(page, open_one).click()
    await expect(page.get_by_test_id("conversation-subject")).to_have_text("Refund for order 42")

    # Handed to a colleague: the header names them, and it leaves Mine live.
    await page.get_by_test_id("assignee").select_option(label="Hana")
    await expect(page.get_by_test_id("conversation-assignee")).to_have_text(" · assigned to Hana")
    await expect(page.get_by_test_id("inbox-item")).to_have_count(0)


async def test_an_owner_reactivates_a_deactivated_member(
    demo: Demo, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("Second chances")
    member = await staff_for(runtime, tenant.id, "AGENT", name="Kai")
    page = await pages.new()
    await sign_in(page, demo.url, await staff_for(runtime, tenant.id, "OWNER"))
    await page.get_by_test_id("nav-team").click()
    row = page.locator(f"[data-testid=member][data-email='{member.email}']")
    await row.get_by_test_id("deactivate").click()
    await expect(row).to_contain_text("deactivated")
    login = {"email": member.email, "password": PASSWORD}
    assert httpx.post(f"{demo.url}/admin/login", json=login).status_code == 401

    await row.get_by_test_id("reactivate").click()
    await expect(row.get_by_test_id("member-role")).to_have_value("AGENT")
    await expect(row).not_to_contain_text("deactivated")
    assert httpx.post(f"{demo.url}/admin/login", json=login).status_code == 200
