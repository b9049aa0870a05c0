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
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import html
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import ClientSession, ClientTimeout, web

API_VERSION = "2026-10-28.endive"  # the pinned `stripe` library's version
MIN_TRIAL_SECONDS = 48 * 3600  # Stripe refuses a trial_end less than 48 hours away
MONTH_SECONDS = 30 * 24 * 3600

# Parameters each call accepts (top-level names); Stripe refuses any other.
ALLOWED: dict[str, set[str]] = {
    "customers.create": {"email", "name", "metadata", "description", "expand"},
    "prices.create": {
        "currency",
        "unit_amount",
        "recurring",
        "product_data",
        "product",
        "lookup_key",
        "nickname",
        "metadata",
        "expand",
    },
    "checkout.create": {
        "mode",
        "line_items",
        "success_url",
        "cancel_url",
        "customer",
        "customer_email",
        "client_reference_id",
        "metadata",
        "subscription_data",
        "allow_promotion_codes",
        "expand",
    },
    "portal.create": {"customer", "return_url", "expand"},
    "subscriptions.update": {
        "items",
        "proration_behavior",
        "proration_date",
        "cancel_at_period_end",
        "metadata",
        "expand",
    },
    "subscriptions.cancel": {"expand", "prorate", "invoice_now"},
    "invoices.create_preview": {
        "customer",
        "subscription",
        "subscription_details",
        "expand",
    },
    "retrieve": {"expand"},
}


class StripeError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = (
            status,
            message,
            type,
            param,
            code,
        )

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.param is not None:
            error["param"] = self.param
        if self.code is not None:
            error["code"] = self.code
        return {"error": error}


def missing(param: str) -> StripeError:
    return StripeError(
        400, f"Missing required param: {param}.", param=param, code="parameter_missing"
    )


def invalid(param: str, message: str) -> StripeError:
    return StripeError(400, message, param=param, code="parameter_invalid")


