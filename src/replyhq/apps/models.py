from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from replyhq.db.base import Base, created_at, uuid_pk


class App(Base):
    """A customer's app: the tenant. Its own row is visible only to its own tenant binding."""

    __tablename__ = "apps"

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    sdk_key_hash: Mapped[str] = mapped_column(String(100), nullable=False)
    secret_key_hash: Mapped[str] = mapped_column(String(100), nullable=False)
    # Needed in clear to check HMACs of user ids; never returned after creation or rotation.
    identity_secret: Mapped[str] = mapped_column(String(100), nullable=False)
    identity_verification_required: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default="false"
    )
    keys_version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    # Bumped when every device session must end (key rotation, identity verification turned
    # on): live sockets let in at an older generation are cut (replyhq.realtime.access).
    access_generation: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    created_at: Mapped[datetime] = created_at()
    keys_rotated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
