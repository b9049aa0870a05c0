"""Auto-assignment: an app's new conversations go to an available agent, by round robin or to
the least busy, never past an agent's capacity (open conversations assigned to them); an agent
sets themselves available or away; a deactivated agent's open conversations are reassigned.

The app's settings row is locked while choosing, so concurrent new conversations take turns in
round robin and do not all see the same least busy agent. With the mode off, it costs a new
conversation one primary-key read.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.accounts.models import StaffUser
from replyhq.events import Event, record
from replyhq.messaging.models import Conversation
from replyhq.messaging.service import update_conversation
from replyhq.workspace.models import AssignmentSettings


async def get_settings(session: AsyncSession, app_id: uuid.UUID) -> AssignmentSettings:
    found = await session.scalar(
        select(AssignmentSettings).where(AssignmentSettings.app_id == app_id)
    )
    return found or AssignmentSettings(app_id=app_id, mode="off", capacity=10)


async def put_settings(
    session: AsyncSession, app_id: uuid.UUID, *, mode: str, capacity: int
) -> AssignmentSettings:
    insert = pg_insert(AssignmentSettings).values(app_id=app_id, mode=mode, capacity=capacity)
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=["app_id"],
            set_={"mode": mode, "capacity": capacity, "updated_at": func.now()},
        )
    )
    return await get_settings(session, app_id)


async def loads(session: AsyncSession, app_id: uuid.UUID) -> list[Any]:
    """Each active member with `available` and `open_count` (open conversations assigned)."""
    open_count = (
        select(func.count())
        .where(
            Conversation.app_id == app_id,
            Conversation.assignee_id == StaffUser.id,
            Conversation.status == "open",
        )
        .correlate(StaffUser)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(
            StaffUser.id,
            StaffUser.name,
            StaffUser.email,
            StaffUser.available,
            open_count.label("open_count"),
        )
        .where(StaffUser.app_id == app_id, StaffUser.active.is_(True))
        .order_by(StaffUser.id)
    )
    return list(rows.all())


async def set_available(
    session: AsyncSession, app_id: uuid.UUID, staff_id: uuid.UUID, available: bool
) -> None:
    """The member is available for auto-assignment, or away; when it changed, the app's staff
    hear `agent:availability` once committed (again the same: nothing to tell)."""
    changed = await session.scalar(
        update(StaffUser)
        .where(
            StaffUser.app_id == app_id,
            StaffUser.id == staff_id,
            StaffUser.available.is_not(available),
        )
        .values(available=available)
        .returning(StaffUser.id)
    )
    if changed is not None:
        data = {"staff_id": str(staff_id), "available": available}
        record(session, Event("agent:availability", app_id, data, agents=True))


async def _choose(
    session: AsyncSession, app_id: uuid.UUID, *, excluding: uuid.UUID | None = None
) -> uuid.UUID | None:
    """The next assignee by the app's mode (its settings row locked), or None: mode off, or
    nobody available below capacity."""
    settings = await session.scalar(
        select(AssignmentSettings).where(AssignmentSettings.app_id == app_id).with_for_update()
    )
    if settings is None or settings.mode == "off":
        return None
    eligible = [
        row
        for row in await loads(session, app_id)
        if row.available and row.open_count < settings.capacity and row.id != excluding
    ]
    if not eligible:
        return None
    chosen: uuid.UUID
    if settings.mode == "least_busy":
        chosen = min(eligible, key=lambda row: (row.open_count, str(row.id))).id
    else:  # round robin: the next one after the last assignee, in a fixed order
        last = settings.last_assignee_id
        later = [row for row in eligible if last is None or str(row.id) > str(last)]
        chosen = (later or eligible)[0].id
    settings.last_assignee_id = chosen
    await session.flush()
    return chosen


async def assign_new(
    session: AsyncSession, app_id: uuid.UUID, conversation_id: uuid.UUID
) -> uuid.UUID | None:
    """Assign a conversation just created (messaging.service.start_conversation)."""
    chosen = await _choose(session, app_id)
    if chosen is not None:
        await update_conversation(session, app_id, conversation_id, assignee_id=chosen)
    return chosen


async def reassign_from(session: AsyncSession, app_id: uuid.UUID, staff_id: uuid.UUID) -> None:
    """A member left (deactivated): each of their open conversations goes to someone else by
    the app's mode, or becomes unassigned."""
    open_ids = list(
        await session.scalars(
            select(Conversation.id)
            .where(
                Conversation.app_id == app_id,
                Conversation.assignee_id == staff_id,
                Conversation.status == "open",
            )
            .order_by(Conversation.last_activity_at)
        )
    )
    for conversation_id in open_ids:
        chosen = await _choose(session, app_id, excluding=staff_id)
        await update_conversation(session, app_id, conversation_id, assignee_id=chosen)
