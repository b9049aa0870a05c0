"""Conversations and messages. Every write goes through here, in the caller's tenant transaction.

`seq` is allocated under the conversation's row lock in the transaction that inserts the message,
so it is gap-free (a rollback returns the number) and unique; `client_msg_id` makes a send
idempotent, also under concurrent retries, because the retry waits for the lock and then finds the
first attempt's message.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache, partial
from types import MappingProxyType
from typing import Any, Literal

from pydantic_core import to_json
from sqlalchemy import (
    Integer,
    Select,
    and_,
    bindparam,
    case,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from replyhq.db import Database
from replyhq.errors import BadRequest, DeviceUnknown, NotFound
from replyhq.events import Event, record
from replyhq.messaging import statements
from replyhq.messaging.models import Conversation, Message, ReadMarker
from replyhq.messaging.render import render_body_html
from replyhq.messaging.schemas import (
    Author,
    ConversationOut,
    ConversationPage,
    ConversationUser,
    InboxConversation,
    InboxPage,
    MessageOut,
    MessagePage,
)
from replyhq.observability.metrics import MESSAGES_SENT, count_message_sent
from replyhq.pagination import decode_cursor, encode_cursor
from replyhq.users.models import EndUser  # joined read-only for the agents' inbox

ReaderType = Literal["user", "agent"]


@dataclass(frozen=True)
class Participant:
    """Who writes or reads: the end user, or an agent. `name` is kept on each message they send."""

    kind: ReaderType
    id: uuid.UUID
    name: str | None = None


def message_out(message: Message) -> MessageOut:
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
    )


def _last_message_out(row: _Row) -> MessageOut | None:
    if row["message_id"] is None:
        return None
    return MessageOut(
        id=row["message_id"],
        conversation_id=row["id"],
        seq=row["last_seq"],
        client_msg_id=row["client_msg_id"],
        sender=row["sender"],
        author=Author(type=row["sender"], id=row["author_id"], name=row["author_name"]),
        body=row["body"],
        body_html=row["body_html"],
        created_at=row["message_created_at"],
    )


def _conversation_out(row: _Row) -> ConversationOut:
    return ConversationOut(
        id=row["id"],
        subject=row["subject"],
        status=row["status"],
        assignee_id=row["assignee_id"],
        last_seq=row["last_seq"],
        unread_count=row["unread_count"],
        peer_read_seq=row["peer_read_seq"],
        last_message=_last_message_out(row),
        last_activity_at=row["last_activity_at"],
        created_at=row["created_at"],
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


@dataclass(frozen=True)
class _Shape:
    """The form of a summary query; the values go in as bind parameters, so each form is built
    once per process (building SQLAlchemy statements costs more than running this one)."""

    end_user: bool = False
    status: bool = False
    assignee: Literal["any", "one", "none"] = "any"
    single: bool = False  # one conversation by id, rather than a page
    cursor: bool = False
    with_user: bool = False


@lru_cache(maxsize=128)
def _summary_statement(shape: _Shape) -> Select[*tuple[Any, ...]]:
    """Conversations with their last message and the reader's unread count (and, `with_user`,
    the end user's profile without attributes) in one query.

    The page of conversations is chosen first, in a subquery, so the per-conversation parts are
    computed for its rows only, by index, however many conversations the app has. It selects
    columns, not ORM entities: the rows become API models at once, and making ORM objects of
    them first cost 0.4 to 1 ms of CPU on a page of 50."""
    page = select(Conversation).where(Conversation.app_id == bindparam("app_id"))
    if shape.end_user:
        page = page.where(Conversation.end_user_id == bindparam("end_user_id"))
    if shape.status:
        page = page.where(Conversation.status == bindparam("status"))
    if shape.assignee == "one":
        page = page.where(Conversation.assignee_id == bindparam("assignee_id"))
    elif shape.assignee == "none":
        page = page.where(Conversation.assignee_id.is_(None))
    if shape.single:
        page = page.where(Conversation.id == bindparam("conversation_id"))
    else:
        if shape.cursor:
            # A row comparison, so that it is a bound of the index scan rather than a filter
            # applied to every row before the cursor.
            at = bindparam("cursor_at", type_=Conversation.last_activity_at.type)
            page = page.where(
                tuple_(Conversation.last_activity_at, Conversation.id)
                < tuple_(at, bindparam("cursor_id", type_=Conversation.id.type))
            )
        page = page.order_by(Conversation.last_activity_at.desc(), Conversation.id.desc()).limit(
            bindparam("limit", type_=Integer)
        )

    conversation = aliased(Conversation, page.subquery("page"))
    last = aliased(Message)
    counted = aliased(Message)
    marker = aliased(ReadMarker)
    # CASE, not COALESCE: under row-level security only leakproof conditions may become index
    # bounds ahead of the policy, and PostgreSQL counts COALESCE as possibly leaky, which turned
    # `seq > marker` into a filter over all of the conversation's messages.
    read_seq = case((marker.last_read_seq.is_(None), 0), else_=marker.last_read_seq)
    # Messages are found by conversation only: its id fixes the app (the foreign key is on both
    # columns, and RLS applies), and an `app_id =` here offered the planner the app-wide
    # ix_messages_app_created, which it took on small or freshly counted tables.
    unread = (
        select(func.count())
        .select_from(counted)
        .where(
            counted.conversation_id == conversation.id,
            counted.seq > read_seq,
            counted.sender != bindparam("reader_kind"),
        )
        .correlate(conversation, marker)
        .scalar_subquery()
    )
    peer = aliased(ReadMarker)
    peer_read = (
        select(func.coalesce(func.max(peer.last_read_seq), 0))
        .where(peer.conversation_id == conversation.id, peer.reader_type == bindparam("peer_kind"))
        .correlate(conversation)
        .scalar_subquery()
    )
    stmt = (
        select(
            conversation.id,
            conversation.subject,
            conversation.status,
            conversation.assignee_id,
            conversation.last_seq,
            conversation.last_activity_at,
            conversation.created_at,
            conversation.end_user_id,
            last.id.label("message_id"),  # the message's seq is last_seq
            last.client_msg_id,
            last.sender,
            last.author_id,
            last.author_name,
            last.body,
            last.body_html,
            last.created_at.label("message_created_at"),
            unread.label("unread_count"),
            peer_read.label("peer_read_seq"),
        )
        .outerjoin(
            last,
            and_(last.conversation_id == conversation.id, last.seq == conversation.last_seq),
        )
        .outerjoin(
            marker,
            and_(
                marker.conversation_id == conversation.id,
                marker.app_id == conversation.app_id,
                marker.reader_type == bindparam("reader_kind"),
                marker.reader_id == bindparam("reader_id"),
            ),
        )
    )
    if shape.with_user:
        stmt = stmt.add_columns(
            EndUser.external_id, EndUser.name, EndUser.email, EndUser.verified
        ).join(
            EndUser,
            and_(EndUser.id == conversation.end_user_id, EndUser.app_id == conversation.app_id),
        )
    return stmt.order_by(conversation.last_activity_at.desc(), conversation.id.desc())


_Row = Mapping[Any, Any]  # a summary row by column name (SQLAlchemy's RowMapping or a dict)
_DRIVER_DIALECT = psycopg_dialect.dialect()  # type: ignore[no-untyped-call]


@lru_cache(maxsize=128)
def _summary_sql(shape: _Shape) -> tuple[str, Mapping[str, Any]]:
    """_summary_statement compiled once to psycopg's `%(name)s` SQL (the text SQLAlchemy sends
    for it), for Database.tenant_statement; with the values of its literal parameters (the 0s
    of CASE and COALESCE)."""
    compiled = _summary_statement(shape).compile(dialect=_DRIVER_DIALECT)
    literals = {name: value for name, value in compiled.params.items() if value is not None}
    return compiled.string, MappingProxyType(literals)


# Runs a summary query of a shape with its parameters: its rows, as mappings.
_Fetch = Callable[[_Shape, dict[str, Any]], Awaitable[Sequence[_Row]]]


def _in_session(session: AsyncSession) -> _Fetch:
    async def fetch(shape: _Shape, params: dict[str, Any]) -> Sequence[_Row]:
        return (await session.execute(_summary_statement(shape), params)).mappings().all()

    return fetch


def _alone(db: Database, app_id: uuid.UUID) -> _Fetch:
    """As a transaction of its own (one round trip, no SQLAlchemy session): for reads that are
    the whole of a request, where the session's machinery cost more CPU than the query."""

    async def fetch(shape: _Shape, params: dict[str, Any]) -> Sequence[_Row]:
        sql, literals = _summary_sql(shape)
        return await db.tenant_statement(app_id, sql, {**literals, **params})

    return fetch


