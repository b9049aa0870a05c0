"""Event-triggered messages: a message from a named agent to each person who performs an event
(optionally only if a segment condition selects them then), at most once per person, through the
normal conversation path (a new conversation holding the agent's message: it is in their
conversation list, arrives live and by push).

Ingest does not wait for any of it. The statement that stores a batch of events
(replyhq.analytics.ingest) also claims `(triggered message, person)` in triggered_message_sends
for every active trigger on those events' names, `ON CONFLICT DO NOTHING`, and queues the
`triggered_messages.send` job when it claimed anyone, all in the batch's transaction. The
primary key is what makes it once per person, whatever the number of concurrent events,
requests or processes; the job (send_pending) then sends the claimed ones in chunks, each
chunk one transaction holding the people's conversations, messages and their claims marked sent.
A person the condition does not select has their claim deleted, so a later event may send it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.campaigns import service as campaigns
from replyhq.errors import NotFound
from replyhq.messaging import service as messaging
from replyhq.messaging.service import Participant
from replyhq.segments import service as segments
from replyhq.triggered.models import TriggeredMessage, TriggeredSend
from replyhq.triggered.schemas import TriggeredMessageIn, TriggeredMessageOut
from replyhq.users.models import EndUser

CHUNK = 100
LIST_LIMIT = 200


async def create(
    session: AsyncSession, app_id: uuid.UUID, data: TriggeredMessageIn
) -> TriggeredMessage:
    """Active from now: events that happened before it was created do not send it."""
    if data.condition is not None:
        # 400 INVALID_SEGMENT (naming the bad node) before anything is stored
        segments.condition(app_id, data.condition, path="condition")
    sender = await campaigns.active_sender(session, app_id, data.sender_id)
    trigger = TriggeredMessage(
        app_id=app_id,
        name=data.name,
        event_name=data.event_name,
        condition=data.condition,
        sender_id=sender.id,
        sender_name=sender.name or sender.email,
        body=data.body,
    )
    session.add(trigger)
    await session.flush()
    await session.refresh(trigger)
    return trigger


async def get(session: AsyncSession, app_id: uuid.UUID, trigger_id: uuid.UUID) -> TriggeredMessage:
    trigger = await session.scalar(
        select(TriggeredMessage).where(
            TriggeredMessage.app_id == app_id, TriggeredMessage.id == trigger_id
        )
    )
    if trigger is None:
        raise NotFound("No such triggered message.", code="TRIGGERED_MESSAGE_NOT_FOUND")
    return trigger


async def stop(session: AsyncSession, app_id: uuid.UUID, trigger_id: uuid.UUID) -> TriggeredMessage:
    """No one more receives it: later events claim no one, and those claimed but not yet sent
    are not sent (the job deletes their claims). Those reached keep their message."""
    await get(session, app_id, trigger_id)
    await session.execute(
        update(TriggeredMessage)
        .where(
            TriggeredMessage.app_id == app_id,
            TriggeredMessage.id == trigger_id,
            TriggeredMessage.status == "active",
        )
        .values(status="stopped", stopped_at=func.now())
    )
    return await get(session, app_id, trigger_id)


async def list_triggered(session: AsyncSession, app_id: uuid.UUID) -> list[TriggeredMessage]:
    return list(
        await session.scalars(
            select(TriggeredMessage)
            .where(TriggeredMessage.app_id == app_id)
            .order_by(TriggeredMessage.created_at.desc())
            .limit(LIST_LIMIT)
        )
    )


async def send_pending(session: AsyncSession, app_id: uuid.UUID) -> int:
    """Send (or drop) up to CHUNK claims not yet sent; how many were handled (0: none left).

    Claims are locked SKIP LOCKED, so jobs running side by side share the work and never send
    one twice; the triggers are read FOR SHARE, so a stop waits for a chunk under way and the
    next chunk sees it."""
    claims = list(
        await session.scalars(
            select(TriggeredSend)
            .where(TriggeredSend.app_id == app_id, TriggeredSend.sent_at.is_(None))
            .order_by(TriggeredSend.claimed_at, TriggeredSend.end_user_id)
            .limit(CHUNK)
            .with_for_update(skip_locked=True)
        )
    )
    if not claims:
        return 0
    by_trigger: dict[uuid.UUID, list[TriggeredSend]] = defaultdict(list)
    for claim in claims:
        by_trigger[claim.triggered_message_id].append(claim)
    triggers = {
        t.id: t
        for t in await session.scalars(
            select(TriggeredMessage)
            .where(TriggeredMessage.app_id == app_id, TriggeredMessage.id.in_(by_trigger))
            .with_for_update(read=True)
        )
    }
    for trigger_id, group in by_trigger.items():
        trigger = triggers.get(trigger_id)
        selected = set() if trigger is None else await _selected(session, app_id, trigger, group)
        for claim in group:
            if trigger is None or trigger.status != "active" or claim.end_user_id not in selected:
                await session.execute(
                    delete(TriggeredSend).where(
                        TriggeredSend.app_id == app_id,
                        TriggeredSend.triggered_message_id == trigger_id,
                        TriggeredSend.end_user_id == claim.end_user_id,
                    )
                )
                continue
            await _send(session, app_id, trigger, claim)
    await session.flush()
    return len(claims)


async def _selected(
    session: AsyncSession, app_id: uuid.UUID, trigger: TriggeredMessage, group: list[TriggeredSend]
) -> set[uuid.UUID]:
    """Of the claimed people, those the trigger's condition selects now (all without one)."""
    people = [claim.end_user_id for claim in group]
    if trigger.condition is None:
        return set(people)
    # At most a chunk of people: each looked up (an index probe per person and membership)
    # rather than a hash of everyone an event or device condition selects in the app.
    where = segments.condition(app_id, trigger.condition, correlated=True)
    return set(
        await session.scalars(
            select(EndUser.id).where(EndUser.app_id == app_id, EndUser.id.in_(people), where)
        )
    )


async def _send(
    session: AsyncSession, app_id: uuid.UUID, trigger: TriggeredMessage, claim: TriggeredSend
) -> None:
    conversation_id, _ = await messaging.start_conversation(
        session,
        app_id,
        Participant("user", claim.end_user_id),
        subject=trigger.name,
        first_message=None,
    )
    message, _ = await messaging.send_message(
        session,
        app_id,
        conversation_id,
        Participant("agent", trigger.sender_id, trigger.sender_name),
        trigger.body,
        f"triggered-{trigger.id.hex}",  # the conversation is new: unique in it
    )
    claim.conversation_id = conversation_id
    claim.seq = message.seq
    claim.sent_at = func.now()


async def outcomes(
    session: AsyncSession, app_id: uuid.UUID, trigger_ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, int, int]]:
    """(sent, opened, replied) per triggered message, in one query."""
    sent = TriggeredSend
    counts = campaigns.outcome_counts(sent.app_id, sent.conversation_id, sent.seq)
    rows = await session.execute(
        select(sent.triggered_message_id, *counts)
        .where(
            sent.app_id == app_id,
            sent.triggered_message_id.in_(trigger_ids),
            sent.sent_at.is_not(None),
        )
        .group_by(sent.triggered_message_id)
    )
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


async def described(
    session: AsyncSession, app_id: uuid.UUID, triggers: list[TriggeredMessage]
) -> list[TriggeredMessageOut]:
    counts = await outcomes(session, app_id, [t.id for t in triggers])
    return campaigns.with_outcomes(TriggeredMessageOut, triggers, counts)
