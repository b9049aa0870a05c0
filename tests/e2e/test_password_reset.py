"""E-mail flows of the dashboard as a newcomer on `make dev` meets them. Forgot password: ask on
the sign-in page, read the mail in the local mailbox (the SMTP sink `serve` starts when SMTP_HOST
is unset), open its link, set a password, sign in with it. And changing one's address, which
applies once the link in the new mailbox is followed. And a newcomer who signed up: a banner
asks them to verify their address (the product works meanwhile) until the mailed link is
followed; "Send it again" replaces the link; an address is verified once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from replyhq.runtime import Runtime
from tests.conftest import LiveServer, MakeTenant, Servers, start_server
from tests.e2e.conftest import Pages, sign_in, staff_for

NEW_PASSWORD = "a new and long passphrase"


@pytest.fixture(scope="module")
def dev_server(
    built: None, servers: Servers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """`make dev` (`serve --demo`) with its defaults for mail: no SMTP_HOST, jobs run inside the
    server, each mail's links printed on the console."""
    folder = tmp_path_factory.mktemp("dev-mail")
    server = start_server(
        servers, folder, "--demo", DATA_DIR=str(folder / "data"), JOBS_IN_PROCESS="true"
    )
    yield server
    server.stop()


async def mail_to(server: LiveServer, address: str, timeout: float = 20.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=server.url) as client:
        while time.monotonic() < deadline:
            mails = (await client.get("/dev/mailbox.json")).json()
            found = [m for m in mails if m["to"] == address]
            if found:
                mail: dict[str, object] = found[0]
                return mail
            await asyncio.sleep(0.2)
    raise AssertionError(f"no mail to {address} in the local mailbox")


async def test_a_forgotten_password_is_reset_from_the_mailed_link(
    dev_server: LiveServer, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("Reset Co")
    staff = await staff_for(runtime, tenant.id, "AGENT", name="Rita Reset")
    page = await pages.new()

    await page.goto(f"{dev_server.url}/dashboard")
    await page.get_by_test_id("forgot-password").click()
    await page.get_by_test_id("reset-email").fill(staff.email)
    await page.get_by_test_id("reset-request").click()
    await expect(page.get_by_test_id("reset-requested")).to_contain_text("on its way")

    mail = await mail_to(dev_server, staff.email)
    assert mail["subject"] == "Reset your ReplyHQ password for Reset Co"
    [link] = mail["links"]  # type: ignore[misc]
    assert str(link).startswith(f"{dev_server.url}/dashboard/reset-password#token=rhq_pwr_")
    assert f"mail to {staff.email}" in dev_server.log.read_text()  # printed on the console too

    # The newcomer reads it in the mailbox page and follows the link.
    await page.goto(f"{dev_server.url}/dev/mailbox")
    await page.locator(f"article:has-text('{staff.email}') a").first.click()
    await page.get_by_test_id("reset-password").fill(NEW_PASSWORD)
    await page.get_by_test_id("reset-password-again").fill(NEW_PASSWORD)
    await page.get_by_test_id("reset-submit").click()
    await expect(page.get_by_test_id("reset-done")).to_be_visible()
    assert "token" not in page.url  # the spent token left the address bar

    await page.get_by_test_id("reset-sign-in").click()
    await page.get_by_test_id("login-email").fill(staff.email)
    await page.get_by_test_id("login-password").fill(staff.password)  # the old one
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("login-error")).to_be_visible()
    await page.get_by_test_id("login-password").fill(NEW_PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("my-role")).to_have_text("AGENT")


