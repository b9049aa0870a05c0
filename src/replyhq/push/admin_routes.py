"""/admin/api/push: credentials (owner), delivery rules, agents' notification preferences, and
on an end user: the delivery log and a test push."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Response, status

from replyhq.accounts.deps import RequirePermission, StaffUser, admin_router
from replyhq.accounts.permissions import StaffPrincipal
from replyhq.push import credentials, service
from replyhq.push.schemas import (
    AgentPrefs,
    AgentPrefsIn,
    ApnsCredentialsIn,
    CredentialsOut,
    FcmCredentialsIn,
    NotificationLog,
    NotificationOut,
    PushSettingsIn,
    PushSettingsOut,
    TestPushIn,
    TestPushOut,
    WebPushCredentialsIn,
)
from replyhq.web.deps import RuntimeDep

router = admin_router("/admin/api/push", ["push"])
users_router = admin_router("/admin/api/users", ["end users"])
# A member's own preferences: staff sign-ins only (the secret key has no member behind it).
me_router = APIRouter(prefix="/admin", tags=["staff"])

Owner = Annotated[StaffPrincipal, RequirePermission("push:credentials")]


@router.get("/credentials")
async def get_credentials(
    caller: Annotated[StaffPrincipal, RequirePermission("settings:read")], runtime: RuntimeDep
) -> CredentialsOut:
    """Which providers' credentials are set, when, and their public details (ids, the VAPID
    public key); never a key."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        return await credentials.status(session, caller.app_id)


@router.put("/credentials/fcm")
async def set_fcm(body: FcmCredentialsIn, caller: Owner, runtime: RuntimeDep) -> CredentialsOut:
    """Upload the Firebase service-account JSON (stored encrypted)."""
    secret, details = credentials.check_fcm(body)
    async with runtime.db.tenant_session(caller.app_id) as session:
        await credentials.save(session, runtime.settings, caller.app_id, "fcm", secret, details)
        return await credentials.status(session, caller.app_id)


@router.put("/credentials/apns")
async def set_apns(body: ApnsCredentialsIn, caller: Owner, runtime: RuntimeDep) -> CredentialsOut:
    """Upload the APNs .p8 key with its key id, team id, bundle id and environment."""
    secret, details = credentials.check_apns(body)
    async with runtime.db.tenant_session(caller.app_id) as session:
        await credentials.save(session, runtime.settings, caller.app_id, "apns", secret, details)
        return await credentials.status(session, caller.app_id)


@router.post("/credentials/webpush")
async def generate_vapid(
    body: WebPushCredentialsIn, caller: Owner, runtime: RuntimeDep
) -> CredentialsOut:
    """Generate the app's VAPID key pair (replacing any: browsers subscribed with the old public
    key must subscribe again). The public key is in the answer and at /v1/push-config."""
    secret, details = credentials.new_vapid(body)
    async with runtime.db.tenant_session(caller.app_id) as session:
        await credentials.save(session, runtime.settings, caller.app_id, "webpush", secret, details)
        return await credentials.status(session, caller.app_id)


@router.delete("/credentials/{provider}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_credentials(
    provider: Literal["fcm", "apns", "webpush"], caller: Owner, runtime: RuntimeDep
) -> Response:
    async with runtime.db.tenant_session(caller.app_id) as session:
        await credentials.remove(session, caller.app_id, provider)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/settings")
async def get_push_settings(
    caller: Annotated[StaffPrincipal, RequirePermission("settings:read")], runtime: RuntimeDep
) -> PushSettingsOut:
    async with runtime.db.tenant_session(caller.app_id) as session:
        return await service.get_settings(session, caller.app_id)


@router.patch("/settings")
async def update_push_settings(
    body: PushSettingsIn,
    caller: Annotated[StaffPrincipal, RequirePermission("settings:write")],
    runtime: RuntimeDep,
) -> PushSettingsOut:
    """Quiet hours (in each person's time zone), the hourly cap, the collapse window and the
    e-mail fallback's delay (0: off) and link."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        return await service.update_settings(session, caller.app_id, body)


@users_router.get("/{end_user_id}/push-log")
async def push_log(
    end_user_id: uuid.UUID,
    caller: Annotated[StaffPrincipal, RequirePermission("users:read")],
    runtime: RuntimeDep,
) -> NotificationLog:
    """The person's latest push and e-mail fallback decisions (why sent or not) and each
    delivery's provider answer and latency; kept PUSH_LOG_RETENTION_DAYS."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        return NotificationLog(items=await service.log_of(session, caller.app_id, end_user_id))


@users_router.post("/{end_user_id}/test-push", status_code=status.HTTP_202_ACCEPTED)
async def test_push(
    end_user_id: uuid.UUID,
    body: TestPushIn,
    caller: Annotated[StaffPrincipal, RequirePermission("push:test")],
    runtime: RuntimeDep,
) -> TestPushOut:
    """Queue a test notification to each of the person's devices. The deliveries start
    `pending`; their provider answers appear in the push log within seconds."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        rows = await service.create_test_push(session, caller.app_id, end_user_id, body)
        out = [NotificationOut.model_validate(r) for r in rows]
    return TestPushOut(deliveries=out)


@me_router.get("/me/notifications")
async def get_my_notifications(caller: StaffUser, runtime: RuntimeDep) -> AgentPrefs:
    """The signed-in member's own desktop notification and sound preferences."""
    assert caller.staff_id is not None
    async with runtime.db.tenant_session(caller.app_id) as session:
        return await service.agent_prefs(session, caller.app_id, caller.staff_id)


@me_router.patch("/me/notifications")
async def update_my_notifications(
    body: AgentPrefsIn, caller: StaffUser, runtime: RuntimeDep
) -> AgentPrefs:
    assert caller.staff_id is not None
    async with runtime.db.tenant_session(caller.app_id) as session:
        return await service.update_agent_prefs(session, caller.app_id, caller.staff_id, body)
