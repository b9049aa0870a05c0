"""Staff credentials on the wire: JWT access and refresh tokens, invitation tokens, their hashes.

Access and refresh tokens are HS256 JWTs signed with different secrets and different audiences,
so neither can stand in for the other; the algorithm is pinned when decoding, so `alg: none` and
any other algorithm are refused. Refresh and invitation tokens are stored only as SHA-256 digests:
they carry 256 random bits, so a fast hash is enough (bcrypt protects guessable secrets).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from replyhq.errors import Unauthorized
from replyhq.settings import Settings

ALGORITHM = "HS256"
ISSUER = "replyhq"
ACCESS_AUDIENCE = "replyhq:admin"
REFRESH_AUDIENCE = "replyhq:refresh"
_REQUIRED = ["exp", "iat", "iss", "aud", "sub", "jti"]
INVITE_PREFIX = "rhq_inv_"
_INVITE = re.compile(r"^rhq_inv_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class AccessClaims:
    staff_id: uuid.UUID
    app_id: uuid.UUID
    session_id: uuid.UUID
    role: str
    version: int
    expires_at: int


@dataclass(frozen=True)
class RefreshClaims:
    staff_id: uuid.UUID
    app_id: uuid.UUID
    session_id: uuid.UUID


def issue_access_token(
    settings: Settings,
    *,
    staff_id: uuid.UUID,
    app_id: uuid.UUID,
    session_id: uuid.UUID,
    role: str,
    version: int,
) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": ACCESS_AUDIENCE,
        "sub": str(staff_id),
        "app": str(app_id),
        "sid": str(session_id),
        "role": role,
        "ver": version,
        "typ": "access",
        "iat": now,
        "exp": now + settings.access_token_ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def issue_refresh_token(
    settings: Settings,
    *,
    staff_id: uuid.UUID,
    app_id: uuid.UUID,
    session_id: uuid.UUID,
    expires_at: int,
) -> str:
    """A signed token naming its app (so it is looked up inside that tenant) with a random `jti`
    that makes every token of a chain unique."""
    claims = {
        "iss": ISSUER,
        "aud": REFRESH_AUDIENCE,
        "sub": str(staff_id),
        "app": str(app_id),
        "sid": str(session_id),
        "typ": "refresh",
        "iat": int(time.time()),
        "exp": expires_at,
        "jti": secrets.token_urlsafe(32),
    }
    return jwt.encode(claims, settings.jwt_refresh_secret, algorithm=ALGORITHM)


def _decode(token: str, secret: str, audience: str, kind: str) -> dict[str, Any]:
    if not token or len(token) > 4096:
        raise Unauthorized("Missing or invalid token.", code="INVALID_TOKEN")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=ISSUER,
            options={"require": _REQUIRED},
            leeway=5,
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The token has expired.", code="TOKEN_EXPIRED") from None
    except jwt.PyJWTError:
        raise Unauthorized("Missing or invalid token.", code="INVALID_TOKEN") from None
    if claims.get("typ") != kind:
        raise Unauthorized("Missing or invalid token.", code="INVALID_TOKEN")
    return claims


def _uuid(claims: dict[str, Any], name: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(claims[name]))
    except (KeyError, ValueError):
        raise Unauthorized("Missing or invalid token.", code="INVALID_TOKEN") from None


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    claims = _decode(token, settings.jwt_secret, ACCESS_AUDIENCE, "access")
    version, role = claims.get("ver"), claims.get("role")
    if not isinstance(version, int) or not isinstance(role, str):
        raise Unauthorized("Missing or invalid token.", code="INVALID_TOKEN")
    return AccessClaims(
        staff_id=_uuid(claims, "sub"),
        app_id=_uuid(claims, "app"),
        session_id=_uuid(claims, "sid"),
        role=role,
        version=version,
        expires_at=int(claims["exp"]),
    )


def decode_refresh_token(settings: Settings, token: str) -> RefreshClaims:
    claims = _decode(token, settings.jwt_refresh_secret, REFRESH_AUDIENCE, "refresh")
    return RefreshClaims(
        staff_id=_uuid(claims, "sub"),
        app_id=_uuid(claims, "app"),
        session_id=_uuid(claims, "sid"),
    )


def new_invite_token(app_id: uuid.UUID) -> str:
    """`rhq_inv_<app id>_<secret>`: the app part only routes the lookup to its tenant; the whole
    token is what is hashed, so editing the app part yields a token that matches nothing."""
    return f"{INVITE_PREFIX}{app_id.hex}_{secrets.token_urlsafe(32)}"


def invite_app(token: str) -> uuid.UUID | None:
    match = _INVITE.match(token)
    return uuid.UUID(match.group(1)) if match else None


# Link tokens sent by e-mail: `rhq_<kind>_<app id>_<secret>`, like invitation tokens.
RESET_PREFIX = "rhq_pwr_"
EMAIL_CHANGE_PREFIX = "rhq_eml_"
VERIFY_PREFIX = "rhq_evf_"  # a signed-up owner's address (replyhq.onboarding)
_LINK_TOKEN = re.compile(r"^(rhq_[a-z]+_)([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")


def new_link_token(prefix: str, app_id: uuid.UUID) -> str:
    return f"{prefix}{app_id.hex}_{secrets.token_urlsafe(32)}"


def link_token_app(prefix: str, token: str) -> uuid.UUID | None:
    """The app a link token of kind `prefix` routes to (None: not such a token at all)."""
    match = _LINK_TOKEN.match(token)
    return uuid.UUID(match.group(2)) if match and match.group(1) == prefix else None
