"""Staff users for tests: created through the real service, signed in through the real API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import httpx

from replyhq.accounts import service
from replyhq.accounts.permissions import Role
from replyhq.runtime import Runtime
from tests.conftest import Tenant

PASSWORD = "correct horse battery staple"


@dataclass
class Staff:
    id: uuid.UUID
    app_id: uuid.UUID
    email: str
    role: str
    password: str = PASSWORD
    tokens: dict[str, object] = field(default_factory=dict)

    @property
    def access(self) -> str:
        return str(self.tokens["access_token"])

    @property
    def refresh(self) -> str:
        return str(self.tokens["refresh_token"])

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


def secret(tenant: Tenant) -> dict[str, str]:
    """The app's own backend: its secret key on /admin/api."""
    return {"X-App-Id": str(tenant.id), "X-Api-Key": tenant.secret_key}


async def add_staff(
    runtime: Runtime,
    tenant: Tenant | uuid.UUID,
    role: str = "AGENT",
    *,
    email: str | None = None,
    password: str = PASSWORD,
    name: str | None = None,
) -> Staff:
    app_id = tenant if isinstance(tenant, uuid.UUID) else tenant.id
    email = email or f"{role.lower()}-{uuid.uuid4().hex[:8]}@example.com"
    async with runtime.db.tenant_session(app_id) as session:
        staff = await service.create_staff(
            session,
            app_id,
            email=email,
            password_hash=service.hash_password(password, 4),
            role=Role(role),
            name=name or f"{role.title()} Person",
        )
    return Staff(staff.id, app_id, staff.email, role, password)


async def login(client: httpx.AsyncClient, staff: Staff, **extra: object) -> Staff:
    response = await client.post(
        "/admin/login",
        json={"email": staff.email, "password": staff.password, **extra},
    )
    assert response.status_code == 200, response.text
    staff.tokens = response.json()
    return staff


async def signed_in(
    runtime: Runtime, client: httpx.AsyncClient, tenant: Tenant, role: str = "AGENT", **kw: object
) -> Staff:
    return await login(client, await add_staff(runtime, tenant, role, **kw))  # type: ignore[arg-type]
