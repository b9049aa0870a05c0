"""Sign-in limits and lifetime as a member sees them in the dashboard: their usual browser signs
in while someone guesses at their password from the same address, a new browser is told how long
to wait, and a sign-in past its absolute lifetime returns to the sign-in page."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import expect
from sqlalchemy import text

from replyhq.runtime import Runtime
from tests.conftest import LiveServer, MakeTenant, Servers, start_server
from tests.e2e.conftest import Pages, sign_in
from tests.staff import add_staff

SESSION = "replyhq:dashboard:session"


@pytest.fixture
def strict_server(built: None, servers: Servers, tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(
        servers,
        tmp_path,
        DATA_DIR=str(tmp_path),
        REDIS_PREFIX=f"{servers.prefix}{uuid.uuid4().hex}:",
        RATE_LIMIT_LOGIN_ACCOUNT="3/15minutes",
        DB_POOL_SIZE="3",
        DB_MAX_OVERFLOW="2",
    )
    try:
        yield server
    finally:
        server.stop()


async def test_the_usual_browser_signs_in_during_an_attack_and_a_new_one_is_told_to_wait(
    strict_server: LiveServer, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    url = strict_server.url
    owner = await add_staff(runtime, await make_tenant(), "OWNER")
    usual = await pages.new()
    await sign_in(usual, url, owner)
    await usual.get_by_test_id("logout").click()
    await expect(usual.get_by_test_id("login-submit")).to_be_visible()

    # Someone at the same address guesses at the owner's password until the account is limited.
    with httpx.Client(base_url=url, timeout=10) as attacker:
        codes = [
            attacker.post(
                "/admin/login", json={"email": owner.email, "password": f"guess {n}"}
            ).status_code
            for n in range(4)
        ]
    assert codes == [401, 401, 401, 429]

    # The owner's usual browser signs in with the right password all the same.
    await sign_in(usual, url, owner)

    # A browser that never signed in to this account waits, and is told for how long.
    new = await pages.new()
    await new.goto(f"{url}/dashboard")
    await new.get_by_test_id("login-email").fill(owner.email)
    await new.get_by_test_id("login-password").fill(owner.password)
    await new.get_by_test_id("login-submit").click()
    await expect(new.get_by_test_id("login-error")).to_contain_text("Try again in 15 minutes.")


async def test_a_sign_in_past_its_lifetime_returns_to_the_sign_in_page(
    strict_server: LiveServer, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    url = strict_server.url
    tenant = await make_tenant()
    member = await add_staff(runtime, tenant, "AGENT")
    page = await pages.new()
    await sign_in(page, url, member)
    # Thirty days and a minute later (the access token has long expired too).
    async with runtime.db.tenant_session(tenant.id) as session:
        await session.execute(
            text(
                "UPDATE staff_sessions SET created_at = now() - interval '30 days 1 minute' "
                "WHERE staff_id = :staff"
            ),
            {"staff": member.id},
        )
    await page.evaluate(
        f"""() => {{
            const s = JSON.parse(localStorage.getItem('{SESSION}'));
            s.access_token = 'expired.token.value';
            localStorage.setItem('{SESSION}', JSON.stringify(s));
        }}"""
    )
    await page.reload()
    await expect(page.get_by_test_id("login-submit")).to_be_visible()
