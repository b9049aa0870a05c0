"""The agents' workspace in Chromium (issue 19): a private note that a colleague sees live and the
end user never; a saved reply inserted by `/shortcut`; a label put on live and the inbox
filtered by it; auto-assignment sharing new conversations between two agents, and skipping the
one who went away."""

from __future__ import annotations

import uuid

import httpx
from playwright.async_api import expect

from replyhq.runtime import Runtime
from tests.conftest import MakeTenant, Tenant
from tests.e2e.conftest import Demo, Pages, sign_in, staff_for
from tests.staff import secret


def _conversation(base_url: str, tenant: Tenant, name: str) -> tuple[str, str]:
    device = f"{name.lower()}-{uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=base_url, headers=tenant.sdk(device)) as client:
        assert client.post("/v1/identify", json={"platform": "web", "name": name}).is_success
        body = {"first_message": {"body": f"Hello from {name}", "client_msg_id": "m-1"}}
        created = client.post("/v1/conversations", json=body)
        assert created.status_code == 201
        return str(created.json()["id"]), device


async def test_note_saved_reply_and_label_filter(
    demo: Demo, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("Desk")
    with httpx.Client(base_url=f"{demo.url}/admin/api", headers=secret(tenant)) as admin:
        vip = admin.post("/labels", json={"name": "VIP", "color": "#d97706"}).json()
        made = admin.post(
            "/saved-replies",
            json={
                "name": "Refund",
                "shortcut": "refund",
                "body": "Hi {{user.name}}, {{agent.name}} here: your refund is on its way.",
            },
        )
        assert made.status_code == 201
    ann, ann_device = _conversation(demo.url, tenant, "Ann")
    bob, _ = _conversation(demo.url, tenant, "Bob")
    with httpx.Client(base_url=demo.url, headers=tenant.sdk(ann_device)) as client:
        earlier = client.post("/v1/conversations", json={"subject": "Earlier question"})
        assert earlier.status_code == 201
    alice = await staff_for(runtime, tenant.id, "AGENT", name="Alice")
    carl = await staff_for(runtime, tenant.id, "AGENT", name="Carl")
    mine, theirs = await pages.new(), await pages.new()
    await sign_in(mine, demo.url, alice)
    await sign_in(theirs, demo.url, carl)
    for page in (mine, theirs):
        await page.locator(f"[data-testid=inbox-item][data-id='{ann}']").click()
        await expect(page.get_by_test_id("message")).to_have_count(1)

    # A private note: Carl sees it live, in place, marked as a note.
    await mine.get_by_test_id("note-toggle").click()
    await mine.get_by_test_id("composer").fill("VIP: refund without asking for the receipt")
    await mine.get_by_test_id("send").click()
    for page in (mine, theirs):
        note = page.get_by_test_id("note")
        await expect(note).to_have_count(1)
        await expect(note).to_contain_text("refund without asking for the receipt")
        await expect(note).to_contain_text("Alice · private note")
    await mine.get_by_test_id("note-toggle").click()  # back to replying

    # A saved reply by its shortcut, filled for this conversation, then sent.
    composer = mine.get_by_test_id("composer")
    await composer.fill("/ref")
    await expect(mine.get_by_test_id("reply-option")).to_have_count(1)
    await composer.press("Enter")
    await expect(composer).to_have_value("Hi Ann, Alice here: your refund is on its way.")
    await composer.press("Enter")
    await expect(theirs.get_by_test_id("message")).to_have_count(2)
    await expect(theirs.get_by_test_id("message").last).to_contain_text("your refund is on its way")

    # The end user got the reply, never the note.
    with httpx.Client(base_url=demo.url, headers=tenant.sdk(ann_device)) as client:
        history = client.get(f"/v1/conversations/{ann}/messages").json()["items"]
    assert [m["body"] for m in history] == [
        "Hello from Ann",
        "Hi Ann, Alice here: your refund is on its way.",
    ]

    # A label, live for Carl; the inbox filtered by it lists only Ann's conversation.
    await mine.get_by_test_id("label-add").select_option(vip["id"])
    for page in (mine, theirs):
        await expect(page.get_by_test_id("label-chip")).to_contain_text("VIP")
    await expect(mine.get_by_test_id("inbox-item")).to_have_count(3)
    await mine.get_by_test_id("label-filter").select_option(vip["id"])
    await expect(mine.get_by_test_id("inbox-item")).to_have_count(1)
    await expect(mine.locator(f"[data-testid=inbox-item][data-id='{ann}']")).to_be_visible()
    await expect(mine.locator(f"[data-testid=inbox-item][data-id='{bob}']")).to_have_count(0)
    # Its staff-only event is in the timeline.
    await expect(theirs.get_by_test_id("timeline-event")).to_contain_text(
        "Alice added the label VIP"
    )

    # The end user's profile: their other conversation and their device.
    history = mine.get_by_test_id("profile-history")
    await expect(history.get_by_test_id("other-conversation")).to_have_count(1)
    await expect(history.get_by_test_id("other-conversation")).to_contain_text("Earlier question")
    await expect(history.get_by_test_id("device")).to_have_count(1)
    await expect(history.get_by_test_id("device")).to_contain_text("web")


async def test_auto_assignment_shares_new_conversations_between_two_agents(
    demo: Demo, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("Shared")
    with httpx.Client(base_url=f"{demo.url}/admin/api", headers=secret(tenant)) as admin:
        put = admin.put("/assignment", json={"mode": "round_robin", "capacity": 5})
        assert put.status_code == 200
    agents = [await staff_for(runtime, tenant.id, "AGENT", name=n) for n in ("Ada", "Ben")]
    pages_ = [await pages.new(), await pages.new()]
    for page, agent in zip(pages_, agents, strict=True):
        await sign_in(page, demo.url, agent)
        await page.get_by_test_id("filter-mine").click()
    for name in ("Uma", "Vic", "Wes", "Xia"):
        _conversation(demo.url, tenant, name)
    for page in pages_:  # each agent has two of the four in Mine, live
        await expect(page.get_by_test_id("inbox-item")).to_have_count(2)
    ada = {
        await i.get_attribute("data-id") for i in await pages_[0].get_by_test_id("inbox-item").all()
    }
    ben = {
        await i.get_attribute("data-id") for i in await pages_[1].get_by_test_id("inbox-item").all()
    }
    assert not ada & ben
    # Ben goes away from the sidebar: the next two conversations are both Ada's.
    toggle = pages_[1].get_by_test_id("availability")
    await expect(toggle).to_have_attribute("data-available", "true")
    await toggle.click()
    await expect(toggle).to_have_attribute("data-available", "false")
    await expect(toggle).to_contain_text("Away")
    for name in ("Yan", "Zoe"):
        _conversation(demo.url, tenant, name)
    await expect(pages_[0].get_by_test_id("inbox-item")).to_have_count(4)
    await expect(pages_[1].get_by_test_id("inbox-item")).to_have_count(2)
    await pages_[0].get_by_test_id("inbox-item").first.click()
    await expect(pages_[0].get_by_test_id("conversation-assignee")).to_have_text(
        " · assigned to you"
    )
