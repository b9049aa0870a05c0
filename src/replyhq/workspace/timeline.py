"""The conversation's timeline beyond messages: the agents' private notes and events (assigned,
unassigned, closed, reopened, labels added or removed), each with who and when.

Closed and reopened are for the end user too: they are rows of `messages` (kind 'event', sender
'system') at the next `seq`, under the conversation's row lock, so every client already shows
and syncs them in order. Everything else is the staff's alone and lives in `timeline_items`,
which no end-user path reads: placed after the message `after_seq` (the conversation's last seq
when written), announced as `timeline:item` to the app's agents only. The end user's `seq`
therefore stays gap-free (a hidden row among messages would leave holes that clients wait on).
"""

from __future__ import annotations

import re
import uuid
from html import escape
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from replyhq.accounts.models import StaffUser
from replyhq.errors import BadRequest
from replyhq.events import Event, record
from replyhq.mail.service import send_mail
from replyhq.messaging.models import Conversation, Message
from replyhq.messaging.render import render_body_html
from replyhq.messaging.service import Participant, message_out, require_conversation
from replyhq.workspace.models import TimelineItem
from replyhq.workspace.schemas import ItemPage, TimelineItemOut

# The events an end user sees; every other event, and every note, is the staff's alone.
PUBLIC_EVENTS = frozenset({"closed", "reopened"})
# `@handle`: a teammate's e-mail address or its local part (`@ana` for ana@acme.io).
_MENTION = re.compile(r"(?<![\w.])@([\w.+-]+(?:@[\w-]+(?:\.[\w-]+)+)?)")


def item_out(item: TimelineItem) -> TimelineItemOut:
    return TimelineItemOut(
        id=item.id,
        conversation_id=item.conversation_id,
        after_seq=item.after_seq,
        kind=item.kind,
        client_msg_id=item.client_msg_id,
        author_id=item.author_id,
        author_name=item.author_name,
        body=item.body,
        body_html=item.body_html,
        data=item.data,
        created_at=item.created_at,
    )


async def _add_item(
    session: AsyncSession,
    conversation: Conversation,
    *,
    kind: str,
    author: Participant | None,
    body: str,
    body_html: str,
    client_msg_id: str,
    data: dict[str, Any],
) -> TimelineItem | None:
    """A staff-only item after the conversation's last message, told to the agents once
    committed; None if one with this client_msg_id was stored meanwhile."""
    item: TimelineItem | None = await session.scalar(
        pg_insert(TimelineItem)
        .values(
            app_id=conversation.app_id,
            conversation_id=conversation.id,
            after_seq=conversation.last_seq,
            kind=kind,
            client_msg_id=client_msg_id,
            author_id=author.id if author else None,
            author_name=author.name if author else None,
            body=body,
            body_html=body_html,
            data=data,
            created_at=func.clock_timestamp(),
        )
        # A concurrent retry of the same note stored it first: the caller answers with that one.
        .on_conflict_do_nothing(index_elements=["conversation_id", "client_msg_id"])
        .returning(TimelineItem)
    )
    if item is None:
        return None
    payload = {"item": item_out(item).model_dump(mode="json")}
    record(session, Event("timeline:item", conversation.app_id, payload, agents=True))
    return item


async def _add_public_event(
    session: AsyncSession,
    conversation: Conversation,
    author: Participant | None,
    body: str,
    data: dict[str, Any],
) -> Message:
    """An event the end user sees: a message at the next seq of `conversation` (locked by the
    caller), told to the end user and the agents once committed."""
    seq = conversation.last_seq + 1
    message: Message | None = await session.scalar(
        insert(Message)
        .values(
            app_id=conversation.app_id,
            conversation_id=conversation.id,
            seq=seq,
            client_msg_id=f"event:{uuid.uuid4().hex}",
            sender="system",
            author_id=author.id if author else None,
            author_name=author.name if author else None,
            body=body,
            body_html=f"<p>{escape(body)}</p>",
            kind="event",
            data=data,
            created_at=func.clock_timestamp(),
        )
        .returning(Message)
    )
    assert message is not None
    await session.execute(
        update(Conversation)
        .where(Conversation.app_id == conversation.app_id, Conversation.id == conversation.id)
        .values(last_seq=seq, updated_at=func.now())
    )
    set_committed_value(conversation, "last_seq", seq)
    payload = {"message": message_out(message).model_dump(mode="json")}
    event = Event("message:new", conversation.app_id, payload, conversation.end_user_id, True)
    record(session, event)
    return message


async def record_event(
    session: AsyncSession,
    conversation: Conversation,
    event_type: str,
    actor: Participant | None,
    text: str,
    **details: Any,
) -> None:
    """One event in the timeline of `conversation` (locked by the caller when it is public)."""
    who = actor.name if actor and actor.name else "ReplyHQ"
    body = f"{who} {text}"
    data = {"type": event_type, **details}
    if event_type in PUBLIC_EVENTS:
        await _add_public_event(session, conversation, actor, body, data)
        return
    await _add_item(
        session,
        conversation,
        kind="event",
        author=actor,
        body=body,
        body_html=f"<p>{escape(body)}</p>",
        client_msg_id=f"event:{uuid.uuid4().hex}",
        data=data,
    )


