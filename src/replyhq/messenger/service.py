"""Messenger settings, office hours and the automatic away reply.

The send path calls `after_user_message` after an end user's message is stored. It costs nothing
but a dictionary look-up while the team is in (the app's schedule is kept in the process for
SCHEDULE_TTL seconds, and dropped at once by this process' own updates); while away, one
transaction stores the conversation's reply for this away period at most once (`away_replies`'
key), and the conversations already answered are remembered in the process too.
"""

from __future__ import annotations

import time
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.db import Database
from replyhq.events import Event, record
from replyhq.messenger import hours, i18n
from replyhq.messenger.models import AwayReply, ConversationMetrics, MessengerSettings
from replyhq.messenger.schemas import (
    AvailabilityOut,
    MessengerConfig,
    MessengerSettingsChanged,
    MessengerSettingsOut,
    MessengerSettingsPatch,
)

log = structlog.get_logger(__name__)

SCHEDULE_TTL = 10.0
EXPECTED_REPLY_TTL = 300.0
EXPECTED_REPLY_WINDOW = timedelta(days=7)

DEFAULTS: dict[str, Any] = {
    "color": "#3454d1",
    "launcher_position": "right",
    "team_name": "Support",
    "avatar_url": None,
    "greeting": "Hi there 👋",
    "intro": "Ask us anything: we are here to help.",
    "language": "en",
    "timezone": "UTC",
    "office_hours_enabled": False,
    "office_hours": [{"day": day, "open": "09:00", "close": "17:00"} for day in range(5)],
    "away_message": "We're away right now. Leave a message and we'll get back to you.",
    "auto_reply": True,
}


def settings_out(row: MessengerSettings | None) -> MessengerSettingsOut:
    if row is None:
        return MessengerSettingsOut(**DEFAULTS, updated_at=None)
    values = {name: getattr(row, name) for name in DEFAULTS}
    return MessengerSettingsOut(**values, updated_at=row.updated_at)


async def get_settings(session: AsyncSession, app_id: uuid.UUID) -> MessengerSettingsOut:
    return settings_out(await session.get(MessengerSettings, app_id))


async def update_settings(
    session: AsyncSession, app_id: uuid.UUID, changes: MessengerSettingsPatch
) -> MessengerSettingsOut:
    """Apply the given fields over the current (or default) settings."""
    current = (await get_settings(session, app_id)).model_dump(exclude={"updated_at"})
    for name, value in changes.model_dump(exclude_unset=True).items():
        if value is None and name != "avatar_url":
            continue  # null clears the avatar; the other fields cannot be empty: unchanged
        current[name] = value
    values = {**current, "app_id": app_id, "updated_at": func.now()}
    insert = pg_insert(MessengerSettings).values(**values)
    upsert = insert.on_conflict_do_update(
        index_elements=["app_id"], set_={k: insert.excluded[k] for k in values if k != "app_id"}
    ).returning(MessengerSettings)
    row = await session.scalar(upsert.execution_options(populate_existing=True))
    return settings_out(row)


# --- availability --------------------------------------------------------------------------


def _ranges(settings: MessengerSettingsOut) -> list[hours.Range]:
    return [hours.Range(r.day, r.open, r.close) for r in settings.office_hours]


def availability(settings: MessengerSettingsOut, now: datetime) -> hours.Availability:
    """Always open when office hours are off."""
    if not settings.office_hours_enabled:
        return hours.Availability(open=True, away_since=None, back_at=None)
    return hours.availability(_ranges(settings), settings.timezone, now)


async def expected_reply_seconds(
    session: AsyncSession, app_id: uuid.UUID, now: datetime
) -> int | None:
    """The median first-response time of the conversations started in the last 7 days."""
    seconds = func.extract(
        "epoch", ConversationMetrics.first_response_at - ConversationMetrics.created_at
    )
    median = await session.scalar(
        select(func.percentile_cont(0.5).within_group(seconds)).where(
            ConversationMetrics.app_id == app_id,
            ConversationMetrics.created_at >= now - EXPECTED_REPLY_WINDOW,
            ConversationMetrics.first_response_at.is_not(None),
        )
    )
    return None if median is None else round(float(median))


@dataclass
class _Cache:
    schedules: dict[uuid.UUID, tuple[float, MessengerSettingsOut]] = field(default_factory=dict)
    expected: dict[uuid.UUID, tuple[float, int | None]] = field(default_factory=dict)
    answered: dict[tuple[uuid.UUID, datetime], None] = field(default_factory=dict)


