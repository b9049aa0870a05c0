"""Search in the dashboard, in Chromium (issue 19): an agent types a query above the inbox and
sees the matching messages ranked with the matched words highlighted (a message's markup shown as
text, never run), narrows them by status, opens a result at that message (scrolled back past the
latest page of history), and finds an end user by name."""

from __future__ import annotations

import uuid

import httpx
from playwright.async_api import expect

from replyhq.runtime import Runtime
from tests.conftest import MakeTenant, Tenant
from tests.e2e.conftest import Demo, Pages, sign_in, staff_for
from tests.staff import secret

TRAP = "<img src=x onerror=alert(1)>"


def _person(base_url: str, tenant: Tenant, name: str, *bodies: str) -> str:
    """An end user who starts a conversation with `bodies` (its id)."""
    device = f"d-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=base_url, headers=tenant.sdk(device)) as client:
        assert client.post("/v1/identify", json={"platform": "web", "name": name}).is_success
        first = {"body": bodies[0], "client_msg_id": "m-0"}
        created = client.post("/v1/conversations", json={"first_message": first})
        assert created.status_code == 201, created.text
        cid = str(created.json()["id"])
        for n, body in enumerate(bodies[1:], 1):
            sent = client.post(
                f"/v1/conversations/{cid}/messages", json={"body": body, "client_msg_id": f"m-{n}"}
            )
            assert sent.status_code == 201, sent.text
    return cid


async def test_search_opens_a_result_at_its_message(
    demo: Demo, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("Search desk")
    ann = _person(demo.url, tenant, "Ann", "Hello", f"My parcel never arrived {TRAP}", "Order 1234")
    # 60 more messages: the match is no longer in the latest page of history.
    with httpx.Client(base_url=f"{demo.url}/admin/api", headers=secret(tenant)) as admin:
        for n in range(60):
            reply = admin.post(
                f"/conversations/{ann}/messages",
                json={"body": f"Checking with the carrier, step {n}", "client_msg_id": f"a-{n}"},
            )
            assert reply.status_code == 201, reply.text
    _person(demo.url, tenant, "Bob", "Where is my invoice?")
    _person(demo.url, tenant, "Zed Parcelson", "Hi there")

    agent = await pages.new()
    await sign_in(agent, demo.url, await staff_for(runtime, tenant.id, "AGENT"))
    await agent.get_by_test_id("search-input").fill("parcel")
    hit = agent.get_by_test_id("search-hit")
    await expect(hit).to_have_count(1)
    snippet = hit.get_by_test_id("search-snippet")
    await expect(snippet.locator("mark")).to_have_text(["parcel"])
    await expect(snippet).to_contain_text(TRAP)  # shown as text ...
    assert await snippet.locator("img").count() == 0  # ... never as an element
    await expect(agent.get_by_test_id("search-person")).to_have_text(["Zed Parcelson"])

    # Filters narrow the results: the conversation is open, so none is closed.
    await agent.get_by_test_id("search-status").select_option("closed")
    await expect(agent.get_by_test_id("search-empty")).to_be_visible()
    await agent.get_by_test_id("search-status").select_option("open")
    await expect(hit).to_have_count(1)

    # Opened at the message: the history is read back to it, and it is shown, marked.
    await hit.click()
    await expect(agent).to_have_url(f"{demo.url}/dashboard/inbox/{ann}?at=2")
    found = agent.locator("[data-testid=message][data-found=yes]")
    await expect(found).to_have_attribute("data-seq", "2")
    await expect(found).to_contain_text("My parcel never arrived")
    await expect(found).to_be_in_viewport()
    await expect(agent.get_by_test_id("message")).to_have_count(63)

    # A person found by name: their conversation opens beside their profile.
    await agent.get_by_test_id("search-person").click()
    await expect(agent.get_by_test_id("conversation-title")).to_have_text("Zed Parcelson")
    # Clearing the box brings the inbox back.
    await agent.get_by_test_id("search-input").fill("")
    await expect(agent.get_by_test_id("inbox-item")).to_have_count(3)
    assert pages.dialogs == [] and pages.errors == []
