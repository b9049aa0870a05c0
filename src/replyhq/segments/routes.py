"""/admin/api/segments (preview, saved segments) and /admin/api/users (a segment's members)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Response, status

from replyhq.accounts.deps import RequirePermission, admin_router
from replyhq.accounts.permissions import StaffPrincipal
from replyhq.segments import service
from replyhq.segments.schemas import (
    PreviewIn,
    PreviewOut,
    SegmentIn,
    SegmentList,
    SegmentOut,
    SegmentPatch,
    UserPage,
)
from replyhq.web.deps import RuntimeDep

router = admin_router("/admin/api/segments", ["segments"])
users_router = admin_router("/admin/api/users", ["end users"])

Reader = Annotated[StaffPrincipal, RequirePermission("users:read")]
Writer = Annotated[StaffPrincipal, RequirePermission("segments:write")]


@router.post("/preview")
async def preview_segment(body: PreviewIn, caller: Reader, runtime: RuntimeDep) -> PreviewOut:
    """How many end users a query selects now, and up to 20 of them (nothing is saved)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        return await service.preview(
            session, caller.app_id, body.query, runtime.settings.segment_timeout_ms
        )


@router.get("")
async def list_segments(caller: Reader, runtime: RuntimeDep) -> SegmentList:
    async with runtime.db.tenant_session(caller.app_id) as session:
        found = await service.list_segments(session, caller.app_id)
        return SegmentList(items=[SegmentOut.model_validate(s) for s in found])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_segment(body: SegmentIn, caller: Writer, runtime: RuntimeDep) -> SegmentOut:
    async with runtime.db.tenant_session(caller.app_id) as session:
        segment = await service.create(session, caller.app_id, body.name, body.query)
        return SegmentOut.model_validate(segment)


@router.get("/{segment_id}")
async def get_segment(segment_id: uuid.UUID, caller: Reader, runtime: RuntimeDep) -> SegmentOut:
    async with runtime.db.tenant_session(caller.app_id) as session:
        return SegmentOut.model_validate(await service.get(session, caller.app_id, segment_id))


@router.patch("/{segment_id}")
async def update_segment(
    segment_id: uuid.UUID, body: SegmentPatch, caller: Writer, runtime: RuntimeDep
) -> SegmentOut:
    async with runtime.db.tenant_session(caller.app_id) as session:
        segment = await service.update(session, caller.app_id, segment_id, body)
        return SegmentOut.model_validate(segment)


@router.delete("/{segment_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_segment(segment_id: uuid.UUID, caller: Writer, runtime: RuntimeDep) -> Response:
    async with runtime.db.tenant_session(caller.app_id) as session:
        await service.remove(session, caller.app_id, segment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@users_router.get("")
async def list_users(
    caller: Reader,
    runtime: RuntimeDep,
    segment: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> UserPage:
    """The app's end users, newest first; with `segment`, only that saved segment's members."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        return await service.users(
            session,
            caller.app_id,
            segment_id=segment,
            limit=limit,
            cursor=cursor,
            timeout_ms=runtime.settings.segment_timeout_ms,
        )
