"""The Billing page as a newcomer meets it on `make dev` (`serve --demo`, billing against the local
fake Stripe): the trial's countdown and usage bars, choosing a plan after its preview, paying on
the (fake) Checkout page, back to an active plan; the proration preview of an upgrade and the
upgrade itself; the portal; the banner (trial, 80 % of a limit, a trial that ended); an ADMIN who
may only look and an AGENT who may not."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
from playwright.async_api import expect
from sqlalchemy import update

from replyhq.billing.models import Subscription
from replyhq.billing.service import subscription_of, utcnow
from replyhq.billing.usage import UsageMeter
from replyhq.runtime import Runtime
from tests.conftest import LiveServer, MakeTenant, Servers, start_server
from tests.e2e.conftest import Pages, sign_in, staff_for


@pytest.fixture(scope="module")
def dev_server(
    built: None, servers: Servers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """`make dev` with its billing defaults: no Stripe key, so the local fake Stripe; jobs (the
    webhooks' application) inside the server."""
    folder = tmp_path_factory.mktemp("dev-billing")
    server = start_server(
        servers, folder, "--demo", DATA_DIR=str(folder / "data"), JOBS_IN_PROCESS="true"
    )
    yield server
    server.stop()


async def test_trial_then_checkout_then_upgrade_then_portal(
    dev_server: LiveServer, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    assert "fake Stripe at http://127.0.0.1:" in dev_server.log.read_text()
    tenant = await make_tenant("Billing Co")
    owner = await staff_for(runtime, tenant.id, "OWNER", name="Olga Owner")
    page = await pages.new()
    await sign_in(page, dev_server.url, owner)

    # The banner counts the trial down; it opens the Billing page.
    await expect(page.get_by_test_id("billing-banner")).to_contain_text("Free trial: 14 days left")
    await page.get_by_test_id("billing-banner-open").click()
    await expect(page.get_by_test_id("billing-status")).to_have_text("Free trial")
    await expect(page.get_by_test_id("trial-countdown")).to_contain_text("14 days left")
    await expect(page.get_by_test_id("usage-messages")).to_contain_text("0 / 10,000 (0 %)")
    await expect(page.get_by_test_id("usage-mau")).to_contain_text("0 / 1,000")
    await expect(page.get_by_test_id("billing-banner")).to_have_count(0)  # not on this page

    # Choose Growth: the preview first, then Stripe Checkout (the fake's page), then back.
    await page.get_by_test_id("choose-growth").click()
    await expect(page.get_by_test_id("billing-preview")).to_contain_text("$99.00")
    await page.get_by_test_id("billing-confirm").click()
    await page.wait_for_url(re.compile(r"http://127\.0\.0\.1:\d+/checkout/cs_test_"))
    await expect(page.get_by_role("heading")).to_contain_text("Checkout")
    await page.get_by_role("button", name="Subscribe").click()
    await page.wait_for_url(f"{dev_server.url}/dashboard/billing?checkout=success")
    await expect(page.get_by_test_id("billing-plan-name")).to_have_text("Growth", timeout=30_000)
    # The trial's days are kept: Stripe charges when it ends.
    await expect(page.get_by_test_id("billing-status")).to_have_text("Free trial")
    await expect(page.get_by_test_id("billing-period")).to_contain_text("First payment on")
    await expect(page.get_by_test_id("usage-messages")).to_contain_text("0 / 100,000")
    await expect(page.get_by_test_id("billing-waiting")).to_have_count(0)

    # Upgrade to Business: the change is previewed, then made at once (no payment page).
    await page.get_by_test_id("choose-business").click()
    preview = page.get_by_test_id("billing-preview")
    await expect(preview).to_contain_text("Due now")
    await expect(preview).to_contain_text("Business")
    await page.get_by_test_id("billing-confirm").click()
    await expect(page.get_by_test_id("billing-plan-name")).to_have_text("Business")
    await expect(page.get_by_test_id("plan-business")).to_contain_text("Your plan")

    # Manage payment: Stripe's portal (the fake's), cancel, and back.
    await page.get_by_test_id("billing-portal").click()
    await page.wait_for_url(re.compile(r"http://127\.0\.0\.1:\d+/portal/bps_"))
    await page.get_by_role("button", name="Cancel plan").click()
    await page.wait_for_url(f"{dev_server.url}/dashboard/billing?from=portal")
    period = page.get_by_test_id("billing-period")
    await expect(period).to_contain_text("Cancels on", timeout=15_000)


async def test_an_admin_sees_billing_read_only_and_an_agent_not_at_all(
    dev_server: LiveServer, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("Roles Co")
    admin = await staff_for(runtime, tenant.id, "ADMIN")
    page = await pages.new()
    await sign_in(page, dev_server.url, admin)
    await page.get_by_test_id("nav-billing").click()
    await expect(page.get_by_test_id("billing-status")).to_have_text("Free trial")
    await expect(page.get_by_test_id("plan-growth")).to_be_visible()
    await expect(page.get_by_test_id("choose-growth")).to_have_count(0)
    await expect(page.get_by_text("Only an owner of the app can change its plan.")).to_be_visible()

    agent = await staff_for(runtime, tenant.id, "AGENT")
    other = await pages.new()
    await sign_in(other, dev_server.url, agent)
    await expect(other.get_by_test_id("nav-billing")).to_have_count(0)
    await expect(other.get_by_test_id("billing-banner")).to_have_count(0)
    await other.goto(f"{dev_server.url}/dashboard/billing")
    await expect(other.get_by_test_id("needs-role")).to_have_attribute("data-screen", "billing")


async def test_the_banner_warns_at_80_percent_and_says_when_the_trial_has_ended(
    dev_server: LiveServer, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    busy = await make_tenant("Busy Co")
    meter = UsageMeter(runtime.db, 3600.0)  # counts as the server's meter does, flushed by hand
    for _ in range(8_000):
        meter.count(busy.id, None)
    await meter.flush()
    owner = await staff_for(runtime, busy.id, "OWNER")
    page = await pages.new()
    await sign_in(page, dev_server.url, owner)
    banner = page.get_by_test_id("billing-banner")
    await expect(banner).to_contain_text("This app has used 80 % of its plan's messages")
    await banner.get_by_role("button", name="Billing").click()
    await expect(page.get_by_test_id("usage-messages")).to_contain_text("8,000 / 10,000 (80 %)")
    await expect(page.locator(".bar-high")).to_have_count(1)

    ended = await make_tenant("Ended Co")
    async with runtime.db.tenant_session(ended.id) as session:
        # Fifteen days on: the trial's end moved back instead of the clock forward.
        await subscription_of(session, runtime.settings, ended.id)
        await session.execute(
            update(Subscription)
            .where(Subscription.app_id == ended.id)
            .values(trial_ends_at=utcnow() - dt.timedelta(days=1))
        )
    late = await staff_for(runtime, ended.id, "OWNER")
    other = await pages.new()
    await sign_in(other, dev_server.url, late)
    await expect(other.get_by_test_id("billing-banner")).to_contain_text(
        "This app's free trial has ended"
    )
    await other.get_by_test_id("nav-billing").click()
    await expect(other.get_by_test_id("billing-status")).to_have_text("Trial ended")
    await expect(other.get_by_test_id("billing-notice")).to_contain_text("Choose a plan")