async def test_an_email_change_applies_once_the_new_address_confirms(
    dev_server: LiveServer, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("Moving Co")
    staff = await staff_for(runtime, tenant.id, "AGENT", name="Mo Ving")
    old, new = staff.email, "moved-" + staff.email
    page = await pages.new()
    await sign_in(page, dev_server.url, staff)

    await page.get_by_test_id("nav-account").click()
    await page.get_by_test_id("new-email").fill(new)
    await page.get_by_test_id("email-password").fill(staff.password)
    await page.get_by_test_id("email-change-submit").click()
    await expect(page.get_by_test_id("email-change-sent")).to_contain_text(new)
    await expect(page.get_by_test_id("account-email")).to_have_text(old)  # not yet

    await mail_to(dev_server, new)
    await page.goto(f"{dev_server.url}/dev/mailbox")
    await page.locator(f"article:has-text('to {new}') a").first.click()
    await page.get_by_test_id("email-confirm").click()
    await expect(page.get_by_test_id("email-confirmed")).to_contain_text(new)
    told = await mail_to(dev_server, old)
    assert told["subject"] == "Your ReplyHQ e-mail address was changed"

    await page.goto(f"{dev_server.url}/dashboard/account")
    await expect(page.get_by_test_id("account-email")).to_have_text(new)
    await page.get_by_test_id("logout").click()
    await page.get_by_test_id("login-email").fill(new)
    await page.get_by_test_id("login-password").fill(staff.password)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("my-role")).to_have_text("AGENT")


async def _mails_to(server: LiveServer, address: str, count: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 20
    async with httpx.AsyncClient(base_url=server.url) as client:
        while time.monotonic() < deadline:
            mails = (await client.get("/dev/mailbox.json")).json()
            found: list[dict[str, object]] = [m for m in mails if m["to"] == address]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.2)
    raise AssertionError(f"fewer than {count} mails to {address} in the local mailbox")


async def test_a_newcomer_is_asked_to_verify_until_the_mailed_link_is_followed(
    dev_server: LiveServer, pages: Pages
) -> None:
    page = await pages.new()
    email = f"vera-{uuid.uuid4().hex[:8]}@example.com"
    await page.goto(f"{dev_server.url}/dashboard")
    await page.get_by_test_id("create-account").click()
    await page.get_by_test_id("signup-name").fill("Vera Fied")
    await page.get_by_test_id("signup-email").fill(email)
    await page.get_by_test_id("signup-password").fill(NEW_PASSWORD)
    await page.get_by_test_id("signup-app").fill("Vera's app")
    await page.get_by_test_id("signup-submit").click()

    # Signed in and using the product; the banner asks, on every screen, until verified.
    banner = page.get_by_test_id("verify-banner")
    await expect(banner).to_contain_text(f"Please verify {email}")
    [first] = await _mails_to(dev_server, email, 1)
    [first_link] = first["links"]  # type: ignore[misc]
    assert str(first_link).startswith(f"{dev_server.url}/dashboard/verify-email#token=rhq_evf_")
    await page.get_by_test_id("nav-inbox").click()
    await expect(banner).to_be_visible()

    # "Send it again": a new link, and the first one stops working.
    await page.get_by_test_id("verify-resend").click()
    await expect(banner).to_contain_text(f"A verification link is on its way to {email}.")
    await expect(page.get_by_test_id("verify-resend")).to_have_count(0)
    mails = await _mails_to(dev_server, email, 2)
    [second_link] = [link for m in mails for link in m["links"] if link != first_link]  # type: ignore[attr-defined]

    async def follow(link: object) -> Any:
        """The link opened from the mail, in a new tab of the same browser."""
        tab = await page.context.new_page()
        await tab.goto(str(link))
        return tab.get_by_test_id("verify-email")

    await expect(await follow(first_link)).to_contain_text("not valid")

    # The new link verifies the address: the banner is gone, for good.
    followed = await follow(second_link)
    await expect(followed).to_contain_text(f"{email} is verified")
    assert "token" not in followed.page.url  # the spent token left the address bar
    await followed.get_by_role("link").click()
    await expect(followed.page.get_by_test_id("connection")).to_have_attribute(
        "data-state", "connected"
    )
    await expect(followed.page.get_by_test_id("verify-banner")).to_have_count(0)
    await page.reload()
    await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "connected")
    await expect(banner).to_have_count(0)

    # An address is verified once: the same link again is refused.
    await expect(await follow(second_link)).to_contain_text("not valid")