# One cache per Database (a process may hold several in tests); gone with it.
_CACHES: weakref.WeakKeyDictionary[Database, _Cache] = weakref.WeakKeyDictionary()


def _cache(db: Database) -> _Cache:
    cache = _CACHES.get(db)
    if cache is None:
        cache = _CACHES[db] = _Cache()
    return cache


def forget_schedule(db: Database | None, app_id: uuid.UUID) -> None:
    if db is not None:
        _cache(db).schedules.pop(app_id, None)


async def _settings(db: Database, app_id: uuid.UUID) -> MessengerSettingsOut:
    cache = _cache(db)
    hit = cache.schedules.get(app_id)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    async with db.tenant_session(app_id) as session:
        settings = await get_settings(session, app_id)
    cache.schedules[app_id] = (time.monotonic() + SCHEDULE_TTL, settings)
    return settings


async def _config(
    session: AsyncSession, db: Database, app_id: uuid.UUID, settings: MessengerSettingsOut
) -> MessengerConfig:
    now = datetime.now(UTC)
    cache = _cache(db)
    hit = cache.expected.get(app_id)
    if hit is not None and hit[0] > time.monotonic():
        expected = hit[1]
    else:
        expected = await expected_reply_seconds(session, app_id, now)
        cache.expected[app_id] = (time.monotonic() + EXPECTED_REPLY_TTL, expected)
    state = availability(settings, now)
    return MessengerConfig(
        settings=settings,
        availability=AvailabilityOut(
            open=state.open, away_since=state.away_since, back_at=state.back_at
        ),
        expected_reply_seconds=expected,
    )


async def messenger_config(db: Database, app_id: uuid.UUID) -> MessengerConfig:
    """What GET /v1/messenger answers (settings read fresh: a saved change shows at once)."""
    async with db.tenant_session(app_id) as session:
        settings = await get_settings(session, app_id)
        config = await _config(session, db, app_id, settings)
    _cache(db).schedules[app_id] = (time.monotonic() + SCHEDULE_TTL, settings)
    return config


async def publish_settings(
    session: AsyncSession, db: Database, app_id: uuid.UUID, settings: MessengerSettingsOut
) -> None:
    """Tell every open messenger of the app (`messenger:settings`, once committed)."""
    config = await _config(session, db, app_id, settings)
    payload = MessengerSettingsChanged(**config.model_dump()).model_dump(mode="json")
    record(session, Event("messenger:settings", app_id, payload, devices=True))


def away_reply_text(settings: MessengerSettingsOut, back_at: datetime | None) -> str:
    line = i18n.back_line(settings.language, back_at, settings.timezone)
    return f"{settings.away_message}\n\n{line}".strip()


async def after_user_message(db: Database, app_id: uuid.UUID, conversation_id: uuid.UUID) -> None:
    """The automatic away reply, once per conversation per away period. Never fails a send."""
    try:
        settings = await _settings(db, app_id)
        if not (settings.office_hours_enabled and settings.auto_reply):
            return
        state = availability(settings, datetime.now(UTC))
        if state.open or state.away_since is None:
            return
        key = (conversation_id, state.away_since)
        cache = _cache(db)
        if key in cache.answered:
            return
        await _send_away_reply(db, app_id, conversation_id, settings, state)
        cache.answered[key] = None
        while len(cache.answered) > 10_000:  # oldest first: a dict keeps insertion order
            del cache.answered[next(iter(cache.answered))]
    except Exception:
        log.exception("away_reply_failed", app_id=str(app_id))


async def _send_away_reply(
    db: Database,
    app_id: uuid.UUID,
    conversation_id: uuid.UUID,
    settings: MessengerSettingsOut,
    state: hours.Availability,
) -> None:
    from replyhq.messaging import service as messaging  # messaging's send path calls us

    assert state.away_since is not None
    async with db.tenant_session(app_id) as session:
        first = await session.scalar(
            pg_insert(AwayReply)
            .values(app_id=app_id, conversation_id=conversation_id, away_since=state.away_since)
            .on_conflict_do_nothing()
            .returning(AwayReply.conversation_id)
        )
        if first is None:
            return
        await messaging.send_system_message(
            session,
            app_id,
            conversation_id,
            away_reply_text(settings, state.back_at),
            f"away-{int(state.away_since.timestamp())}",
            author_name=settings.team_name,
        )
