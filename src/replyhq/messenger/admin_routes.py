"""/admin/api/messenger (the app's messenger settings) and what agents see of a conversation's
visitor context and ratings."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter

from replyhq.accounts.deps import RequirePermission, admin_router
from replyhq.accounts.permissions import StaffPrincipal
from replyhq.messaging.service import require_conversation
from replyhq.messenger import context, ratings, service
from replyhq.messenger.schemas import (
    MessengerSettingsOut,
    MessengerSettingsPatch,
    RatingOut,
    VisitorContextOut,
)
from replyhq.web.deps import RuntimeDep

router = admin_router("/admin/api/messenger", ["messenger"])
conversation_router: APIRouter = admin_router("/admin/api/conversations", ["conversations"])

Reader = Annotated[StaffPrincipal, RequirePermission("conversations:read")]


@router.get("")
async def get_settings(
    caller: Annotated[StaffPrincipal, RequirePermission("settings:read")], runtime: RuntimeDep
) -> MessengerSettingsOut:
    """The messenger's look, language, office hours and away message (defaults until saved)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        return await service.get_settings(session, caller.app_id)


@router.patch("")
async def update_settings(
    body: MessengerSettingsPatch,
    caller: Annotated[StaffPrincipal, RequirePermission("settings:write")],
    runtime: RuntimeDep,
) -> MessengerSettingsOut:
    """Change any of the settings; open messengers follow at once (`messenger:settings`)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        out = await service.update_settings(session, caller.app_id, body)
        await service.publish_settings(session, runtime.db, caller.app_id, out)
    service.forget_schedule(runtime.db, caller.app_id)
    return out


@conversation_router.get("/{conversation_id}/context")
async def conversation_context(
    conversation_id: uuid.UUID, caller: Reader, runtime: RuntimeDep
) -> VisitorContextOut | None:
    """The end user's latest page, referrer, browser and OS (null when none was reported)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        await require_conversation(session, caller.app_id, conversation_id)
        return await context.conversation_context(session, caller.app_id, conversation_id)


@conversation_router.get("/{conversation_id}/ratings")
async def conversation_ratings(
    conversation_id: uuid.UUID, caller: Reader, runtime: RuntimeDep
) -> list[RatingOut]:
    """The end user's ratings of this conversation, one per closing, oldest first."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        await require_conversation(session, caller.app_id, conversation_id)
        return await ratings.list_ratings(session, caller.app_id, conversation_id)
