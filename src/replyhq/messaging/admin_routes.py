"""/admin/api/conversations: the agents' side of messaging (staff token or the app's secret key).

A staff user reads and writes as `Participant("agent", staff id, name)`. The app's secret key has
no staff user behind it: it writes as an agent whose author id is the app's id (author name
"API"), and keeps its own read marker under that id.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Query, Response, status

from replyhq.accounts import team
from replyhq.accounts.deps import RequirePermission, admin_router
from replyhq.accounts.permissions import StaffPrincipal
from replyhq.errors import BadRequest
from replyhq.messaging import service, summaries
from replyhq.messaging.schemas import (
    Assignee,
    ConversationPatch,
    InboxConversation,
    InboxPage,
    MessageIn,
    MessageOut,
    MessagePage,
    ReadIn,
)
from replyhq.messaging.service import Participant
from replyhq.web.bounds import INT4_MAX
from replyhq.web.deps import RuntimeDep

router = admin_router("/admin/api/conversations", ["conversations"])

INTEGRATION_AUTHOR = "API"

Reader = Annotated[StaffPrincipal, RequirePermission("conversations:read")]
Writer = Annotated[StaffPrincipal, RequirePermission("conversations:write")]
MessageReader = Annotated[StaffPrincipal, RequirePermission("messages:read")]
MessageWriter = Annotated[StaffPrincipal, RequirePermission("messages:write")]


def agent(caller: StaffPrincipal) -> Participant:
    """How the caller appears on messages and read markers."""
    if caller.staff_id is None:
        return Participant("agent", caller.app_id, INTEGRATION_AUTHOR)
    return Participant("agent", caller.staff_id, caller.name or caller.email)


def assignee_filter(caller: StaffPrincipal, assignee: str | None) -> tuple[uuid.UUID | None, bool]:
    """(assignee id, unassigned only) from `me`, `none` or a staff id."""
    if assignee is None:
        return None, False
    if assignee == "none":
        return None, True
    if assignee == "me":
        if caller.staff_id is None:
            raise BadRequest(
                "assignee=me needs a staff user; the secret key is not one.",
                code="VALIDATION_ERROR",
                details=[{"field": "assignee", "reason": "no staff user behind the secret key"}],
            )
        return caller.staff_id, False
    try:
        return uuid.UUID(assignee), False
    except ValueError:
        raise BadRequest(
            "assignee is me, none or a staff id.",
            code="VALIDATION_ERROR",
            details=[{"field": "assignee", "reason": "expected me, none or a staff id"}],
        ) from None


@router.get("", response_model=InboxPage)
async def inbox(
    caller: Reader,
    runtime: RuntimeDep,
    status: Literal["open", "closed"] | None = None,
    assignee: Annotated[
        str | None, Query(max_length=64, description="me, none or a staff id")
    ] = None,
    label: Annotated[
        uuid.UUID | None, Query(description="only conversations with this label")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    """The inbox, newest activity first: each conversation with its end user, last message and
    the caller's unread count. One database query per page, whatever its size."""
    # The JSON comes ready from the service; response_model keeps the documented schema.
    assignee_id, unassigned = assignee_filter(caller, assignee)
    body = await summaries.inbox_json(
        runtime.db,
        caller.app_id,
        agent(caller),
        status=status,
        assignee_id=assignee_id,
        unassigned=unassigned,
        label_id=label,
        limit=limit,
        cursor=cursor,
    )
    return Response(body, media_type="application/json")


@router.get("/assignees")
async def assignees(caller: Writer, runtime: RuntimeDep) -> list[Assignee]:
    """The active members a conversation may be assigned to (names for the dashboard's picker
    and header; an agent has no `team:read`)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        members = await team.list_team(session, caller.app_id)
    return [Assignee.model_validate(m) for m in members if m.active]


@router.get("/{conversation_id}", response_model=InboxConversation)
async def get_conversation(
    conversation_id: uuid.UUID, caller: Reader, runtime: RuntimeDep
) -> Response:
    body = await summaries.inbox_conversation_json(
        runtime.db, caller.app_id, conversation_id, agent(caller)
    )
    return Response(body, media_type="application/json")


@router.patch("/{conversation_id}")
async def update_conversation(
    conversation_id: uuid.UUID, body: ConversationPatch, caller: Writer, runtime: RuntimeDep
) -> InboxConversation:
    """Close (`status: "closed"`), reopen (`"open"`), assign (`assignee_id`: an active member
    of the team) or unassign (`assignee_id: null`)."""
    given = body.model_fields_set
    if not given:
        raise BadRequest(
            "Send status and/or assignee_id.",
            code="VALIDATION_ERROR",
            details=[{"field": "body", "reason": "no change given"}],
        )
    if "status" in given and body.status is None:
        raise BadRequest(
            "status is open or closed.",
            code="VALIDATION_ERROR",
            details=[{"field": "status", "reason": "must be open or closed"}],
        )
    changes: dict[str, object] = {}
    if "status" in given:
        changes["status"] = body.status
    async with runtime.db.tenant_session(caller.app_id) as session:
        if "assignee_id" in given:
            if (
                body.assignee_id is not None
                and await team.active_staff(session, caller.app_id, body.assignee_id) is None
            ):
                raise BadRequest(
                    "The assignee must be an active member of this app's team.",
                    code="INVALID_ASSIGNEE",
                    details=[{"field": "assignee_id", "reason": "no such active team member"}],
                )
            changes["assignee_id"] = body.assignee_id
        await service.update_conversation(
            session,
            caller.app_id,
            conversation_id,
            **changes,  # type: ignore[arg-type]
            actor=agent(caller),
        )
        return await summaries.inbox_conversation(
            session, caller.app_id, conversation_id, agent(caller)
        )


@router.get("/{conversation_id}/messages")
async def list_messages(
    conversation_id: uuid.UUID,
    caller: MessageReader,
    runtime: RuntimeDep,
    after_seq: Annotated[int, Query(ge=0, le=INT4_MAX)] = 0,
    before_seq: Annotated[int | None, Query(ge=1, le=INT4_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> MessagePage:
    """Messages with seq > after_seq, ascending (with before_seq: the page just before it)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        await service.require_conversation(session, caller.app_id, conversation_id)
        return await service.list_messages(
            session,
            caller.app_id,
            conversation_id,
            after_seq=after_seq,
            before_seq=before_seq,
            limit=limit,
        )


@router.post("/{conversation_id}/messages", status_code=status.HTTP_201_CREATED)
async def reply(
    conversation_id: uuid.UUID,
    body: MessageIn,
    caller: MessageWriter,
    runtime: RuntimeDep,
    response: Response,
) -> MessageOut:
    """Reply as an agent. The same client_msg_id again answers 200 with the stored message."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        out, created = await service.send_in_session(
            session,
            caller.app_id,
            conversation_id,
            agent(caller),
            body.body,
            body.client_msg_id,
            body.attachment_ids,
        )
    if not created:
        response.status_code = status.HTTP_200_OK
    return out


@router.post("/{conversation_id}/read", status_code=status.HTTP_204_NO_CONTENT)
async def mark_read(
    conversation_id: uuid.UUID, body: ReadIn, caller: MessageReader, runtime: RuntimeDep
) -> None:
    """The caller has read up to `seq`: their unread count drops; the end user is told."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        await service.read_up_to(session, caller.app_id, conversation_id, agent(caller), body.seq)
