"""The fake Stripe account: its objects (customers, prices, Checkout Sessions, billing portal
sessions, subscriptions, invoices) and its events, delivered to the webhook endpoint signed."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, ClientTimeout

from replyhq.billing.fake_stripe.wire import (
    API_VERSION,
    StripeError,
    boolean_param,
    integer_param,
    invalid,
    list_param,
    metadata_param,
    missing,
    public,
    sign,
)

MIN_TRIAL_SECONDS = 48 * 3600  # Stripe refuses a trial_end less than 48 hours away
MONTH_SECONDS = 30 * 24 * 3600


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
        metadata_param(params)
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
        amount = integer_param(params, "unit_amount")
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
            metadata=metadata_param(params),
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
            quantity = integer_param(item, "quantity", f"line_items[{index}][quantity]", default=1)
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
            trial_end = integer_param(
                subscription_data, "trial_end", "subscription_data[trial_end]"
            )
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
            metadata=metadata_param(params),
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
            session["customer"], session["_line_items"], metadata_param(data), trial_end
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
            for index, item in enumerate(list_param(params, "items")):
                price = self.get(item.get("price", ""), "price", f"items[{index}][price]")
                target = self._item(subscription, item.get("id"), f"items[{index}][id]")
                target["price"] = price
        if "cancel_at_period_end" in params:
            previous["cancel_at_period_end"] = subscription["cancel_at_period_end"]
            subscription["cancel_at_period_end"] = boolean_param(params, "cancel_at_period_end")
        if "metadata" in params:
            previous["metadata"] = subscription["metadata"]
            subscription["metadata"] = {**subscription["metadata"], **metadata_param(params)}
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
        now = integer_param(
            details, "proration_date", "subscription_details[proration_date]", default=self.now()
        )
        lines: list[dict[str, Any]] = []
        subscription_id = params.get("subscription")
        if subscription_id is None:  # a new subscription: its first invoice
            for index, item in enumerate(
                list_param(details, "items", "subscription_details[items]")
            ):
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
                list_param(details, "items", "subscription_details[items]")
                if "items" in details
                else []
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

    def create_portal_session(self, params: dict[str, Any]) -> dict[str, Any]:
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
