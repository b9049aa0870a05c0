"""Saved segments, and the end users a segment query selects, in the caller's tenant transaction.

A query runs under a statement timeout (SEGMENT_TIMEOUT_MS): a slow segment is refused with 503
SEGMENT_TIMEOUT rather than holding a connection.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import delete, func, select, text, tuple_
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.errors import NotFound, ServiceUnavailable
from replyhq.pagination import decode_cursor, encode_cursor
from replyhq.segments.compile import Condition, compile_query
from replyhq.segments.dsl import parse
from replyhq.segments.models import Segment
from replyhq.segments.schemas import SAMPLE_SIZE, PreviewOut, SegmentPatch, UserPage
from replyhq.users.models import EndUser
from replyhq.users.schemas import EndUserOut

# For this transaction only (true): the statement timeout; memory enough for the hashes of an
# app's users and of an event's users (below it, a NOT IN / an IN under OR is planned as a
# subquery run again for every user); no JIT, whose compiling of a segment's large-looking plan
# costs more than running it; and every statement planned for its values (a segment's timeframes
# decide how much of a table it reads: the cached generic plan of `X >= 3 times in 30 days` read
# 87,000 rows by an index on time, in random order, where its own plan scans their pages).
_SETTINGS = text(
    "SELECT set_config('statement_timeout', :ms, true), set_config('work_mem', :mem, true), "
    "set_config('jit', 'off', true), set_config('plan_cache_mode', 'force_custom_plan', true)"
)
WORK_MEM = "32MB"


class SegmentTimeout(ServiceUnavailable):
    code = "SEGMENT_TIMEOUT"
    message = "The segment took too long to compute; simplify it (or narrow its timeframes)."


def condition(
    app_id: uuid.UUID,
    query: Any,
    now: datetime | None = None,
    path: str = "query",
    *,
    correlated: bool = False,
) -> Condition:
    """The validated query as a condition on `end_users` (400 INVALID_SEGMENT when invalid,
    naming the bad node's path from `path`); `correlated` for a statement that reads a few
    users (each looked up rather than a hash of everyone: replyhq.segments.compile)."""
    now = now or datetime.now(UTC)
    return compile_query(parse(query, now, path), app_id, now, correlated=correlated)


@asynccontextmanager
async def timed(session: AsyncSession, timeout_ms: int) -> AsyncIterator[None]:
    """This transaction's statements stop after `timeout_ms` (set_config(..., true): for this
    transaction only, never for the next user of the pooled connection), with _SETTINGS."""
    await session.execute(_SETTINGS, {"ms": str(timeout_ms), "mem": WORK_MEM})
    try:
        yield
    except DBAPIError as error:
        if isinstance(error.orig, psycopg.errors.QueryCanceled):
            raise SegmentTimeout() from None
        raise


async def preview(
    session: AsyncSession,
    app_id: uuid.UUID,
    query: Any,
    timeout_ms: int,
    now: datetime | None = None,
) -> PreviewOut:
    """The count, then the newest 20, each statement under the timeout.

    The count is an aggregate over the app's users (each membership a hash built once): nothing
    of the selected rows is kept. The sample reads the app's newest users through
    `ix_end_users_newest` (migration 0240), as many as should hold 20 of the segment's people at
    the rate the count found them (`_batch`), and tests each with the segment compiled
    `correlated` (an index lookup per user and membership rather than the hashes again). Should
    those not hold enough of them (people of the segment rarer among the newest), or should the
    segment be too rare for a batch to pay, the sample is the newest 20 of all the segment
    selects, hashed as the count was. Both statements run in the tenant's transaction (RLS)."""
    now = now or datetime.now(UTC)
    parsed = parse(query, now, "query")
    hashed = compile_query(parsed, app_id, now)
    mine = EndUser.app_id == app_id
    async with timed(session, timeout_ms):
        count, total = (
            await session.execute(select(func.count().filter(hashed), func.count()).where(mine))
        ).one()
        if not count:
            return PreviewOut(count=0, sample=[])
        wanted = min(count, SAMPLE_SIZE)
        found: list[EndUser] = []
        batch = _batch(count, total)
        if batch is not None:
            newest = select(EndUser.id).where(mine).order_by(*NEWEST).limit(batch)
            probed = compile_query(parsed, app_id, now, correlated=True)
            found = list(
                await session.scalars(
                    select(EndUser)
                    .where(mine, EndUser.id.in_(newest), probed)
                    .order_by(*NEWEST)
                    .limit(SAMPLE_SIZE)
                )
            )
        if len(found) < wanted:
            found = list(
                await session.scalars(
                    select(EndUser).where(mine, hashed).order_by(*NEWEST).limit(SAMPLE_SIZE)
                )
            )
    return PreviewOut(count=count, sample=[EndUserOut.model_validate(u) for u in found])


