from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
)

MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_BYTES = 1024

Platform = Literal[
    "ios", "android", "web", "react_native", "flutter", "macos", "windows", "linux", "other"
]


def _small_value(value: JsonValue) -> JsonValue:
    if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_ATTRIBUTE_BYTES:
        raise ValueError(f"attribute values are limited to {MAX_ATTRIBUTE_BYTES} bytes as JSON")
    return value


AttributeKey = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
]
AttributeValue = Annotated[JsonValue, AfterValidator(_small_value)]
Attributes = Annotated[dict[AttributeKey, AttributeValue], Field(max_length=MAX_ATTRIBUTES)]


class IdentifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(None, min_length=1, max_length=255)
    user_hash: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    name: str | None = Field(None, max_length=255)
    email: str | None = Field(None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    attributes: Attributes | None = None
    platform: Platform
    app_version: str | None = Field(None, max_length=64)
    locale: str | None = Field(None, max_length=35)
    timezone: str | None = Field(None, max_length=64)
    push_token: str | None = Field(
        None,
        max_length=4096,
        pattern=r"^[A-Za-z0-9_:\-.]+$",
        description="The device's FCM or APNs token (Web Push: POST /v1/push-token). Omitted: "
        "the device keeps the token it has, unless it now belongs to another person.",
    )
    push_provider: Literal["fcm", "apns"] | None = Field(
        None, description="Whose token push_token is. Unset: APNs on ios and macos, else FCM."
    )


class EndUserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: str | None = Field(validation_alias="external_id")
    name: str | None
    email: str | None
    attributes: dict[str, Any]
    anonymous: bool
    verified: bool


class IdentifyOut(BaseModel):
    device_id: str
    user: EndUserOut
