"""/admin/api/triggered-messages: a message to each person who performs an event, once each."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import status

from replyhq.accounts.deps import RequirePermission, admin_router
from replyhq.accounts.permissions import StaffPrincipal
from replyhq.triggered import service
from replyhq.triggered.schemas import (
    TriggeredMessageIn,
    TriggeredMessageList,
    TriggeredMessageOut,
)
from replyhq.web.deps import RuntimeDep

router = admin_router("/admin/api/triggered-messages", ["triggered messages"])

Reader = Annotated[StaffPrincipal, RequirePermission("users:read")]
Writer = Annotated[StaffPrincipal, RequirePermission("segments:write")]


@router.get("")
async def list_triggered_messages(caller: Reader, runtime: RuntimeDep) -> TriggeredMessageList:
    """The latest 200 triggered messages, newest first, with their counts."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        found = await service.list_triggered(session, caller.app_id)
        return TriggeredMessageList(items=await service.described(session, caller.app_id, found))


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_triggered_message(
    body: TriggeredMessageIn, caller: Writer, runtime: RuntimeDep
) -> TriggeredMessageOut:
    """From now on, each person who performs `event_name` (and whom `condition`, when given,
    selects at that moment) receives `body` from `sender_id`, at most once."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        trigger = await service.create(session, caller.app_id, body)
        (out,) = await service.described(session, caller.app_id, [trigger])
        return out


@router.get("/{triggered_message_id}")
async def get_triggered_message(
    triggered_message_id: uuid.UUID, caller: Reader, runtime: RuntimeDep
) -> TriggeredMessageOut:
    async with runtime.db.tenant_session(caller.app_id) as session:
        trigger = await service.get(session, caller.app_id, triggered_message_id)
        (out,) = await service.described(session, caller.app_id, [trigger])
        return out


@router.post("/{triggered_message_id}/stop")
async def stop_triggered_message(
    triggered_message_id: uuid.UUID, caller: Writer, runtime: RuntimeDep
) -> TriggeredMessageOut:
    """No one more receives it; those already reached keep their message."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        trigger = await service.stop(session, caller.app_id, triggered_message_id)
        (out,) = await service.described(session, caller.app_id, [trigger])
        return out
