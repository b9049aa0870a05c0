"""/admin/api/presence: who is online now, so a freshly loaded dashboard shows the truth before
the first `presence` event (events report changes only)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Request
from pydantic import BaseModel

from replyhq.accounts.deps import RequirePermission, admin_router
from replyhq.accounts.permissions import StaffPrincipal

router = admin_router("/admin/api/presence", ["presence"])

MAX_PEOPLE = 200


class PresenceOut(BaseModel):
    users: dict[str, bool]


@router.get("")
async def presence(
    request: Request,
    caller: Annotated[StaffPrincipal, RequirePermission("conversations:read")],
    user_id: Annotated[list[uuid.UUID], Query(max_length=MAX_PEOPLE)] = [],  # noqa: B006
) -> PresenceOut:
    """Whether each end user (by id, repeat `user_id`) has a live socket: one Redis round trip.
    Ids of other apps' users simply answer false."""
    store = request.app.state.realtime.presence
    if not user_id or store is None:
        return PresenceOut(users={str(u): False for u in user_id})
    online = await store.online(caller.app_id, "user", user_id)
    return PresenceOut(users={str(u): v for u, v in zip(user_id, online, strict=True)})
