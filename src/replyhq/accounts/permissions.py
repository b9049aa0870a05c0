"""Who may do what: the role table (ROADMAP 2.2, as data, in one place) and the principal.

Every /admin/api route declares `RequirePermission("...")` (see replyhq.accounts.deps); a test
fails for any route that does not. Permissions not in a role's set are refused with 403
`{error, code: "PERMISSION_DENIED", required, role}`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from replyhq.errors import Forbidden


class Role(StrEnum):
    OWNER = "OWNER"
    ADMIN = "ADMIN"
    AGENT = "AGENT"


# Every permission a route may require. `team:owners` guards making, unmaking or removing an
# OWNER; `keys:rotate`, `billing:write` and `push:credentials` (uploading push keys) are the
# owner's alone (ADMINs may read billing); `push:test` sends a test notification to an end
# user's devices.
PERMISSIONS: frozenset[str] = frozenset(
    {
        "conversations:read",
        "conversations:write",
        "messages:read",
        "messages:write",
        "users:read",
        "segments:write",
        "settings:read",
        "settings:write",
        "team:read",
        "team:write",
        "team:owners",
        "keys:rotate",
        "billing:read",
        "billing:write",
        "push:credentials",
        "push:test",
        "reports:read",
    }
)

ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.OWNER: frozenset({"*"}),
    Role.ADMIN: frozenset(
        {
            "conversations:read",
            "conversations:write",
            "messages:read",
            "messages:write",
            "users:read",
            "segments:write",
            "settings:read",
            "settings:write",
            "team:read",
            "team:write",
            "billing:read",
            "push:test",
            "reports:read",
        }
    ),
    # Agents run conversations (close, reopen, assign to themselves or a colleague) and see the
    # end user's profile; managing the team, settings, keys and billing is not theirs.
    Role.AGENT: frozenset(
        {
            "conversations:read",
            "conversations:write",
            "messages:read",
            "messages:write",
            "users:read",
        }
    ),
}

# What the app's secret key (a customer's backend) acts as on /admin/api.
INTEGRATION_ROLE = Role.ADMIN


def allowed(role: Role, permission: str) -> bool:
    granted = ROLE_PERMISSIONS[role]
    return "*" in granted or permission in granted


def roles_with(permission: str) -> list[Role]:
    return [role for role in Role if allowed(role, permission)]


def permissions_of(role: Role) -> list[str]:
    return sorted(p for p in PERMISSIONS if allowed(role, p))


@dataclass(frozen=True)
class StaffPrincipal:
    """Who is calling /admin/api: a signed-in staff user, or the app's own backend (secret key,
    acting as INTEGRATION_ROLE, with no staff user behind it)."""

    app_id: uuid.UUID
    role: Role
    staff_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None
    email: str | None = None
    name: str | None = None
    expires_at: int | None = None  # the access token's `exp`; None for the secret key

    @classmethod
    def integration(cls, app_id: uuid.UUID) -> StaffPrincipal:
        return cls(app_id=app_id, role=INTEGRATION_ROLE)

    @property
    def kind(self) -> Literal["staff", "integration"]:
        return "staff" if self.staff_id is not None else "integration"

    def can(self, permission: str) -> bool:
        return allowed(self.role, permission)

    def require(self, permission: str) -> None:
        if permission not in PERMISSIONS:
            raise ValueError(f"unknown permission {permission!r}")
        if not self.can(permission):
            raise Forbidden(
                f"Your role ({self.role}) lacks the {permission} permission.",
                code="PERMISSION_DENIED",
                required=permission,
                role=self.role.value,
            )
