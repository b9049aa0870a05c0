"""Brute force: failed sign-ins are limited per account and per client address, except from a
browser that has signed in to the account before (its device cookie), which only its own failures
limit; API-key and refresh-token failures are counted apart; refusals say how long to wait; an
unknown address behaves exactly like a known one; X-Forwarded-For is believed only from
TRUSTED_PROXIES."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from replyhq.app import create_app
from replyhq.runtime import Runtime
from replyhq.settings import Settings
from tests.conftest import MakeTenant, Servers, make_settings, start_server
from tests.staff import add_staff

Client = Callable[[str], httpx.AsyncClient]
STRICT = {
    "rate_limit_auth": "3/minute",
    "rate_limit_login_account": "3/minute",
    "rate_limit_login_address": "6/minute",
    "rate_limit_login_device": "3/minute",
    "rate_limit_token_failures": "3/minute",
}


@pytest.fixture
async def strict(servers: Servers) -> AsyncIterator[tuple[Client, Runtime]]:
    """An app with small sign-in limits (STRICT), with its own Redis keys; `client(address)` is
    a new browser (its own cookies) at that client address."""
    async with _app(servers, **STRICT) as made:
        yield made


@pytest.fixture
async def defaults(servers: Servers) -> AsyncIterator[tuple[Client, Runtime]]:
    """An app with the shipped sign-in limits."""
    shipped = {name: field.default for name, field in Settings.model_fields.items()}
    async with _app(servers, **{name: shipped[name] for name in STRICT if name in shipped}) as made:
        yield made


@asynccontextmanager
async def _app(servers: Servers, **limits: object) -> AsyncIterator[tuple[Client, Runtime]]:
    settings = make_settings(servers, redis_prefix=f"{servers.prefix}{uuid.uuid4().hex}:", **limits)
    application = create_app(settings)
    clients: list[httpx.AsyncClient] = []

    def client(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=application, client=(address, 40000))
        made = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        clients.append(made)
        return made

    async with LifespanManager(application):
        yield client, application.state.runtime
        for made in clients:
            await made.aclose()


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/admin/login", json={"email": email, "password": password})


def _wait(response: httpx.Response, window: int = 60) -> int:
    """The wait a 429 announces, checked to be the same in the header and in words."""
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["code"] == "RATE_LIMITED"
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= window
    assert body["retry_after"] == retry_after
    match = re.search(r"Try again in (\d+) (second|minute)s?\.", body["error"])
    assert match, body["error"]
    amount = int(match[1]) * (60 if match[2] == "minute" else 1)
    assert retry_after <= amount < retry_after + 60
    return retry_after


async def test_failures_from_one_address_lock_out_new_browsers_there_but_not_known_ones(
    strict: tuple[Client, Runtime], make_tenant: MakeTenant
) -> None:
    client, runtime = strict
    staff = await add_staff(runtime, await make_tenant())
    known = client("198.51.100.7")
    assert (await _login(known, staff.email, staff.password)).status_code == 200
    attacker = client("198.51.100.7")
    for n in range(6):  # RATE_LIMIT_LOGIN_ADDRESS, spread over accounts
        assert (await _login(attacker, f"guess-{n}@example.com", "password1")).status_code == 401
    # A browser that never signed in to the account waits, even with the right password...
    _wait(await _login(client("198.51.100.7"), staff.email, staff.password))
    # ...the member's usual browser does not...
    assert (await _login(known, staff.email, staff.password)).status_code == 200
    # ...and someone elsewhere is not affected.
    assert (await _login(client("198.51.100.8"), staff.email, staff.password)).status_code == 200


async def test_an_attack_on_one_account_stops_neither_its_owner_nor_other_accounts(
    strict: tuple[Client, Runtime], make_tenant: MakeTenant
) -> None:
    client, runtime = strict
    tenant = await make_tenant()
    victim = await add_staff(runtime, tenant)
    bystander = await add_staff(runtime, tenant)
    owner = client("192.0.2.50")  # the owner's own browser, signed in before
    assert (await _login(owner, victim.email, victim.password)).status_code == 200
    for n in range(10):  # from many addresses: the per-address backstop does not see it
        wrong = await _login(client(f"203.0.113.{n}"), victim.email.upper(), f"guess {n}")
        assert wrong.status_code in (401, 429)
    # The attacker's guesses stop being checked after RATE_LIMIT_LOGIN_ACCOUNT: even the right
    # password from a browser new to the account is refused, so guessing is capped.
    fresh = client("203.0.113.99")
    retry_after = _wait(await _login(fresh, victim.email, victim.password))
    # The owner, from the browser they used before, gets in with the right password; a typo
    # there counts against that browser alone.
    assert (await _login(owner, victim.email, "typo typo")).status_code == 401
    assert (await _login(owner, victim.email, victim.password)).status_code == 200
    # Another account, even from the attacker's network and a new browser, is untouched.
    assert (await _login(fresh, bystander.email, bystander.password)).status_code == 200
    # Waiting does not make the wait longer: refused attempts are not counted.
    for _ in range(5):
        again = _wait(await _login(fresh, victim.email, victim.password))
        assert again <= retry_after
        retry_after = again


async def test_a_device_cookie_is_for_one_account_and_cannot_be_forged(
    strict: tuple[Client, Runtime], make_tenant: MakeTenant
) -> None:
    client, runtime = strict
    tenant = await make_tenant()
    victim = await add_staff(runtime, tenant)
    other = await add_staff(runtime, tenant)
    attacker = client("203.0.113.70")
    signed = await _login(attacker, other.email, other.password)  # the attacker's own account
    assert signed.status_code == 200
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/admin/login" in cookie
    name, value = cookie.split(";")[0].split("=", 1)
    for n in range(3):
        await _login(client(f"203.0.113.{80 + n}"), victim.email, f"guess {n}")
    # Its cookie for another account, renamed, or a made-up one, proves nothing about this one.
    for forged in (value, value[:-4] + "AAAA"):
        probe = client("203.0.113.71")
        victim_cookie = name[: len("rhq_device_")] + _account_name(victim.email)
        probe.cookies.set(victim_cookie, forged, path="/admin/login")
        _wait(await _login(probe, victim.email, victim.password))


def _account_name(email: str) -> str:
    from replyhq.accounts.throttle import account_key

    return account_key(email)[:20]


async def test_a_hundred_staff_behind_one_address_can_sign_in(
    defaults: tuple[Client, Runtime], make_tenant: MakeTenant
) -> None:
    client, runtime = defaults
    tenant = await make_tenant()
    office = [await add_staff(runtime, tenant) for _ in range(100)]
    for member in office:  # each a new browser behind the office NAT, each mistyping twice first
        browser = client("198.51.100.200")
        for typo in ("typo one", "typo two"):
            assert (await _login(browser, member.email, typo)).status_code == 401
        signed = await _login(browser, member.email, member.password)
        assert signed.status_code == 200, signed.text


async def test_stale_sdk_keys_do_not_block_staff_sign_in_from_that_address(
    strict: tuple[Client, Runtime], make_tenant: MakeTenant
) -> None:
    client, runtime = strict
    tenant = await make_tenant()
    staff = await add_staff(runtime, tenant)
    office = client("198.51.100.60")
    codes = []
    for n in range(8):  # tabs holding keys of several past rotations
        stale = {**tenant.sdk("stale-tab"), "X-Api-Key": f"rhq_sdk_rotated-long-ago-{n}"}
        codes.append((await office.get("/v1/conversations", headers=stale)).status_code)
    assert codes == [401] * 3 + [429] * 5
    assert (await _login(office, staff.email, staff.password)).status_code == 200
    # Nor do failed refreshes (a tab whose sign-in ended) block signing in or the SDK key.
    for _ in range(4):
        await office.post("/admin/refresh", json={"refresh_token": "ended-long-ago"})
    assert (await _login(client("198.51.100.60"), staff.email, staff.password)).status_code == 200


async def test_stale_tabs_repeating_an_old_key_never_shut_out_the_current_one(
    strict: tuple[Client, Runtime], make_tenant: MakeTenant
) -> None:
    client, runtime = strict
    tenant = await make_tenant()
    await _until(lambda: runtime.keys.caching)  # the rotation channel is heard
    office = client("198.51.100.62")
    stale = {**tenant.sdk("stale-tab"), "X-Api-Key": "rhq_sdk_rotated-long-ago"}
    # Five tabs retrying one rotated key: one failure counted, the rest answered from memory.
    codes = [(await office.get("/v1/conversations", headers=stale)).status_code for _ in range(10)]
    assert codes == [401] * 10
    # The current key, never verified by this server yet, is served from that office.
    current = await office.post(
        "/v1/identify", headers=tenant.sdk("current-tab"), json={"platform": "web"}
    )
    assert current.status_code == 200, current.text


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never met")


async def test_an_unknown_address_is_limited_exactly_like_a_known_one(
    strict: tuple[Client, Runtime], make_tenant: MakeTenant
) -> None:
    client, runtime = strict
    known = (await add_staff(runtime, await make_tenant())).email
    unknown = f"nobody-{uuid.uuid4().hex[:6]}@example.com"
    answers: dict[str, list[tuple[int, str]]] = {}
    for email in (known, unknown):
        answers[email] = []
        for n in range(4):
            response = await _login(client(f"192.0.2.{n}"), email, "wrong password")
            answers[email].append((response.status_code, response.json()["code"]))
    assert (
        answers[known]
        == answers[unknown]
        == [(401, "INVALID_CREDENTIALS")] * 3 + [(429, "RATE_LIMITED")]
    )


async def test_successful_logins_do_not_count(
    strict: tuple[Client, Runtime], make_tenant: MakeTenant
) -> None:
    client, runtime = strict
    staff = await add_staff(runtime, await make_tenant())
    for _ in range(8):
        assert (
            await _login(client("198.51.100.20"), staff.email, staff.password)
        ).status_code == 200


async def test_failed_refreshes_are_limited_per_address_on_their_own(
    strict: tuple[Client, Runtime],
) -> None:
    client, _ = strict
    attacker = client("198.51.100.30")
    for _ in range(3):
        response = await attacker.post("/admin/refresh", json={"refresh_token": "forged"})
        assert response.status_code == 401
    response = await attacker.post("/admin/refresh", json={"refresh_token": "forged"})
    _wait(response)
    assert "refresh" in response.json()["error"]


# --- X-Forwarded-For, through a real server process ------------------------------------------


def _attempts(url: str, forwarded_for: list[str]) -> list[int]:
    codes = []
    with httpx.Client(base_url=url, timeout=10) as http:
        for n, address in enumerate(forwarded_for):
            response = http.post(
                "/admin/login",
                headers={"X-Forwarded-For": address},
                json={"email": f"probe-{n}-{uuid.uuid4().hex[:6]}@example.com", "password": "x"},
            )
            codes.append(response.status_code)
    return codes


@pytest.mark.slow
def test_forwarded_for_is_ignored_without_trusted_proxies(servers: Servers, tmp_path: Path) -> None:
    server = start_server(
        servers,
        tmp_path,
        RATE_LIMIT_LOGIN_ADDRESS="2/minute",
        REDIS_PREFIX=f"{servers.prefix}{uuid.uuid4().hex}:",
        TRUSTED_PROXIES="",
    )
    try:
        # A client inventing a new address each time is still one address to us.
        codes = _attempts(server.url, ["203.0.113.1", "203.0.113.2", "203.0.113.3"])
        assert codes == [401, 401, 429]
    finally:
        server.stop()


@pytest.mark.slow
def test_forwarded_for_is_believed_from_a_trusted_proxy(servers: Servers, tmp_path: Path) -> None:
    server = start_server(
        servers,
        tmp_path,
        RATE_LIMIT_LOGIN_ADDRESS="2/minute",
        REDIS_PREFIX=f"{servers.prefix}{uuid.uuid4().hex}:",
        TRUSTED_PROXIES="127.0.0.1",
    )
    try:
        # Behind our proxy, each real client has its own allowance...
        assert _attempts(server.url, ["203.0.113.1", "203.0.113.2", "203.0.113.3"]) == [401] * 3
        # ...and one client is still limited.
        assert _attempts(server.url, ["203.0.113.9"] * 3) == [401, 401, 429]
    finally:
        server.stop()
