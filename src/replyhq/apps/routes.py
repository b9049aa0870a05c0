"""/setup: the operator's API for apps (X-Master-Key)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from replyhq.apps import service
from replyhq.apps.keys import AppKeys
from replyhq.apps.models import App
from replyhq.apps.schemas import AppCreate, AppOut, AppUpdate, AppWithKeys
from replyhq.web.deps import MasterKey, RuntimeDep

router = APIRouter(prefix="/setup", tags=["setup"])


def _with_keys(app: App, keys: AppKeys) -> AppWithKeys:
    return AppWithKeys(
        **AppOut.model_validate(app).model_dump(),
        sdk_key=keys.sdk_key,
        secret_key=keys.secret_key,
        identity_secret=keys.identity_secret,
    )


@router.post("/apps", status_code=status.HTTP_201_CREATED)
async def create_app(body: AppCreate, runtime: RuntimeDep, _: MasterKey) -> AppWithKeys:
    """Create an app. The response is the only time its keys are ever shown."""
    async with runtime.db.system_session() as session:
        app, keys = await service.create_app(
            session, body.name, rounds=runtime.settings.bcrypt_rounds
        )
    return _with_keys(app, keys)


@router.get("/apps")
async def list_apps(runtime: RuntimeDep, _: MasterKey) -> list[AppOut]:
    async with runtime.db.system_session() as session:
        apps = await service.list_apps(session)
    return [AppOut.model_validate(app) for app in apps]


@router.patch("/apps/{app_id}")
async def update_app(
    app_id: uuid.UUID, body: AppUpdate, runtime: RuntimeDep, _: MasterKey
) -> AppOut:
    async with runtime.db.tenant_session(app_id) as session:
        app = await service.update_app(session, app_id, body)
    return AppOut.model_validate(app)


@router.post("/apps/{app_id}/rotate-keys")
async def rotate_keys(app_id: uuid.UUID, runtime: RuntimeDep, _: MasterKey) -> AppWithKeys:
    """New keys at once; the old ones stop working in every server process."""
    async with runtime.db.tenant_session(app_id) as session:
        app, keys = await service.rotate_keys(
            session,
            app_id,
            rounds=runtime.settings.bcrypt_rounds,
            verifier=runtime.keys,
            data_dir=runtime.settings.data_dir,
        )
    return _with_keys(app, keys)
