"""Labels (tags) on conversations: an app's set of named colours, put on and taken off
conversations by any agent; each change is a staff-only timeline event and is told to the
app's agents live (`conversation:labels`)."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.errors import Conflict, NotFound
from replyhq.events import Event, record
from replyhq.messaging.service import Participant, require_conversation
from replyhq.workspace import timeline
from replyhq.workspace.models import ConversationLabel, Label


def _exists() -> Conflict:
    return Conflict("A label with this name exists.", code="LABEL_EXISTS")


async def list_labels(session: AsyncSession, app_id: uuid.UUID) -> list[Label]:
    return list(
        await session.scalars(
            select(Label).where(Label.app_id == app_id).order_by(func.lower(Label.name))
        )
    )


async def require_label(session: AsyncSession, app_id: uuid.UUID, label_id: uuid.UUID) -> Label:
    label = await session.scalar(select(Label).where(Label.app_id == app_id, Label.id == label_id))
    if label is None:
        raise NotFound("No such label.", code="LABEL_NOT_FOUND")
    return label


async def create_label(session: AsyncSession, app_id: uuid.UUID, name: str, color: str) -> Label:
    # DO NOTHING on the unique name index: two creations of one name race to one label, and the
    # loser is a 409, not a 500.
    label: Label | None = await session.scalar(
        pg_insert(Label)
        .values(app_id=app_id, name=name, color=color)
        .on_conflict_do_nothing()
        .returning(Label)
    )
    if label is None:
        raise _exists()
    return label


async def update_label(
    session: AsyncSession,
    app_id: uuid.UUID,
    label_id: uuid.UUID,
    *,
    name: str | None,
    color: str | None,
) -> Label:
    label = await require_label(session, app_id, label_id)
    values = {k: v for k, v in (("name", name), ("color", color)) if v is not None}
    if name is not None and name.lower() != label.name.lower():
        taken = await session.scalar(
            select(Label.id).where(Label.app_id == app_id, func.lower(Label.name) == name.lower())
        )
        if taken is not None:
            raise _exists()
    if values:
        await session.execute(
            update(Label).where(Label.app_id == app_id, Label.id == label_id).values(**values)
        )
        await session.refresh(label)
    return label


async def delete_label(session: AsyncSession, app_id: uuid.UUID, label_id: uuid.UUID) -> None:
    """Delete the label; it leaves every conversation it was on (the foreign key cascades)."""
    await require_label(session, app_id, label_id)
    await session.execute(delete(Label).where(Label.app_id == app_id, Label.id == label_id))


async def conversation_labels(
    session: AsyncSession, app_id: uuid.UUID, conversation_id: uuid.UUID
) -> list[Label]:
    return list(
        await session.scalars(
            select(Label)
            .join(
                ConversationLabel,
                (ConversationLabel.label_id == Label.id)
                & (ConversationLabel.app_id == Label.app_id),
            )
            .where(
                ConversationLabel.app_id == app_id,
                ConversationLabel.conversation_id == conversation_id,
            )
            .order_by(func.lower(Label.name))
        )
    )


async def _changed(
    session: AsyncSession, app_id: uuid.UUID, conversation_id: uuid.UUID
) -> list[Label]:
    labels = await conversation_labels(session, app_id, conversation_id)
    data = {
        "conversation_id": str(conversation_id),
        "labels": [{"id": str(lb.id), "name": lb.name, "color": lb.color} for lb in labels],
    }
    record(session, Event("conversation:labels", app_id, data, agents=True))
    return labels


async def set_label(
    session: AsyncSession,
    app_id: uuid.UUID,
    conversation_id: uuid.UUID,
    label_id: uuid.UUID,
    actor: Participant,
    *,
    on: bool,
) -> list[Label]:
    """Put the label on the conversation (`on`) or take it off; the conversation's labels.
    Doing what is already done changes nothing and records no event."""
    conversation = await require_conversation(session, app_id, conversation_id)
    label = await require_label(session, app_id, label_id)
    if on:
        changed = await session.scalar(
            pg_insert(ConversationLabel)
            .values(app_id=app_id, conversation_id=conversation_id, label_id=label_id)
            .on_conflict_do_nothing()
            .returning(ConversationLabel.label_id)
        )
    else:
        changed = await session.scalar(
            delete(ConversationLabel)
            .where(
                ConversationLabel.app_id == app_id,
                ConversationLabel.conversation_id == conversation_id,
                ConversationLabel.label_id == label_id,
            )
            .returning(ConversationLabel.label_id)
        )
    if changed is None:
        return await conversation_labels(session, app_id, conversation_id)
    await timeline.record_event(
        session,
        conversation,
        "label_added" if on else "label_removed",
        actor,
        f"{'added' if on else 'removed'} the label {label.name}",
        label_id=str(label.id),
        label_name=label.name,
        label_color=label.color,
    )
    return await _changed(session, app_id, conversation_id)
