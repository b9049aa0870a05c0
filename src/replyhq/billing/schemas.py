from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PlanName = Literal["starter", "growth", "business"]
# `trial_ended`: a trial that ended without a plan (new conversations are refused).
Status = Literal["trialing", "trial_ended", "active", "past_due", "canceled"]


class Amounts(BaseModel):
    mau: int = Field(description="Distinct end users who sent a message this month (UTC).")
    messages: int = Field(description="Messages sent this month (UTC), end users' and agents'.")


class PlanOut(BaseModel):
    key: PlanName
    name: str
    monthly_usd: int
    limits: Amounts


class Warning_(BaseModel):
    model_config = ConfigDict(title="BillingWarning")
    metric: Literal["mau", "messages"]
    level: Literal[80, 100] = Field(description="Percent of the limit reached.")


class BillingOut(BaseModel):
    enabled: bool = Field(description="False: no Stripe key configured; nothing is limited.")
    plan: PlanName | None
    status: Status | None
    trial_ends_at: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    usage: Amounts | None
    limits: Amounts | None
    period_start: datetime | None = Field(description="Start of the month usage counts from.")
    can_start_conversations: bool = Field(
        description="False: new conversations are refused with 402 PLAN_LIMIT_REACHED."
    )
    notice: str | None = Field(description="What the dashboard's banner says, if anything.")
    warnings: list[Warning_]
    plans: list[PlanOut]


class CheckoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plan: PlanName


class RedirectOut(BaseModel):
    url: str = Field(description="Where to send the owner's browser (Stripe Checkout or portal).")


class PreviewLine(BaseModel):
    description: str | None
    amount: int = Field(description="In cents; negative for a credit.")
    proration: bool


class PreviewOut(BaseModel):
    plan: PlanName
    currency: str
    amount_due: int = Field(description="Cents due now for the change (Stripe's invoice preview).")
    proration: int = Field(description="Cents of the proration lines alone (credit + charge).")
    next_payment_at: datetime | None
    lines: list[PreviewLine]


class WebhookOut(BaseModel):
    received: bool
    duplicate: bool = Field(description="True: this event id was received before (not re-applied).")
