"""Apps (tenants): creation, listing, settings and key rotation."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.apps import demo
from replyhq.apps.keys import AppKeys, KeyVerifier, generate_keys, hash_key
from replyhq.apps.models import App
from replyhq.apps.schemas import AppUpdate
from replyhq.db import on_commit
from replyhq.errors import NotFound
from replyhq.events import Revoke, record
from replyhq.users import service as users


async def _hash_keys(keys: AppKeys, rounds: int) -> tuple[str, str]:
    sdk, secret = await asyncio.gather(
        asyncio.to_thread(hash_key, keys.sdk_key, rounds),
        asyncio.to_thread(hash_key, keys.secret_key, rounds),
    )
    return sdk, secret


async def create_app(session: AsyncSession, name: str, *, rounds: int) -> tuple[App, AppKeys]:
    keys = generate_keys()
    sdk_hash, secret_hash = await _hash_keys(keys, rounds)
    app = App(
        name=name,
        sdk_key_hash=sdk_hash,
        secret_key_hash=secret_hash,
        identity_secret=keys.identity_secret,
    )
    session.add(app)
    await session.flush()
    await session.refresh(app)
    return app, keys


async def list_apps(session: AsyncSession) -> list[App]:
    return list(await session.scalars(select(App).order_by(App.created_at, App.id)))


async def get_app(session: AsyncSession, app_id: uuid.UUID) -> App:
    app = await session.get(App, app_id)
    if app is None:
        raise NotFound("No such app.", code="APP_NOT_FOUND")
    return app


async def update_app(session: AsyncSession, app_id: uuid.UUID, changes: AppUpdate) -> App:
    """Every way of changing an app's settings (setup API, dashboard, CLI) comes here. Requiring
    identity verification ends, once committed, the live sockets of devices identified without
    proof; their HTTP requests are refused from the commit on (users.service.may_speak)."""
    app = await get_app(session, app_id)
    was_required = app.identity_verification_required
    for field, value in changes.model_dump(exclude_unset=True, exclude_none=True).items():
        setattr(app, field, value)
    await session.flush()
    if app.identity_verification_required and not was_required:
        record(session, Revoke(app_id, unproven_devices=True))
    return app


async def rotate_keys(
    session: AsyncSession,
    app_id: uuid.UUID,
    *,
    rounds: int,
    verifier: KeyVerifier | None,
    data_dir: Path | None = None,
) -> tuple[App, AppKeys]:
    """New keys for the app; the old ones stop working in every process once this commits. When
    the app is the demo app of `data_dir` (DATA_DIR), its demo file gets the new keys."""
    await get_app(session, app_id)
    keys = generate_keys()
    sdk_hash, secret_hash = await _hash_keys(keys, rounds)
    await session.execute(
        update(App)
        .where(App.id == app_id)
        .values(
            sdk_key_hash=sdk_hash,
            secret_key_hash=secret_hash,
            identity_secret=keys.identity_secret,
            keys_version=App.keys_version + 1,
            keys_rotated_at=func.now(),
        )
    )
    app = await get_app(session, app_id)
    await session.refresh(app)
    if verifier is not None:
        on_commit(session, lambda: verifier.announce_rotation(app_id))
    await users.void_proofs(session, app_id)
    await end_device_sessions(session, app_id)
    await session.refresh(app)

    async def keep_demo_current() -> None:
        await asyncio.to_thread(demo.remember_rotation, data_dir, app_id, keys)

    on_commit(session, keep_demo_current)
    return app, keys


async def end_device_sessions(session: AsyncSession, app_id: uuid.UUID) -> int:
    """End every live device session of the app, in every process, once this transaction
    commits: key rotation, identity verification turned on. Bumps the app's access generation
    (returned) in this transaction, which each socket re-checks on its events and periodically,
    so the sessions end even if Redis cannot carry the news at that instant."""
    generation: int = (
        await session.execute(
            update(App)
            .where(App.id == app_id)
            .values(access_generation=App.access_generation + 1)
            .returning(App.access_generation)
        )
    ).scalar_one()
    record(session, Revoke(app_id, all_devices=True))
    return generation
