"""/v1/identify: the SDK says which device this is and, optionally, who is using it."""

from __future__ import annotations

from fastapi import APIRouter

from replyhq.users import service
from replyhq.users.schemas import EndUserOut, IdentifyIn, IdentifyOut
from replyhq.web.deps import RuntimeDep, SDKApp

router = APIRouter(prefix="/v1", tags=["sdk"])


@router.post("/identify")
async def identify(body: IdentifyIn, caller: SDKApp, runtime: RuntimeDep) -> IdentifyOut:
    async with runtime.db.tenant_session(caller.app_id) as session:
        user = await service.identify(session, caller.app_id, caller.device_id, body)
        return IdentifyOut(device_id=caller.device_id, user=EndUserOut.model_validate(user))