async def _summaries(
    fetch: _Fetch, shape: _Shape, reader: Participant, **values: Any
) -> Sequence[_Row]:
    peer_kind = "agent" if reader.kind == "user" else "user"
    params = {"reader_kind": reader.kind, "peer_kind": peer_kind, "reader_id": reader.id, **values}
    return await fetch(shape, params)


async def _page(
    fetch: _Fetch,
    shape: _Shape,
    reader: Participant,
    *,
    limit: int,
    cursor: str | None,
    **values: Any,
) -> tuple[Sequence[_Row], str | None]:
    """One page of summaries, newest activity first, and the cursor of the next page."""
    if cursor is not None:
        at, last_id = decode_cursor(cursor)
        shape = replace(shape, cursor=True)
        values.update(cursor_at=at, cursor_id=last_id)
    rows = await _summaries(fetch, shape, reader, limit=limit + 1, **values)
    next_cursor = None
    if len(rows) > limit:
        tail = rows[limit - 1]
        next_cursor = encode_cursor(tail["last_activity_at"], tail["id"])
    return rows[:limit], next_cursor


async def list_conversations(
    session: AsyncSession,
    app_id: uuid.UUID,
    reader: Participant,
    *,
    end_user_id: uuid.UUID | None = None,
    status: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> ConversationPage:
    shape = _Shape(end_user=end_user_id is not None, status=status is not None)
    rows, next_cursor = await _page(
        _in_session(session),
        shape,
        reader,
        limit=limit,
        cursor=cursor,
        app_id=app_id,
        end_user_id=end_user_id,
        status=status,
    )
    items = [_conversation_out(row) for row in rows]
    return ConversationPage(items=items, next_cursor=next_cursor)


async def conversation_summary(
    session: AsyncSession,
    app_id: uuid.UUID,
    conversation_id: uuid.UUID,
    reader: Participant,
    *,
    end_user_id: uuid.UUID | None = None,
) -> ConversationOut:
    shape = _Shape(single=True, end_user=end_user_id is not None)
    rows = await _summaries(
        _in_session(session),
        shape,
        reader,
        app_id=app_id,
        conversation_id=conversation_id,
        end_user_id=end_user_id,
    )
    if not rows:
        raise NotFound("No such conversation.", code="CONVERSATION_NOT_FOUND")
    return _conversation_out(rows[0])


def _message_data(row: _Row) -> dict[str, Any] | None:
    if row["message_id"] is None:
        return None
    return {
        "id": row["message_id"],
        "conversation_id": row["id"],
        "seq": row["last_seq"],
        "client_msg_id": row["client_msg_id"],
        "sender": row["sender"],
        "author": {"type": row["sender"], "id": row["author_id"], "name": row["author_name"]},
        "body": row["body"],
        "body_html": row["body_html"],
        "created_at": row["message_created_at"],
    }


def _inbox_data(row: _Row) -> dict[str, Any]:
    """An InboxConversation as plain data, its keys in the model's field order: serialised as
    it is (inbox_json), it is the JSON that _inbox_out's model gives, without building models.
    tests/test_admin_conversations.py holds the two to the same bytes."""
    return {
        "id": row["id"],
        "subject": row["subject"],
        "status": row["status"],
        "assignee_id": row["assignee_id"],
        "last_seq": row["last_seq"],
        "unread_count": row["unread_count"],
        "peer_read_seq": row["peer_read_seq"],
        "last_message": _message_data(row),
        "last_activity_at": row["last_activity_at"],
        "created_at": row["created_at"],
        "end_user_id": row["end_user_id"],
        "user": {
            "id": row["end_user_id"],
            "user_id": row["external_id"],
            "name": row["name"],
            "email": row["email"],
            "anonymous": row["external_id"] is None,
            "verified": row["verified"],
        },
    }


def _inbox_out(row: _Row) -> InboxConversation:
    return InboxConversation(
        id=row["id"],
        subject=row["subject"],
        status=row["status"],
        assignee_id=row["assignee_id"],
        last_seq=row["last_seq"],
        unread_count=row["unread_count"],
        peer_read_seq=row["peer_read_seq"],
        last_message=_last_message_out(row),
        last_activity_at=row["last_activity_at"],
        created_at=row["created_at"],
        end_user_id=row["end_user_id"],
        user=ConversationUser(
            id=row["end_user_id"],
            user_id=row["external_id"],
            name=row["name"],
            email=row["email"],
            anonymous=row["external_id"] is None,
            verified=row["verified"],
        ),
    )


def _inbox_shape(status: str | None, assignee_id: uuid.UUID | None, unassigned: bool) -> _Shape:
    assignee: Literal["any", "one", "none"] = (
        "one" if assignee_id is not None else "none" if unassigned else "any"
    )
    return _Shape(status=status is not None, assignee=assignee, with_user=True)


async def inbox(
    session: AsyncSession,
    app_id: uuid.UUID,
    reader: Participant,
    *,
    status: str | None = None,
    assignee_id: uuid.UUID | None = None,
    unassigned: bool = False,
    limit: int = 20,
    cursor: str | None = None,
) -> InboxPage:
    """The agents' inbox: each conversation with its end user, last message and `reader`'s
    unread count, in one query whatever the page size."""
    rows, next_cursor = await _page(
        _in_session(session),
        _inbox_shape(status, assignee_id, unassigned),
        reader,
        limit=limit,
        cursor=cursor,
        app_id=app_id,
        status=status,
        assignee_id=assignee_id,
    )
    return InboxPage(items=[_inbox_out(row) for row in rows], next_cursor=next_cursor)


async def inbox_json(
    db: Database,
    app_id: uuid.UUID,
    reader: Participant,
    *,
    status: str | None = None,
    assignee_id: uuid.UUID | None = None,
    unassigned: bool = False,
    limit: int = 20,
    cursor: str | None = None,
) -> bytes:
    """`inbox` as the JSON of its InboxPage, for the route that only sends it: the query runs
    as a transaction of its own (Database.tenant_statement) and the rows go to JSON without
    models (of the inbox's ~6 ms of CPU a page of 50, the session took ~1.1 ms, the models
    ~1.1 ms and FastAPI's check of them again as much)."""
    rows, next_cursor = await _page(
        _alone(db, app_id),
        _inbox_shape(status, assignee_id, unassigned),
        reader,
        limit=limit,
        cursor=cursor,
        app_id=app_id,
        status=status,
        assignee_id=assignee_id,
    )
    return to_json({"items": [_inbox_data(row) for row in rows], "next_cursor": next_cursor})


async def inbox_conversation(
    session: AsyncSession, app_id: uuid.UUID, conversation_id: uuid.UUID, reader: Participant
) -> InboxConversation:
    rows = await _summaries(
        _in_session(session),
        _Shape(single=True, with_user=True),
        reader,
        app_id=app_id,
        conversation_id=conversation_id,
    )
    if not rows:
        raise NotFound("No such conversation.", code="CONVERSATION_NOT_FOUND")
    return _inbox_out(rows[0])


async def inbox_conversation_json(
    db: Database, app_id: uuid.UUID, conversation_id: uuid.UUID, reader: Participant
) -> bytes:
    """`inbox_conversation` as JSON, the way inbox_json makes it."""
    rows = await _summaries(
        _alone(db, app_id),
        _Shape(single=True, with_user=True),
        reader,
        app_id=app_id,
        conversation_id=conversation_id,
    )
    if not rows:
        raise NotFound("No such conversation.", code="CONVERSATION_NOT_FOUND")
    return to_json(_inbox_data(rows[0]))


_UNCHANGED: Any = object()


async def update_conversation(
    session: AsyncSession,
    app_id: uuid.UUID,
    conversation_id: uuid.UUID,
    *,
    status: str | None = _UNCHANGED,
    assignee_id: uuid.UUID | None = _UNCHANGED,
) -> Conversation:
    """Close, reopen, assign or unassign (the assignee is checked by the caller: an active staff
    user of the app). Tells the end user and the agents when something changed."""
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
) -> tuple[uuid.UUID, bool]:
    """Open a conversation for the end user `author`; (id, created). A retried first message
    (same client_msg_id) finds the conversation its first attempt created."""
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
        await send_message(session, app_id, conversation_id, author, body, client_msg_id)
    return conversation_id, True