def _who(staff: StaffUser | None) -> str:
    return (staff.name or staff.email) if staff is not None else "someone"


async def record_changes(
    session: AsyncSession,
    conversation: Conversation,
    changes: dict[str, Any],
    actor: Participant | None,
) -> None:
    """The events of messaging.service.update_conversation's `changes` (already applied)."""
    if "assignee_id" in changes:
        assignee_id = changes["assignee_id"]
        if assignee_id is None:
            await record_event(session, conversation, "unassigned", actor, "unassigned it")
        else:
            staff = await session.scalar(
                select(StaffUser).where(
                    StaffUser.app_id == conversation.app_id, StaffUser.id == assignee_id
                )
            )
            await record_event(
                session,
                conversation,
                "assigned",
                actor,
                f"assigned it to {_who(staff)}",
                assignee_id=str(assignee_id),
            )
    if "status" in changes:
        closed = changes["status"] == "closed"
        await record_event(
            session,
            conversation,
            "closed" if closed else "reopened",
            actor,
            "closed the conversation" if closed else "reopened the conversation",
        )


async def list_items(
    session: AsyncSession,
    app_id: uuid.UUID,
    conversation_id: uuid.UUID,
    *,
    after_seq: int = 0,
    limit: int = 100,
) -> ItemPage:
    """The staff-only items placed at or after `after_seq`, in timeline order."""
    await require_conversation(session, app_id, conversation_id)
    rows = list(
        await session.scalars(
            select(TimelineItem)
            .where(
                TimelineItem.app_id == app_id,
                TimelineItem.conversation_id == conversation_id,
                TimelineItem.after_seq >= after_seq,
            )
            .order_by(TimelineItem.after_seq, TimelineItem.created_at, TimelineItem.id)
            .limit(limit + 1)
        )
    )
    return ItemPage(items=[item_out(i) for i in rows[:limit]], has_more=len(rows) > limit)


# --- notes ----------------------------------------------------------------------------------


async def _mentioned(
    session: AsyncSession, app_id: uuid.UUID, body: str, explicit: list[uuid.UUID]
) -> list[StaffUser]:
    """The active teammates a note mentions: by id (the composer's picker) or `@handle` in the
    text. An id that is not an active member of the app's team is a 400."""
    team = list(
        await session.scalars(
            select(StaffUser).where(StaffUser.app_id == app_id, StaffUser.active.is_(True))
        )
    )
    by_id = {staff.id: staff for staff in team}
    unknown = [str(i) for i in explicit if i not in by_id]
    if unknown:
        raise BadRequest(
            "Mentions name active members of this app's team.",
            code="INVALID_MENTION",
            details=[
                {"field": "mentions", "reason": f"no such active team member: {i}"} for i in unknown
            ],
        )
    chosen = dict.fromkeys(explicit)
    handles = {h.lower() for h in _MENTION.findall(body)}
    for staff in team:
        email = staff.email.lower()
        if email in handles or email.split("@", 1)[0] in handles:
            chosen[staff.id] = None
    return [by_id[i] for i in chosen]


async def add_note(
    session: AsyncSession,
    app_id: uuid.UUID,
    conversation_id: uuid.UUID,
    author: Participant,
    body: str,
    client_msg_id: str,
    *,
    mentions: list[uuid.UUID],
    mention_link: str,
) -> tuple[TimelineItem, bool]:
    """Store a private note once (a repeated client_msg_id returns the first); each teammate it
    mentions (but its author) hears of it live (`note:mention`) and by e-mail, once committed."""
    conversation = await require_conversation(session, app_id, conversation_id)
    existing = await session.scalar(
        select(TimelineItem).where(
            TimelineItem.app_id == app_id,
            TimelineItem.conversation_id == conversation_id,
            TimelineItem.client_msg_id == client_msg_id,
        )
    )
    if existing is not None:
        return existing, False
    if not body.strip():
        raise BadRequest(
            "A note needs a body.",
            code="VALIDATION_ERROR",
            details=[{"field": "body", "reason": "is blank"}],
        )
    teammates = await _mentioned(session, app_id, body, mentions)
    note = await _add_item(
        session,
        conversation,
        kind="note",
        author=author,
        body=body,
        body_html=render_body_html(body),
        client_msg_id=client_msg_id,
        data={"mentions": [str(staff.id) for staff in teammates]},
    )
    if note is None:  # a concurrent retry stored it: now committed and visible
        stored = await session.scalar(
            select(TimelineItem).where(
                TimelineItem.conversation_id == conversation_id,
                TimelineItem.client_msg_id == client_msg_id,
            )
        )
        assert stored is not None
        return stored, False
    out = item_out(note).model_dump(mode="json")
    for staff in teammates:
        if staff.id == author.id:
            continue
        data = {"staff_id": str(staff.id), "conversation_id": str(conversation_id), "note": out}
        record(session, Event("note:mention", app_id, data, agents=True))
        context = {"author": author.name or "A teammate", "body": body, "link": mention_link}
        await send_mail(session, staff.email, "mention", context, app_id=app_id)
    return note, True
