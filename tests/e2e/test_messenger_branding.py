"""The messenger as the app's team set it up, on a customer's site (another origin): its colour,
greeting and language follow a change saved in the dashboard; outside office hours it shows the
away text and the automatic reply arrives once; a closed conversation is rated in the messenger
and the rating shows in the dashboard and the report."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from replyhq.runtime import Runtime
from tests.e2e.conftest import Demo, Pages, sign_in, staff_for
from tests.e2e.test_chat import user_send
from tests.e2e.test_embed import customer_site

DEFAULTS = {
    "color": "#3454d1",
    "greeting": "Hi there 👋",
    "language": "en",
    "office_hours_enabled": False,
    "office_hours": [{"day": d, "open": "09:00", "close": "17:00"} for d in range(5)],
    "away_message": "We're away right now. Leave a message and we'll get back to you.",
    "auto_reply": True,
}


def _shop(demo: Demo) -> str:
    return f"""<!doctype html><html><head><title>Shop</title></head><body><h1>Customer shop</h1>
      <script src="{demo.url}/widget.js" data-app-id="{demo.app["id"]}"
              data-api-key="{demo.app["sdk_key"]}"></script></body></html>"""


@pytest.fixture
async def backend(demo: Demo) -> AsyncIterator[httpx.AsyncClient]:
    """The app's own backend (secret key); the demo app's messenger is put back afterwards (the
    other browser tests share it)."""
    headers = {"X-App-Id": demo.app["id"], "X-Api-Key": demo.app["secret_key"]}
    async with httpx.AsyncClient(base_url=demo.url, headers=headers) as client:
        yield client
        restored = await client.patch("/admin/api/messenger", json=DEFAULTS)
        assert restored.status_code == 200, restored.text


async def test_the_messenger_follows_a_change_saved_in_the_dashboard(
    demo: Demo, pages: Pages, runtime: Runtime, backend: httpx.AsyncClient
) -> None:
    with customer_site(demo.customer_site, _shop(demo)):
        # A visitor already has the messenger open on the customer's site, as it was.
        shop = await pages.new()
        await shop.goto(f"{demo.customer_site}/shop")
        launcher = shop.get_by_test_id("rhq-launcher")
        await expect(launcher).to_have_css("background-color", "rgb(52, 84, 209)")
        await launcher.click()
        await expect(shop.get_by_test_id("rhq-greeting")).to_contain_text("Hi there")
        await expect(shop.get_by_test_id("rhq-status")).to_have_attribute("data-state", "connected")

        admin = await staff_for(runtime, demo.app_id, "ADMIN")
        dashboard = await pages.new()
        await sign_in(dashboard, demo.url, admin)
        await dashboard.get_by_test_id("nav-settings").click()
        await dashboard.get_by_test_id("messenger-color").fill("#e4007c")
        await dashboard.get_by_test_id("messenger-greeting").fill("Bonjour et bienvenue !")
        await dashboard.get_by_test_id("messenger-language").select_option("fr")
        # The preview follows before anything is saved.
        await expect(dashboard.get_by_test_id("preview-greeting")).to_have_text(
            "Bonjour et bienvenue !"
        )
        await expect(dashboard.get_by_test_id("preview-header")).to_have_css(
            "background-color", "rgb(228, 0, 124)"
        )
        await dashboard.get_by_test_id("messenger-save").click()
        await expect(dashboard.get_by_test_id("messenger-save")).to_be_disabled()

        # The open messenger follows at once (messenger:settings), without a reload.
        await expect(launcher).to_have_css("background-color", "rgb(228, 0, 124)")
        await expect(shop.get_by_test_id("rhq-greeting")).to_contain_text("Bonjour et bienvenue !")
        await expect(shop.get_by_test_id("rhq-composer")).to_have_attribute(
            "placeholder", "Écrivez un message…"
        )
        # And a page opened afterwards starts with them.
        fresh = await pages.new()
        await fresh.goto(f"{demo.customer_site}/shop")
        later = fresh.get_by_test_id("rhq-launcher")
        await expect(later).to_have_css("background-color", "rgb(228, 0, 124)")
        await expect(later).to_have_attribute("aria-label", "Ouvrir le chat d'assistance")


async def test_away_text_and_one_automatic_reply(
    demo: Demo, pages: Pages, backend: httpx.AsyncClient
) -> None:
    away = {"office_hours_enabled": True, "office_hours": [], "away_message": "Gone fishing."}
    assert (await backend.patch("/admin/api/messenger", json=away)).status_code == 200
    with customer_site(demo.customer_site, _shop(demo)):
        shop = await pages.new()
        await shop.goto(f"{demo.customer_site}/shop")
        await shop.get_by_test_id("rhq-launcher").click()
        await expect(shop.get_by_test_id("rhq-away")).to_contain_text("Gone fishing.")
        await expect(shop.get_by_test_id("rhq-status")).to_have_attribute("data-state", "connected")
        await user_send(shop, "Is anyone there?")
        automatic = shop.locator("[data-testid=rhq-message][data-sender=system]")
        await expect(automatic).to_have_count(1)
        await expect(automatic).to_contain_text("Gone fishing.")
        await user_send(shop, "Hello again")
        mine = shop.locator("[data-testid=rhq-message][data-sender=user]")
        await expect(mine).to_have_count(2)
        await shop.reload()  # what the server holds, not only what the page showed
        await shop.get_by_test_id("rhq-launcher").click()
        # The launcher opens the list, or the conversation itself when the automatic reply's
        # read receipt had not reached the server before the reload (it was still unread).
        listed = shop.get_by_test_id("rhq-conversation-item")
        await expect(listed.or_(mine).first).to_be_visible()
        if await listed.count():
            await listed.first.click()
        await expect(mine).to_have_count(2)
        await expect(automatic).to_have_count(1)


async def _latest_conversation(backend: httpx.AsyncClient) -> dict[str, Any]:
    items: list[dict[str, Any]] = (await backend.get("/admin/api/conversations")).json()["items"]
    return items[0]


async def test_a_closed_conversation_is_rated_and_the_team_sees_it(
    demo: Demo, pages: Pages, runtime: Runtime, backend: httpx.AsyncClient
) -> None:
    with customer_site(demo.customer_site, _shop(demo)):
        shop = await pages.new()
        await shop.goto(f"{demo.customer_site}/shop")
        await shop.get_by_test_id("rhq-launcher").click()
        await expect(shop.get_by_test_id("rhq-status")).to_have_attribute("data-state", "connected")
        await user_send(shop, "My parcel is late")
        await expect(shop.get_by_test_id("rhq-message")).to_have_count(1)
        conversation = await _latest_conversation(backend)
        cid = conversation["id"]
        closed = await backend.patch(f"/admin/api/conversations/{cid}", json={"status": "closed"})
        assert closed.status_code == 200
        await expect(shop.get_by_test_id("rhq-rating")).to_be_visible()
        await shop.get_by_test_id("rhq-star-4").click()
        await shop.get_by_test_id("rhq-rating-comment").fill("Quick and kind")
        await shop.get_by_test_id("rhq-rate").click()
        await expect(shop.get_by_test_id("rhq-rated")).to_be_visible()

    admin = await staff_for(runtime, demo.app_id, "ADMIN")
    dashboard = await pages.new()
    await sign_in(dashboard, demo.url, admin)
    await dashboard.goto(f"{demo.url}/dashboard/inbox/{cid}")
    rating = dashboard.get_by_test_id("rating")
    await expect(rating).to_have_attribute("data-score", "4")
    await expect(rating).to_contain_text("Quick and kind")
    await expect(dashboard.get_by_test_id("visitor-page")).to_contain_text("Shop")
    await expect(dashboard.get_by_test_id("visitor-browser")).to_contain_text("Chrome")

    await dashboard.get_by_test_id("nav-reports").click()
    today = datetime.now(UTC).date().isoformat()
    await dashboard.get_by_test_id("report-start").fill(today)
    await expect(dashboard.get_by_test_id("total-csat")).to_contain_text("4/5")
    await expect(dashboard.get_by_test_id("chart-volume")).to_be_visible()
