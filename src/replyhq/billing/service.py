"""Billing: an app's plan and standing, Checkout, the portal and the proration preview.

Every app has a subscription row, made when the app is created (sign-up) or, at the latest, by
the next run of the billing.notices job or the first look at it; its trial runs BILLING_TRIAL_DAYS
from then (from the app's creation for a new app; from when billing was turned on for an app that
existed before, which is not cut off at once). Stripe's state reaches the row through webhooks
(stripe_events.py) and, for a plan change made here, through Stripe's answer. With no
STRIPE_SECRET_KEY billing is off: nothing is limited and the routes say so.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

import stripe
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.billing.models import Subscription
from replyhq.billing.plans import PLANS, TRIAL_LIMITS, Limits, Plan, plan_of_price
from replyhq.billing.schemas import (
    Amounts,
    BillingOut,
    PlanOut,
    PreviewLine,
    PreviewOut,
    Warning_,
)
from replyhq.billing.stripe_api import client, unavailable
from replyhq.errors import AppError, Conflict, NotFound
from replyhq.mail.service import link
from replyhq.settings import Settings

BILLING_PAGE = "/dashboard/billing"
LIVE = ("trialing", "active", "past_due")  # a Stripe subscription that is not over
MIN_CHECKOUT_TRIAL = dt.timedelta(hours=49)  # Stripe wants a trial_end 48 hours away at least
WARNING_LEVELS = (100, 80)

# Stripe's subscription statuses, as the four we keep.
STATUS_OF_STRIPE = {
    "trialing": "trialing",
    "active": "active",
    "past_due": "past_due",
    "unpaid": "past_due",
    "incomplete": "past_due",
    "paused": "past_due",
    "incomplete_expired": "canceled",
    "canceled": "canceled",
}


class PlanLimitReached(AppError):
    status_code = 402
    code = "PLAN_LIMIT_REACHED"
    message = "This app's plan does not allow new conversations now."


# The 402 in the OpenAPI schema of the route that starts conversations.
REFUSED_NEW_CONVERSATION: dict[int | str, dict[str, Any]] = {
    402: {
        "description": "`PLAN_LIMIT_REACHED`: the app's plan allows no new conversation now "
        "(trial ended, subscription canceled, or the month's limit reached); existing "
        "conversations keep working.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
}


class BillingOff(NotFound):
    code = "BILLING_DISABLED"
    message = "Billing is off on this server (no Stripe key is configured): nothing is limited."


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def month_start(now: dt.datetime) -> dt.date:
    """The usage period that `now` (UTC) falls in: its calendar month."""
    now = now.astimezone(dt.UTC)
    return dt.date(now.year, now.month, 1)


@dataclass(frozen=True)
class Standing:
    """What an app may do now, from its subscription and this month's usage."""

    status: str
    plan: Plan | None
    limits: Limits
    usage: Amounts
    refusal: str | None  # why new conversations are refused, if they are
    warnings: list[tuple[str, int]] = field(default_factory=list)  # (metric, 80 or 100)


def standing(
    *,
    status: str,
    plan_key: str | None,
    has_stripe_subscription: bool,
    trial_ends_at: dt.datetime,
    messages: int,
    mau: int,
    now: dt.datetime,
) -> Standing:
    plan = PLANS.get(plan_key) if plan_key else None
    if status == "trialing" and not has_stripe_subscription and trial_ends_at <= now:
        status = "trial_ended"
    limits = plan.limits if plan is not None and status in LIVE else TRIAL_LIMITS
    usage = Amounts(mau=mau, messages=messages)
    warnings = []
    for metric in ("messages", "mau"):
        used, limit = getattr(usage, metric), getattr(limits, metric)
        level = next((lv for lv in WARNING_LEVELS if used * 100 >= limit * lv), None)
        if level is not None:
            warnings.append((metric, level))
    fix = (
        "Choose a plan under Billing in the ReplyHQ dashboard to start new conversations; "
        "existing conversations keep working."
    )
    refusal = None
    if status == "trial_ended":
        refusal = f"This app's free trial has ended. {fix}"
    elif status == "canceled":
        refusal = f"This app's subscription is canceled. {fix}"
    elif ("messages", 100) in warnings:
        refusal = (
            f"This app has used the {limits.messages:,} messages of its plan this month. "
            "Upgrade under Billing in the ReplyHQ dashboard to start new conversations; "
            "existing conversations keep working."
        )
    elif ("mau", 100) in warnings:
        refusal = (
            f"This app has reached the {limits.mau:,} monthly active users of its plan. "
            "Upgrade under Billing in the ReplyHQ dashboard to start new conversations; "
            "existing conversations keep working."
        )
    return Standing(status, plan, limits, usage, refusal, warnings)


