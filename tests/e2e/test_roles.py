"""What a role may not do is not offered: an AGENT sees no team or key management; an OWNER
invites a colleague and rotates the app's keys from the dashboard."""

from __future__ import annotations

import httpx
from playwright.async_api import expect

from replyhq.runtime import Runtime
from tests.conftest import MakeTenant
from tests.e2e.conftest import Demo, Pages, sign_in, staff_for
from tests.e2e.test_safety import IMG, assert_inert


def _conversation(base_url: str, sdk: dict[str, str]) -> None:
    with httpx.Client(base_url=base_url, headers=sdk) as client:
        assert client.post("/v1/identify", json={"platform": "web", "name": "Cleo"}).is_success
        body = {"first_message": {"body": "Where is my parcel?", "client_msg_id": "m-1"}}
        assert client.post("/v1/conversations", json=body).status_code == 201


async def test_agent_is_offered_no_management(
    demo: Demo, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("Shop")
    _conversation(demo.url, tenant.sdk("agent-view-device"))
    page = await pages.new()
    await sign_in(page, demo.url, await staff_for(runtime, tenant.id, "AGENT"))
    await expect(page.get_by_test_id("my-role")).to_have_text("AGENT")
    await expect(page.get_by_test_id("nav-inbox")).to_be_visible()
    await expect(page.get_by_test_id("nav-team")).to_have_count(0)
    await expect(page.get_by_test_id("nav-settings")).to_have_count(0)

    # The conversation: replying, assigning, closing and the user's profile are an agent's work
    # too (issue 13; this asserted that actions and attributes were hidden before).
    await page.get_by_test_id("inbox-item").first.click()
    await expect(page.get_by_test_id("message")).to_have_count(1)
    await expect(page.get_by_test_id("composer")).to_be_visible()
    await expect(page.get_by_test_id("conversation-actions")).to_be_visible()
    await expect(page.get_by_test_id("close")).to_be_visible()
    await expect(page.get_by_test_id("profile")).to_contain_text("Attributes")

    # Typing the address of a management screen says why it is not shown (it showed the inbox
    # without a word before issue 13).
    for screen, why in (
        ("team", "You need the ADMIN role to manage the team."),
        ("settings", "You need the ADMIN role to change the app's settings."),
    ):
        await page.goto(f"{demo.url}/dashboard/{screen}")
        await expect(page.get_by_test_id("needs-role")).to_contain_text(why)
        await expect(page.get_by_test_id("needs-role")).to_contain_text(
            "Your role in this app is AGENT"
        )
        await expect(page.get_by_test_id(screen)).to_have_count(0)
        await expect(page.get_by_test_id("inbox")).to_have_count(0)
        await expect(page.get_by_test_id("rotate-keys")).to_have_count(0)


async def test_admin_manages_the_team_but_not_keys_or_owners(
    demo: Demo, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("Admin's shop")
    page = await pages.new()
    await sign_in(page, demo.url, await staff_for(runtime, tenant.id, "ADMIN"))
    await page.get_by_test_id("nav-team").click()
    await expect(page.get_by_test_id("invite-form")).to_be_visible()
    options = await page.get_by_test_id("invite-role").locator("option").all_inner_texts()
    assert options == ["ADMIN", "AGENT"]
    await page.get_by_test_id("nav-settings").click()
    await expect(page.get_by_test_id("require-identity")).to_be_enabled()
    await expect(page.get_by_test_id("rotate-keys")).to_have_count(0)


async def test_owner_invites_and_rotates_keys(
    demo: Demo, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant(IMG)  # an app name is shown as text too
    page = await pages.new()
    await sign_in(page, demo.url, await staff_for(runtime, tenant.id, "OWNER"))

    await page.get_by_test_id("nav-team").click()
    await page.get_by_test_id("invite-email").fill("new.agent@example.com")
    await page.get_by_test_id("invite-role").select_option("AGENT")
    await page.get_by_test_id("invite-submit").click()
    link = page.get_by_test_id("invite-link").locator("code")
    await expect(link).to_contain_text("/invite#token=")
    await expect(page.get_by_test_id("pending-invite")).to_contain_text("new.agent@example.com")

    # The invited colleague opens the link in their own browser, joins, and is signed in.
    colleague = await pages.new()
    await colleague.goto(await link.inner_text())
    await colleague.get_by_test_id("invite-name").fill("Nia New")
    await colleague.get_by_test_id("invite-password").fill("a long enough password")
    await colleague.get_by_test_id("invite-submit").click()
    await expect(colleague.get_by_test_id("my-role")).to_have_text("AGENT")
    await expect(colleague.get_by_test_id("nav-team")).to_have_count(0)

    await page.get_by_test_id("nav-settings").click()
    await expect(page.get_by_test_id("app-name")).to_have_value(IMG)
    await page.get_by_test_id("rotate-keys").click()
    new_key = await page.get_by_test_id("new-sdk-key").inner_text()
    assert new_key.startswith("rhq_sdk_") and new_key != tenant.sdk_key
    assert pages.dialogs == [
        "confirm: Rotate the keys? The current SDK key, secret key and identity secret stop "
        "working at once, and every connected device is disconnected."
    ]
    # The old key stopped working; the one shown works.
    body = {"platform": "web"}
    headers = {**tenant.sdk("rotated"), "X-Api-Key": tenant.sdk_key}
    assert httpx.post(f"{demo.url}/v1/identify", headers=headers, json=body).status_code == 401
    headers["X-Api-Key"] = new_key
    assert httpx.post(f"{demo.url}/v1/identify", headers=headers, json=body).status_code == 200
    await assert_inert(page)


async def test_a_role_change_applies_to_an_open_dashboard(
    demo: Demo, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("Changing times")
    admin = await staff_for(runtime, tenant.id, "ADMIN")
    page = await pages.new()
    await sign_in(page, demo.url, admin)
    await expect(page.get_by_test_id("nav-team")).to_be_visible()

    # An owner demotes them elsewhere: their open dashboard stops offering the team, no reload.
    owner_page = await pages.new()
    await sign_in(owner_page, demo.url, await staff_for(runtime, tenant.id, "OWNER"))
    await owner_page.get_by_test_id("nav-team").click()
    row = owner_page.locator(f"[data-testid=member][data-email='{admin.email}']")
    await row.get_by_test_id("member-role").select_option("AGENT")
    await expect(page.get_by_test_id("my-role")).to_have_text("AGENT")
    await expect(page.get_by_test_id("nav-team")).to_have_count(0)
    await expect(page.get_by_test_id("nav-settings")).to_have_count(0)
    await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "connected")
