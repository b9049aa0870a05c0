"""/v1/events: the SDK tracks what its end user does (SDK key + device)."""

from __future__ import annotations

from fastapi import APIRouter, status

from replyhq.analytics import service
from replyhq.analytics.schemas import EventBatchIn, EventBatchOut
from replyhq.web.deps import RuntimeDep, SDKApp

router = APIRouter(prefix="/v1", tags=["sdk"])


@router.post("/events", status_code=status.HTTP_202_ACCEPTED)
async def track_events(body: EventBatchIn, caller: SDKApp, runtime: RuntimeDep) -> EventBatchOut:
    """Track up to 100 events (64 KB) of the device's end user. Answered once they are stored
    (committed): a 202 means no accepted event can be lost."""
    accepted = await service.track(
        runtime.events,
        caller.app_id,
        caller.device_id,
        body,
        runtime.settings.event_retention_days,
    )
    return EventBatchOut(accepted=accepted)
