"""/admin/api/app: the caller's own app, for its team (settings) and owners (keys)."""

from __future__ import annotations

from typing import Annotated

from replyhq.accounts.deps import RequirePermission, admin_router
from replyhq.accounts.permissions import StaffPrincipal
from replyhq.apps import service
from replyhq.apps.schemas import AppOut, AppUpdate, AppWithKeys
from replyhq.web.deps import RuntimeDep

router = admin_router("/admin/api/app", ["app settings"])


@router.get("")
async def get_app(
    caller: Annotated[StaffPrincipal, RequirePermission("settings:read")], runtime: RuntimeDep
) -> AppOut:
    """The app's settings (never any key material)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        return AppOut.model_validate(await service.get_app(session, caller.app_id))


@router.patch("")
async def update_app(
    body: AppUpdate,
    caller: Annotated[StaffPrincipal, RequirePermission("settings:write")],
    runtime: RuntimeDep,
) -> AppOut:
    """Rename the app or require verified end users."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        return AppOut.model_validate(await service.update_app(session, caller.app_id, body))


@router.post("/rotate-keys")
async def rotate_keys(
    caller: Annotated[StaffPrincipal, RequirePermission("keys:rotate")], runtime: RuntimeDep
) -> AppWithKeys:
    """New SDK key, secret key and identity secret, shown only now; the old ones stop at once
    in every server process and every connected device is disconnected."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        app, keys = await service.rotate_keys(
            session,
            caller.app_id,
            rounds=runtime.settings.bcrypt_rounds,
            verifier=runtime.keys,
            data_dir=runtime.settings.data_dir,
        )
        out = AppOut.model_validate(app)
    return AppWithKeys(
        **out.model_dump(),
        sdk_key=keys.sdk_key,
        secret_key=keys.secret_key,
        identity_secret=keys.identity_secret,
    )
