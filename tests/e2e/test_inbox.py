"""The inbox's filters follow assignment and status live; a long conversation scrolls back."""

from __future__ import annotations

import httpx
from playwright.async_api import expect

from replyhq.runtime import Runtime
from tests.conftest import MakeTenant
from tests.e2e.conftest import Demo, Pages, sign_in, staff_for


def _long_conversation(base_url: str, sdk: dict[str, str], count: int) -> None:
    with httpx.Client(base_url=base_url, headers=sdk) as client:
        assert client.post("/v1/identify", json={"platform": "web", "name": "Dora"}).is_success
        first = {"body": "message 1", "client_msg_id": "m-1"}
        conversation = client.post("/v1/conversations", json={"first_message": first}).json()
        for n in range(2, count + 1):
            body = {"body": f"message {n}", "client_msg_id": f"m-{n}"}
            url = f"/v1/conversations/{conversation['id']}/messages"
            assert client.post(url, json=body).status_code == 201


async def test_filters_scroll_back_assign_close_reopen(
    demo: Demo, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("Long talks")
    _long_conversation(demo.url, tenant.sdk("dora"), 60)
    page = await pages.new()
    await sign_in(page, demo.url, await staff_for(runtime, tenant.id, "ADMIN", name="Ada Admin"))
    await page.get_by_test_id("inbox-item").first.click()

    # The newest page first, in seq order; older ones load on scrolling up, none twice.
    messages = page.get_by_test_id("message")
    await expect(messages).to_have_count(50)
    await expect(messages.last).to_have_attribute("data-seq", "60")
    await page.get_by_test_id("messages").evaluate("(el) => el.scrollTo(0, 0)")
    await expect(messages).to_have_count(60)
    seqs = [await m.get_attribute("data-seq") for m in await messages.all()]
    assert seqs == [str(n) for n in range(1, 61)]

    for tab in ("mine", "closed"):
        await page.get_by_test_id(f"filter-{tab}").click()
        await expect(page.get_by_test_id("inbox-item")).to_have_count(0)
    await page.get_by_test_id("filter-unassigned").click()
    await expect(page.get_by_test_id("inbox-item")).to_have_count(1)

    await page.get_by_test_id("assignee").select_option(label="Ada Admin")
    await expect(page.get_by_test_id("conversation-status")).to_contain_text("assigned to you")
    await page.get_by_test_id("filter-mine").click()
    await expect(page.get_by_test_id("inbox-item")).to_have_count(1)

    await page.get_by_test_id("close").click()
    await expect(page.get_by_test_id("conversation-status")).to_have_attribute(
        "data-status", "closed"
    )
    await page.get_by_test_id("filter-open").click()
    await expect(page.get_by_test_id("inbox-item")).to_have_count(0)
    await expect(page.get_by_test_id("conversation")).to_be_visible()  # still on screen
    await page.get_by_test_id("filter-closed").click()
    await expect(page.get_by_test_id("inbox-item")).to_have_count(1)
    await page.get_by_test_id("reopen").click()
    await expect(page.get_by_test_id("conversation-status")).to_have_attribute(
        "data-status", "open"
    )
