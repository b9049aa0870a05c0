"""Who is calling: one Annotated alias per kind of caller, read at a glance in a signature."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request, Response

from replyhq.apps.keys import KeyKind, RepeatedKeyFailure, parse_app_id
from replyhq.errors import Unauthorized
from replyhq.observability.errors import identify
from replyhq.runtime import Runtime
from replyhq.web.ratelimit import Check, Verdict

DEVICE_ID_MAX = 128  # X-Device-Id
FAILED_AUTH = "Too many failed API-key authentications from this address."


async def get_runtime(request: Request) -> Runtime:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a hand-off that cost more
    # than the rest of this function by far, on every request.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def client_address(request: Request) -> str:
    # Uvicorn rewrites the peer from X-Forwarded-For only for TRUSTED_PROXIES.
    return request.client.host if request.client else "unknown"


def _auth_guard(runtime: Runtime, address: str) -> Check:
    """Refuses an address with too many failed key authentications, without counting this one.
    Staff sign-in, refresh and invitation failures are limited apart (replyhq.accounts)."""
    return Check(runtime.limiter.auth, ("auth-failures", address), count=False, refusal=FAILED_AUTH)


async def _guard_failed_auth(runtime: Runtime, address: str) -> None:
    await runtime.limiter.enforce_all(_auth_guard(runtime, address))


async def _count_failed_auth(runtime: Runtime, address: str) -> None:
    await runtime.limiter.hit(runtime.limiter.auth, "auth-failures", address)


async def verify_app_key(
    runtime: Runtime,
    address: str,
    app_id: str | None,
    api_key: str | None,
    kind: KeyKind,
    *,
    guarded: bool = False,
) -> uuid.UUID:
    """The app whose `kind` key this is; failures count towards the address' auth limit
    (`guarded`: the caller has already checked that the address is not blocked)."""
    if not guarded:
        await _guard_failed_auth(runtime, address)
    try:
        verified = await runtime.keys.verify(parse_app_id(app_id), api_key, kind)
    except RepeatedKeyFailure:
        raise  # counted when it first failed: stale clients retrying it lock nobody out
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
    setup = Check(runtime.limiter.setup, ("setup", address))
    verdicts = await runtime.limiter.enforce_all(setup, _auth_guard(runtime, address))
    _apply(response, verdicts[0])
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


def _sdk_key_digest(runtime: Runtime, app_id: str | None, api_key: str | None) -> bytes | None:
    """The key cache's digest of these credentials; None when they can never verify."""
    try:
        parsed = uuid.UUID(app_id or "")
    except ValueError:
        return None
    return runtime.keys.digest(parsed, api_key, "sdk")


async def sdk_caller(
    runtime: Runtime,
    address: str,
    x_app_id: str | None,
    x_api_key: str | None,
    x_device_id: str | None,
) -> tuple[SDKCaller, Verdict]:
    """require_sdk_app's work, without FastAPI: the caller and the verdict whose RateLimit-*
    headers the answer carries (also called by the pre-solved hot routes, web/hot.py)."""
    limiter = runtime.limiter
    device_id = x_device_id if x_device_id and x_device_id.strip() else None
    checks = [Check(limiter.v1_ip, ("v1-ip", address))]
    digest = _sdk_key_digest(runtime, x_app_id, x_api_key)
    # No I/O (a key near the end of its entry's life is re-checked in the background).
    app_id = None if digest is None else runtime.keys.cached(digest, x_api_key, "sdk")
    if digest is not None and app_id is not None:
        # The usual call, with a key verified recently: every limit in one Redis round trip. No
        # failed-authentication guard: this key is right and costs no bcrypt, so others' failures
        # at this address (stale tabs with a rotated key) must not refuse it.
        if device_id is not None:
            checks.append(Check(limiter.v1, ("v1", str(app_id), device_id)))
        verdicts = await limiter.enforce_all(*checks)
        if runtime.keys.cached(digest) is None:
            # Evicted while Redis answered (the rotation listener ran meanwhile): check again.
            await verify_app_key(runtime, address, x_app_id, x_api_key, "sdk", guarded=True)
        identify(app_id=app_id)
    else:
        await limiter.enforce_all(*checks, _auth_guard(runtime, address))
        app_id = await verify_app_key(runtime, address, x_app_id, x_api_key, "sdk", guarded=True)
        verdicts = []
        if device_id is not None:
            verdicts = await limiter.enforce_all(Check(limiter.v1, ("v1", str(app_id), device_id)))
    if device_id is None:
        raise Unauthorized("The X-Device-Id header is required.", code="DEVICE_ID_REQUIRED")
    return SDKCaller(app_id=app_id, device_id=device_id), verdicts[-1]


async def require_sdk_app(
    request: Request,
    runtime: RuntimeDep,
    response: Response,
    x_app_id: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
    x_device_id: Annotated[str | None, Header(max_length=DEVICE_ID_MAX)] = None,
) -> SDKCaller:
    """An SDK call: the app's SDK key, and the device it comes from; rate limited per address
    and per device, and (unless the key was verified recently) refused while the address has
    too many failed key authentications."""
    address = client_address(request)
    caller, verdict = await sdk_caller(runtime, address, x_app_id, x_api_key, x_device_id)
    _apply(response, verdict)
    return caller


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
