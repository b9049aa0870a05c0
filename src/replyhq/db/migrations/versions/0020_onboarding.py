"""onboarding: self-service sign-up (verified addresses), the survey and the checklist

- `staff_users.email_verified_at`: when the member proved their address. Every member made
  before this migration, and every member made by an invitation or an operator, counts as
  verified (the column defaults to now()); a self-service sign-up starts unverified.
- `staff_tokens.purpose` accepts `email_verify` (the link of the verification e-mail).
- `onboarding_states`: one row per app, the survey's answers and when each checklist step was
  first done (tenant-owned, row-level security like every tenant table).

Revision ID: 0020
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from replyhq.db.rls import disable_tenant_rls, enable_tenant_rls

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_PURPOSES = "purpose IN ('password_reset', 'email_change')"
_NEW_PURPOSES = "purpose IN ('password_reset', 'email_change', 'email_verify')"


def upgrade() -> None:
    op.add_column(
        "staff_users",
        sa.Column(
            "email_verified_at",
            sa.DateTime(timezone=True),
            nullable=True,
            server_default=sa.func.now(),
        ),
    )
    op.drop_constraint(op.f("ck_staff_tokens_purpose"), "staff_tokens", type_="check")
    op.create_check_constraint(op.f("ck_staff_tokens_purpose"), "staff_tokens", _NEW_PURPOSES)
    op.create_table(
        "onboarding_states",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=True),
        sa.Column("use_case", sa.String(length=32), nullable=True),
        sa.Column("survey_answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("survey_skipped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dismissed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sdk_installed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_message_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("identity_verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("teammate_invited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_reply_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "platform IN ('ios', 'android', 'react-native', 'flutter', 'web', 'python')",
            name=op.f("ck_onboarding_states_platform"),
        ),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
            name=op.f("fk_onboarding_states_app_id_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("app_id", name=op.f("pk_onboarding_states")),
    )
    enable_tenant_rls("onboarding_states")


def downgrade() -> None:
    disable_tenant_rls("onboarding_states")
    op.drop_table("onboarding_states")
    op.execute("DELETE FROM staff_tokens WHERE purpose = 'email_verify'")
    op.drop_constraint(op.f("ck_staff_tokens_purpose"), "staff_tokens", type_="check")
    op.create_check_constraint(op.f("ck_staff_tokens_purpose"), "staff_tokens", _OLD_PURPOSES)
    op.drop_column("staff_users", "email_verified_at")
