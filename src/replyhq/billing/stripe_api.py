"""The official `stripe` library, configured from settings: STRIPE_SECRET_KEY, and STRIPE_API_BASE
(Stripe, or the local fake of replyhq.billing.fake_stripe). Async calls go through aiohttp."""

from __future__ import annotations

import asyncio

import stripe

from replyhq.errors import AppError
from replyhq.settings import Settings

TIMEOUT_SECONDS = 20.0

# (secret key, API base) -> the loop it was made in, its HTTP client, the Stripe client.
_clients: dict[
    tuple[str, str],
    tuple[asyncio.AbstractEventLoop, stripe.AIOHTTPClient, stripe.StripeClient],
] = {}


class StripeUnavailable(AppError):
    status_code = 502
    code = "STRIPE_UNAVAILABLE"
    message = "Stripe did not answer as expected; try again in a minute."


def client(settings: Settings) -> stripe.StripeClient:
    """The process' client (its aiohttp session belongs to the running loop: another loop gets
    a new one)."""
    key = settings.stripe_secret_key
    if not key:
        raise RuntimeError("billing is off: STRIPE_SECRET_KEY is unset")
    loop = asyncio.get_running_loop()
    cache_key = (key, settings.stripe_api_base)
    found = _clients.get(cache_key)
    if found is None or found[0] is not loop:
        http = stripe.AIOHTTPClient(timeout=TIMEOUT_SECONDS)
        api = stripe.StripeClient(
            key,
            base_addresses={"api": settings.stripe_api_base.rstrip("/")},
            http_client=http,
            max_network_retries=2,
        )
        found = (loop, http, api)
        _clients[cache_key] = found
    return found[2]


async def close_clients() -> None:
    """Close the clients made in the running loop (at shutdown)."""
    loop = asyncio.get_running_loop()
    for cache_key, (owner, http, _) in list(_clients.items()):
        if owner is loop:
            del _clients[cache_key]
            await http.close_async()  # type: ignore[no-untyped-call]


def unavailable(error: stripe.StripeError) -> StripeUnavailable:
    """A Stripe failure as our 502 (the message says what Stripe said, never the key)."""
    said = getattr(error, "user_message", None) or type(error).__name__
    return StripeUnavailable(f"Stripe did not answer as expected ({said}); try again in a minute.")
