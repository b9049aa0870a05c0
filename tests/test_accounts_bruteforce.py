"""Brute force: failed sign-ins are limited per client address and per account (RATE_LIMIT_AUTH),
an unknown address behaves exactly like a known one, and X-Forwarded-For is believed only from
TRUSTED_PROXIES."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from replyhq.app import create_app
from replyhq.runtime import Runtime
from tests.conftest import MakeTenant, Servers, make_settings, start_server
from tests.staff import add_staff

Client = Callable[[str], httpx.AsyncClient]


@pytest.fixture
async def strict(servers: Servers) -> AsyncIterator[tuple[Client, Runtime]]:
    """An app allowing 3 failed attempts a minute, with its own Redis keys; `client(address)`
    speaks to it from that client address."""
    settings = make_settings(
        servers, rate_limit_auth="3/minute", redis_prefix=f"{servers.prefix}{uuid.uuid4().hex}:"
    )
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


async def test_failures_from_one_address_lock_that_address_out(
    strict: tuple[Client, Runtime], make_tenant: MakeTenant
) -> None:
    client, runtime = strict
    staff = await add_staff(runtime, await make_tenant())
    attacker = client("198.51.100.7")
    for n in range(3):
        assert (await _login(attacker, f"guess-{n}@example.com", "password1")).status_code == 401
    locked = await _login(attacker, staff.email, staff.password)  # even the right password
    assert locked.status_code == 429
    assert locked.json()["code"] == "RATE_LIMITED"
    assert int(locked.headers["Retry-After"]) >= 1
    # Someone else, elsewhere, is not affected.
    assert (await _login(client("198.51.100.8"), staff.email, staff.password)).status_code == 200


async def test_failures_on_one_account_from_many_addresses_lock_the_account(
    strict: tuple[Client, Runtime], make_tenant: MakeTenant
) -> None:
    client, runtime = strict
    tenant = await make_tenant()
    victim = await add_staff(runtime, tenant)
    bystander = await add_staff(runtime, tenant)
    for n in range(3):
        wrong = await _login(client(f"203.0.113.{n}"), victim.email.upper(), f"guess {n}")
        assert wrong.status_code == 401
    fresh = client("203.0.113.99")
    assert (await _login(fresh, victim.email, victim.password)).status_code == 429
    assert (await _login(fresh, bystander.email, bystander.password)).status_code == 200


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
    office = client("198.51.100.20")
    for _ in range(6):
        assert (await _login(office, staff.email, staff.password)).status_code == 200


async def test_failed_refreshes_count_against_the_address(strict: tuple[Client, Runtime]) -> None:
    client, _ = strict
    attacker = client("198.51.100.30")
    for _ in range(3):
        response = await attacker.post("/admin/refresh", json={"refresh_token": "forged"})
        assert response.status_code == 401
    response = await attacker.post("/admin/refresh", json={"refresh_token": "forged"})
    assert response.status_code == 429


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
        RATE_LIMIT_AUTH="2/minute",
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
        RATE_LIMIT_AUTH="2/minute",
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
