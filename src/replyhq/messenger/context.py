"""Visitor context: where a web messenger's device is (page, referrer) and what it runs (browser
and OS, parsed here from its User-Agent header with ua-parser). No geo lookup."""

from __future__ import annotations

import uuid
from functools import lru_cache

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from ua_parser import parse

from replyhq.errors import DeviceUnknown
from replyhq.messaging.models import Conversation
from replyhq.messenger.models import VisitorContext
from replyhq.messenger.schemas import VisitorContextIn, VisitorContextOut
from replyhq.users.models import Device

MAX_USER_AGENT = 1000


def _named(family: str | None, major: str | None) -> str | None:
    if not family or family == "Other":
        return None
    return f"{family} {major}" if major else family


@lru_cache(maxsize=1024)
def browser_and_os(user_agent: str) -> tuple[str | None, str | None]:
    parsed = parse(user_agent)
    browser = parsed.user_agent
    system = parsed.os
    return (
        _named(browser.family, browser.major) if browser else None,
        _named(system.family, system.major) if system else None,
    )


async def record_context(
    session: AsyncSession,
    app_id: uuid.UUID,
    device_id: str,
    data: VisitorContextIn,
    user_agent: str | None,
) -> VisitorContextOut:
    known = await session.scalar(
        select(Device.id).where(Device.app_id == app_id, Device.device_id == device_id)
    )
    if known is None:
        raise DeviceUnknown()
    agent = (user_agent or "")[:MAX_USER_AGENT] or None
    browser, system = browser_and_os(agent) if agent else (None, None)
    values = {
        "page_url": data.page_url,
        "page_title": data.page_title,
        "referrer": data.referrer,
        "browser": browser,
        "os": system,
        "user_agent": agent,
        "updated_at": func.now(),
    }
    stmt = pg_insert(VisitorContext).values(app_id=app_id, device_id=device_id, **values)
    stmt = stmt.on_conflict_do_update(index_elements=["app_id", "device_id"], set_=values)
    row = await session.scalar(
        stmt.returning(VisitorContext).execution_options(populate_existing=True)
    )
    return VisitorContextOut.model_validate(row)


async def conversation_context(
    session: AsyncSession, app_id: uuid.UUID, conversation_id: uuid.UUID
) -> VisitorContextOut | None:
    """The latest context of any device of the conversation's end user."""
    row = await session.scalar(
        select(VisitorContext)
        .join(
            Device,
            (Device.app_id == VisitorContext.app_id)
            & (Device.device_id == VisitorContext.device_id),
        )
        .join(
            Conversation,
            (Conversation.app_id == Device.app_id)
            & (Conversation.end_user_id == Device.end_user_id),
        )
        .where(VisitorContext.app_id == app_id, Conversation.id == conversation_id)
        .order_by(VisitorContext.updated_at.desc())
        .limit(1)
    )
    return None if row is None else VisitorContextOut.model_validate(row)
