"""/admin/api/campaigns: messages from a named agent to a segment's members."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import status

from replyhq.accounts.deps import RequirePermission, admin_router
from replyhq.accounts.permissions import StaffPrincipal
from replyhq.campaigns import service
from replyhq.campaigns.schemas import CampaignIn, CampaignList, CampaignOut
from replyhq.campaigns.tasks import send_campaign
from replyhq.jobs.defer import enqueue
from replyhq.web.deps import RuntimeDep

router = admin_router("/admin/api/campaigns", ["campaigns"])

Reader = Annotated[StaffPrincipal, RequirePermission("users:read")]
Writer = Annotated[StaffPrincipal, RequirePermission("segments:write")]


@router.get("")
async def list_campaigns(caller: Reader, runtime: RuntimeDep) -> CampaignList:
    """The latest 200 campaigns, newest first, with their counts."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        found = await service.list_campaigns(session, caller.app_id)
        return CampaignList(items=await service.described(session, caller.app_id, found))


@router.post("", status_code=status.HTTP_201_CREATED)
async def launch_campaign(body: CampaignIn, caller: Writer, runtime: RuntimeDep) -> CampaignOut:
    """Send `body` as `sender_id` to every member of the segment, once each, by a job queued
    with the campaign (the segment is read as it is now; later members are not reached)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        campaign = await service.create(session, caller.app_id, body)
        await enqueue(session, send_campaign, app_id=caller.app_id, campaign_id=campaign.id)
        (out,) = await service.described(session, caller.app_id, [campaign])
        return out


@router.get("/{campaign_id}")
async def get_campaign(campaign_id: uuid.UUID, caller: Reader, runtime: RuntimeDep) -> CampaignOut:
    async with runtime.db.tenant_session(caller.app_id) as session:
        campaign = await service.get(session, caller.app_id, campaign_id)
        (out,) = await service.described(session, caller.app_id, [campaign])
        return out


@router.post("/{campaign_id}/stop")
async def stop_campaign(campaign_id: uuid.UUID, caller: Writer, runtime: RuntimeDep) -> CampaignOut:
    """No one more receives it; those already reached keep their message."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        campaign = await service.stop(session, caller.app_id, campaign_id)
        (out,) = await service.described(session, caller.app_id, [campaign])
        return out