def _send_params(
    app_id: uuid.UUID, conversation_id: uuid.UUID, kind: str, body: str, client_msg_id: str
) -> dict[str, Any]:
    writable = bool(body.strip())
    return {
        "app_id": app_id,
        "conversation_id": conversation_id,
        "message_id": uuid.uuid4(),
        "client_msg_id": client_msg_id,
        "kind": kind,
        "body": body,
        "body_html": render_body_html(body) if writable else "",
        "writable": writable,
    }


def _found(row: Mapping[str, Any], *, writable: bool) -> bool:
    """Whether a send statement stored or found the message; False when it must run again (a
    retry of this client_msg_id committed while it waited for the lock). Raises its refusals."""
    if not row["found"]:
        raise NotFound("No such conversation.", code="CONVERSATION_NOT_FOUND")
    if row["id"] is None:
        if writable:
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
) -> tuple[Message, bool]:
    """Store a message once; (message, created). A repeated client_msg_id returns the original.
    One statement (messaging/statements.py), in the caller's transaction."""
    sql = statements.send(from_device=False, owner="any" if end_user_id is None else "given")
    params = _send_params(app_id, conversation_id, author.kind, body, client_msg_id)
    params.update(author_id=author.id, author_name=author.name, end_user_id=end_user_id)
    connection = await session.connection()
    for _ in range(2):  # the second time with a snapshot that sees a concurrent retry's message
        row = dict((await connection.exec_driver_sql(sql, params)).mappings().one())
        if _found(row, writable=params["writable"]):
            break
    else:
        raise RuntimeError("a send found neither its message nor room to store it")
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
    if row["created"]:
        count_message_sent(session, author.kind)  # messages_sent_total, once committed
        for event in _sent_events(row, app_id, message_out(message)):
            record(session, event)
    return message, bool(row["created"])


