"""Staff users of an app, their sign-in sessions (refresh-token chains) and invitations."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from replyhq.db.base import Base, created_at, uuid_pk

ROLES = ("OWNER", "ADMIN", "AGENT")
_ROLE_CHECK = "role IN ('OWNER', 'ADMIN', 'AGENT')"


class StaffUser(Base):
    """A member of a customer's support team. The same person in two apps is two rows."""

    __tablename__ = "staff_users"
    __table_args__ = (
        UniqueConstraint("app_id", "email"),
        UniqueConstraint("id", "app_id"),
        CheckConstraint(_ROLE_CHECK, name="role"),
        # Sign-in looks an address up before it knows the app.
        Index("ix_staff_users_email", "email"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False
    )
    email: Mapped[str] = mapped_column(String(320), nullable=False)  # stored lower-cased
    name: Mapped[str | None] = mapped_column(String(255))
    password_hash: Mapped[str] = mapped_column(String(100), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    # Available for auto-assignment, or away (migration 0050; replyhq.workspace.assignment).
    available: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    # Bumped by every change of role or standing: access tokens carry it and die when it moves,
    # and live staff sockets let in at an older one are cut (replyhq.realtime.access).
    token_version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the member proved the address (an invitation or an operator vouches for it at once;
    # a self-service sign-up proves it by the link of the verification e-mail).
    email_verified_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class StaffSession(Base):
    """One sign-in: the chain (family) of refresh tokens rotated from one login.

    Access tokens name their session, so revoking it (logout, reuse of a spent refresh token,
    deactivation) ends the access tokens too, not only the refresh chain.
    """

    __tablename__ = "staff_sessions"
    __table_args__ = (
        UniqueConstraint("id", "app_id"),
        ForeignKeyConstraint(
            ["staff_id", "app_id"], ["staff_users.id", "staff_users.app_id"], ondelete="CASCADE"
        ),
        Index("ix_staff_sessions_staff", "app_id", "staff_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    app_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    staff_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    created_at: Mapped[datetime] = created_at()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class RefreshToken(Base):
    """A refresh token, stored as the SHA-256 of the token; spent once, then replaced."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        ForeignKeyConstraint(
            ["session_id", "app_id"],
            ["staff_sessions.id", "staff_sessions.app_id"],
            ondelete="CASCADE",
        ),
        Index("ix_refresh_tokens_session", "app_id", "session_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    app_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    session_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = created_at()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class StaffInvite(Base):
    """An invitation to join an app's team: a single-use, expiring token, stored hashed."""

    __tablename__ = "staff_invites"
    __table_args__ = (
        CheckConstraint(_ROLE_CHECK, name="role"),
        Index("ix_staff_invites_app", "app_id", "email"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False
    )
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    invited_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # staff id; None: the API key
    created_at: Mapped[datetime] = created_at()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class StaffToken(Base):
    """A single-use, short-lived link token sent by e-mail to a staff member, stored hashed:
    a password reset, the confirmation of a new e-mail address (`new_email`), or the
    verification of a signed-up owner's address."""

    __tablename__ = "staff_tokens"
    __table_args__ = (
        CheckConstraint(
            "purpose IN ('password_reset', 'email_change', 'email_verify')", name="purpose"
        ),
        ForeignKeyConstraint(
            ["staff_id", "app_id"], ["staff_users.id", "staff_users.app_id"], ondelete="CASCADE"
        ),
        Index("ix_staff_tokens_staff", "app_id", "staff_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    app_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    staff_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    purpose: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    new_email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = created_at()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