_STANDING = text(
    """
    SELECT a.created_at, s.status, s.plan, s.stripe_subscription_id, s.trial_ends_at,
           coalesce(u.messages, 0) AS messages, coalesce(u.mau, 0) AS mau
    FROM apps a
    LEFT JOIN billing_subscriptions s ON s.app_id = a.id
    LEFT JOIN billing_usage u ON u.app_id = a.id AND u.period = :period
    WHERE a.id = :app_id
    """
)


async def current_standing(
    session: AsyncSession, settings: Settings, app_id: uuid.UUID, now: dt.datetime | None = None
) -> Standing:
    """The app's standing in one query (no row is written: an app without a row yet is at the
    start of its trial)."""
    now = now or utcnow()
    row = (
        (await session.execute(_STANDING, {"app_id": app_id, "period": month_start(now)}))
        .mappings()
        .one()
    )
    trial_ends_at = row["trial_ends_at"] or now + dt.timedelta(days=settings.billing_trial_days)
    return standing(
        status=row["status"] or "trialing",
        plan_key=row["plan"],
        has_stripe_subscription=row["stripe_subscription_id"] is not None,
        trial_ends_at=trial_ends_at,
        messages=row["messages"],
        mau=row["mau"],
        now=now,
    )


async def may_start_conversation(
    session: AsyncSession, settings: Settings, app_id: uuid.UUID
) -> None:
    """Refuse a new conversation (402 PLAN_LIMIT_REACHED) when the app's trial ended without a
    plan, its subscription is canceled, or it used its plan's month. Nothing when billing is
    off. Existing conversations are never refused: this is called for new ones only."""
    if not settings.billing_enabled:
        return
    found = await current_standing(session, settings, app_id)
    if found.refusal is not None:
        raise PlanLimitReached(found.refusal)


_ENSURE = text(
    """
    INSERT INTO billing_subscriptions (app_id, status, trial_ends_at)
    SELECT id, 'trialing', now() + make_interval(days => :days)
    FROM apps WHERE id = :app_id
    ON CONFLICT (app_id) DO NOTHING
    """
)


async def subscription_of(
    session: AsyncSession, settings: Settings, app_id: uuid.UUID, *, lock: bool = False
) -> Subscription | None:
    """The app's subscription row, made (in its trial) if it had none; None for no such app."""
    stmt = select(Subscription).where(Subscription.app_id == app_id)
    if lock:
        stmt = stmt.with_for_update()
    stmt = stmt.execution_options(populate_existing=True)
    found = await session.scalar(stmt)
    if found is None:
        await session.execute(_ENSURE, {"app_id": app_id, "days": settings.billing_trial_days})
        found = await session.scalar(stmt)
    return found


def _plans() -> list[PlanOut]:
    return [
        PlanOut(
            key=p.key,
            name=p.name,
            monthly_usd=p.monthly_usd,
            limits=Amounts(mau=p.limits.mau, messages=p.limits.messages),
        )
        for p in PLANS.values()
    ]


def notice_of(found: Standing, subscription: Subscription, now: dt.datetime) -> str | None:
    """The dashboard banner's sentence."""
    if found.refusal is not None:
        return found.refusal
    if found.status == "past_due":
        return "A payment failed: update the card under Manage payment before Stripe gives up."
    for metric, level in found.warnings:
        what = "messages" if metric == "messages" else "monthly active users"
        return f"This app has used {level} % of its plan's {what} this month."
    if found.status == "trialing" and subscription.stripe_subscription_id is None:
        days = max(0, math.ceil((subscription.trial_ends_at - now).total_seconds() / 86400))
        return (
            f"Free trial: {days} day{'s' if days != 1 else ''} left. Choose a plan to keep going."
        )
    return None


