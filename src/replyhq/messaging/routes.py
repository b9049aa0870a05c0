"""/v1/conversations: the end user's side of messaging (SDK key + device)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.attachments import service as attachments
from replyhq.billing import service as billing
from replyhq.messaging import service, summaries
from replyhq.messaging.schemas import (
    ConversationIn,
    ConversationOut,
    ConversationPage,
    MessageIn,
    MessageOut,
    MessagePage,
    ReadIn,
)
from replyhq.messaging.service import Participant
from replyhq.messenger import service as messenger
from replyhq.users.service import device_user
from replyhq.web.bounds import INT4_MAX
from replyhq.web.deps import RuntimeDep, SDKApp, SDKCaller

router = APIRouter(prefix="/v1/conversations", tags=["sdk"])

Limit = Annotated[int, Query(ge=1, le=100)]


async def _end_user(session: AsyncSession, caller: SDKCaller) -> Participant:
    end_user_id, name = await device_user(session, caller.app_id, caller.device_id)
    return Participant("user", end_user_id, name)


@router.post("", status_code=status.HTTP_201_CREATED, responses=billing.REFUSED_NEW_CONVERSATION)
async def start_conversation(
    body: ConversationIn,
    caller: SDKApp,
    runtime: RuntimeDep,
    response: Response,
    background: BackgroundTasks,
) -> ConversationOut:
    """Start a conversation; a retried first message (same client_msg_id) answers 200 with the
    conversation the first attempt created."""
    first = body.first_message
    async with runtime.db.tenant_session(caller.app_id) as session:
        user = await _end_user(session, caller)
        await billing.may_start_conversation(session, runtime.settings, caller.app_id)  # 402
        conversation_id, created = await service.start_conversation(
            session,
            caller.app_id,
            user,
            subject=body.subject,
            first_message=(first.body, first.client_msg_id) if first else None,
            attachment_ids=first.attachment_ids if first else (),
        )
        out = await summaries.conversation_summary(session, caller.app_id, conversation_id, user)
        if first is not None and first.attachment_ids and out.last_message is not None:
            # The first message as a send answers it: with its attachments (lists leave them out).
            found = await attachments.of_messages(session, caller.app_id, [out.last_message.id])
            out.last_message.attachments = found.get(out.last_message.id, [])
    if not created:
        response.status_code = status.HTTP_200_OK
    elif first is not None:
        # After the response: a messenger learns the conversation's id from it, and would drop
        # an away reply announced before then.
        background.add_task(
            messenger.after_user_message, runtime.db, caller.app_id, conversation_id
        )
    return out


@router.get("")
async def list_conversations(
    caller: SDKApp, runtime: RuntimeDep, limit: Limit = 20, cursor: str | None = None
) -> ConversationPage:
    """The caller's own conversations, newest activity first."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        user = await _end_user(session, caller)
        return await summaries.list_conversations(
            session, caller.app_id, user, end_user_id=user.id, limit=limit, cursor=cursor
        )


@router.get("/{conversation_id}")
async def get_conversation(
    conversation_id: uuid.UUID, caller: SDKApp, runtime: RuntimeDep
) -> ConversationOut:
    async with runtime.db.tenant_session(caller.app_id) as session:
        user = await _end_user(session, caller)
        return await summaries.conversation_summary(
            session, caller.app_id, conversation_id, user, end_user_id=user.id
        )


@router.post("/{conversation_id}/messages", status_code=status.HTTP_201_CREATED)
async def send_message(
    conversation_id: uuid.UUID,
    body: MessageIn,
    caller: SDKApp,
    runtime: RuntimeDep,
    response: Response,
) -> MessageOut:
    """Send a message; the same client_msg_id again answers 200 with the stored message."""
    out, created = await service.send_device_message(
        runtime.db,
        caller.app_id,
        conversation_id,
        caller.device_id,
        body.body,
        body.client_msg_id,
        body.attachment_ids,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return out


@router.get("/{conversation_id}/messages")
async def list_messages(
    conversation_id: uuid.UUID,
    caller: SDKApp,
    runtime: RuntimeDep,
    after_seq: Annotated[int, Query(ge=0, le=INT4_MAX)] = 0,
    before_seq: Annotated[int | None, Query(ge=1, le=INT4_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> MessagePage:
    """Messages with seq > after_seq, ascending (with before_seq: the page just before it)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        user = await _end_user(session, caller)
        await service.require_conversation(
            session, caller.app_id, conversation_id, end_user_id=user.id
        )
        return await service.list_messages(
            session,
            caller.app_id,
            conversation_id,
            after_seq=after_seq,
            before_seq=before_seq,
            limit=limit,
        )


@router.post("/{conversation_id}/read", status_code=status.HTTP_204_NO_CONTENT)
async def mark_read(
    conversation_id: uuid.UUID, body: ReadIn, caller: SDKApp, runtime: RuntimeDep
) -> None:
    async with runtime.db.tenant_session(caller.app_id) as session:
        user = await _end_user(session, caller)
        await service.read_up_to(
            session, caller.app_id, conversation_id, user, body.seq, end_user_id=user.id
        )
