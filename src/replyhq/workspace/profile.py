"""The end user's profile beside a conversation: their other conversations, their devices and
their latest tracked events (replyhq.analytics); attributes come with GET /admin/api/users/{id}."""

from __future__ import annotations

import uuid

from sqlalchemy import desc, select
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.analytics.models import events
from replyhq.errors import NotFound
from replyhq.messaging.models import Conversation
from replyhq.users.models import Device
from replyhq.users.service import end_user_profile
from replyhq.workspace.schemas import ProfileConversation, ProfileDevice, ProfileEvent, ProfileOut

LIMIT = 50


async def profile(session: AsyncSession, app_id: uuid.UUID, end_user_id: uuid.UUID) -> ProfileOut:
    if await end_user_profile(session, app_id, end_user_id) is None:
        raise NotFound("No such end user.", code="END_USER_NOT_FOUND")
    conversations = await session.execute(
        select(
            Conversation.id,
            Conversation.subject,
            Conversation.status,
            Conversation.assignee_id,
            Conversation.last_seq,
            Conversation.last_activity_at,
        )
        .where(Conversation.app_id == app_id, Conversation.end_user_id == end_user_id)
        .order_by(desc(Conversation.last_activity_at))
        .limit(LIMIT)
    )
    devices = await session.execute(
        select(
            Device.platform,
            Device.app_version,
            Device.locale,
            Device.timezone,
            Device.created_at,
            Device.last_seen_at,
        )
        .where(Device.app_id == app_id, Device.end_user_id == end_user_id)
        .order_by(desc(Device.last_seen_at))
        .limit(LIMIT)
    )
    tracked = await session.execute(
        select(events.c.name, events.c.properties, events.c.occurred_at, events.c.platform)
        .where(events.c.app_id == app_id, events.c.end_user_id == end_user_id)
        .order_by(desc(events.c.occurred_at))
        .limit(LIMIT)
    )
    return ProfileOut(
        conversations=[ProfileConversation.model_validate(r._mapping) for r in conversations],
        devices=[ProfileDevice.model_validate(r._mapping) for r in devices],
        events=[ProfileEvent.model_validate(r._mapping) for r in tracked],
    )
