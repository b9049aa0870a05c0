"""Segments and messages to people in the dashboard: a nested segment built with the pickers
(fed by what the app sent), its live count equal to the API's, saved; a campaign to it sent,
delivered and counted; an event-triggered message created, triggered by a real event, counted
and stopped."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.async_api import expect

from replyhq.campaigns.tasks import send_campaign
from replyhq.jobs.registry import JobRun
from replyhq.runtime import Runtime
from replyhq.triggered.tasks import send_triggered
from tests.conftest import MakeTenant, Tenant
from tests.e2e.conftest import Demo, Pages, sign_in, staff_for

PEOPLE: list[tuple[str, dict[str, Any], list[str]]] = [
    ("ann", {"plan": "pro", "country": "fr"}, ["purchase", "purchase"]),
    ("bob", {"plan": "pro", "country": "de"}, ["opened_app"]),
    ("cy", {"plan": "free", "country": "fr"}, ["purchase"]),
    ("dee", {"plan": "free"}, ["opened_app"]),
]


def _people(base_url: str, tenant: Tenant) -> None:
    for device, attributes, events in PEOPLE:
        with httpx.Client(base_url=base_url, headers=tenant.sdk(device)) as sdk:
            body = {"platform": "web", "user_id": device, "name": device.title()}
            identified = sdk.post("/v1/identify", json=body | {"attributes": attributes})
            assert identified.is_success, identified.text
            tracked = sdk.post("/v1/events", json={"events": [{"name": n} for n in events]})
            assert tracked.status_code == 202, tracked.text


def _admin_api(base_url: str, tenant: Tenant) -> httpx.Client:
    headers = {"X-App-Id": str(tenant.id), "X-Api-Key": tenant.secret_key}
    return httpx.Client(base_url=base_url, headers=headers)


def _inbox(base_url: str, tenant: Tenant, device: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=base_url, headers=tenant.sdk(device)) as sdk:
        items: list[dict[str, Any]] = sdk.get("/v1/conversations").json()["items"]
        return items


async def test_build_save_and_message_a_nested_segment(
    demo: Demo, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("Segmented shop")
    _people(demo.url, tenant)
    page = await pages.new()
    await sign_in(page, demo.url, await staff_for(runtime, tenant.id, "ADMIN", name="Sam Sender"))
    await page.get_by_test_id("nav-segments").click()

    # country is fr AND (plan is pro OR did purchase): Ann and Cy.
    top = page.locator('[data-testid=group][data-path="query"]')
    await top.locator(":scope > .group-add [data-testid=add-attribute]").click()
    first = page.locator('[data-testid=condition][data-path="query.conditions.0"]')
    field = first.get_by_test_id("attribute-field")
    # The picker offers the attribute keys the app sent, with how many users have each.
    await expect(field.locator("option", has_text="plan (4 users)")).to_have_count(1)
    await expect(field.locator("option", has_text="country (3 users)")).to_have_count(1)
    await field.select_option("country")
    await first.get_by_test_id("attribute-value").fill("fr")
    await top.locator(":scope > .group-add [data-testid=add-group]").click()
    nested = page.locator('[data-testid=group][data-path="query.conditions.1"]')
    await expect(nested.get_by_test_id("group-operator")).to_have_value("OR")
    await nested.locator(":scope > .group-add [data-testid=add-attribute]").click()
    plan = page.locator('[data-testid=condition][data-path="query.conditions.1.conditions.0"]')
    await plan.get_by_test_id("attribute-field").select_option("plan")
    await plan.get_by_test_id("attribute-value").fill("pro")
    await nested.locator(":scope > .group-add [data-testid=add-event]").click()
    bought = page.locator('[data-testid=condition][data-path="query.conditions.1.conditions.1"]')
    events = bought.get_by_test_id("event-name")
    # The event picker: the names the app tracked, with their counts.
    await expect(events.locator("option", has_text="purchase (3)")).to_have_count(1)
    await events.select_option("purchase")
    await expect(page.get_by_test_id("preview-count")).to_have_text("2")

    await page.get_by_test_id("segment-name").fill("French buyers")
    await page.get_by_test_id("segment-save").click()
    await expect(page.get_by_test_id("segment-saved")).to_contain_text("French buyers")
    await expect(
        page.locator("[data-testid=saved-segment][data-name='French buyers']")
    ).to_be_visible()
    with _admin_api(demo.url, tenant) as api:
        (segment,) = api.get("/admin/api/segments").json()["items"]
        assert segment["query"]["conditions"][1]["operator"] == "OR"
        preview = api.post("/admin/api/segments/preview", json={"query": segment["query"]}).json()
    assert preview["count"] == 2  # the count the builder showed is the API's
    assert sorted(u["user_id"] for u in preview["sample"]) == ["ann", "cy"]

    # A campaign to it, sent by its job, delivered and counted.
    await page.get_by_test_id("nav-messages").click()
    form = page.get_by_test_id("campaign-form")
    await form.get_by_test_id("campaign-name").fill("Bonjour")
    await form.get_by_test_id("campaign-segment").select_option(label="French buyers")
    await form.get_by_test_id("campaign-sender").select_option(label="Sam Sender")
    await form.get_by_test_id("campaign-body").fill("Merci pour votre achat !")
    await form.get_by_test_id("campaign-send").click()
    row = page.locator("[data-testid=campaign][data-name='Bonjour']")
    await expect(row.get_by_test_id("campaign-status")).to_have_text("sending")
    with _admin_api(demo.url, tenant) as api:
        (campaign,) = api.get("/admin/api/campaigns").json()["items"]
    await send_campaign.func(
        JobRun(1, "campaigns.send", 1, runtime), app_id=str(tenant.id), campaign_id=campaign["id"]
    )
    for device in ("ann", "cy"):
        (conversation,) = _inbox(demo.url, tenant, device)
        assert conversation["last_message"]["body"] == "Merci pour votre achat !"
        assert conversation["last_message"]["author"]["name"] == "Sam Sender"
    assert _inbox(demo.url, tenant, "bob") == [] and _inbox(demo.url, tenant, "dee") == []
    (ann_conversation,) = _inbox(demo.url, tenant, "ann")
    with httpx.Client(base_url=demo.url, headers=tenant.sdk("ann")) as sdk:
        cid = ann_conversation["id"]
        assert sdk.post(f"/v1/conversations/{cid}/read", json={"seq": 1}).status_code == 204
        reply = {"body": "De rien", "client_msg_id": "r-1"}
        assert sdk.post(f"/v1/conversations/{cid}/messages", json=reply).status_code == 201
    # The screen refreshes its counts by itself.
    await expect(row.get_by_test_id("campaign-status")).to_have_text("done", timeout=15000)
    await expect(row.get_by_test_id("campaign-sent")).to_have_text("2")
    await expect(row.get_by_test_id("campaign-opened")).to_have_text("1")
    await expect(row.get_by_test_id("campaign-replied")).to_have_text("1")

    # An event-triggered message, only to the segment's people: Cy buys again and gets it,
    # Bob (not in it) does not; then it is stopped.
    form = page.get_by_test_id("triggered-form")
    await form.get_by_test_id("triggered-name").fill("Thanks again")
    await form.get_by_test_id("triggered-event").fill("purchase")
    await form.get_by_test_id("triggered-condition").select_option(
        label="only if in “French buyers”"
    )
    await form.get_by_test_id("triggered-body").fill("Thanks for coming back!")
    await form.get_by_test_id("triggered-create").click()
    trigger_row = page.locator("[data-testid=triggered][data-name='Thanks again']")
    await expect(trigger_row.get_by_test_id("triggered-status")).to_have_text("active")
    for device in ("cy", "bob"):
        with httpx.Client(base_url=demo.url, headers=tenant.sdk(device)) as sdk:
            tracked = sdk.post("/v1/events", json={"events": [{"name": "purchase"}]})
            assert tracked.status_code == 202
    await send_triggered.func(
        JobRun(2, "triggered_messages.send", 1, runtime), app_id=str(tenant.id)
    )
    assert [c["subject"] for c in _inbox(demo.url, tenant, "cy")].count("Thanks again") == 1
    assert _inbox(demo.url, tenant, "bob") == []
    await expect(trigger_row.get_by_test_id("triggered-sent")).to_have_text("1", timeout=15000)
    await trigger_row.get_by_test_id("triggered-stop").click()
    await expect(trigger_row.get_by_test_id("triggered-status")).to_have_text("stopped")
