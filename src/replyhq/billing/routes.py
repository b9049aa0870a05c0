"""/admin/api/billing (the owner's; admins may read) and /webhooks/stripe (Stripe's)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from replyhq.accounts.deps import RequirePermission, admin_router
from replyhq.accounts.permissions import StaffPrincipal
from replyhq.billing import service, stripe_events
from replyhq.billing.schemas import (
    BillingOut,
    CheckoutIn,
    PlanName,
    PreviewOut,
    RedirectOut,
    WebhookOut,
)
from replyhq.web.deps import RuntimeDep

router = admin_router("/admin/api/billing", ["billing"])
webhook_router = APIRouter(tags=["billing"])


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    said = {
        400: "`WEBHOOK_SIGNATURE_INVALID` (missing, wrong or stale signature) or not an event.",
        404: "Billing is off on this server (`BILLING_DISABLED`).",
        409: "`SAME_PLAN` (already on it) or `NO_CUSTOMER` (no plan chosen yet).",
        502: "Stripe failed or could not be reached (`STRIPE_UNAVAILABLE`); retry.",
    }
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {code: {"description": said[code], "content": error} for code in codes}


@router.get("")
async def get_billing(
    caller: Annotated[StaffPrincipal, RequirePermission("billing:read")], runtime: RuntimeDep
) -> BillingOut:
    """The app's plan, status, trial, this month's usage against its limits, and what the
    dashboard's banner says. `enabled: false` when the server has no Stripe key."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        return await service.overview(session, runtime.settings, caller.app_id)


@router.post("/checkout", responses=_errors(404, 409, 502))
async def checkout(
    body: CheckoutIn,
    caller: Annotated[StaffPrincipal, RequirePermission("billing:write")],
    runtime: RuntimeDep,
) -> RedirectOut:
    """Subscribe to `plan`: the URL of a Stripe Checkout page (subscription mode). An app that
    already has a subscription moves to `plan` at once (prorated; see /preview) and gets the
    billing page's URL."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        url = await service.start_checkout(
            session, runtime.settings, caller.app_id, body.plan, caller.email
        )
    return RedirectOut(url=url)


@router.post("/portal", responses=_errors(404, 409, 502))
async def portal(
    caller: Annotated[StaffPrincipal, RequirePermission("billing:write")], runtime: RuntimeDep
) -> RedirectOut:
    """The URL of Stripe's customer portal: card, invoices, cancellation."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        url = await service.open_portal(session, runtime.settings, caller.app_id)
    return RedirectOut(url=url)


@router.get("/preview", responses=_errors(404, 502))
async def preview(
    caller: Annotated[StaffPrincipal, RequirePermission("billing:read")],
    runtime: RuntimeDep,
    plan: Annotated[PlanName, Query()],
) -> PreviewOut:
    """What moving to `plan` costs now (Stripe's invoice preview, prorated to today)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        return await service.preview_change(session, runtime.settings, caller.app_id, plan)


@webhook_router.post("/webhooks/stripe", responses=_errors(400, 404))
async def stripe_webhook(request: Request, runtime: RuntimeDep) -> WebhookOut:
    """Stripe's events, signed (`Stripe-Signature`, STRIPE_WEBHOOK_SECRET, 5 minutes'
    tolerance): stored once per event id, then applied by a job. A bad or stale signature is a
    400 `WEBHOOK_SIGNATURE_INVALID` and changes nothing."""
    payload = await request.body()
    event = stripe_events.verify(runtime.settings, payload, request.headers.get("Stripe-Signature"))
    stored = await stripe_events.receive(runtime.db, runtime.settings, event)
    return WebhookOut(received=True, duplicate=not stored)
