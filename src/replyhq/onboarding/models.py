"""An app's onboarding: the survey's answers and when each checklist step was first done."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from replyhq.db.base import Base, created_at

PLATFORMS = ("ios", "android", "react-native", "flutter", "web", "python")
# The checklist, in the order the dashboard shows it; each step is a `<key>_at` column below.
STEPS = ("sdk_installed", "first_message", "identity_verified", "teammate_invited", "first_reply")


class OnboardingState(Base):
    __tablename__ = "onboarding_states"
    __table_args__ = (
        CheckConstraint(
            "platform IN ('ios', 'android', 'react-native', 'flutter', 'web', 'python')",
            name="platform",
        ),
    )

    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    platform: Mapped[str | None] = mapped_column(String(16))
    use_case: Mapped[str | None] = mapped_column(String(32))
    survey_answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    survey_skipped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dismissed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sdk_installed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    identity_verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    teammate_invited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_reply_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()
