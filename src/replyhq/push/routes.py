"""/v1/push-token and /v1/push-config: a device registers where it can be pushed to (SDK key)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from replyhq.push import credentials, tokens
from replyhq.push.schemas import PushConfigOut, PushTokenIn, PushTokenOut
from replyhq.web.deps import RuntimeDep, SDKApp

router = APIRouter(prefix="/v1", tags=["sdk"])


@router.post("/push-token")
async def register_push_token(
    body: PushTokenIn, caller: SDKApp, runtime: RuntimeDep
) -> PushTokenOut:
    """This device's push address (an FCM or APNs token, or a Web Push subscription),
    replacing the one it had; the same token on another device of the app leaves that one.
    The device must have identified."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        updated = await tokens.register(
            session, runtime.settings, caller.app_id, caller.device_id, body
        )
    return PushTokenOut(device_id=caller.device_id, provider=body.provider, updated_at=updated)


@router.delete("/push-token", status_code=status.HTTP_204_NO_CONTENT)
async def delete_push_token(caller: SDKApp, runtime: RuntimeDep) -> Response:
    """Forget this device's push address (call it when the person logs out)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        await tokens.unregister(session, caller.app_id, caller.device_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/push-config")
async def push_config(caller: SDKApp, runtime: RuntimeDep) -> PushConfigOut:
    """What a web client needs to subscribe to Web Push: the app's VAPID public key
    (`applicationServerKey`), null until the owner generated one."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        key = await credentials.vapid_public_key(session, caller.app_id)
    return PushConfigOut(webpush_public_key=key)
