"""The official `stripe` library, configured from settings: STRIPE_SECRET_KEY, and STRIPE_API_BASE
(Stripe, or the local fake of replyhq.billing.fake_stripe). Async calls go through aiohttp."""

from __future__ import annotations

import asyncio

import stripe

from replyhq.errors import AppError
from replyhq.settings import Settings

TIMEOUT_SECONDS = 20.0

_clients: dict[tuple[int, str, str], stripe.StripeClient] = {}


class StripeUnavailable(AppError):
    status_code = 502
    code = "STRIPE_UNAVAILABLE"
    message = "Stripe did not answer as expected; try again in a minute."


def client(settings: Settings) -> stripe.StripeClient:
    """One client per event loop (its aiohttp session belongs to the loop)."""
    key = settings.stripe_secret_key
    if not key:
        raise RuntimeError("billing is off: STRIPE_SECRET_KEY is unset")
    loop = id(asyncio.get_running_loop())
    cache_key = (loop, key, settings.stripe_api_base)
    found = _clients.get(cache_key)
    if found is None:
        found = stripe.StripeClient(
            key,
            base_addresses={"api": settings.stripe_api_base.rstrip("/")},
            http_client=stripe.AIOHTTPClient(timeout=TIMEOUT_SECONDS),
            max_network_retries=2,
        )
        _clients[cache_key] = found
    return found


def unavailable(error: stripe.StripeError) -> StripeUnavailable:
    """A Stripe failure as our 502 (the message says what Stripe said, never the key)."""
    said = getattr(error, "user_message", None) or type(error).__name__
    return StripeUnavailable(f"Stripe did not answer as expected ({said}); try again in a minute.")