async def overview(session: AsyncSession, settings: Settings, app_id: uuid.UUID) -> BillingOut:
    if not settings.billing_enabled:
        return BillingOut(
            enabled=False,
            plan=None,
            status=None,
            trial_ends_at=None,
            current_period_end=None,
            cancel_at_period_end=False,
            usage=None,
            limits=None,
            period_start=None,
            can_start_conversations=True,
            notice=None,
            warnings=[],
            plans=_plans(),
        )
    now = utcnow()
    subscription = await subscription_of(session, settings, app_id)
    assert subscription is not None  # the caller's own app
    found = await current_standing(session, settings, app_id, now)
    start = month_start(now)
    return BillingOut(
        enabled=True,
        plan=found.plan.key if found.plan else None,
        status=found.status,
        trial_ends_at=subscription.trial_ends_at,
        current_period_end=subscription.current_period_end,
        cancel_at_period_end=subscription.cancel_at_period_end,
        usage=found.usage,
        limits=Amounts(mau=found.limits.mau, messages=found.limits.messages),
        period_start=dt.datetime(start.year, start.month, 1, tzinfo=dt.UTC),
        can_start_conversations=found.refusal is None,
        notice=notice_of(found, subscription, now),
        warnings=[Warning_(metric=m, level=lv) for m, lv in found.warnings],
        plans=_plans(),
    )


def _require_enabled(settings: Settings) -> None:
    if not settings.billing_enabled:
        raise BillingOff()


async def _stripe_item(api: stripe.StripeClient, subscription_id: str) -> dict[str, Any]:
    current = (await api.v1.subscriptions.retrieve_async(subscription_id)).to_dict()
    items: list[dict[str, Any]] = current["items"]["data"]
    return items[0]


async def start_checkout(
    session: AsyncSession,
    settings: Settings,
    app_id: uuid.UUID,
    plan_key: str,
    email: str | None,
) -> str:
    """Where the owner goes to pay for `plan_key`: Stripe Checkout (subscription mode, the app id
    in the subscription's metadata, the trial's remaining days kept), or, for an app that already
    has a live subscription, the billing page after Stripe changed its price (prorated)."""
    _require_enabled(settings)
    subscription = await subscription_of(session, settings, app_id, lock=True)
    assert subscription is not None
    plan = PLANS[plan_key]
    price = plan.price_id(settings)
    api = client(settings)
    try:
        if subscription.stripe_subscription_id and subscription.status in LIVE:
            if subscription.plan == plan.key:
                raise Conflict(f"This app is already on the {plan.name} plan.", code="SAME_PLAN")
            item = await _stripe_item(api, subscription.stripe_subscription_id)
            updated = await api.v1.subscriptions.update_async(
                subscription.stripe_subscription_id,
                {
                    "items": [{"id": item["id"], "price": price}],
                    "proration_behavior": "create_prorations",
                },
            )
            from replyhq.billing.stripe_events import write_subscription

            write_subscription(settings, subscription, updated.to_dict())
            return link(settings, BILLING_PAGE + "?changed=1")
        if subscription.stripe_customer_id is None:
            customer = await api.v1.customers.create_async(
                {"email": email, "metadata": {"app_id": str(app_id)}}
                if email
                else {"metadata": {"app_id": str(app_id)}},
                # A retry after a lost answer finds the customer the first attempt made.
                {"idempotency_key": f"replyhq-customer-{app_id}"},
            )
            subscription.stripe_customer_id = customer.id
        subscription_data: dict[str, Any] = {"metadata": {"app_id": str(app_id)}}
        now = utcnow()
        if (
            subscription.status == "trialing"
            and subscription.trial_ends_at - now >= MIN_CHECKOUT_TRIAL
        ):
            subscription_data["trial_end"] = int(subscription.trial_ends_at.timestamp())
        checkout_params: Any = {
            "mode": "subscription",
            "customer": subscription.stripe_customer_id,
            "line_items": [{"price": price, "quantity": 1}],
            "client_reference_id": str(app_id),
            "metadata": {"app_id": str(app_id)},
            "subscription_data": subscription_data,
            "success_url": link(settings, BILLING_PAGE + "?checkout=success"),
            "cancel_url": link(settings, BILLING_PAGE + "?checkout=canceled"),
        }
        checkout = await api.v1.checkout.sessions.create_async(checkout_params)
    except stripe.StripeError as error:
        raise unavailable(error) from error
    assert checkout.url is not None
    return checkout.url


