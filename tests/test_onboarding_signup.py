"""Self-service sign-up (POST /admin/signup): an app and its OWNER, signed in at once, the
verification e-mail read from a real SMTP server, and the abuse rules: 409 for an address in
use (saying nothing more), 400 for a weak password, 429 per address, 403 when turned off."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select

from replyhq.app import create_app
from replyhq.apps.models import App
from replyhq.jobs.worker import JobWorker
from replyhq.runtime import Runtime
from tests.conftest import MakeTenant, Servers, make_settings
from tests.jobs_support import FAST
from tests.mail_support import PUBLIC_URL, SmtpServer, link_in, text_of
from tests.staff import add_staff

PASSWORD = "violet harbour tractor 42"


def fresh_address() -> str:
    return f"Owner-{uuid.uuid4().hex[:8]}@Example.test"


def form(email: str, password: str = PASSWORD, **extra: str) -> dict[str, str]:
    return {"email": email, "password": password, "name": "Ada Owner", "app_name": "Acme", **extra}


@asynccontextmanager
async def serving(
    servers: Servers, smtp: SmtpServer | None = None, **overrides: object
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    """An app with these settings (and a mail worker delivering to `smtp`), and its client."""
    values: dict[str, object] = {
        "rate_limit_signup": "10000/minute",
        "rate_limit_signup_ip": "10000/minute",
        **FAST,
    }
    if smtp is not None:
        values.update(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_tls="none")
    values.update(public_url=PUBLIC_URL, **overrides)
    settings = make_settings(servers, **values)
    application = create_app(settings)
    async with LifespanManager(application):
        runtime: Runtime = application.state.runtime
        worker = JobWorker(settings, runtime, queues=["mail"], concurrency=2) if smtp else None
        if worker is not None:
            worker.start()
        transport = httpx.ASGITransport(app=application)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                yield c, runtime
        finally:
            if worker is not None:
                await worker.aclose()


@pytest.fixture(scope="module")
async def signup_app(
    servers: Servers, smtp: SmtpServer
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    async with serving(servers, smtp) as served:
        yield served


@pytest.fixture
def sclient(signup_app: tuple[httpx.AsyncClient, Runtime]) -> httpx.AsyncClient:
    return signup_app[0]


@pytest.fixture
def sruntime(signup_app: tuple[httpx.AsyncClient, Runtime]) -> Runtime:
    return signup_app[1]


async def app_count(runtime: Runtime) -> int:
    async with runtime.db.system_session() as session:
        return int(await session.scalar(select(func.count()).select_from(App)) or 0)


def bearer(body: dict[str, object]) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['access_token']}"}


async def test_a_newcomer_signs_up_is_signed_in_and_verifies_the_address_once(
    sclient: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = fresh_address()
    created = await sclient.post("/admin/signup", json=form(email))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["staff"]["email"] == email.lower()
    assert body["staff"]["role"] == "OWNER"
    assert body["staff"]["email_verified_at"] is None
    assert body["app"]["name"] == "Acme"
    assert body["app"]["sdk_key"].startswith("rhq_sdk_")

    # Signed in at once, unverified (the dashboard shows a banner), and the app works.
    me = await sclient.get("/admin/me", headers=bearer(body))
    assert me.status_code == 200
    assert me.json()["role"] == "OWNER"
    assert me.json()["app_id"] == body["app"]["id"]
    assert me.json()["staff"]["email_verified_at"] is None
    sdk = {
        "X-App-Id": body["app"]["id"],
        "X-Api-Key": body["app"]["sdk_key"],
        "X-Device-Id": "d1",
    }
    assert (await sclient.post("/v1/identify", headers=sdk, json={"platform": "web"})).is_success
    # The password signs in later too.
    login = await sclient.post("/admin/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text

    [mail] = await smtp.wait_for(email.lower())
    assert "Verify" in str(mail["Subject"])
    link = link_in(mail)
    assert link.startswith(f"{PUBLIC_URL}/dashboard/verify-email#token=rhq_evf_")
    assert "Acme" in text_of(mail)
    token = parse_qs(urlsplit(link).fragment)["token"][0]

    verified = await sclient.post("/admin/verify-email", json={"token": token})
    assert verified.status_code == 200, verified.text
    assert verified.json()["email"] == email.lower()
    me = await sclient.get("/admin/me", headers=bearer(body))
    assert me.json()["staff"]["email_verified_at"] == verified.json()["email_verified_at"]

    # Verified once: the link is spent, and no new one is sent.
    again = await sclient.post("/admin/verify-email", json={"token": token})
    assert again.status_code == 400
    assert again.json()["code"] == "VERIFY_TOKEN_INVALID"
    resend = await sclient.post("/admin/me/verification", headers=bearer(body))
    assert resend.status_code == 409
    assert resend.json()["code"] == "EMAIL_ALREADY_VERIFIED"


async def test_a_new_verification_mail_replaces_the_first_link(
    sclient: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = fresh_address()
    body = (await sclient.post("/admin/signup", json=form(email))).json()
    [first] = await smtp.wait_for(email.lower())
    resend = await sclient.post("/admin/me/verification", headers=bearer(body))
    assert resend.status_code == 202, resend.text
    second = (await smtp.wait_for(email.lower(), 2))[-1]
    old = parse_qs(urlsplit(link_in(first)).fragment)["token"][0]
    new = parse_qs(urlsplit(link_in(second)).fragment)["token"][0]
    refused = await sclient.post("/admin/verify-email", json={"token": old})
    assert refused.json()["code"] == "VERIFY_TOKEN_INVALID"
    assert (await sclient.post("/admin/verify-email", json={"token": new})).status_code == 200


async def test_an_address_in_use_is_409_saying_nothing_more_and_creates_nothing(
    sclient: httpx.AsyncClient, sruntime: Runtime, make_tenant: MakeTenant
) -> None:
    email = fresh_address()
    assert (await sclient.post("/admin/signup", json=form(email))).status_code == 201
    # An agent invited to another (operator-made) app has an address in use too.
    other = await make_tenant("Other")
    agent = await add_staff(sruntime, other, "AGENT")
    before = await app_count(sruntime)
    for address in (email.upper(), f"  {email}  ", agent.email):
        refused = await sclient.post("/admin/signup", json=form(address, app_name="Second"))
        assert refused.status_code == 409, refused.text
        assert refused.json() == {
            "error": "This e-mail address is already in use.",
            "code": "EMAIL_IN_USE",
        }
    assert await app_count(sruntime) == before


async def test_two_sign_ups_with_one_address_at_once_make_one_app(
    sclient: httpx.AsyncClient, sruntime: Runtime
) -> None:
    email = fresh_address()
    before = await app_count(sruntime)
    answers = await asyncio.gather(
        *(sclient.post("/admin/signup", json=form(email)) for _ in range(3))
    )
    assert sorted(a.status_code for a in answers) == [201, 409, 409]
    assert await app_count(sruntime) == before + 1


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("password1", "WEAK_PASSWORD"),
        ("acme acme acme", "WEAK_PASSWORD"),  # the app's name, repeated
        ("qwertyuiop123", "WEAK_PASSWORD"),  # a keyboard walk
        ("short", "VALIDATION_ERROR"),
        ("é" * 40, "VALIDATION_ERROR"),  # over bcrypt's 72 bytes
    ],
)
async def test_a_weak_password_is_a_clear_400_and_creates_nothing(
    sclient: httpx.AsyncClient, sruntime: Runtime, password: str, code: str
) -> None:
    before = await app_count(sruntime)
    refused = await sclient.post("/admin/signup", json=form(fresh_address(), password))
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == code
    assert refused.json()["details"][0]["field"] == "password"
    assert await app_count(sruntime) == before


@pytest.mark.parametrize(
    "change",
    [
        {"email": "not-an-address"},
        {"name": ""},
        {"app_name": "   "},
        {"app_name": "x" * 300},
        {"extra": "field"},
    ],
)
async def test_bad_fields_are_400(sclient: httpx.AsyncClient, change: dict[str, str]) -> None:
    refused = await sclient.post("/admin/signup", json={**form(fresh_address()), **change})
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "VALIDATION_ERROR"


async def test_sign_ups_are_limited_per_address(servers: Servers) -> None:
    async with serving(servers, rate_limit_signup="2/hour") as (client, runtime):
        email = fresh_address()
        assert (await client.post("/admin/signup", json=form(email))).status_code == 201
        assert (await client.post("/admin/signup", json=form(email))).status_code == 409
        before = await app_count(runtime)
        limited = await client.post("/admin/signup", json=form(email.upper()))
        assert limited.status_code == 429, limited.text
        assert limited.json()["code"] == "RATE_LIMITED"
        assert int(limited.headers["Retry-After"]) > 0
        assert await app_count(runtime) == before
        # Another address is not held back by this one's attempts.
        assert (await client.post("/admin/signup", json=form(fresh_address()))).status_code == 201


async def test_sign_ups_are_limited_per_client(servers: Servers) -> None:
    async with serving(servers, rate_limit_signup_ip="2/hour") as (client, _):
        for _ in range(2):
            assert (await client.post("/admin/signup", json=form(fresh_address()))).is_success
        limited = await client.post("/admin/signup", json=form(fresh_address()))
        assert limited.status_code == 429
        assert "from this address" in limited.json()["error"]


async def test_operators_can_turn_sign_up_off(servers: Servers) -> None:
    async with serving(servers, signup_enabled=False) as (client, runtime):
        before = await app_count(runtime)
        refused = await client.post("/admin/signup", json=form(fresh_address()))
        assert refused.status_code == 403
        assert refused.json()["code"] == "SIGNUP_DISABLED"
        assert await app_count(runtime) == before


async def test_a_forged_or_foreign_verification_token_is_400(sclient: httpx.AsyncClient) -> None:
    for token in (
        "nope",
        f"rhq_evf_{uuid.uuid4().hex}_{'A' * 43}",
        f"rhq_pwr_{uuid.uuid4().hex}_{'A' * 43}",
    ):
        refused = await sclient.post("/admin/verify-email", json={"token": token})
        assert refused.status_code == 400
        assert refused.json()["code"] == "VERIFY_TOKEN_INVALID"


async def test_where_billing_is_on_the_new_app_starts_its_trial(servers: Servers) -> None:
    from replyhq.billing.models import Subscription

    async with serving(servers, stripe_secret_key="sk_test_onboarding") as (client, runtime):
        created = await client.post("/admin/signup", json=form(fresh_address()))
        assert created.status_code == 201, created.text
        app_id = uuid.UUID(created.json()["app"]["id"])
        async with runtime.db.tenant_session(app_id) as session:
            subscription = await session.get(Subscription, app_id)
        assert subscription is not None
        assert subscription.status == "trialing"
        days = runtime.settings.billing_trial_days
        assert 0 < (subscription.trial_ends_at - subscription.created_at).days <= days
