from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from replyhq.accounts.permissions import Role

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_BYTES = 72


def _password_fits_bcrypt(value: str) -> str:
    if len(value.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError(f"passwords are limited to {MAX_PASSWORD_BYTES} bytes")
    return value


# One address: no separators a mail header would read as a list or a display name (the mailer
# refuses those too, so such an address must be a 400 here, not a failure when mailing it).
_ADDRESS_PART = r"[^@\s,;<>\x00-\x1f\x7f]+"
Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, max_length=320, pattern=rf"^{_ADDRESS_PART}@{_ADDRESS_PART}$"
    ),
]
NewPassword = Annotated[
    str, Field(min_length=MIN_PASSWORD_CHARS), AfterValidator(_password_fits_bcrypt)
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    password: str = Field(min_length=1, max_length=1024)
    app_id: uuid.UUID | None = Field(
        None, description="Needed only when the address belongs to several apps."
    )


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str = Field(min_length=1, max_length=4096)


class LogoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str | None = Field(None, min_length=1, max_length=4096)


class StaffOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    app_id: uuid.UUID
    email: str
    name: str | None
    role: Role
    active: bool
    created_at: datetime
    last_login_at: datetime | None
    email_verified_at: datetime | None = Field(
        None, description="When the address was proven; null: a banner asks to verify it."
    )


class TokenPairOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - a scheme name, not a secret
    expires_in: int = Field(description="Seconds the access token lives.")
    refresh_expires_in: int = Field(description="Seconds the refresh token lives unused.")
    staff: StaffOut


class MeOut(BaseModel):
    kind: Literal["staff", "integration"]
    app_id: uuid.UUID
    role: Role
    permissions: list[str]
    staff: StaffOut | None


class InviteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    role: Role = Role.AGENT


class InviteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    email: str
    role: Role
    invited_by: uuid.UUID | None
    created_at: datetime
    expires_at: datetime


class InviteCreated(InviteOut):
    token: str = Field(description="Shown once. The invitation is also e-mailed.")
    invite_url: str = Field(description="The dashboard link; the token is in the fragment.")


class AcceptInviteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=200)
    password: NewPassword
    name: Name


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role


class PasswordResetRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email


class MailQueuedOut(BaseModel):
    message: str


class PasswordResetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=200, description="From the e-mailed link.")
    password: NewPassword


class EmailChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email = Field(description="The new address; a confirmation link is sent to it.")
    password: str = Field(min_length=1, max_length=1024, description="Your current password.")


class EmailChangeRequestedOut(BaseModel):
    email: str = Field(description="Where the confirmation link was sent.")
    expires_in: int = Field(description="Seconds the link works.")


class EmailChangeConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=200, description="From the e-mailed link.")
