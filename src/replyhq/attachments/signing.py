"""Short-lived signed download URLs.

A URL names the app, the attachment, the variant (the file or its thumbnail) and when it stops
working, signed with HMAC-SHA256 under a key derived from JWT_SECRET. The download route checks
the signature and the time, then reads the attachment's row in that app's tenant transaction
(row-level security): a URL is only ever handed to someone allowed to see the message or upload,
and a changed app id, attachment id, variant or expiry no longer matches its signature.

The key is the process' (set from its settings when its Runtime is built): messages carry URLs
wherever they are serialised, services included, and a key per call would have to be threaded
through every one of them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime
from typing import Literal

from replyhq.settings import Settings, get_settings

Variant = Literal["original", "thumbnail"]
_LABEL = b"replyhq attachment urls v1"


class _Signer:
    def __init__(self) -> None:
        self.key: bytes | None = None
        self.ttl = 300

    def configure(self, settings: Settings) -> None:
        self.key = hmac.new(settings.jwt_secret.encode(), _LABEL, hashlib.sha256).digest()
        self.ttl = settings.attachment_url_ttl_seconds

    def _key(self) -> bytes:
        if self.key is None:
            self.configure(get_settings())
        assert self.key is not None
        return self.key


_signer = _Signer()


def configure(settings: Settings) -> None:
    _signer.configure(settings)


def _signature(app_id: uuid.UUID, attachment_id: uuid.UUID, variant: str, expires: int) -> str:
    message = f"{app_id}/{attachment_id}/{variant}/{expires}".encode()
    digest = hmac.new(_signer._key(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def expiry(now: float | None = None) -> int:
    """When URLs signed now stop working (unix seconds)."""
    return int(now if now is not None else time.time()) + _signer.ttl


def expiry_time(expires: int) -> datetime:
    return datetime.fromtimestamp(expires, UTC)


def url(app_id: uuid.UUID, attachment_id: uuid.UUID, variant: Variant, expires: int) -> str:
    """The download path (relative to the server's base URL)."""
    signature = _signature(app_id, attachment_id, variant, expires)
    return f"/files/{app_id}/{attachment_id}/{variant}?expires={expires}&signature={signature}"


def verify(
    app_id: uuid.UUID, attachment_id: uuid.UUID, variant: str, expires: int, signature: str
) -> Literal["ok", "expired", "invalid"]:
    expected = _signature(app_id, attachment_id, variant, expires)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return "invalid"
    if expires < time.time():
        return "expired"
    return "ok"
