"""/admin/api/analytics: what the app has tracked, for the dashboard's segment builder."""

from __future__ import annotations

from typing import Annotated

from replyhq.accounts.deps import RequirePermission, admin_router
from replyhq.accounts.permissions import StaffPrincipal
from replyhq.analytics import service
from replyhq.analytics.schemas import CatalogOut
from replyhq.web.deps import RuntimeDep

router = admin_router("/admin/api/analytics", ["analytics"])


@router.get("/catalog")
async def get_catalog(
    caller: Annotated[StaffPrincipal, RequirePermission("users:read")], runtime: RuntimeDep
) -> CatalogOut:
    """Event names the app has sent (with counts) and its users' attribute keys (with how many
    users have each), most frequent first (500 of each at most)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        return await service.catalog(session, caller.app_id)
