"""Campaigns: a message from a named agent to a segment's members, sent by a job through the
normal conversation path (a new conversation per person, the agent's message in it: it is in
their conversation list and arrives live), at most once per person, stoppable.

The job sends in chunks, each its own transaction: a person's conversation, message and
`campaign_messages` row commit together, so a job run again (a retry, a dead worker) skips
everyone already reached, and a stop takes effect at the next chunk.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.accounts.models import StaffUser
from replyhq.campaigns.models import Campaign, CampaignMessage
from replyhq.campaigns.schemas import CampaignIn, CampaignOut, Outcomes
from replyhq.errors import BadRequest, NotFound
from replyhq.messaging import service as messaging
from replyhq.messaging.models import Message, ReadMarker
from replyhq.messaging.service import Participant
from replyhq.segments import service as segments
from replyhq.users.models import EndUser

OutT = TypeVar("OutT", bound=Outcomes)

CHUNK = 100


async def create(session: AsyncSession, app_id: uuid.UUID, data: CampaignIn) -> Campaign:
    """The campaign, ready for its job (the caller enqueues it in this transaction)."""
    segment = await segments.get(session, app_id, data.segment_id)
    sender = await active_sender(session, app_id, data.sender_id)
    campaign = Campaign(
        app_id=app_id,
        name=data.name,
        segment_id=segment.id,
        query=segment.query,
        sender_id=sender.id,
        sender_name=sender.name or sender.email,
        body=data.body,
    )
    session.add(campaign)
    await session.flush()
    await session.refresh(campaign)
    return campaign


async def active_sender(
    session: AsyncSession, app_id: uuid.UUID, sender_id: uuid.UUID
) -> StaffUser:
    """The active team member a message is sent as; 400 INVALID_SENDER otherwise."""
    sender = await session.scalar(
        select(StaffUser).where(
            StaffUser.app_id == app_id, StaffUser.id == sender_id, StaffUser.active
        )
    )
    if sender is None:
        raise BadRequest(
            "sender_id must be an active member of the team.",
            code="INVALID_SENDER",
            details=[{"field": "sender_id", "reason": "not an active team member"}],
        )
    return sender


async def get(session: AsyncSession, app_id: uuid.UUID, campaign_id: uuid.UUID) -> Campaign:
    campaign = await session.scalar(
        select(Campaign).where(Campaign.app_id == app_id, Campaign.id == campaign_id)
    )
    if campaign is None:
        raise NotFound("No such campaign.", code="CAMPAIGN_NOT_FOUND")
    return campaign


async def stop(session: AsyncSession, app_id: uuid.UUID, campaign_id: uuid.UUID) -> Campaign:
    """No one more receives it (those reached keep their message)."""
    await get(session, app_id, campaign_id)
    await session.execute(
        update(Campaign)
        .where(Campaign.app_id == app_id, Campaign.id == campaign_id, Campaign.status == "sending")
        .values(status="stopped", finished_at=func.now())
    )
    return await get(session, app_id, campaign_id)


async def send_chunk(session: AsyncSession, app_id: uuid.UUID, campaign_id: uuid.UUID) -> int:
    """Send to up to CHUNK members not yet reached; how many (0: finished or stopped)."""
    campaign = await session.scalar(
        select(Campaign)
        .where(Campaign.app_id == app_id, Campaign.id == campaign_id)
        .with_for_update()  # one chunk at a time, and a stop waits for it
    )
    if campaign is None or campaign.status != "sending":
        return 0
    reached = exists().where(
        CampaignMessage.campaign_id == campaign_id, CampaignMessage.end_user_id == EndUser.id
    )
    members = list(
        await session.scalars(
            select(EndUser.id)
            .where(EndUser.app_id == app_id, segments.condition(app_id, campaign.query), ~reached)
            .order_by(EndUser.id)
            .limit(CHUNK)
        )
    )
    agent = Participant("agent", campaign.sender_id, campaign.sender_name)
    for end_user_id in members:
        conversation_id, _ = await messaging.start_conversation(
            session,
            app_id,
            Participant("user", end_user_id),
            subject=campaign.name,
            first_message=None,
        )
        message, _ = await messaging.send_message(
            session,
            app_id,
            conversation_id,
            agent,
            campaign.body,
            f"campaign-{campaign_id.hex}",  # the conversation is new: unique in it
        )
        session.add(
            CampaignMessage(
                app_id=app_id,
                campaign_id=campaign_id,
                end_user_id=end_user_id,
                conversation_id=conversation_id,
                seq=message.seq,
            )
        )
    if not members:
        campaign.status = "done"
        campaign.finished_at = func.now()
    await session.flush()
    return len(members)


def outcome_counts(app_id: Any, conversation_id: Any, seq: Any) -> tuple[Any, Any, Any]:
    """(sent, opened, replied) aggregates over rows recording a message sent to a person as its
    conversation and seq: opened when the person read up to it, replied when they wrote after."""
    opened = exists().where(
        ReadMarker.app_id == app_id,
        ReadMarker.conversation_id == conversation_id,
        ReadMarker.reader_type == "user",
        ReadMarker.last_read_seq >= seq,
    )
    replied = exists().where(
        Message.app_id == app_id,
        Message.conversation_id == conversation_id,
        Message.sender == "user",
        Message.seq > seq,
    )
    return func.count(), func.count().filter(opened), func.count().filter(replied)


async def outcomes(
    session: AsyncSession, app_id: uuid.UUID, campaign_ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, int, int]]:
    """(sent, opened, replied) per campaign, in one query."""
    sent = CampaignMessage
    rows = await session.execute(
        select(sent.campaign_id, *outcome_counts(sent.app_id, sent.conversation_id, sent.seq))
        .where(sent.app_id == app_id, sent.campaign_id.in_(campaign_ids))
        .group_by(sent.campaign_id)
    )
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def with_outcomes(
    model: type[OutT], rows: Sequence[Any], counts: dict[uuid.UUID, tuple[int, int, int]]
) -> list[OutT]:
    """Each row as `model` says, with its (sent, opened, replied): the fields the model has
    beside Outcomes' are read from the row."""
    fields = [k for k in model.model_fields if k not in Outcomes.model_fields]
    return [
        model(
            **{k: getattr(row, k) for k in fields},
            **dict(zip(Outcomes.model_fields, counts.get(row.id, (0, 0, 0)), strict=True)),
        )
        for row in rows
    ]


async def described(
    session: AsyncSession, app_id: uuid.UUID, campaigns: list[Campaign]
) -> list[CampaignOut]:
    counts = await outcomes(session, app_id, [c.id for c in campaigns])
    return with_outcomes(CampaignOut, campaigns, counts)


async def list_campaigns(session: AsyncSession, app_id: uuid.UUID) -> list[Campaign]:
    return list(
        await session.scalars(
            select(Campaign)
            .where(Campaign.app_id == app_id)
            .order_by(Campaign.created_at.desc())
            .limit(200)
        )
    )