async def send_device_message(
    db: Database,
    app_id: uuid.UUID,
    conversation_id: uuid.UUID,
    device_id: str,
    body: str,
    client_msg_id: str,
) -> tuple[MessageOut, bool]:
    """send_message for the end user behind `device_id` (the SDK's hot path): the device's user,
    the conversation (theirs, or 404) and the send in one statement that is its own transaction
    (Database.tenant_statement: one round trip). 401 for a device that has not identified.

    Shielded: once sent, the statement commits whatever happens to the caller, so a caller that
    goes away (cancelled) must not take the stored message's events with it."""
    sql = statements.send(from_device=True, owner="sender")
    params = _send_params(app_id, conversation_id, "user", body, client_msg_id)
    params["device_id"] = device_id
    return await asyncio.shield(_send_alone(db, app_id, sql, params))


async def send_agent_message(
    db: Database,
    app_id: uuid.UUID,
    conversation_id: uuid.UUID,
    author: Participant,
    body: str,
    client_msg_id: str,
) -> tuple[MessageOut, bool]:
    """send_message for an agent's reply (any conversation of the app, or 404) as
    send_device_message sends: one statement that is its own transaction, shielded alike."""
    sql = statements.send(from_device=False, owner="any")
    params = _send_params(app_id, conversation_id, author.kind, body, client_msg_id)
    params.update(author_id=author.id, author_name=author.name)
    return await asyncio.shield(_send_alone(db, app_id, sql, params))


async def _send_alone(
    db: Database, app_id: uuid.UUID, sql: str, params: dict[str, Any]
) -> tuple[MessageOut, bool]:
    """A send statement run as its own transaction; its events emitted once it committed."""
    for _ in range(2):  # the second time with a snapshot that sees a concurrent retry's message
        (row,) = await db.tenant_statement(app_id, sql, params)
        if row["sender_id"] is None:  # only a device's sender can be missing
            raise DeviceUnknown()
        if _found(row, writable=params["writable"]):
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
    return MessagePage(items=[message_out(m) for m in messages], has_more=has_more)


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
