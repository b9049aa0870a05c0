from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

Provider = Literal["fcm", "apns", "webpush"]

# FCM registration tokens are URL-safe text; APNs device tokens are hex.
TOKEN_PATTERNS = {
    "fcm": re.compile(r"[A-Za-z0-9_:\-.]{1,4096}"),
    "apns": re.compile(r"[0-9a-fA-F]{32,200}"),
}


def _b64url(value: str, size: int | None, name: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (ValueError, TypeError):
        raise ValueError(f"{name} is not base64url") from None
    if size is not None and len(raw) != size:
        raise ValueError(f"{name} must decode to {size} bytes")
    if name == "p256dh" and raw[:1] != b"\x04":
        raise ValueError("p256dh must be an uncompressed P-256 point")
    return value


class SubscriptionKeys(BaseModel):
    model_config = ConfigDict(extra="forbid")

    p256dh: str = Field(max_length=200)
    auth: str = Field(max_length=100)

    @field_validator("p256dh")
    @classmethod
    def _p256dh(cls, value: str) -> str:
        return _b64url(value, 65, "p256dh")

    @field_validator("auth")
    @classmethod
    def _auth(cls, value: str) -> str:
        return _b64url(value, 16, "auth")


class Subscription(BaseModel):
    """A browser's PushSubscription, as `subscription.toJSON()` gives it."""

    model_config = ConfigDict(extra="ignore")  # expirationTime and future fields

    endpoint: str = Field(min_length=8, max_length=2048)
    keys: SubscriptionKeys


class PushTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: Provider
    token: str | None = Field(None, max_length=4096)
    subscription: Subscription | None = None

    @model_validator(mode="after")
    def _one_address(self) -> PushTokenIn:
        if self.provider == "webpush":
            if self.subscription is None or self.token is not None:
                raise ValueError("webpush takes `subscription` (and no `token`)")
        else:
            if self.token is None or self.subscription is not None:
                raise ValueError(f"{self.provider} takes `token` (and no `subscription`)")
            if not TOKEN_PATTERNS[self.provider].fullmatch(self.token):
                raise ValueError(f"not a {self.provider} token")
        return self


class PushTokenOut(BaseModel):
    device_id: str
    provider: Provider
    updated_at: dt.datetime


class PushConfigOut(BaseModel):
    """What a client needs to subscribe: the app's VAPID public key (null until generated)."""

    webpush_public_key: str | None


class CredentialStatus(BaseModel):
    provider: Provider
    set: bool
    updated_at: dt.datetime | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class CredentialsOut(BaseModel):
    fcm: CredentialStatus
    apns: CredentialStatus
    webpush: CredentialStatus


class FcmCredentialsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_account: dict[str, Any] = Field(
        description="The service-account JSON key file from the Firebase console, as an object."
    )


class ApnsCredentialsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key_p8: str = Field(min_length=40, max_length=4096, description="The .p8 file's text.")
    key_id: str = Field(pattern=r"^[A-Z0-9]{10}$")
    team_id: str = Field(pattern=r"^[A-Z0-9]{10}$")
    bundle_id: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9.\-]+$")
    environment: Literal["production", "sandbox"] = "production"


class WebPushCredentialsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(
        min_length=8,
        max_length=320,
        pattern=r"^(mailto:[^@\s]+@[^@\s]+|https://\S+)$",
        description="Who push services may contact about this sender (mailto: or https:).",
    )


HHMM = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class PushSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quiet_hours_start: HHMM | None = None
    quiet_hours_end: HHMM | None = None
    default_timezone: str | None = Field(None, max_length=64)
    hourly_limit: int | None = Field(None, ge=1, le=10)
    collapse_seconds: int | None = Field(None, ge=0, le=3600)
    email_fallback_minutes: int | None = Field(None, ge=0, le=1440)
    email_link: str | None = Field(
        None,
        max_length=2048,
        pattern=r"^[a-z][a-z0-9+.\-]*://\S+$",
        description="https:// page of the web messenger or the app's own scheme; "
        "{conversation_id} is replaced.",
    )

    @field_validator("email_link")
    @classmethod
    def _safe_scheme(cls, value: str | None) -> str | None:
        if value is not None and value.split(":", 1)[0] in (
            "http",
            "javascript",
            "data",
            "vbscript",
            "file",
        ):
            raise ValueError("use https:// or the app's own scheme")
        return value


class PushSettingsOut(BaseModel):
    quiet_hours_start: str | None
    quiet_hours_end: str | None
    default_timezone: str
    hourly_limit: int
    collapse_seconds: int
    email_fallback_minutes: int
    email_link: str | None


class AgentPrefs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    desktop: bool = True
    sound: bool = True


class AgentPrefsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    desktop: bool | None = None
    sound: bool | None = None


class NotificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    conversation_id: uuid.UUID | None
    parent_id: uuid.UUID | None
    channel: str
    decision: str
    reason: str
    seq_to: int | None
    message_count: int
    title: str | None
    body: str | None
    device_id: str | None
    provider: str | None
    status: str | None
    provider_status: int | None
    provider_response: str | None
    latency_ms: int | None
    attempts: int
    created_at: dt.datetime


class NotificationLog(BaseModel):
    items: list[NotificationOut]


class TestPushIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field("Test notification", min_length=1, max_length=200)
    body: str = Field("This is a test push from ReplyHQ.", min_length=1, max_length=1000)


class TestPushOut(BaseModel):
    deliveries: list[NotificationOut]
