"""billing: subscriptions, Stripe events, usage counters, counted end users, notices sent

Every table belongs to a tenant (row-level security on app_id). billing_events rows have no app
until applying finds it: until then only the system role (the webhook and its job) sees them.

Revision ID: 0010
Revises: 0030
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from replyhq.db.rls import disable_tenant_rls, enable_tenant_rls

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")
TABLES = [
    "billing_subscriptions",
    "billing_events",
    "billing_usage",
    "billing_active_users",
    "billing_notices",
]


def _app_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["app_id"], ["apps.id"], name=op.f(f"fk_{table}_app_id_apps"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "billing_subscriptions",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(16), server_default="trialing", nullable=False),
        sa.Column("plan", sa.String(16), nullable=True),
        sa.Column("trial_ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stripe_customer_id", sa.String(255), nullable=True),
        sa.Column("stripe_subscription_id", sa.String(255), nullable=True),
        sa.Column("stripe_price_id", sa.String(255), nullable=True),
        sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("stripe_event_created", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("payment_failed_invoice", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint(
            "status IN ('trialing', 'active', 'past_due', 'canceled')",
            name=op.f("ck_billing_subscriptions_status"),
        ),
        sa.CheckConstraint(
            "plan IN ('starter', 'growth', 'business')", name=op.f("ck_billing_subscriptions_plan")
        ),
        _app_fk("billing_subscriptions"),
        sa.PrimaryKeyConstraint("app_id", name=op.f("pk_billing_subscriptions")),
        sa.UniqueConstraint(
            "stripe_customer_id", name=op.f("uq_billing_subscriptions_stripe_customer_id")
        ),
        sa.UniqueConstraint(
            "stripe_subscription_id", name=op.f("uq_billing_subscriptions_stripe_subscription_id")
        ),
    )
    op.create_table(
        "billing_events",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("stripe_created", sa.BigInteger(), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=True),
        _app_fk("billing_events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_events")),
    )
    op.create_table(
        "billing_usage",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("messages", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("mau", sa.Integer(), server_default="0", nullable=False),
        _app_fk("billing_usage"),
        sa.PrimaryKeyConstraint("app_id", "period", name=op.f("pk_billing_usage")),
    )
    op.create_table(
        "billing_active_users",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("end_user_id", sa.Uuid(), nullable=False),
        _app_fk("billing_active_users"),
        sa.PrimaryKeyConstraint(
            "app_id", "period", "end_user_id", name=op.f("pk_billing_active_users")
        ),
    )
    op.create_table(
        "billing_notices",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        _app_fk("billing_notices"),
        sa.PrimaryKeyConstraint("app_id", "kind", name=op.f("pk_billing_notices")),
    )
    for table in TABLES:
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in reversed(TABLES):
        disable_tenant_rls(table)
        op.drop_table(table)
