"""Push settings, agents' notification preferences, the delivery log and test pushes."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.errors import BadRequest, NotFound
from replyhq.jobs.defer import enqueue
from replyhq.push import rules as rules_
from replyhq.push.delivery import devices_of
from replyhq.push.models import AgentNotificationPrefs, PushNotification, PushSettings
from replyhq.push.schemas import (
    AgentPrefs,
    AgentPrefsIn,
    NotificationOut,
    PushSettingsIn,
    PushSettingsOut,
    TestPushIn,
)
from replyhq.users.models import EndUser

LOG_LIMIT = 100


def _hhmm(value: dt.time | None) -> str | None:
    return None if value is None else value.strftime("%H:%M")


def settings_out(row: PushSettings | None) -> PushSettingsOut:
    if row is None:
        return PushSettingsOut(
            quiet_hours_start=None,
            quiet_hours_end=None,
            default_timezone="UTC",
            hourly_limit=10,
            collapse_seconds=60,
            email_fallback_minutes=5,
            email_link=None,
        )
    return PushSettingsOut(
        quiet_hours_start=_hhmm(row.quiet_hours_start),
        quiet_hours_end=_hhmm(row.quiet_hours_end),
        default_timezone=row.default_timezone,
        hourly_limit=row.hourly_limit,
        collapse_seconds=row.collapse_seconds,
        email_fallback_minutes=row.email_fallback_minutes,
        email_link=row.email_link,
    )


async def get_settings(session: AsyncSession, app_id: uuid.UUID) -> PushSettingsOut:
    return settings_out(await session.get(PushSettings, app_id))


async def update_settings(
    session: AsyncSession, app_id: uuid.UUID, changes: PushSettingsIn
) -> PushSettingsOut:
    values: dict[str, object] = changes.model_dump(exclude_unset=True)
    for name in ("quiet_hours_start", "quiet_hours_end"):
        if name in values and values[name] is not None:
            values[name] = dt.time.fromisoformat(str(values[name]))
    for name in ("default_timezone", "hourly_limit", "collapse_seconds", "email_fallback_minutes"):
        if name in values and values[name] is None:
            del values[name]  # these have no "unset": null leaves them as they are
    zone = values.get("default_timezone")
    if zone is not None and rules_.zone(str(zone), "").key != zone:
        raise BadRequest(
            "Unknown time zone.",
            code="VALIDATION_ERROR",
            details=[{"field": "default_timezone", "reason": "not an IANA time zone"}],
        )
    row = await session.get(PushSettings, app_id, with_for_update=True)
    if row is None:
        row = PushSettings(app_id=app_id)
        session.add(row)
        fresh = settings_out(None)
        for name in (
            "default_timezone",
            "hourly_limit",
            "collapse_seconds",
            "email_fallback_minutes",
        ):
            setattr(row, name, getattr(fresh, name))
    for name, value in values.items():
        setattr(row, name, value)
    if (row.quiet_hours_start is None) != (row.quiet_hours_end is None):
        raise BadRequest(
            "Quiet hours need both a start and an end (or neither).",
            code="VALIDATION_ERROR",
            details=[{"field": "quiet_hours_end", "reason": "set both or neither"}],
        )
    row.updated_at = func.now()
    await session.flush()
    await session.refresh(row)
    return settings_out(row)


async def agent_prefs(session: AsyncSession, app_id: uuid.UUID, staff_id: uuid.UUID) -> AgentPrefs:
    row = await session.get(AgentNotificationPrefs, staff_id)
    if row is None or row.app_id != app_id:
        return AgentPrefs()
    return AgentPrefs(desktop=row.desktop, sound=row.sound)


async def update_agent_prefs(
    session: AsyncSession, app_id: uuid.UUID, staff_id: uuid.UUID, changes: AgentPrefsIn
) -> AgentPrefs:
    merged = (await agent_prefs(session, app_id, staff_id)).model_copy(
        update={k: v for k, v in changes.model_dump(exclude_unset=True).items() if v is not None}
    )
    values = {"desktop": merged.desktop, "sound": merged.sound, "updated_at": func.now()}
    await session.execute(
        insert(AgentNotificationPrefs)
        .values(staff_id=staff_id, app_id=app_id, **values)
        .on_conflict_do_update(index_elements=["staff_id"], set_=values)
    )
    return merged


async def _require_person(session: AsyncSession, app_id: uuid.UUID, end_user_id: uuid.UUID) -> None:
    found = await session.scalar(
        select(EndUser.id).where(EndUser.app_id == app_id, EndUser.id == end_user_id)
    )
    if found is None:
        raise NotFound("No such end user.", code="END_USER_NOT_FOUND")


async def log_of(
    session: AsyncSession, app_id: uuid.UUID, end_user_id: uuid.UUID
) -> list[NotificationOut]:
    """The person's latest decisions, each followed by its deliveries."""
    await _require_person(session, app_id, end_user_id)
    rows = list(
        await session.scalars(
            select(PushNotification)
            .where(PushNotification.app_id == app_id, PushNotification.end_user_id == end_user_id)
            .order_by(PushNotification.created_at.desc(), PushNotification.parent_id.nulls_first())
            .limit(LOG_LIMIT)
        )
    )
    return [NotificationOut.model_validate(r) for r in rows]


async def create_test_push(
    session: AsyncSession, app_id: uuid.UUID, end_user_id: uuid.UUID, data: TestPushIn
) -> list[PushNotification]:
    """A test notification to each of the person's devices with a push address: the decision
    and its deliveries (pending), sent by the job push.test once committed."""
    from replyhq.push import tasks

    await _require_person(session, app_id, end_user_id)
    devices = [d for d in await devices_of(session, app_id, end_user_id) if d.token]
    if not devices:
        raise BadRequest("This person has no device with a push token.", code="NO_PUSH_DEVICE")
    parent = PushNotification(
        id=uuid.uuid4(),
        app_id=app_id,
        end_user_id=end_user_id,
        channel="test",
        decision="sent",
        reason="test push from the dashboard",
        title=data.title,
        body=data.body,
    )
    session.add(parent)
    rows = [
        PushNotification(
            id=uuid.uuid4(),
            app_id=app_id,
            end_user_id=end_user_id,
            parent_id=parent.id,
            channel="test",
            decision="delivery",
            device_id=d.device_id,
            provider=d.provider,
            status="pending",
            title=data.title,
            body=data.body,
        )
        for d in devices
    ]
    session.add_all(rows)
    await session.flush()
    await enqueue(session, tasks.test_push, app_id=app_id, notification_id=parent.id)
    return [parent, *rows]