NEWEST = (EndUser.created_at.desc(), EndUser.id.desc())


def _batch(count: int, total: int) -> int | None:
    """How many of the newest users to test for a sample: twice as many as should hold
    SAMPLE_SIZE of the segment's `count` people among the app's `total`, if they were spread
    evenly, and a sample more; None when that is more than a quarter of the app (a rare
    segment: one hash of it is then cheaper than a lookup per user)."""
    batch = 2 * SAMPLE_SIZE * total // count + SAMPLE_SIZE
    return batch if 4 * batch <= total else None


async def users(
    session: AsyncSession,
    app_id: uuid.UUID,
    *,
    segment_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
    timeout_ms: int,
) -> UserPage:
    """The app's end users (the members of a saved segment), newest first, a page at a time."""
    stmt = select(EndUser).where(EndUser.app_id == app_id)
    if segment_id is not None:
        segment = await get(session, app_id, segment_id)
        stmt = stmt.where(condition(app_id, segment.query))
    if cursor is not None:
        at, last_id = decode_cursor(cursor)
        stmt = stmt.where(tuple_(EndUser.created_at, EndUser.id) < tuple_(at, last_id))
    stmt = stmt.order_by(EndUser.created_at.desc(), EndUser.id.desc()).limit(limit + 1)
    async with timed(session, timeout_ms):
        found = list(await session.scalars(stmt))
    page = found[:limit]
    next_cursor = None
    if len(found) > limit:
        next_cursor = encode_cursor(page[-1].created_at, page[-1].id)
    return UserPage(items=[EndUserOut.model_validate(u) for u in page], next_cursor=next_cursor)


async def list_segments(session: AsyncSession, app_id: uuid.UUID) -> list[Segment]:
    return list(
        await session.scalars(
            select(Segment).where(Segment.app_id == app_id).order_by(Segment.created_at)
        )
    )


async def get(session: AsyncSession, app_id: uuid.UUID, segment_id: uuid.UUID) -> Segment:
    segment = await session.scalar(
        select(Segment).where(Segment.app_id == app_id, Segment.id == segment_id)
    )
    if segment is None:
        raise NotFound("No such segment.", code="SEGMENT_NOT_FOUND")
    return segment


async def create(session: AsyncSession, app_id: uuid.UUID, name: str, query: Any) -> Segment:
    condition(app_id, query)  # validated before it is stored
    segment = Segment(app_id=app_id, name=name, query=query)
    session.add(segment)
    await session.flush()
    await session.refresh(segment)
    return segment


async def update(
    session: AsyncSession, app_id: uuid.UUID, segment_id: uuid.UUID, patch: SegmentPatch
) -> Segment:
    segment = await get(session, app_id, segment_id)
    if patch.query is not None:
        condition(app_id, patch.query)
        segment.query = patch.query
    if patch.name is not None:
        segment.name = patch.name
    segment.updated_at = func.now()
    await session.flush()
    await session.refresh(segment)
    return segment


async def remove(session: AsyncSession, app_id: uuid.UUID, segment_id: uuid.UUID) -> None:
    deleted = await session.execute(
        delete(Segment).where(Segment.app_id == app_id, Segment.id == segment_id)
    )
    if not deleted.rowcount:  # type: ignore[attr-defined]
        raise NotFound("No such segment.", code="SEGMENT_NOT_FOUND")
