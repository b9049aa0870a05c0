"""The plans, as data. Prices live in Stripe; each plan's Stripe price id comes from settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from replyhq.settings import Settings

PlanKey = Literal["starter", "growth", "business"]


@dataclass(frozen=True)
class Limits:
    mau: int  # distinct end users active in a month
    messages: int  # messages in a month (end users' and agents')


@dataclass(frozen=True)
class Plan:
    key: PlanKey
    name: str
    monthly_usd: int
    limits: Limits

    def price_id(self, settings: Settings) -> str:
        price: str = getattr(settings, f"stripe_price_{self.key}")
        return price


PLANS: dict[str, Plan] = {
    plan.key: plan
    for plan in (
        Plan("starter", "Starter", 29, Limits(mau=1_000, messages=10_000)),
        Plan("growth", "Growth", 99, Limits(mau=10_000, messages=100_000)),
        Plan("business", "Business", 299, Limits(mau=50_000, messages=500_000)),
    )
}

# A trial runs with the smallest plan's limits: enough to try the product with real users.
TRIAL_LIMITS = PLANS["starter"].limits


def plan_of_price(settings: Settings, price_id: str | None) -> Plan | None:
    for plan in PLANS.values():
        if plan.price_id(settings) == price_id:
            return plan
    return None
