"""Billing in development: with STRIPE_SECRET_KEY unset, `make dev` (`serve --demo`) starts the
local fake Stripe in a thread, with the plans' prices, and points the server at it through the
environment (which its server processes inherit), so that trial → Checkout → active works on a
laptop. Production sets the real key and never reaches this."""

from __future__ import annotations

import os
import secrets

from replyhq.billing.fake_stripe import FakeStripe, FakeStripeThread
from replyhq.billing.plans import PLANS
from replyhq.settings import Settings


def prepare(settings: Settings, public_url: str) -> FakeStripeThread | None:
    """Start the fake (returned, for the caller to stop) unless Stripe is configured."""
    if settings.environment != "development" or settings.stripe_secret_key:
        return None
    fake = FakeStripe(
        api_key=f"sk_test_replyhq_dev_{secrets.token_hex(8)}",
        webhook_secret=f"whsec_replyhq_dev_{secrets.token_hex(8)}",
        webhook_url=public_url.rstrip("/") + "/webhooks/stripe",
    )
    for plan in PLANS.values():
        fake.add_price(plan.price_id(settings), plan.monthly_usd * 100, plan.name)
    running = FakeStripeThread(fake)
    url = running.start()
    os.environ.update(
        {
            "STRIPE_SECRET_KEY": fake.api_key,
            "STRIPE_WEBHOOK_SECRET": fake.webhook_secret,
            "STRIPE_API_BASE": url,
        }
    )
    return running
