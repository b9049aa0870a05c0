"""Domain events: recorded by services inside a transaction, delivered only after it commits.

This is the one place real-time delivery starts from: HTTP routes, socket handlers and jobs all
call the same services, which record events here; the process' event sink (the Socket.IO emitter,
or a write-only Redis emitter in workers) receives them once the data is committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.db.session import EVENT_SINK, on_commit


@dataclass(frozen=True)
class Event:
    """Something clients should hear about: sent to one end user's devices and/or the agents."""

    name: str
    app_id: uuid.UUID
    data: dict[str, Any] = field(default_factory=dict)
    end_user_id: uuid.UUID | None = None
    agents: bool = False


@dataclass(frozen=True)
class Revoke:
    """Live sessions that must end now: a device that changed identity, a staff user whose
    access changed, one staff sign-in that ended, every device of an app whose keys were
    rotated, or the devices whose identity was never proven by a user_hash (`unproven_devices`)
    of an app that now requires verification, or of one person (`end_user_id`) now verified."""

    app_id: uuid.UUID
    device_id: str | None = None
    staff_id: uuid.UUID | None = None
    staff_session_id: uuid.UUID | None = None
    all_devices: bool = False
    unproven_devices: bool = False
    end_user_id: uuid.UUID | None = None


DomainEvent = Event | Revoke
EventSink = Callable[[DomainEvent], Awaitable[None]]


def record(session: AsyncSession, event: DomainEvent) -> None:
    """Deliver `event` once the session's transaction commits; never if it rolls back."""
    sink: EventSink | None = session.info.get(EVENT_SINK)
    if sink is not None:
        on_commit(session, lambda: sink(event))
