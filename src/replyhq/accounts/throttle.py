"""Failed staff sign-ins: which attempts are slowed down, and by whose failures.

Only failures count, and never those of API keys or refresh tokens (their own limits). A browser
that has signed in to an account carries a signed device cookie for that account; its attempts on
that account are limited by its own failures only (RATE_LIMIT_LOGIN_DEVICE), so a member using
their usual browser is never refused because someone else guessed at their password or failed
behind the same address. Every other attempt (a new browser, a script, an attacker) is limited
per account (RATE_LIMIT_LOGIN_ACCOUNT, whether or not the account exists) and per client address
(RATE_LIMIT_LOGIN_ADDRESS, a backstop high enough for an office behind one NAT). An attacker
guessing one account's password from many addresses therefore gets RATE_LIMIT_LOGIN_ACCOUNT
guesses per window in all; the owner's known browser keeps working; a new browser of the owner's
waits at most one window. The windows move, and refused attempts are not counted, so a wait
never exceeds one window and never compounds.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, replace

import jwt
from fastapi import Request, Response

from replyhq.accounts.service import normalize_email
from replyhq.runtime import Runtime
from replyhq.settings import Settings
from replyhq.web.deps import client_address
from replyhq.web.ratelimit import Check, RateLimiter

COOKIE_PREFIX = "rhq_device_"
COOKIE_PATH = "/admin/login"  # sent with sign-in attempts only
_AUDIENCE = "replyhq:login-device"
_ALGORITHM = "HS256"

ACCOUNT = "Too many failed sign-in attempts for this account from new browsers."
ADDRESS = "Too many failed sign-in attempts from this network."
DEVICE = "Too many failed sign-in attempts from this browser."


def account_key(email: str) -> str:
    """The account's name in limit keys and cookie names: never the address itself."""
    return hashlib.sha256(normalize_email(email).encode()).hexdigest()


def cookie_name(account: str) -> str:
    return COOKIE_PREFIX + account[:20]


@dataclass(frozen=True)
class LoginAttempt:
    account: str
    address: str
    device: str | None  # the id of this browser, when it has signed in to this account before

    @classmethod
    def of(cls, request: Request, settings: Settings, email: str) -> LoginAttempt:
        account = account_key(email)
        token = request.cookies.get(cookie_name(account))
        return cls(account, client_address(request), _known_device(settings, token, account))

    def checks(self, limiter: RateLimiter) -> list[Check]:
        if self.device is not None:
            return [Check(limiter.login_device, ("login-device", self.device), refusal=DEVICE)]
        return [
            Check(limiter.login_address, ("login-address", self.address), refusal=ADDRESS),
            Check(limiter.login_account, ("login-account", self.account), refusal=ACCOUNT),
        ]

    async def refuse_if_limited(self, runtime: Runtime) -> None:
        """429 (saying how long to wait) when this attempt's limits have no room; counts nothing."""
        limiter = runtime.limiter
        await limiter.enforce_all(*(replace(c, count=False) for c in self.checks(limiter)))

    async def count_failure(self, runtime: Runtime) -> None:
        await runtime.limiter.check(*self.checks(runtime.limiter))

    def remember(self, request: Request, response: Response, settings: Settings) -> None:
        """After a successful sign-in: this browser is now a known device of the account."""
        ttl = settings.login_device_ttl_seconds
        device = self.device or uuid.uuid4().hex
        now = int(time.time())
        claims = {
            "aud": _AUDIENCE,
            "sub": self.account,
            "did": device,
            "iat": now,
            "exp": now + ttl,
        }
        response.set_cookie(
            cookie_name(self.account),
            jwt.encode(claims, settings.jwt_refresh_secret, algorithm=_ALGORITHM),
            max_age=ttl,
            path=COOKIE_PATH,
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )


def _known_device(settings: Settings, token: str | None, account: str) -> str | None:
    if not token or len(token) > 1024:
        return None
    try:
        claims = jwt.decode(
            token,
            settings.jwt_refresh_secret,
            algorithms=[_ALGORITHM],
            audience=_AUDIENCE,
            options={"require": ["exp", "sub", "did"]},
        )
    except jwt.PyJWTError:
        return None
    device = claims.get("did")
    if claims.get("sub") != account or not isinstance(device, str):
        return None
    return device