def decode_form(body: str) -> dict[str, Any]:
    """Stripe's bracketed form encoding (`a[b][0][c]=v`) into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True, strict_parsing=False):
        head, _, rest = key.partition("[")
        parts = [head] + ([p.rstrip("]") for p in ("[" + rest).split("[")[1:]] if rest else [])
        node = root
        for part, following in itertools.zip_longest(parts, parts[1:]):
            if following is None:
                node[part] = value
            else:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise invalid(key, f"Invalid parameter: {key}.")
    decoded: dict[str, Any] = _lists(root)
    return decoded


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _lists(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header Stripe sends with `payload`."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


@dataclass
class Delivery:
    event: dict[str, Any]
    status: int | None = None
    error: str | None = None


@dataclass
class FakeStripe:
    """The account's state. `webhook_url`/`webhook_secret`: where events go (none: only kept)."""

    api_key: str = "sk_test_fake"
    webhook_url: str | None = None
    webhook_secret: str = "whsec_fake"  # noqa: S105 - a test-mode fake's own
    base_url: str = ""  # set once serving: hosted pages' links
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    # The next N API calls fail with a 500 api_error (a Stripe outage).
    fail_next: int = 0
    _idempotent: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    _pending: set[asyncio.Task[Delivery]] = field(default_factory=set)
    clock: Callable[[], float] = time.time

    # --- objects ---------------------------------------------------------------------------

    def now(self) -> int:
        return int(self.clock())

    def _new(self, prefix: str, kind: str, **values: Any) -> dict[str, Any]:
        obj = {
            "id": f"{prefix}_{secrets.token_hex(12)}",
            "object": kind,
            "created": self.now(),
            "livemode": False,
            **values,
        }
        self.objects[obj["id"]] = obj
        return obj

    def get(self, object_id: str, kind: str, param: str = "id") -> dict[str, Any]:
        obj = self.objects.get(object_id)
        if obj is None or obj["object"] != kind:
            raise StripeError(
                404,
                f"No such {kind.replace('.', ' ').replace('_', ' ')}: '{object_id}'",
                param=param,
                code="resource_missing",
            )
        return obj

    def add_price(
        self, price_id: str, unit_amount: int, product_name: str, currency: str = "usd"
    ) -> dict[str, Any]:
        """A monthly price with a chosen id (as a dashboard-made price the settings name)."""
        product = self._new("prod", "product", name=product_name, active=True)
        price = {
            "id": price_id,
            "object": "price",
            "created": self.now(),
            "livemode": False,
            "active": True,
            "currency": currency,
            "unit_amount": unit_amount,
            "product": product["id"],
            "nickname": product_name,
            "recurring": {"interval": "month", "interval_count": 1},
            "type": "recurring",
            "lookup_key": None,
            "metadata": {},
        }
        self.objects[price_id] = price
        return price

    def create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        _metadata(params)
        return self._new(
            "cus",
            "customer",
            email=params.get("email"),
            name=params.get("name"),
            description=params.get("description"),
            metadata=params.get("metadata", {}),
        )

    def create_price(self, params: dict[str, Any]) -> dict[str, Any]:
        for name in ("currency", "unit_amount"):
            if name not in params:
                raise missing(name)
        amount = _integer(params, "unit_amount")
        if "product" not in params and "product_data" not in params:
            raise missing("product")
        product: str | None = params.get("product")
        if product is None:
            data = params["product_data"]
            product_name = str(data.get("name") or "") if isinstance(data, dict) else ""
            if not product_name:
                raise missing("product_data[name]")
            product = self._new("prod", "product", name=product_name, active=True)["id"]
        else:
            self.get(product, "product", "product")
        recurring = params.get("recurring")
        if recurring is not None and recurring.get("interval") not in (
            "day",
            "week",
            "month",
            "year",
        ):
            raise invalid(
                "recurring[interval]",
                "Invalid recurring[interval]: must be one of day, week, month, or year",
            )
        return self._new(
            "price",
            "price",
            active=True,
            currency=str(params["currency"]).lower(),
            unit_amount=amount,
            product=product,
            nickname=params.get("nickname"),
            recurring=recurring and {"interval": recurring["interval"], "interval_count": 1},
            type="recurring" if recurring else "one_time",
            lookup_key=params.get("lookup_key"),
            metadata=_metadata(params),
        )

    def create_checkout_session(self, params: dict[str, Any]) -> dict[str, Any]:
        mode = params.get("mode")
        if mode is None:
            raise missing("mode")
        if mode not in ("payment", "setup", "subscription"):
            raise invalid("mode", "Invalid mode: must be one of payment, setup, or subscription")
        if mode != "subscription":
            raise invalid("mode", "This fake only creates subscription-mode sessions.")
        if "success_url" not in params:
            raise missing("success_url")
        for name in ("success_url", "cancel_url"):
            if name in params and not str(params[name]).startswith(("http://", "https://")):
                raise invalid(name, "Not a valid URL")
        if "customer" in params and "customer_email" in params:
            raise invalid(
                "customer_email",
                "You may only specify one of these parameters: customer, customer_email.",
            )
        if "customer" in params:
            self.get(params["customer"], "customer", "customer")
        items = params.get("line_items")
        if not isinstance(items, list) or not items:
            raise missing("line_items")
        line_items = []
        for index, item in enumerate(items):
            if not isinstance(item, dict) or "price" not in item:
                raise missing(f"line_items[{index}][price]")
            price = self.get(item["price"], "price", f"line_items[{index}][price]")
            if price["type"] != "recurring":
                raise invalid(
                    f"line_items[{index}][price]",
                    "You must specify at least one recurring price in `subscription` mode "
                    "when using prices.",
                )
            quantity = _integer(item, "quantity", f"line_items[{index}][quantity]", default=1)
            line_items.append({"price": price["id"], "quantity": quantity})
        subscription_data = params.get("subscription_data", {})
        if not isinstance(subscription_data, dict):
            raise invalid("subscription_data", "Invalid object")
        unknown = set(subscription_data) - {
            "metadata",
            "trial_end",
            "trial_period_days",
            "description",
        }
        if unknown:
            name = sorted(unknown)[0]
            raise StripeError(
                400,
                f"Received unknown parameter: subscription_data[{name}]",
                param=f"subscription_data[{name}]",
                code="parameter_unknown",
            )
        if "trial_end" in subscription_data:
            trial_end = _integer(subscription_data, "trial_end", "subscription_data[trial_end]")
            if trial_end < self.now() + MIN_TRIAL_SECONDS:
                raise invalid(
                    "subscription_data[trial_end]",
                    "The `trial_end` date has to be at least 2 days in the future.",
                )
        session = self._new(
            "cs_test",
            "checkout.session",
            mode=mode,
            status="open",
            payment_status="unpaid",
            success_url=params["success_url"],
            cancel_url=params.get("cancel_url"),
            customer=params.get("customer"),
            customer_email=params.get("customer_email"),
            client_reference_id=params.get("client_reference_id"),
            metadata=_metadata(params),
            subscription=None,
            expires_at=self.now() + 24 * 3600,
        )
        session["url"] = f"{self.base_url}/checkout/{session['id']}"
        # Kept aside: the session object Stripe returns does not show these.
        session["_line_items"] = line_items
        session["_subscription_data"] = subscription_data
        return session

    def complete_checkout(self, session_id: str) -> dict[str, Any]:
        """What the customer paying on the hosted page does: a customer if there was none, the
        subscription (trialing until subscription_data[trial_end], else active and its first
        invoice paid), and the events Stripe sends for it."""
        session = self.get(session_id, "checkout.session")
        if session["status"] != "open":
            raise StripeError(
                400, "This Checkout Session is no longer open.", code="checkout_session_not_open"
            )
        if session["customer"] is None:
            session["customer"] = self.create_customer({"email": session["customer_email"]})["id"]
        data = session["_subscription_data"]
        trial_end = int(data["trial_end"]) if "trial_end" in data else None
        subscription = self._new_subscription(
            session["customer"], session["_line_items"], _metadata(data), trial_end
        )
        session.update(status="complete", payment_status="paid", subscription=subscription["id"])
        self.emit("customer.subscription.created", subscription)
        self.emit("checkout.session.completed", session)
        invoice = self._invoice(subscription, paid=True)
        self.emit("invoice.paid", invoice)
        return session

    def _new_subscription(
        self,
        customer: str,
        line_items: list[dict[str, Any]],
        metadata: dict[str, str],
        trial_end: int | None,
    ) -> dict[str, Any]:
        start = self.now()
        end = trial_end or start + MONTH_SECONDS
        subscription = self._new(
            "sub",
            "subscription",
            customer=customer,
            status="trialing" if trial_end else "active",
            cancel_at_period_end=False,
            canceled_at=None,
            ended_at=None,
            trial_end=trial_end,
            metadata=metadata,
            latest_invoice=None,
        )
        subscription["items"] = {
            "object": "list",
            "data": [
                {
                    "id": f"si_{secrets.token_hex(8)}",
                    "object": "subscription_item",
                    "price": self.objects[item["price"]],
                    "quantity": item["quantity"],
                    "current_period_start": start,
                    "current_period_end": end,
                    "subscription": subscription["id"],
                }
                for item in line_items
            ],
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={subscription['id']}",
        }
        return subscription

    def _invoice(self, subscription: dict[str, Any], *, paid: bool) -> dict[str, Any]:
        amount = sum(
            item["price"]["unit_amount"] * item["quantity"]
            for item in subscription["items"]["data"]
        )
        if subscription["status"] == "trialing":
            amount = 0
        invoice = self._new(
            "in",
            "invoice",
            customer=subscription["customer"],
            status="paid" if paid else "open",
            currency="usd",
            amount_due=amount,
            amount_paid=amount if paid else 0,
            attempt_count=1,
            parent={
                "type": "subscription_details",
                "subscription_details": {
                    "subscription": subscription["id"],
                    "metadata": subscription["metadata"],
                },
            },
        )
        subscription["latest_invoice"] = invoice["id"]
        return invoice

    def fail_payment(self, subscription_id: str) -> dict[str, Any]:
        """A renewal whose card is declined: the invoice open, the subscription past_due."""
        subscription = self.get(subscription_id, "subscription")
        invoice = self._invoice(subscription, paid=False)
        subscription["status"] = "past_due"
        self.emit("invoice.payment_failed", invoice)
        self.emit("customer.subscription.updated", subscription, {"status": "active"})
        return invoice

    def update_subscription(self, subscription_id: str, params: dict[str, Any]) -> dict[str, Any]:
        subscription = self.get(subscription_id, "subscription")
        if subscription["status"] == "canceled":
            raise StripeError(
                400,
                "A canceled subscription can only update its cancellation_details and metadata.",
            )
        behavior = params.get("proration_behavior", "create_prorations")
        if behavior not in ("create_prorations", "none", "always_invoice"):
            raise invalid("proration_behavior", "Invalid proration_behavior")
        previous: dict[str, Any] = {}
        if "items" in params:
            previous["items"] = json.loads(json.dumps(subscription["items"]))
            for index, item in enumerate(_list(params, "items")):
                price = self.get(item.get("price", ""), "price", f"items[{index}][price]")
                target = self._item(subscription, item.get("id"), f"items[{index}][id]")
                target["price"] = price
        if "cancel_at_period_end" in params:
            previous["cancel_at_period_end"] = subscription["cancel_at_period_end"]
            subscription["cancel_at_period_end"] = _boolean(params, "cancel_at_period_end")
        if "metadata" in params:
            previous["metadata"] = subscription["metadata"]
            subscription["metadata"] = {**subscription["metadata"], **_metadata(params)}
        self.emit("customer.subscription.updated", subscription, previous)
        return subscription

    def cancel_subscription(self, subscription_id: str) -> dict[str, Any]:
        subscription = self.get(subscription_id, "subscription")
        if subscription["status"] == "canceled":
            raise StripeError(400, "This subscription has already been canceled.")
        subscription.update(status="canceled", canceled_at=self.now(), ended_at=self.now())
        self.emit("customer.subscription.deleted", subscription)
        return subscription

    def _item(
        self, subscription: dict[str, Any], item_id: str | None, param: str
    ) -> dict[str, Any]:
        items = subscription["items"]["data"]
        if item_id is None:
            raise missing(param)
        for item in items:
            if item["id"] == item_id:
                found: dict[str, Any] = item
                return found
        raise invalid(
            param,
            f"Subscription item {item_id} does not belong to subscription {subscription['id']}.",
        )

    def preview_invoice(self, params: dict[str, Any]) -> dict[str, Any]:
        """The invoice a subscription change would produce now: credit for the unused time of
        the current price, charge for the rest of the period at the new one."""
        if "customer" not in params and "subscription" not in params:
            raise missing("customer")
        customer = params.get("customer")
        if customer is not None:
            self.get(customer, "customer", "customer")
        details = params.get("subscription_details", {})
        if not isinstance(details, dict):
            raise invalid("subscription_details", "Invalid object")
        now = _integer(
            details, "proration_date", "subscription_details[proration_date]", default=self.now()
        )
        lines: list[dict[str, Any]] = []
        subscription_id = params.get("subscription")
        if subscription_id is None:  # a new subscription: its first invoice
            for index, item in enumerate(_list(details, "items", "subscription_details[items]")):
                price = self.get(
                    item.get("price", ""), "price", f"subscription_details[items][{index}][price]"
                )
                lines.append(
                    _line(price["unit_amount"], f"1 x {price['nickname']}", proration=False)
                )
            next_payment = now
        else:
            subscription = self.get(subscription_id, "subscription", "subscription")
            if customer is not None and subscription["customer"] != customer:
                raise invalid("subscription", "The subscription does not belong to this customer.")
            item_changes = (
                _list(details, "items", "subscription_details[items]") if "items" in details else []
            )
            for index, change in enumerate(item_changes):
                target = self._item(
                    subscription, change.get("id"), f"subscription_details[items][{index}][id]"
                )
                new = self.get(
                    change.get("price", ""), "price", f"subscription_details[items][{index}][price]"
                )
                start, end = target["current_period_start"], target["current_period_end"]
                left = max(0.0, min(1.0, (end - now) / max(1, end - start)))
                old = target["price"]
                if subscription["status"] != "trialing":
                    lines.append(
                        _line(
                            -round(old["unit_amount"] * left),
                            f"Unused time on {old['nickname']}",
                            proration=True,
                        )
                    )
                    lines.append(
                        _line(
                            round(new["unit_amount"] * left),
                            f"Remaining time on {new['nickname']}",
                            proration=True,
                        )
                    )
            for item in subscription["items"]["data"]:
                price = next(
                    (self.objects[c["price"]] for c in item_changes if c.get("id") == item["id"]),
                    item["price"],
                )
                lines.append(
                    _line(
                        price["unit_amount"] * item["quantity"],
                        f"1 x {price['nickname']}",
                        proration=False,
                    )
                )
            next_payment = subscription["items"]["data"][0]["current_period_end"]
        total = sum(line["amount"] for line in lines)
        return {
            "id": None,
            "object": "invoice",
            "created": self.now(),
            "livemode": False,
            "customer": customer,
            "currency": "usd",
            "status": "draft",
            "amount_due": max(0, total),
            "subtotal": total,
            "total": total,
            "next_payment_attempt": next_payment,
            "period_end": next_payment,
            "lines": {
                "object": "list",
                "data": lines,
                "has_more": False,
                "url": "/v1/invoices/upcoming/lines",
            },
        }

    # --- events ----------------------------------------------------------------------------

    def emit(
        self, kind: str, obj: dict[str, Any], previous: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"object": public(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        event = self._new(
            "evt",
            "event",
            api_version=API_VERSION,
            type=kind,
            data=data,
            pending_webhooks=1 if self.webhook_url else 0,
            request={"id": None, "idempotency_key": None},
        )
        self.events.append(event)
        if self.webhook_url:
            task = asyncio.get_running_loop().create_task(self.deliver(event))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        return event

    async def deliver(
        self,
        event: dict[str, Any],
        *,
        url: str | None = None,
        secret: str | None = None,
        timestamp: int | None = None,
    ) -> Delivery:
        """POST `event` to the webhook endpoint, signed (a chosen timestamp makes a stale one)."""
        payload = json.dumps(event, indent=2)
        delivery = Delivery(event)
        self.deliveries.append(delivery)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": sign(payload, secret or self.webhook_secret, timestamp),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        target = url or self.webhook_url
        assert target, "no webhook endpoint"
        try:
            async with (
                ClientSession(timeout=ClientTimeout(total=30)) as client,
                client.post(target, data=payload.encode(), headers=headers) as response,
            ):
                delivery.status = response.status
        except Exception as error:  # Stripe retries later; the fake only records it
            delivery.error = repr(error)
        return delivery

    async def settle(self) -> None:
        """Wait until every webhook delivery begun so far has finished."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    # --- HTTP ------------------------------------------------------------------------------

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._errors])
        app.add_routes(
            [
                web.post("/v1/customers", self._api("customers.create", self.create_customer)),
                web.get("/v1/customers/{id}", self._retrieve("customer")),
                web.post("/v1/prices", self._api("prices.create", self.create_price)),
                web.get("/v1/prices/{id}", self._retrieve("price")),
                web.post(
                    "/v1/checkout/sessions",
                    self._api("checkout.create", self.create_checkout_session),
                ),
                web.get("/v1/checkout/sessions/{id}", self._retrieve("checkout.session")),
                web.post("/v1/billing_portal/sessions", self._api("portal.create", self._portal)),
                web.get("/v1/subscriptions/{id}", self._retrieve("subscription")),
                web.post("/v1/subscriptions/{id}", self._update_subscription),
                web.delete("/v1/subscriptions/{id}", self._cancel_subscription),
                web.post(
                    "/v1/invoices/create_preview",
                    self._api("invoices.create_preview", self.preview_invoice),
                ),
                web.get("/checkout/{id}", self._checkout_page),
                web.post("/checkout/{id}/pay", self._checkout_pay),
                web.get("/portal/{id}", self._portal_page),
                web.post("/portal/{id}/cancel", self._portal_cancel),
            ]
        )
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except StripeError as error:
            return web.json_response(
                error.body(),
                status=error.status,
                headers={"Request-Id": f"req_{secrets.token_hex(7)}"},
            )

    async def _authorise(self, request: web.Request, operation: str) -> dict[str, Any]:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header[7:]:
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth.",
            )
        if not hmac.compare_digest(header[7:], self.api_key):
            raise StripeError(401, f"Invalid API Key provided: {header[7:12]}****")
        if self.fail_next > 0:
            self.fail_next -= 1
            raise StripeError(500, "An unknown error occurred", type="api_error")
        body = await request.text()
        if (
            request.method == "POST"
            and body
            and not request.content_type.startswith("application/x-www-form-urlencoded")
        ):
            raise StripeError(400, "Invalid request: expected a form-encoded body.")
        params = decode_form(body if request.method == "POST" else request.query_string)
        allowed = ALLOWED[operation]
        for name in params:
            if name not in allowed:
                raise StripeError(
                    400,
                    f"Received unknown parameter: {name}",
                    param=name,
                    code="parameter_unknown",
                )
        self.requests.append((request.method, request.path, params))
        return params

    def _api(
        self, operation: str, create: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            params = await self._authorise(request, operation)
            key = request.headers.get("Idempotency-Key")
            if key and key in self._idempotent:
                status, body = self._idempotent[key]
                return web.json_response(
                    body, status=status, headers={"Idempotent-Replayed": "true"}
                )
            body = public(create(params))
            if key:
                self._idempotent[key] = (200, body)
            return web.json_response(body)

        return handle

    def _retrieve(self, kind: str) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            await self._authorise(request, "retrieve")
            return web.json_response(public(self.get(request.match_info["id"], kind)))

        return handle

    async def _update_subscription(self, request: web.Request) -> web.Response:
        params = await self._authorise(request, "subscriptions.update")
        return web.json_response(public(self.update_subscription(request.match_info["id"], params)))

    async def _cancel_subscription(self, request: web.Request) -> web.Response:
        await self._authorise(request, "subscriptions.cancel")
        return web.json_response(public(self.cancel_subscription(request.match_info["id"])))

    def _portal(self, params: dict[str, Any]) -> dict[str, Any]:
        if "customer" not in params:
            raise missing("customer")
        self.get(params["customer"], "customer", "customer")
        if "return_url" in params and not str(params["return_url"]).startswith(
            ("http://", "https://")
        ):
            raise invalid("return_url", "Not a valid URL")
        session = self._new(
            "bps",
            "billing_portal.session",
            customer=params["customer"],
            return_url=params.get("return_url"),
        )
        session["url"] = f"{self.base_url}/portal/{session['id']}"
        return session

    # --- hosted pages (what the customer sees on checkout.stripe.com and the portal) --------

    async def _checkout_page(self, request: web.Request) -> web.Response:
        session = self._page_object(request, "checkout.session")
        rows = "".join(
            f"<li>{html.escape(str(self.objects[i['price']]['nickname']))}: "
            f"${self.objects[i['price']]['unit_amount'] / 100:.2f} per month</li>"
            for i in session["_line_items"]
        )
        form = (
            f'<form method="post" action="/checkout/{session["id"]}/pay">'
            '<button type="submit">Subscribe</button></form>'
            if session["status"] == "open"
            else "<p>This session is complete.</p>"
        )
        return _page("Checkout (fake Stripe)", f"<ul>{rows}</ul>{form}")

    async def _checkout_pay(self, request: web.Request) -> web.Response:
        session = self._page_object(request, "checkout.session")
        self.complete_checkout(session["id"])
        target = str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session["id"])
        raise web.HTTPSeeOther(target)

    async def _portal_page(self, request: web.Request) -> web.Response:
        portal = self._page_object(request, "billing_portal.session")
        live = [
            o
            for o in self.objects.values()
            if o["object"] == "subscription"
            and o["customer"] == portal["customer"]
            and o["status"] != "canceled"
        ]
        body = (
            "".join(
                f"<p>Subscription {html.escape(s['id'])}: {html.escape(s['status'])}"
                f"{' (cancels at period end)' if s['cancel_at_period_end'] else ''}</p>"
                for s in live
            )
            or "<p>No subscription.</p>"
        )
        if live and not live[0]["cancel_at_period_end"]:
            body += (
                f'<form method="post" action="/portal/{portal["id"]}/cancel">'
                '<button type="submit">Cancel plan</button></form>'
            )
        if portal["return_url"]:
            body += f'<p><a href="{html.escape(portal["return_url"])}">Return</a></p>'
        return _page("Billing portal (fake Stripe)", body)

    async def _portal_cancel(self, request: web.Request) -> web.Response:
        portal = self._page_object(request, "billing_portal.session")
        for obj in list(self.objects.values()):
            if (
                obj["object"] == "subscription"
                and obj["customer"] == portal["customer"]
                and obj["status"] != "canceled"
            ):
                self.update_subscription(obj["id"], {"cancel_at_period_end": "true"})
        raise web.HTTPSeeOther(portal["return_url"] or f"/portal/{portal['id']}")

    def _page_object(self, request: web.Request, kind: str) -> dict[str, Any]:
        try:
            return self.get(request.match_info["id"], kind)
        except StripeError:
            raise web.HTTPNotFound() from None


def public(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as the API shows it (without the fake's own bookkeeping)."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def _page(title: str, body: str) -> web.Response:
    return web.Response(
        text=f"<!doctype html><title>{title}</title><h1>{title}</h1>{body}",
        content_type="text/html",
    )


def _line(amount: int, description: str, *, proration: bool) -> dict[str, Any]:
    return {
        "id": f"il_tmp_{secrets.token_hex(8)}",
        "object": "line_item",
        "amount": amount,
        "currency": "usd",
        "description": description,
        "parent": {
            "type": "subscription_item_details",
            "subscription_item_details": {"proration": proration},
        },
    }


def _metadata(params: dict[str, Any]) -> dict[str, str]:
    metadata = params.get("metadata", {})
    if metadata == "":
        return {}
    if not isinstance(metadata, dict) or any(
        isinstance(v, (dict, list)) for v in metadata.values()
    ):
        raise invalid("metadata", "Invalid object")
    if len(metadata) > 50:
        raise invalid("metadata", "Metadata can have at most 50 keys.")
    return {str(k): str(v) for k, v in metadata.items()}


def _integer(
    params: dict[str, Any], name: str, param: str | None = None, *, default: int | None = None
) -> int:
    if name not in params:
        if default is None:
            raise missing(param or name)
        return default
    try:
        return int(params[name])
    except (TypeError, ValueError):
        raise invalid(param or name, f"Invalid integer: {params[name]}") from None


def _boolean(params: dict[str, Any], name: str) -> bool:
    value = params[name]
    if value not in ("true", "false"):
        raise invalid(name, f"Invalid boolean: {value}")
    return bool(value == "true")


def _list(params: dict[str, Any], name: str, param: str | None = None) -> list[dict[str, Any]]:
    value = params.get(name)
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise invalid(param or name, "Invalid array")
    return value


# --- running it --------------------------------------------------------------------------------


async def serve(
    fake: FakeStripe, host: str = "127.0.0.1", port: int = 0
) -> tuple[str, web.AppRunner]:
    """Serve `fake` on host:port (0: a free port) in the running loop; (its base URL, runner)."""
    runner = web.AppRunner(fake.application(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    fake.base_url = f"http://{host}:{bound}"
    return fake.base_url, runner


class FakeStripeThread:
    """The fake in a thread of its own (its own event loop), for `make dev`."""

    def __init__(self, fake: FakeStripe, host: str = "127.0.0.1", port: int = 0) -> None:
        self.fake = fake
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, args=(host, port), daemon=True)
        self.url = ""

    def start(self) -> str:
        self._thread.start()
        self._ready.wait(10)
        return self.url

    def _run(self, host: str, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        self.url, runner = self._loop.run_until_complete(serve(self.fake, host, port))
        self._ready.set()
        with contextlib.suppress(Exception):
            self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
