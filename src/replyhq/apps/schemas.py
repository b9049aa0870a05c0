from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class AppCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)


class AppUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    identity_verification_required: bool | None = None


class AppOut(BaseModel):
    """An app as listed: never any key material."""

    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str
    identity_verification_required: bool
    created_at: datetime


class AppWithKeys(AppOut):
    """Returned once, at creation or rotation: the only time keys leave the server."""

    sdk_key: str
    secret_key: str
    identity_secret: str
