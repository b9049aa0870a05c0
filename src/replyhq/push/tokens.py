"""Device push addresses: one per device (columns of `devices`), replaced on change, removed on
logout, on an identity switch and when a provider says it is invalid."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.errors import BadRequest
from replyhq.push.schemas import PushTokenIn
from replyhq.settings import Settings
from replyhq.users import service as users
from replyhq.users.models import Device

CLEARED = users.PUSH_CLEARED


def endpoint_allowed(settings: Settings, endpoint: str) -> bool:
    """Whether a Web Push endpoint names a push service this server may call (https, and a host
    of WEBPUSH_ALLOWED_HOSTS): the endpoint comes from the end user's browser, and the server
    POSTs to it."""
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").lower()
    if not host:
        return False
    for allowed in (h.strip().lower() for h in settings.webpush_allowed_hosts.split(",")):
        if not allowed:
            continue
        if allowed.startswith("http://"):  # an explicit plain-HTTP host (local test fakes only)
            if parts.scheme == "http" and f"{host}:{parts.port}" == allowed[7:]:
                return True
            continue
        if parts.scheme != "https":
            continue
        if host == allowed or (allowed.startswith("*.") and host.endswith(allowed[1:])):
            return True
    return False


def values_for(settings: Settings, data: PushTokenIn) -> dict[str, Any]:
    """The device columns for a registration (400 for an endpoint of an unknown push service)."""
    keys = None
    if data.subscription is not None:
        token = data.subscription.endpoint
        if not endpoint_allowed(settings, token):
            raise BadRequest(
                "This endpoint is not a known Web Push service (see WEBPUSH_ALLOWED_HOSTS).",
                code="PUSH_ENDPOINT_REFUSED",
                details=[{"field": "subscription.endpoint", "reason": "host not allowed"}],
            )
        keys = data.subscription.keys.model_dump()
    else:
        assert data.token is not None
        token = data.token
    return {
        "push_provider": data.provider,
        "push_token": token,
        "push_keys": keys,
        "push_token_updated_at": func.now(),
    }


async def register(
    session: AsyncSession, settings: Settings, app_id: uuid.UUID, device_id: str, data: PushTokenIn
) -> dt.datetime:
    """Set the device's push address, replacing any earlier one; when it was set. 401 for a
    device that has not identified or may not speak for its person."""
    await users.device_user(session, app_id, device_id)
    values = values_for(settings, data)
    await users.release_push_token(session, app_id, device_id, values["push_token"])
    updated = await session.scalar(
        update(Device)
        .where(Device.app_id == app_id, Device.device_id == device_id)
        .values(**values)
        .returning(Device.push_token_updated_at)
    )
    assert isinstance(updated, dt.datetime)
    return updated


async def unregister(session: AsyncSession, app_id: uuid.UUID, device_id: str) -> None:
    """Forget the device's push address (the person logged out of the app)."""
    await session.execute(
        update(Device)
        .where(Device.app_id == app_id, Device.device_id == device_id)
        .values(**CLEARED)
    )


async def forget_token(session: AsyncSession, app_id: uuid.UUID, token: str) -> None:
    """The provider said this token is invalid: no device keeps it."""
    await session.execute(
        update(Device).where(Device.app_id == app_id, Device.push_token == token).values(**CLEARED)
    )


async def current(
    session: AsyncSession, app_id: uuid.UUID, device_id: str
) -> tuple[str | None, dt.datetime | None]:
    row = (
        await session.execute(
            select(Device.push_provider, Device.push_token_updated_at).where(
                Device.app_id == app_id, Device.device_id == device_id
            )
        )
    ).first()
    return (row[0], row[1]) if row is not None else (None, None)
