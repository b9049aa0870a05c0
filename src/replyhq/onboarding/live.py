"""Reactions to committed domain events: checklist steps recorded the first time they happen.

Runs in the process' event sink (replyhq.realtime.server), after the transaction that did the
thing committed. Each process remembers which steps of which apps it has seen done, so a step
costs one small write the first time this process sees it and nothing after: a message send
never waits on onboarding once its app has a first message.
"""

from __future__ import annotations

import uuid

import structlog

from replyhq.db import Database
from replyhq.events import Event
from replyhq.onboarding import service

log = structlog.get_logger(__name__)

REMEMBERED_APPS = 50_000  # the memory is a cache: forgetting costs one no-op write


def steps_of(event: Event) -> tuple[str, ...]:
    """The checklist steps a committed event shows happening."""
    if event.name == "message:new":
        sender = event.data.get("message", {}).get("sender")
        if sender == "user":
            return ("first_message",)
        if sender == "agent":
            return ("first_reply",)
    elif event.name == "device:identified":
        return (
            ("sdk_installed", "identity_verified")
            if event.data.get("verified")
            else ("sdk_installed",)
        )
    elif event.name == "team:invited":
        return ("teammate_invited",)
    return ()


class Checklist:
    # The committed events that can complete a step (its observer is told only these).
    EVENTS = ("message:new", "device:identified", "team:invited")

    def __init__(self, db: Database) -> None:
        self._db = db
        self._done: dict[uuid.UUID, set[str]] = {}

    async def __call__(self, event: Event) -> None:
        steps = steps_of(event)
        if not steps:
            return
        known = self._done.get(event.app_id)
        missing = [s for s in steps if known is None or s not in known]
        if missing:
            await self._record(event.app_id, missing)

    async def _record(self, app_id: uuid.UUID, steps: list[str]) -> None:
        try:
            async with self._db.tenant_session(app_id) as session:
                for step in steps:
                    await service.reach(session, app_id, step)
        except Exception as exc:  # the checklist catches up from the data when read
            log.warning("onboarding_step_not_recorded", steps=steps, error=str(exc))
            return
        if len(self._done) >= REMEMBERED_APPS:
            self._done.clear()
        self._done.setdefault(app_id, set()).update(steps)
