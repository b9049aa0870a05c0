"""Billing against the local fake Stripe (replyhq.billing.fake_stripe), reached by the real `stripe`
library over HTTP: a server with billing on (a real socket, so the fake can post webhooks to it),
a job worker on the billing and mail queues, and mail read from the tests' SMTP server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from aiohttp import web

from replyhq.apps import service as apps_service
from replyhq.billing.fake_stripe import FakeStripe, serve
from replyhq.billing.usage import UsageMeter
from replyhq.jobs.worker import JobWorker
from replyhq.runtime import Runtime
from replyhq.settings import Settings
from tests.conftest import Servers, SocketServer, Tenant, make_settings, serve_in_process
from tests.jobs_support import FAST
from tests.mail_support import PUBLIC_URL, SmtpServer
from tests.staff import Staff, add_staff, login

STRIPE_KEY = "sk_test_replyhq_tests"
WEBHOOK_SECRET = "whsec_replyhq_tests"
PRICES = {"starter": 2900, "growth": 9900, "business": 29900}


@dataclass
class Billing:
    server: SocketServer
    fake: FakeStripe
    settings: Settings

    @property
    def runtime(self) -> Runtime:
        return self.server.runtime

    @property
    def meter(self) -> UsageMeter:
        meter: UsageMeter = self.server.app.state.usage_meter
        return meter

    @property
    def webhook_url(self) -> str:
        return self.server.url + "/webhooks/stripe"

    async def tenant(self, name: str = "Acme") -> Tenant:
        async with self.runtime.db.system_session() as session:
            app, keys = await apps_service.create_app(session, name, rounds=4)
        return Tenant(app.id, name, keys.sdk_key, keys.secret_key, keys.identity_secret)

    async def staff(self, client: httpx.AsyncClient, tenant: Tenant, role: str) -> Staff:
        email = f"{role.lower()}-{uuid.uuid4().hex[:8]}@example.test"
        return await login(client, await add_staff(self.runtime, tenant, role, email=email))


@pytest.fixture(scope="module")
async def fake_stripe() -> AsyncIterator[tuple[FakeStripe, web.AppRunner]]:
    fake = FakeStripe(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET)
    _, runner = await serve(fake)
    yield fake, runner
    await fake.settle()
    await runner.cleanup()


@pytest.fixture(scope="module")
async def billing(
    servers: Servers, smtp: SmtpServer, fake_stripe: tuple[FakeStripe, web.AppRunner]
) -> AsyncIterator[Billing]:
    """A server with billing on, pointed at the fake; its webhooks come back to this server.
    Per module: its worker takes the mail queue's jobs (as mail_app's does)."""
    fake, _ = fake_stripe
    settings = make_settings(
        servers,
        stripe_secret_key=STRIPE_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=fake.base_url,
        stripe_price_starter="price_test_starter",
        stripe_price_growth="price_test_growth",
        stripe_price_business="price_test_business",
        billing_usage_flush_seconds=0.2,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_tls="none",
        public_url=PUBLIC_URL,
        **FAST,
    )
    for plan, cents in PRICES.items():
        fake.add_price(f"price_test_{plan}", cents, plan.title())
    server, stop = await serve_in_process(settings)
    fake.webhook_url = server.url + "/webhooks/stripe"
    worker = JobWorker(settings, server.runtime, queues=["billing", "mail"], concurrency=4)
    worker.start()
    yield Billing(server, fake, settings)
    await fake.settle()
    await worker.aclose()
    await stop()


@pytest.fixture
async def billing_http(billing: Billing) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=billing.server.url) as client:
        yield client
