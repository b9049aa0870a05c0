"""A small, strict stand-in for Stripe's API, for `make dev` and the tests.

It speaks Stripe's wire format for what ReplyHQ calls: form-encoded requests with bracketed keys
(`line_items[0][price]`), a secret key as Bearer token, JSON objects carrying `object` and `id`,
errors as `{"error": {type, message, param, code}}` with Stripe's statuses (400 for a bad or
unknown parameter, 401 for a missing or wrong key, 404 `resource_missing`), and replays of an
`Idempotency-Key`. Resources: customers, prices, Checkout Sessions (subscription mode, with a
hosted page that "pays"), billing portal sessions (with a page that cancels), subscriptions and
invoice previews. Events are delivered to a webhook endpoint signed as Stripe signs them
(`Stripe-Signature: t=<unix>,v1=<HMAC-SHA256 of "t.payload">`).

Point the real `stripe` library at it with STRIPE_API_BASE. It keeps everything in memory; one
fake is one Stripe account in test mode. It is not Stripe: only the parameters listed in
`ALLOWED` are accepted (anything else is refused, as Stripe refuses unknown parameters).

The package: `wire` (Stripe's formats), `account` (the objects and events), `server` (the HTTP API,
hosted pages, and serving it).
"""

from replyhq.billing.fake_stripe.account import Delivery, FakeStripe
from replyhq.billing.fake_stripe.server import FakeStripeThread, StripeHttp, serve
from replyhq.billing.fake_stripe.wire import decode_form, public, sign

__all__ = [
    "Delivery",
    "FakeStripe",
    "FakeStripeThread",
    "StripeHttp",
    "decode_form",
    "public",
    "serve",
    "sign",
]
