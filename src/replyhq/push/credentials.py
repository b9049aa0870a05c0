"""Each app's provider credentials: checked when uploaded, encrypted at rest (crypto.py), never
returned; the API tells only which are set, when, and their public details."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from py_vapid import Vapid02
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.errors import BadRequest, Conflict
from replyhq.push import crypto
from replyhq.push.models import PROVIDERS, PushCredential
from replyhq.push.schemas import (
    ApnsCredentialsIn,
    CredentialsOut,
    CredentialStatus,
    FcmCredentialsIn,
    WebPushCredentialsIn,
)
from replyhq.settings import DEV_PUSH_CREDENTIALS_KEY, Settings


@dataclass(frozen=True)
class Credentials:
    """Decrypted credentials of one provider, for a sender (never logged: no repr of secret)."""

    provider: str
    secret: bytes
    details: dict[str, Any]
    version: str  # changes whenever they are replaced: caches of tokens made from them key on it

    def __repr__(self) -> str:
        return f"Credentials({self.provider!r}, details={self.details!r})"


def _invalid(field: str, reason: str) -> BadRequest:
    return BadRequest(
        f"These credentials are not usable: {reason}.",
        code="INVALID_PUSH_CREDENTIALS",
        details=[{"field": field, "reason": reason}],
    )


def check_fcm(data: FcmCredentialsIn) -> tuple[bytes, dict[str, Any]]:
    account = data.service_account
    for field in ("project_id", "client_email", "private_key"):
        if not isinstance(account.get(field), str) or not account[field]:
            raise _invalid(f"service_account.{field}", "missing")
    if account.get("type", "service_account") != "service_account":
        raise _invalid("service_account.type", "not a service account key")
    try:
        key = serialization.load_pem_private_key(account["private_key"].encode(), password=None)
    except (ValueError, TypeError):
        raise _invalid("service_account.private_key", "not a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise _invalid("service_account.private_key", "not an RSA key")
    secret = json.dumps(
        {
            k: account[k]
            for k in ("project_id", "client_email", "private_key", "private_key_id")
            if k in account
        }
    ).encode()
    details = {"project_id": account["project_id"], "client_email": account["client_email"]}
    return secret, details


def check_apns(data: ApnsCredentialsIn) -> tuple[bytes, dict[str, Any]]:
    try:
        key = serialization.load_pem_private_key(data.key_p8.strip().encode(), password=None)
    except (ValueError, TypeError):
        raise _invalid("key_p8", "not a .p8 (PEM) private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise _invalid("key_p8", "not a P-256 key")
    details = {
        "key_id": data.key_id,
        "team_id": data.team_id,
        "bundle_id": data.bundle_id,
        "environment": data.environment,
    }
    return data.key_p8.strip().encode(), details


def new_vapid(data: WebPushCredentialsIn) -> tuple[bytes, dict[str, Any]]:
    """A fresh VAPID key pair for the app: the private key kept, the public one published."""
    vapid = Vapid02()
    vapid.generate_keys()
    raw_public = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    public = base64.urlsafe_b64encode(raw_public).rstrip(b"=").decode()
    return vapid.private_pem(), {"public_key": public, "subject": data.subject}


async def save(
    session: AsyncSession,
    settings: Settings,
    app_id: uuid.UUID,
    provider: str,
    secret: bytes,
    details: dict[str, Any],
) -> None:
    if (
        settings.environment == "production"
        and settings.push_credentials_key == DEV_PUSH_CREDENTIALS_KEY
    ):
        raise Conflict(
            "The server's PUSH_CREDENTIALS_KEY is not set: credentials would be encrypted with a "
            "public key. Ask the operator to set it.",
            code="PUSH_CREDENTIALS_KEY_UNSET",
        )
    values = {
        "secret": crypto.encrypt(settings.push_credentials_key, secret),
        "details": details,
        "updated_at": func.now(),
    }
    await session.execute(
        insert(PushCredential)
        .values(app_id=app_id, provider=provider, **values)
        .on_conflict_do_update(index_elements=["app_id", "provider"], set_=values)
    )


async def remove(session: AsyncSession, app_id: uuid.UUID, provider: str) -> None:
    row = await session.get(PushCredential, (app_id, provider))
    if row is not None:
        await session.delete(row)


async def status(session: AsyncSession, app_id: uuid.UUID) -> CredentialsOut:
    rows = {
        r.provider: r
        for r in await session.execute(
            select(
                PushCredential.provider, PushCredential.details, PushCredential.updated_at
            ).where(PushCredential.app_id == app_id)
        )
    }

    def one(provider: str) -> CredentialStatus:
        row = rows.get(provider)
        if row is None:
            return CredentialStatus(provider=provider, set=False)
        return CredentialStatus(
            provider=provider,
            set=True,
            updated_at=row.updated_at,
            details=row.details,
        )

    return CredentialsOut(**{p: one(p) for p in PROVIDERS})


async def load(
    session: AsyncSession, settings: Settings, app_id: uuid.UUID
) -> dict[str, Credentials]:
    """Every provider's decrypted credentials of the app (one query)."""
    rows = await session.execute(
        select(
            PushCredential.provider,
            PushCredential.secret,
            PushCredential.details,
            PushCredential.updated_at,
        ).where(PushCredential.app_id == app_id)
    )
    return of_rows(settings, app_id, [row._mapping for row in rows])


def of_rows(
    settings: Settings, app_id: uuid.UUID, rows: Iterable[Mapping[Any, Any]]
) -> dict[str, Credentials]:
    """Every provider's decrypted credentials from push_credentials rows (provider, secret,
    details, updated_at)."""
    return {
        row["provider"]: Credentials(
            row["provider"],
            crypto.decrypt(settings.push_credentials_key, row["secret"]),
            dict(row["details"]),
            f"{app_id}:{row['provider']}:{row['updated_at'].timestamp()}",
        )
        for row in rows
    }


async def vapid_public_key(session: AsyncSession, app_id: uuid.UUID) -> str | None:
    details = await session.scalar(
        select(PushCredential.details).where(
            PushCredential.app_id == app_id, PushCredential.provider == "webpush"
        )
    )
    return None if details is None else str(details["public_key"])
