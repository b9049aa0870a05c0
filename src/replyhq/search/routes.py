"""/admin/api/search: the app's messages (full text) and end users."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Query

from replyhq.accounts.deps import RequirePermission, admin_router
from replyhq.accounts.permissions import StaffPrincipal
from replyhq.messaging.admin_routes import assignee_filter
from replyhq.search import service
from replyhq.search.schemas import MessageHits, UserHits
from replyhq.web.deps import RuntimeDep

router = admin_router("/admin/api/search", ["search"])

Terms = Annotated[str, Query(min_length=1, max_length=200, description="What to look for.")]
Limit = Annotated[int, Query(ge=1, le=50)]


@router.get("/messages")
async def search_messages(
    q: Terms,
    caller: Annotated[StaffPrincipal, RequirePermission("messages:read")],
    runtime: RuntimeDep,
    status: Literal["open", "closed"] | None = None,
    assignee: Annotated[
        str | None, Query(max_length=64, description="me, none or a staff id")
    ] = None,
    label: uuid.UUID | None = None,
    since: Annotated[datetime | None, Query(description="sent at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="sent before (ISO 8601)")] = None,
    kind: Annotated[
        Literal["message", "note"] | None,
        Query(description="only messages, or only private notes (default: both)"),
    ] = None,
    limit: Limit = 20,
) -> MessageHits:
    """The app's messages and private notes matching `q` (words, "a phrase", `or`, `-word`):
    the best of the newest 100 matches, each with a highlighted snippet, its conversation's
    status and assignee, and its end user. Staff only (notes are never an end user's)."""
    assignee_id, unassigned = assignee_filter(caller, assignee)
    hits = await service.search_messages(
        runtime.db,
        caller.app_id,
        q,
        status=status,
        assignee_id=assignee_id,
        unassigned=unassigned,
        label_id=label,
        since=since,
        until=until,
        kinds=(kind,) if kind else ("message", "note"),
        limit=limit,
    )
    return MessageHits(items=hits)


@router.get("/users")
async def search_users(
    q: Terms,
    caller: Annotated[StaffPrincipal, RequirePermission("users:read")],
    runtime: RuntimeDep,
    limit: Limit = 20,
) -> UserHits:
    """The app's end users whose user id is `q`, or whose e-mail or name (or a word of their
    name) starts with it."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        return UserHits(items=await service.search_users(session, caller.app_id, q, limit=limit))
