"""Stripe's webhook events: verified, stored, then applied by a job.

Receiving (POST /webhooks/stripe) verifies the raw body's signature with the `stripe` library and
STRIPE_WEBHOOK_SECRET (Stripe's 300 s tolerance), stores the event under its id (the primary key:
a second delivery, even a concurrent one, stores nothing) and enqueues billing.apply_event in the
same transaction. Nothing is lost when applying fails: the job is retried, and the event waits.

Applying is serialised per app (the subscription row is locked) and done once per event (the
event row is locked and marked applied in the same transaction). Order of delivery does not
matter: an event older (Stripe's `created`) than one already applied changes nothing, and a
subscription's state is read from Stripe when an event names it, so the state written is
Stripe's current one, never an event's snapshot.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import stripe
import structlog
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.billing.models import StripeEvent, Subscription
from replyhq.billing.service import STATUS_OF_STRIPE, plan_for_price, subscription_of, utcnow
from replyhq.billing.stripe_api import client
from replyhq.db import Database
from replyhq.errors import BadRequest, NotFound
from replyhq.settings import Settings

log = structlog.get_logger(__name__)

HANDLED = frozenset(
    {
        "checkout.session.completed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.paid",
        "invoice.payment_failed",
    }
)


def verify(settings: Settings, payload: bytes, signature: str | None) -> dict[str, Any]:
    """The event, if `payload` is signed with STRIPE_WEBHOOK_SECRET within the tolerance;
    400 otherwise."""
    secret = settings.stripe_webhook_secret
    if not settings.billing_enabled or not secret:
        raise NotFound("Billing is off on this server.", code="BILLING_DISABLED")
    try:
        stripe.Webhook.construct_event(payload, signature, secret)
        event: dict[str, Any] = json.loads(payload)
    except stripe.SignatureVerificationError:
        raise BadRequest(
            "The Stripe-Signature header does not match this body, or is older than 5 minutes.",
            code="WEBHOOK_SIGNATURE_INVALID",
        ) from None
    except ValueError:  # not JSON (or not UTF-8), though signed
        raise BadRequest("The body is not a JSON event.", code="MALFORMED_JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        raise BadRequest("The body is not a Stripe event.", code="WEBHOOK_EVENT_INVALID")
    if not isinstance(event.get("type"), str) or not isinstance(event.get("created"), int):
        raise BadRequest("The body is not a Stripe event.", code="WEBHOOK_EVENT_INVALID")
    return event


async def receive(db: Database, settings: Settings, event: dict[str, Any]) -> bool:
    """Store a verified event and queue its application; False when its id was stored before."""
    from replyhq.billing import tasks
    from replyhq.jobs.defer import enqueue

    async with db.system_session() as session:
        stored = await session.scalar(
            pg_insert(StripeEvent)
            .values(
                id=event["id"][:255],
                type=event["type"][:100],
                stripe_created=event["created"],
                payload=event,
            )
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(StripeEvent.id)
        )
        if stored is None:
            return False
        if event["type"] in HANDLED:
            await enqueue(session, tasks.apply_event, event_id=stored)
        else:  # kept for the record; nothing to do
            await session.execute(
                update(StripeEvent)
                .where(StripeEvent.id == stored)
                .values(applied_at=utcnow(), outcome="ignored")
            )
    return True


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _references(kind: str, obj: dict[str, Any]) -> tuple[uuid.UUID | None, str | None, str | None]:
    """(app id from metadata, Stripe subscription id, Stripe customer id) an event names."""
    metadata = obj.get("metadata") or {}
    customer = obj.get("customer") if isinstance(obj.get("customer"), str) else None
    if kind.startswith("customer.subscription."):
        return _uuid(metadata.get("app_id")), obj.get("id"), customer
    if kind == "checkout.session.completed":
        app = _uuid(metadata.get("app_id")) or _uuid(obj.get("client_reference_id"))
        subscription = obj.get("subscription")
        return app, subscription if isinstance(subscription, str) else None, customer
    # An invoice: its subscription is under parent.subscription_details (older API versions:
    # `subscription` at the top).
    details = (obj.get("parent") or {}).get("subscription_details") or {}
    subscription = details.get("subscription") or obj.get("subscription")
    app = _uuid((details.get("metadata") or {}).get("app_id"))
    return app, subscription if isinstance(subscription, str) else None, customer


async def _subscription_for(
    session: AsyncSession,
    settings: Settings,
    app_id: uuid.UUID | None,
    subscription_id: str | None,
    customer: str | None,
) -> Subscription | None:
    """The subscription row the event concerns, locked; None when no app of ours is named."""
    if app_id is not None:
        found = await subscription_of(session, settings, app_id, lock=True)
        if found is not None:
            return found
    for column, value in (
        (Subscription.stripe_subscription_id, subscription_id),
        (Subscription.stripe_customer_id, customer),
    ):
        if value:
            found = await session.scalar(
                select(Subscription)
                .where(column == value)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
            if found is not None:
                return found
    return None


def _timestamp(value: object) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(int(value), dt.UTC) if isinstance(value, int) else None


def write_subscription(settings: Settings, row: Subscription, current: dict[str, Any]) -> None:
    """Copy a Stripe subscription's current state onto the app's row."""
    items = (current.get("items") or {}).get("data") or []
    item = items[0] if items else {}
    price = (item.get("price") or {}).get("id")
    row.status = STATUS_OF_STRIPE.get(str(current.get("status")), "past_due")
    row.plan = plan_for_price(settings, price)
    row.stripe_price_id = price
    row.stripe_subscription_id = current["id"]
    if isinstance(current.get("customer"), str):
        row.stripe_customer_id = current["customer"]
    # Since API version 2025-03-31 the period is the item's; before, the subscription's.
    row.current_period_end = _timestamp(
        item.get("current_period_end") or current.get("current_period_end")
    )
    row.cancel_at_period_end = bool(current.get("cancel_at_period_end"))
    trial_end = _timestamp(current.get("trial_end"))
    if trial_end is not None:
        row.trial_ends_at = trial_end
    row.updated_at = utcnow()


async def apply_event(db: Database, settings: Settings, event_id: str) -> str:
    """Apply one stored event (once); what came of it: applied, stale, ignored, unknown_app,
    other_subscription or already_applied. Raises (and changes nothing) when Stripe fails, so
    that the job is retried."""
    async with db.system_session() as session:
        event = await session.scalar(
            select(StripeEvent)
            .where(StripeEvent.id == event_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if event is None or event.applied_at is not None:
            return "already_applied"
        outcome, app_id = await _apply(session, settings, event)
        event.applied_at = utcnow()
        event.outcome = outcome
        event.app_id = app_id
    log.info("stripe_event_applied", event_id=event_id, type=event.type, outcome=outcome)
    return outcome


async def _apply(
    session: AsyncSession, settings: Settings, event: StripeEvent
) -> tuple[str, uuid.UUID | None]:
    if event.type not in HANDLED:
        return "ignored", None
    obj: dict[str, Any] = event.payload.get("data", {}).get("object", {})
    app_id, subscription_id, customer = _references(event.type, obj)
    row = await _subscription_for(session, settings, app_id, subscription_id, customer)
    if row is None:
        return "unknown_app", None
    if event.stripe_created < row.stripe_event_created:
        return "stale", row.app_id  # a newer event was applied: its state stands
    if row.stripe_customer_id is None and customer:
        row.stripe_customer_id = customer
    if event.type == "invoice.payment_failed":
        row.payment_failed_invoice = str(obj.get("id"))
    elif event.type == "invoice.paid" and row.payment_failed_invoice is not None:
        row.payment_failed_invoice = None
    if subscription_id:
        current = (
            await client(settings).v1.subscriptions.retrieve_async(subscription_id)
        ).to_dict()
        replaced = row.stripe_subscription_id not in (None, subscription_id)
        if replaced and STATUS_OF_STRIPE.get(str(current.get("status"))) == "canceled":
            # The end of a subscription the app has since replaced: the new one stands.
            row.stripe_event_created = max(row.stripe_event_created, event.stripe_created)
            return "other_subscription", row.app_id
        write_subscription(settings, row, current)
    row.stripe_event_created = max(row.stripe_event_created, event.stripe_created)
    return "applied", row.app_id
