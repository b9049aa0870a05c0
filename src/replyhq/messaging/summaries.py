"""The conversation summaries readers list: each conversation with its last message, the
reader's unread count and the other side's read marker (the end user's list, the agents' inbox
and their single-conversation forms). One query whatever the page size, built once per form.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
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
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from replyhq.db import Database
from replyhq.errors import NotFound
from replyhq.messaging.models import Conversation, Message, ReadMarker
from replyhq.messaging.schemas import (
    ConversationOut,
    ConversationPage,
    InboxConversation,
    InboxPage,
)
from replyhq.messaging.service import Participant
from replyhq.pagination import decode_cursor, encode_cursor
from replyhq.users.models import EndUser  # joined read-only for the agents' inbox
from replyhq.workspace.queries import label_ids, labelled


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
        "kind": row["message_kind"],
        "data": row["message_data"],
        # Lists show the last message's text only: its attachments come with the history.
        "attachments": [],
    }


def _conversation_data(row: _Row) -> dict[str, Any]:
    """A ConversationOut as plain data, its keys in the model's field order."""
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
    }


def _inbox_data(row: _Row) -> dict[str, Any]:
    """An InboxConversation as plain data, its keys in the model's field order: serialised as
    it is (inbox_json), it is the JSON that _inbox_out's model gives, without building models.
    tests/test_admin_conversations.py holds the two to the same bytes."""
    return {
        **_conversation_data(row),
        "end_user_id": row["end_user_id"],
        "user": {
            "id": row["end_user_id"],
            "user_id": row["external_id"],
            "name": row["name"],
            "email": row["email"],
            "anonymous": row["external_id"] is None,
            "verified": row["verified"],
        },
        "label_ids": row["label_ids"],
    }


def _conversation_out(row: _Row) -> ConversationOut:
    return ConversationOut.model_validate(_conversation_data(row))


def _inbox_out(row: _Row) -> InboxConversation:
    return InboxConversation.model_validate(_inbox_data(row))


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
    label: bool = False  # only conversations with the label %(label_id)s (the workspace's)


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
    if shape.label:
        page = page.where(labelled(Conversation.id, bindparam("label_id")))
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
            counted.kind == "message",  # a closed/reopened event is nobody's unread message
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
            last.kind.label("message_kind"),
            last.data.label("message_data"),
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
            EndUser.external_id,
            EndUser.name,
            EndUser.email,
            EndUser.verified,
            label_ids(conversation.id).label("label_ids"),
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


def _inbox_shape(
    status: str | None, assignee_id: uuid.UUID | None, unassigned: bool, label_id: uuid.UUID | None
) -> _Shape:
    assignee: Literal["any", "one", "none"] = (
        "one" if assignee_id is not None else "none" if unassigned else "any"
    )
    return _Shape(
        status=status is not None, assignee=assignee, with_user=True, label=label_id is not None
    )


async def inbox(
    session: AsyncSession,
    app_id: uuid.UUID,
    reader: Participant,
    *,
    status: str | None = None,
    assignee_id: uuid.UUID | None = None,
    unassigned: bool = False,
    label_id: uuid.UUID | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> InboxPage:
    """The agents' inbox: each conversation with its end user, last message and `reader`'s
    unread count, in one query whatever the page size."""
    rows, next_cursor = await _page(
        _in_session(session),
        _inbox_shape(status, assignee_id, unassigned, label_id),
        reader,
        limit=limit,
        cursor=cursor,
        app_id=app_id,
        status=status,
        assignee_id=assignee_id,
        label_id=label_id,
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
    label_id: uuid.UUID | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> bytes:
    """`inbox` as the JSON of its InboxPage, for the route that only sends it: the query runs
    as a transaction of its own (Database.tenant_statement) and the rows go to JSON without
    models (of the inbox's ~6 ms of CPU a page of 50, the session took ~1.1 ms, the models
    ~1.1 ms and FastAPI's check of them again as much)."""
    rows, next_cursor = await _page(
        _alone(db, app_id),
        _inbox_shape(status, assignee_id, unassigned, label_id),
        reader,
        limit=limit,
        cursor=cursor,
        app_id=app_id,
        status=status,
        assignee_id=assignee_id,
        label_id=label_id,
    )
    return to_json({"items": [_inbox_data(row) for row in rows], "next_cursor": next_cursor})


async def _inbox_row(
    fetch: _Fetch, app_id: uuid.UUID, conversation_id: uuid.UUID, reader: Participant
) -> _Row:
    rows = await _summaries(
        fetch,
        _Shape(single=True, with_user=True),
        reader,
        app_id=app_id,
        conversation_id=conversation_id,
    )
    if not rows:
        raise NotFound("No such conversation.", code="CONVERSATION_NOT_FOUND")
    return rows[0]


async def inbox_conversation(
    session: AsyncSession, app_id: uuid.UUID, conversation_id: uuid.UUID, reader: Participant
) -> InboxConversation:
    return _inbox_out(await _inbox_row(_in_session(session), app_id, conversation_id, reader))


async def inbox_conversation_json(
    db: Database, app_id: uuid.UUID, conversation_id: uuid.UUID, reader: Participant
) -> bytes:
    """`inbox_conversation` as JSON, the way inbox_json makes it."""
    row = await _inbox_row(_alone(db, app_id), app_id, conversation_id, reader)
    return to_json(_inbox_data(row))
