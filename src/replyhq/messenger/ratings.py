"""Satisfaction ratings (CSAT): the end user rates a closing of their conversation, 1 to 5 with
an optional comment, once per closing (conversation_ratings' unique key)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.errors import Conflict
from replyhq.events import Event, record
from replyhq.messaging.models import Conversation
from replyhq.messenger.models import ConversationMetrics, ConversationRating
from replyhq.messenger.schemas import RatingIn, RatingOut, RatingState


async def _closing(
    session: AsyncSession, app_id: uuid.UUID, conversation_id: uuid.UUID, *, lock: bool = False
) -> tuple[str, int, uuid.UUID | None]:
    """(status, closing number, assignee at that closing), the conversation assumed found."""
    stmt = (
        select(
            Conversation.status,
            ConversationMetrics.closings,
            ConversationMetrics.closed_assignee_id,
        )
        .join(ConversationMetrics, ConversationMetrics.conversation_id == Conversation.id)
        .where(Conversation.app_id == app_id, Conversation.id == conversation_id)
    )
    if lock:
        stmt = stmt.with_for_update(of=Conversation)
    row = (await session.execute(stmt)).one()
    return row[0], row[1], row[2]


async def rating_state(
    session: AsyncSession, app_id: uuid.UUID, conversation_id: uuid.UUID
) -> RatingState:
    status, closing, _ = await _closing(session, app_id, conversation_id)
    rating = await session.scalar(
        select(ConversationRating).where(
            ConversationRating.app_id == app_id,
            ConversationRating.conversation_id == conversation_id,
            ConversationRating.closing == closing,
        )
    )
    return RatingState(
        closing=closing,
        can_rate=status == "closed" and rating is None,
        rating=None if rating is None else RatingOut.model_validate(rating),
    )


async def rate(
    session: AsyncSession,
    app_id: uuid.UUID,
    conversation_id: uuid.UUID,
    end_user_id: uuid.UUID,
    data: RatingIn,
) -> RatingOut:
    """409 while the conversation is open or once its current closing is rated."""
    status, closing, assignee_id = await _closing(session, app_id, conversation_id, lock=True)
    if status != "closed":
        raise Conflict("Only a closed conversation can be rated.", code="CONVERSATION_OPEN")
    rating = await session.scalar(
        pg_insert(ConversationRating)
        .values(
            app_id=app_id,
            conversation_id=conversation_id,
            closing=closing,
            score=data.score,
            comment=(data.comment or "").strip() or None,
            assignee_id=assignee_id,
        )
        .on_conflict_do_nothing(index_elements=["conversation_id", "closing"])
        .returning(ConversationRating)
    )
    if rating is None:
        raise Conflict("This conversation's closing is already rated.", code="ALREADY_RATED")
    out = RatingOut.model_validate(rating)
    payload = {"rating": out.model_dump(mode="json")}
    record(session, Event("conversation:rated", app_id, payload, end_user_id, agents=True))
    return out


async def list_ratings(
    session: AsyncSession, app_id: uuid.UUID, conversation_id: uuid.UUID
) -> list[RatingOut]:
    rows = await session.scalars(
        select(ConversationRating)
        .where(
            ConversationRating.app_id == app_id,
            ConversationRating.conversation_id == conversation_id,
        )
        .order_by(ConversationRating.closing)
    )
    return [RatingOut.model_validate(r) for r in rows]
