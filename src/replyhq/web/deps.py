"""Who is calling: one Annotated alias per kind of caller, read at a glance in a signature."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request, Response

from replyhq.apps.keys import KeyKind, parse_app_id
from replyhq.errors import RateLimited, Unauthorized
from replyhq.observability.errors import identify
from replyhq.runtime import Runtime
from replyhq.web.ratelimit import Verdict


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def client_address(request: Request) -> str:
    # Uvicorn rewrites the peer from X-Forwarded-For only for TRUSTED_PROXIES.
    return request.client.host if request.client else "unknown"


async def _guard_failed_auth(runtime: Runtime, address: str) -> None:
    refusal = await runtime.limiter.blocked(runtime.limiter.auth, "auth-failures", address)
    if refusal is not None:
        raise RateLimited("Too many failed authentication attempts.", headers=refusal.headers())


async def _count_failed_auth(runtime: Runtime, address: str) -> None:
    await runtime.limiter.hit(runtime.limiter.auth, "auth-failures", address)


async def verify_app_key(
    runtime: Runtime, address: str, app_id: str | None, api_key: str | None, kind: KeyKind
) -> uuid.UUID:
    """The app whose `kind` key this is; failures count towards the address' auth limit."""
    await _guard_failed_auth(runtime, address)
    try:
        verified = await runtime.keys.verify(parse_app_id(app_id), api_key, kind)
    except Unauthorized:
        await _count_failed_auth(runtime, address)
        raise
    identify(app_id=verified)  # on the request's log lines and Sentry events
    return verified


async def require_master_key(
    request: Request,
    runtime: RuntimeDep,
    response: Response,
    x_master_key: Annotated[str | None, Header()] = None,
) -> None:
    address = client_address(request)
    verdict = await runtime.limiter.enforce(runtime.limiter.setup, "setup", address)
    _apply(response, verdict)
    await _guard_failed_auth(runtime, address)
    expected = runtime.settings.master_api_key.encode()
    if not x_master_key or not hmac.compare_digest(x_master_key.encode(), expected):
        await _count_failed_auth(runtime, address)
        raise Unauthorized("A valid X-Master-Key header is required.", code="MASTER_KEY_REQUIRED")


def _apply(response: Response, verdict: Verdict) -> None:
    response.headers.update(verdict.headers())


MasterKey = Annotated[None, Depends(require_master_key)]


@dataclass(frozen=True)
class SDKCaller:
    app_id: uuid.UUID
    device_id: str


async def require_sdk_app(
    request: Request,
    runtime: RuntimeDep,
    response: Response,
    x_app_id: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
    x_device_id: Annotated[str | None, Header(max_length=128)] = None,
) -> SDKCaller:
    """An SDK call: the app's SDK key, and the device it comes from; rate limited per device."""
    limiter = runtime.limiter
    address = client_address(request)
    await limiter.enforce(limiter.v1_ip, "v1-ip", address)
    app_id = await verify_app_key(runtime, address, x_app_id, x_api_key, "sdk")
    if not x_device_id or not x_device_id.strip():
        raise Unauthorized("The X-Device-Id header is required.", code="DEVICE_ID_REQUIRED")
    verdict = await limiter.enforce(limiter.v1, "v1", str(app_id), x_device_id)
    _apply(response, verdict)
    return SDKCaller(app_id=app_id, device_id=x_device_id)


SDKApp = Annotated[SDKCaller, Depends(require_sdk_app)]


async def require_secret_key(
    request: Request,
    runtime: RuntimeDep,
    x_app_id: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> uuid.UUID:
    """A customer's backend: the app's secret key (never the SDK key)."""
    return await verify_app_key(runtime, client_address(request), x_app_id, x_api_key, "secret")


SecretKeyApp = Annotated[uuid.UUID, Depends(require_secret_key)]