async def open_portal(session: AsyncSession, settings: Settings, app_id: uuid.UUID) -> str:
    """Stripe's customer portal (card, invoices, cancellation) for the app's customer."""
    _require_enabled(settings)
    subscription = await subscription_of(session, settings, app_id)
    assert subscription is not None
    if subscription.stripe_customer_id is None:
        raise Conflict(
            "This app has no payment details yet: choose a plan first.", code="NO_CUSTOMER"
        )
    try:
        portal = await client(settings).v1.billing_portal.sessions.create_async(
            {
                "customer": subscription.stripe_customer_id,
                "return_url": link(settings, BILLING_PAGE + "?from=portal"),
            }
        )
    except stripe.StripeError as error:
        raise unavailable(error) from error
    return portal.url


async def preview_change(
    session: AsyncSession, settings: Settings, app_id: uuid.UUID, plan_key: str
) -> PreviewOut:
    """What moving to `plan_key` costs now, from Stripe's invoice preview: for a live
    subscription, the prorated credit and charge of the change today; for a first subscription,
    its first invoice."""
    _require_enabled(settings)
    subscription = await subscription_of(session, settings, app_id)
    assert subscription is not None
    plan = PLANS[plan_key]
    price = plan.price_id(settings)
    if subscription.stripe_customer_id is None:
        # No Stripe customer yet (nothing to preview against): the plan's price, no proration.
        cents = plan.monthly_usd * 100
        return PreviewOut(
            plan=plan.key,
            currency="usd",
            amount_due=cents,
            proration=0,
            next_payment_at=None,
            lines=[PreviewLine(description=f"{plan.name} plan", amount=cents, proration=False)],
        )
    api = client(settings)
    params: dict[str, Any] = {"customer": subscription.stripe_customer_id}
    try:
        if subscription.stripe_subscription_id and subscription.status in LIVE:
            item = await _stripe_item(api, subscription.stripe_subscription_id)
            params["subscription"] = subscription.stripe_subscription_id
            params["subscription_details"] = {
                "items": [{"id": item["id"], "price": price}],
                "proration_behavior": "create_prorations",
                "proration_date": int(utcnow().timestamp()),
            }
        else:
            params["subscription_details"] = {"items": [{"price": price}]}
        preview: Any = params
        invoice = (await api.v1.invoices.create_preview_async(preview)).to_dict()
    except stripe.StripeError as error:
        raise unavailable(error) from error
    lines = [
        PreviewLine(
            description=line.get("description"),
            amount=int(line["amount"]),
            proration=_is_proration(line),
        )
        for line in invoice["lines"]["data"]
    ]
    next_payment = invoice.get("next_payment_attempt") or invoice.get("period_end")
    return PreviewOut(
        plan=plan.key,
        currency=invoice.get("currency") or "usd",
        amount_due=int(invoice["amount_due"]),
        proration=sum(line.amount for line in lines if line.proration),
        next_payment_at=dt.datetime.fromtimestamp(next_payment, dt.UTC) if next_payment else None,
        lines=lines,
    )


def _is_proration(line: dict[str, Any]) -> bool:
    parent = line.get("parent") or {}
    details = parent.get("subscription_item_details") or {}
    return bool(details.get("proration") or line.get("proration"))


def plan_for_price(settings: Settings, price_id: str | None) -> str | None:
    plan = plan_of_price(settings, price_id)
    return plan.key if plan else None
