"""/admin/api/users: an end user's profile and attributes, for the dashboard's side panel."""

from __future__ import annotations

import uuid
from typing import Annotated

from sqlalchemy import select

from replyhq.accounts.deps import RequirePermission, admin_router
from replyhq.accounts.permissions import StaffPrincipal
from replyhq.errors import NotFound
from replyhq.users.models import EndUser
from replyhq.users.schemas import EndUserOut
from replyhq.web.deps import RuntimeDep

router = admin_router("/admin/api/users", ["end users"])


@router.get("/{end_user_id}")
async def get_end_user(
    end_user_id: uuid.UUID,
    caller: Annotated[StaffPrincipal, RequirePermission("users:read")],
    runtime: RuntimeDep,
) -> EndUserOut:
    """An end user of the caller's app with their attributes (404 for anyone else's)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        user = await session.scalar(
            select(EndUser).where(EndUser.app_id == caller.app_id, EndUser.id == end_user_id)
        )
        if user is None:
            raise NotFound("No such end user.", code="END_USER_NOT_FOUND")
        return EndUserOut.model_validate(user)
