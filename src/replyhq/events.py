"""Domain events: recorded by services inside a transaction, delivered only after it commits.

This is the one place real-time delivery starts from: HTTP routes, socket handlers and jobs all
call the same services, which record events here; the process' event sink (the Socket.IO emitter,
or a write-only Redis emitter in workers) receives them once the data is committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.db.session import EVENT_SINK, on_commit

_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Event:
    """Something clients should hear about: sent to one end user's devices and/or the agents, or
    to every device of the app (`devices`: the messenger's settings)."""

    name: str
    app_id: uuid.UUID
    data: dict[str, Any] = field(default_factory=dict)
    end_user_id: uuid.UUID | None = None
    agents: bool = False
    devices: bool = False


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


Observer = Callable[[Event], Awaitable[None]]
AppFilter = Callable[[uuid.UUID], bool]


class Observers:
    """The process' reactions to committed events (onboarding's checklist, billing's usage meter,
    the test console), in one table by event name, told after delivery by the event sink.

    Each observer names the events it wants, and may name a filter of apps: an event reaches
    only the observers of its name, and of those only the ones whose filter takes its app. So an
    event nobody reacts to costs one dictionary lookup, and the test console, filtered by the
    apps somebody watches, costs a set lookup (no call at all) while nobody watches."""

    def __init__(self) -> None:
        self._by_name: dict[str, tuple[tuple[Observer, AppFilter | None], ...]] = {}

    def add(
        self, names: Iterable[str], observer: Observer, *, apps: AppFilter | None = None
    ) -> None:
        for name in names:
            self._by_name[name] = (*self._by_name.get(name, ()), (observer, apps))

    async def notify(self, event: DomainEvent) -> None:
        if not isinstance(event, Event):
            return
        for observer, apps in self._by_name.get(event.name, ()):
            if apps is not None and not apps(event.app_id):
                continue
            try:
                await observer(event)
            except Exception as exc:  # an observer's failure is never the sender's
                _log.warning("event_observer_failed", event_name=event.name, error=str(exc))
