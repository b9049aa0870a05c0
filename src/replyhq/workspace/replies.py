"""Saved replies: an app's canned answers (name, `/shortcut`, body with placeholders), managed
by ADMIN/OWNER and used by everyone from the composer."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.errors import Conflict, NotFound
from replyhq.workspace.models import SavedReply

PLACEHOLDER = re.compile(r"\{\{\s*(user\.name|user\.email|agent\.name)\s*\}\}")


def _taken() -> Conflict:
    return Conflict("Another saved reply has this shortcut.", code="SHORTCUT_TAKEN")


async def list_replies(session: AsyncSession, app_id: uuid.UUID) -> list[SavedReply]:
    return list(
        await session.scalars(
            select(SavedReply).where(SavedReply.app_id == app_id).order_by(SavedReply.shortcut)
        )
    )


async def require_reply(
    session: AsyncSession, app_id: uuid.UUID, reply_id: uuid.UUID
) -> SavedReply:
    reply = await session.scalar(
        select(SavedReply).where(SavedReply.app_id == app_id, SavedReply.id == reply_id)
    )
    if reply is None:
        raise NotFound("No such saved reply.", code="SAVED_REPLY_NOT_FOUND")
    return reply


async def create_reply(
    session: AsyncSession, app_id: uuid.UUID, *, name: str, shortcut: str, body: str
) -> SavedReply:
    reply: SavedReply | None = await session.scalar(
        pg_insert(SavedReply)
        .values(app_id=app_id, name=name, shortcut=shortcut, body=body)
        .on_conflict_do_nothing(index_elements=["app_id", "shortcut"])
        .returning(SavedReply)
    )
    if reply is None:
        raise _taken()
    return reply


async def update_reply(
    session: AsyncSession,
    app_id: uuid.UUID,
    reply_id: uuid.UUID,
    *,
    name: str | None,
    shortcut: str | None,
    body: str | None,
) -> SavedReply:
    reply = await require_reply(session, app_id, reply_id)
    if shortcut is not None and shortcut != reply.shortcut:
        taken = await session.scalar(
            select(SavedReply.id).where(
                SavedReply.app_id == app_id, SavedReply.shortcut == shortcut
            )
        )
        if taken is not None:
            raise _taken()
    values = {
        k: v for k, v in (("name", name), ("shortcut", shortcut), ("body", body)) if v is not None
    }
    if values:
        await session.execute(
            update(SavedReply)
            .where(SavedReply.app_id == app_id, SavedReply.id == reply_id)
            .values(**values, updated_at=func.now())
        )
        await session.refresh(reply)
    return reply


async def delete_reply(session: AsyncSession, app_id: uuid.UUID, reply_id: uuid.UUID) -> None:
    await require_reply(session, app_id, reply_id)
    await session.execute(
        delete(SavedReply).where(SavedReply.app_id == app_id, SavedReply.id == reply_id)
    )


def fill(body: str, values: dict[str, str | None]) -> str:
    """The body with its placeholders replaced; an unknown value becomes an empty string (or
    "there" for the user's name: "Hi {{user.name}}" reads "Hi there")."""

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        found = values.get(key)
        if found:
            return found
        return "there" if key == "user.name" else ""

    return PLACEHOLDER.sub(value, body)
