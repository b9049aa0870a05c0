"""/admin/api/reports: how the team is doing (OWNER and ADMIN: `reports:read`)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import Query, Response

from replyhq.accounts.deps import RequirePermission, admin_router
from replyhq.accounts.permissions import StaffPrincipal
from replyhq.reports import service
from replyhq.reports.schemas import Grouping, Report
from replyhq.web.deps import RuntimeDep

router = admin_router("/admin/api/reports", ["reports"])

Caller = Annotated[StaffPrincipal, RequirePermission("reports:read")]
Start = Annotated[date, Query(description="First day, in the app's time zone")]
End = Annotated[date, Query(description="Last day (inclusive); at most 366 days")]


@router.get("")
async def report(
    caller: Caller, runtime: RuntimeDep, start: Start, end: End, group: Grouping = "day"
) -> Report:
    """New conversations, messages, first-response and resolution times (median, p90), CSAT,
    busiest hours and per-agent figures for the date range, by day or week."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        return await service.build_report(session, caller.app_id, start, end, group)


@router.get(
    "/export.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "One row per period + total"}},
)
async def export_csv(
    caller: Caller, runtime: RuntimeDep, start: Start, end: End, group: Grouping = "day"
) -> Response:
    """The report's series as CSV (seconds for durations; empty where there is no data)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        built = await service.build_report(session, caller.app_id, start, end, group)
    name = f"replyhq-report-{start}-{end}-{group}.csv"
    return Response(
        service.report_csv(built),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
