"""Conversations and messages. Every write goes through here, in the caller's tenant transaction.

`seq` is allocated under the conversation's row lock in the transaction that inserts the message,
so it is gap-free (a rollback returns the number) and unique; `client_msg_id` makes a send
idempotent, also under concurrent retries, because the retry waits for the lock and then finds the
first attempt's message.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from sqlalchemy import (
    and_,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.attachments.schemas import AttachmentOut
from replyhq.db import Database
from replyhq.errors import BadRequest, DeviceUnknown, DeviceUnverified, NotFound
from replyhq.events import Event, record
from replyhq.messaging import statements
from replyhq.messaging.models import Conversation, Message, ReadMarker
from replyhq.messaging.render import render_body_html
from replyhq.messaging.schemas import (
    Author,
    MessageOut,
    MessagePage,
)
from replyhq.messenger import service as messenger
from replyhq.observability.metrics import MESSAGES_SENT, count_message_sent

ReaderType = Literal["user", "agent"]


@dataclass(frozen=True)
class Participant:
    """Who writes or reads: the end user, or an agent. `name` is kept on each message they send."""

    kind: ReaderType
    id: uuid.UUID
    name: str | None = None


def message_out(message: Message, attachments: list[AttachmentOut] | None = None) -> MessageOut:
    return MessageOut(
        id=message.id,
        conversation_id=message.conversation_id,
        seq=message.seq,
        client_msg_id=message.client_msg_id,
        sender=message.sender,
        author=Author(type=message.sender, id=message.author_id, name=message.author_name),
        body=message.body,
        body_html=message.body_html,
        created_at=message.created_at,
        kind=message.kind or "message",
        data=message.data,
        attachments=attachments or [],
    )


def conversation_event(conversation: Conversation, **changes: Any) -> dict[str, Any]:
    """The `conversation:updated` payload: what every reader shares (no per-reader counts)."""
    data = {
        "id": str(conversation.id),
        "end_user_id": str(conversation.end_user_id),
        "subject": conversation.subject,
        "status": conversation.status,
        "assignee_id": str(conversation.assignee_id) if conversation.assignee_id else None,
        "last_seq": conversation.last_seq,
        "last_activity_at": conversation.last_activity_at.isoformat(),
        "created_at": conversation.created_at.isoformat(),
    }
    data.update(changes)
    return {"conversation": data}


_UNCHANGED: Any = object()


async def update_conversation(
    session: AsyncSession,
    app_id: uuid.UUID,
    conversation_id: uuid.UUID,
    *,
    status: str | None = _UNCHANGED,
    assignee_id: uuid.UUID | None = _UNCHANGED,
    actor: Participant | None = None,
) -> Conversation:
    """Close, reopen, assign or unassign (the assignee is checked by the caller: an active staff
    user of the app). Tells the end user and the agents when something changed, and puts each
    change in the timeline as an event by `actor` (None: the system)."""
    from replyhq.workspace import timeline  # it builds on this module

    conversation = await require_conversation(session, app_id, conversation_id, lock=True)
    changes: dict[str, Any] = {}
    if status is not _UNCHANGED and status != conversation.status:
        changes["status"] = status
    if assignee_id is not _UNCHANGED and assignee_id != conversation.assignee_id:
        changes["assignee_id"] = assignee_id
    if not changes:
        return conversation
    await session.execute(
        update(Conversation)
        .where(Conversation.app_id == app_id, Conversation.id == conversation_id)
        .values(**changes, updated_at=func.now())
    )
    conversation = await require_conversation(session, app_id, conversation_id, lock=True)
    await timeline.record_changes(session, conversation, changes, actor)
    record(
        session,
        Event(
            "conversation:updated",
            app_id,
            conversation_event(conversation),
            end_user_id=conversation.end_user_id,
            agents=True,
        ),
    )
    return conversation


async def require_conversation(
    session: AsyncSession,
    app_id: uuid.UUID,
    conversation_id: uuid.UUID,
    *,
    end_user_id: uuid.UUID | None = None,
    lock: bool = False,
) -> Conversation:
    """The conversation, if it is the caller's to see; 404 otherwise (whoever owns it)."""
    stmt = select(Conversation).where(
        Conversation.app_id == app_id, Conversation.id == conversation_id
    )
    if end_user_id is not None:
        stmt = stmt.where(Conversation.end_user_id == end_user_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    conversation = await session.scalar(stmt)
    if conversation is None:
        raise NotFound("No such conversation.", code="CONVERSATION_NOT_FOUND")
    return conversation


async def start_conversation(
    session: AsyncSession,
    app_id: uuid.UUID,
    author: Participant,
    *,
    subject: str | None,
    first_message: tuple[str, str] | None,
    attachment_ids: Sequence[uuid.UUID] = (),
) -> tuple[uuid.UUID, bool]:
    """Open a conversation for the end user `author`; (id, created). A retried first message
    (same client_msg_id) finds the conversation its first attempt created. The first message
    may carry the author's uploads made before the conversation (POST /v1/attachments)."""
    if first_message is not None:
        _, client_msg_id = first_message
        # Serialise retries of one first message so they cannot both create a conversation.
        await session.execute(
            select(
                func.pg_advisory_xact_lock(func.hashtextextended(f"{author.id}:{client_msg_id}", 0))
            )
        )
        existing = await session.scalar(
            select(Message.conversation_id)
            .join(
                Conversation,
                and_(
                    Conversation.id == Message.conversation_id,
                    Conversation.app_id == Message.app_id,
                ),
            )
            .where(
                Message.app_id == app_id,
                Message.client_msg_id == client_msg_id,
                Conversation.end_user_id == author.id,
            )
        )
        if existing is not None:
            return existing, False
    conversation_id = await session.scalar(
        insert(Conversation)
        .values(app_id=app_id, end_user_id=author.id, subject=subject)
        .returning(Conversation.id)
    )
    assert conversation_id is not None
    from replyhq.workspace import assignment  # it builds on this module

    await assignment.assign_new(session, app_id, conversation_id)
    conversation = await require_conversation(session, app_id, conversation_id)
    record(
        session,
        Event(
            "conversation:updated",
            app_id,
            conversation_event(conversation),
            end_user_id=author.id,
            agents=True,
        ),
    )
    if first_message is not None:
        body, client_msg_id = first_message
        await send_message(
            session,
            app_id,
            conversation_id,
            author,
            body,
            client_msg_id,
            attachment_ids=attachment_ids,
        )
    return conversation_id, True


def _send_params(
    app_id: uuid.UUID,
    conversation_id: uuid.UUID,
    kind: str,
    body: str,
    client_msg_id: str,
    attachments: bool = False,
) -> dict[str, Any]:
    writable = bool(body.strip()) or attachments
    return {
        "app_id": app_id,
        "conversation_id": conversation_id,
        "message_id": uuid.uuid4(),
        "client_msg_id": client_msg_id,
        "kind": kind,
        "body": body,
        "body_html": render_body_html(body) if body.strip() else "",
        "writable": writable,
    }


def _settled(row: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    """Whether a send statement stored or found the message; False when it must run again (a
    retry of this client_msg_id committed while it waited for the lock). Raises its refusals."""
    if row["sender_id"] is None:  # only a device's sender can be missing
        raise DeviceUnknown()
    if not row["sender_allowed"]:  # nor be refused
        raise DeviceUnverified()
    if not row["found"]:
        raise NotFound("No such conversation.", code="CONVERSATION_NOT_FOUND")
    if row["id"] is None:
        if params["writable"]:
            return False
        raise BadRequest(
            "A message needs a body.",
            code="VALIDATION_ERROR",
            details=[{"field": "body", "reason": "is blank"}],
        )
    return True


def _out(row: Mapping[str, Any], conversation_id: uuid.UUID, client_msg_id: str) -> MessageOut:
    sender = row["sender"]
    return MessageOut(
        id=row["id"],
        conversation_id=conversation_id,
        seq=row["seq"],
        client_msg_id=client_msg_id,
        sender=sender,
        author=Author(type=sender, id=row["author_id"], name=row["author_name"]),
        body=row["body"],
        body_html=row["body_html"],
        created_at=row["created_at"],
    )


def _sent_events(row: Mapping[str, Any], app_id: uuid.UUID, out: MessageOut) -> list[Event]:
    """What a stored message tells its readers (once committed)."""
    end_user_id = row["end_user_id"]
    payload = {"message": out.model_dump(mode="json")}
    events = [Event("message:new", app_id, payload, end_user_id, agents=True)]
    if out.sender == "user" and row["status"] == "closed":  # it reopened the conversation
        conversation = Conversation(
            id=out.conversation_id,
            end_user_id=end_user_id,
            subject=row["subject"],
            status="open",
            assignee_id=row["assignee_id"],
            last_seq=out.seq,
            last_activity_at=out.created_at,
            created_at=row["conversation_created_at"],
        )
        data = conversation_event(conversation)
        events.append(Event("conversation:updated", app_id, data, end_user_id, agents=True))
    return events


async def send_message(
    session: AsyncSession,
    app_id: uuid.UUID,
    conversation_id: uuid.UUID,
    author: Participant,
    body: str,
    client_msg_id: str,
    *,
    end_user_id: uuid.UUID | None = None,
    attachment_ids: Sequence[uuid.UUID] = (),
) -> tuple[Message, bool]:
    """Store a message once; (message, created). A repeated client_msg_id returns the original.
    One statement (messaging/statements.py), in the caller's transaction."""
    sql, params = _authored(
        app_id, conversation_id, author, body, client_msg_id, end_user_id, attachment_ids
    )
    row, _ = await _send_in_session(session, app_id, sql, params, attachment_ids)
    message = Message(
        id=row["id"],
        app_id=app_id,
        conversation_id=conversation_id,
        seq=row["seq"],
        client_msg_id=client_msg_id,
        sender=row["sender"],
        author_id=row["author_id"],
        author_name=row["author_name"],
        body=row["body"],
        body_html=row["body_html"],
        created_at=row["created_at"],
    )
    return message, bool(row["created"])


async def _send_in_session(
    session: AsyncSession,
    app_id: uuid.UUID,
    sql: str,
    params: dict[str, Any],
    attachment_ids: Sequence[uuid.UUID],
) -> tuple[dict[str, Any], MessageOut]:
    """A send statement in the caller's transaction, the attachments given to the new message
    (a refused one rolls the whole send back), its events recorded for after the commit."""
    from replyhq.attachments import service as attachments  # it builds on this module

    connection = await session.connection()
    for _ in range(2):  # the second time with a snapshot that sees a concurrent retry's message
        row = dict((await connection.exec_driver_sql(sql, params)).mappings().one())
        if _settled(row, params):
            break
    else:
        raise RuntimeError("a send found neither its message nor room to store it")
    out = _out(row, params["conversation_id"], params["client_msg_id"])
    if row["created"]:
        if attachment_ids:
            uploader = attachments.Uploader(out.sender, row["sender_id"])  # type: ignore[arg-type]
            out.attachments = await attachments.attach(
                session, app_id, out.conversation_id, out.id, attachment_ids, uploader
            )
        count_message_sent(session, out.sender)  # messages_sent_total, once committed
        for event in _sent_events(row, app_id, out):
            record(session, event)
    elif attachment_ids:  # a retry: the attachments its first attempt carried
        found = await attachments.of_messages(session, app_id, [out.id])
        out.attachments = found.get(out.id, [])
    return row, out


async def send_in_session(
    session: AsyncSession,
    app_id: uuid.UUID,
    conversation_id: uuid.UUID,
    author: Participant,
    body: str,
    client_msg_id: str,
    attachment_ids: Sequence[uuid.UUID] = (),
) -> tuple[MessageOut, bool]:
    """send_message answering the stored message itself, with its attachments (an agent's
    HTTP reply: any conversation of the app)."""
    sql, params = _authored(
        app_id, conversation_id, author, body, client_msg_id, None, attachment_ids
    )
    row, out = await _send_in_session(session, app_id, sql, params, attachment_ids)
    return out, bool(row["created"])


def _authored(
    app_id: uuid.UUID,
    conversation_id: uuid.UUID,
    author: Participant,
    body: str,
    client_msg_id: str,
    end_user_id: uuid.UUID | None,
    attachment_ids: Sequence[uuid.UUID],
) -> tuple[str, dict[str, Any]]:
    """The send statement and its parameters for a named author (not a device): into any
    conversation of the app, or only into `end_user_id`'s when given."""
    sql = statements.send(from_device=False, owner="any" if end_user_id is None else "given")
    params = _send_params(
        app_id, conversation_id, author.kind, body, client_msg_id, bool(attachment_ids)
    )
    params.update(author_id=author.id, author_name=author.name, end_user_id=end_user_id)
    return sql, params


async def _send_with_attachments(
    db: Database,
    app_id: uuid.UUID,
    sql: str,
    params: dict[str, Any],
    attachment_ids: Sequence[uuid.UUID],
) -> tuple[MessageOut, bool]:
    """A send carrying attachments: the statement and the attachments' update in one tenant
    transaction (the hot path's lone statement cannot also take them)."""
    async with db.tenant_session(app_id) as session:
        row, out = await _send_in_session(session, app_id, sql, params, attachment_ids)
    if row["created"]:
        MESSAGES_SENT.labels(out.sender).inc()
    return out, bool(row["created"])


async def send_device_message(
    db: Database,
    app_id: uuid.UUID,
    conversation_id: uuid.UUID,
    device_id: str,
    body: str,
    client_msg_id: str,
    attachment_ids: Sequence[uuid.UUID] = (),
) -> tuple[MessageOut, bool]:
    """send_message for the end user behind `device_id` (the SDK's hot path): the device's user,
    the conversation (theirs, or 404) and the send in one statement that is its own transaction
    (Database.tenant_statement: one round trip). 401 for a device that has not identified.

    Shielded: once sent, the statement commits whatever happens to the caller, so a caller that
    goes away (cancelled) must not take the stored message's events with it."""
    params = _send_params(
        app_id, conversation_id, "user", body, client_msg_id, bool(attachment_ids)
    )
    params["device_id"] = device_id
    if attachment_ids:
        sql = statements.send(from_device=True, owner="sender")
        sending = _send_with_attachments(db, app_id, sql, params, attachment_ids)
    else:  # the same statement as one function call that binds the tenant (migration 0180)
        sending = _send_alone(db, app_id, statements.SEND_FROM_DEVICE_CALL, params, bound=True)
    out, created = await asyncio.shield(sending)
    if created:  # outside office hours: the away reply (a dict look-up while the team is in)
        await messenger.after_user_message(db, app_id, conversation_id)
    return out, created


async def send_agent_message(
    db: Database,
    app_id: uuid.UUID,
    conversation_id: uuid.UUID,
    author: Participant,
    body: str,
    client_msg_id: str,
    attachment_ids: Sequence[uuid.UUID] = (),
) -> tuple[MessageOut, bool]:
    """send_message for an agent's reply (any conversation of the app, or 404) as
    send_device_message sends: one statement that is its own transaction, shielded alike."""
    sql, params = _authored(
        app_id, conversation_id, author, body, client_msg_id, None, attachment_ids
    )
    if attachment_ids:
        return await asyncio.shield(_send_with_attachments(db, app_id, sql, params, attachment_ids))
    return await asyncio.shield(_send_alone(db, app_id, sql, params))


async def _send_alone(
    db: Database, app_id: uuid.UUID, sql: str, params: dict[str, Any], *, bound: bool = False
) -> tuple[MessageOut, bool]:
    """A send statement run as its own transaction; its events emitted once it committed.
    `bound`: the statement binds the tenant itself (Database.tenant_function)."""
    for _ in range(2):  # the second time with a snapshot that sees a concurrent retry's message
        if bound:
            (row,) = await db.tenant_function(sql, params)
        else:
            (row,) = await db.tenant_statement(app_id, sql, params)
        if _settled(row, params):
            break
    else:
        raise RuntimeError("a send found neither its message nor room to store it")
    out = _out(row, params["conversation_id"], params["client_msg_id"])
    if row["created"]:  # committed: the statement was its own transaction
        MESSAGES_SENT.labels(out.sender).inc()
        sink = db.event_sink
        if sink is not None:
            await db.after_commit([partial(sink, e) for e in _sent_events(row, app_id, out)])
    return out, bool(row["created"])


async def list_messages(
    session: AsyncSession,
    app_id: uuid.UUID,
    conversation_id: uuid.UUID,
    *,
    after_seq: int = 0,
    before_seq: int | None = None,
    limit: int = 50,
) -> MessagePage:
    """Messages with seq > after_seq ascending; with before_seq, the latest ones before it."""
    stmt = select(Message).where(
        Message.app_id == app_id,
        Message.conversation_id == conversation_id,
        Message.seq > after_seq,
    )
    if before_seq is not None:
        stmt = stmt.where(Message.seq < before_seq).order_by(Message.seq.desc())
    else:
        stmt = stmt.order_by(Message.seq)
    messages = list(await session.scalars(stmt.limit(limit + 1)))
    has_more = len(messages) > limit
    messages = messages[:limit]
    if before_seq is not None:
        messages.reverse()
    from replyhq.attachments import service as attachments  # it builds on this module

    files = await attachments.of_messages(session, app_id, [m.id for m in messages])
    items = [message_out(m, files.get(m.id)) for m in messages]
    return MessagePage(items=items, has_more=has_more)


async def mark_read(
    session: AsyncSession,
    app_id: uuid.UUID,
    conversation_id: uuid.UUID,
    reader: Participant,
    seq: int,
) -> int:
    """Move the reader's marker forward to `seq` (never back); returns the marker."""
    insert_marker = pg_insert(ReadMarker).values(
        app_id=app_id,
        conversation_id=conversation_id,
        reader_type=reader.kind,
        reader_id=reader.id,
        last_read_seq=seq,
    )
    stmt = insert_marker.on_conflict_do_update(
        index_elements=["conversation_id", "reader_type", "reader_id"],
        set_={
            "last_read_seq": func.greatest(
                ReadMarker.last_read_seq, insert_marker.excluded.last_read_seq
            ),
            "updated_at": func.now(),
        },
    ).returning(ReadMarker.last_read_seq)
    marker = await session.scalar(stmt)
    assert marker is not None
    return marker


async def read_up_to(
    session: AsyncSession,
    app_id: uuid.UUID,
    conversation_id: uuid.UUID,
    reader: Participant,
    seq: int,
    *,
    end_user_id: uuid.UUID | None = None,
) -> int:
    conversation = await require_conversation(
        session, app_id, conversation_id, end_user_id=end_user_id
    )
    if seq > conversation.last_seq:
        raise BadRequest(
            f"seq {seq} is past the conversation's last message ({conversation.last_seq}).",
            code="SEQ_OUT_OF_RANGE",
        )
    marker = await mark_read(session, app_id, conversation_id, reader, seq)
    data = {
        "conversation_id": str(conversation_id),
        "who": {"type": reader.kind, "id": str(reader.id)},
        "seq": marker,
    }
    record(
        session,
        Event("read", app_id, data, end_user_id=conversation.end_user_id, agents=True),
    )
    return marker


async def move_conversations(
    session: AsyncSession, app_id: uuid.UUID, *, from_user: uuid.UUID, to_user: uuid.UUID
) -> None:
    """Give `to_user` every conversation of `from_user` (a visitor who has just signed in)."""
    await session.execute(
        update(Conversation)
        .where(Conversation.app_id == app_id, Conversation.end_user_id == from_user)
        .values(end_user_id=to_user)
    )


async def send_system_message(
    session: AsyncSession,
    app_id: uuid.UUID,
    conversation_id: uuid.UUID,
    body: str,
    client_msg_id: str,
    *,
    author_name: str | None = None,
) -> MessageOut | None:
    """A message from the app itself (an automatic reply): the next seq under the row lock, no
    reopening, no read marker, no first response. None when `client_msg_id` was already sent."""
    conversation = await require_conversation(session, app_id, conversation_id, lock=True)
    stored = await session.scalar(
        pg_insert(Message)
        .values(
            app_id=app_id,
            conversation_id=conversation_id,
            seq=conversation.last_seq + 1,
            client_msg_id=client_msg_id,
            sender="system",
            author_id=None,
            author_name=author_name,
            body=body,
            body_html=render_body_html(body),
            created_at=func.clock_timestamp(),
        )
        .on_conflict_do_nothing(index_elements=["conversation_id", "client_msg_id"])
        .returning(Message)
    )
    if stored is None:
        return None
    await session.execute(
        update(Conversation)
        .where(Conversation.app_id == app_id, Conversation.id == conversation_id)
        .values(last_seq=stored.seq, last_activity_at=stored.created_at, updated_at=func.now())
    )
    out = message_out(stored)
    payload = {"message": out.model_dump(mode="json")}
    record(session, Event("message:new", app_id, payload, conversation.end_user_id, agents=True))
    count_message_sent(session, "system")
    return out
