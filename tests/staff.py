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


async def seed_conversations(
    runtime: Runtime, app_id: uuid.UUID, count: int, messages_each: int = 2
) -> None:
    """`count` end users, each with one conversation of `messages_each` messages alternating
    user/agent (the last one from the user), written in bulk inside the tenant's transaction."""
    from sqlalchemy import text

    async with runtime.db.tenant_session(app_id) as session:
        await session.execute(
            text(
                "INSERT INTO end_users (id, app_id, external_id, name, email) "
                "SELECT gen_random_uuid(), :app, 'seed-' || g, 'User ' || g, "
                "'user' || g || '@example.com' FROM generate_series(1, :n) g"
            ),
            {"app": app_id, "n": count},
        )
        await session.execute(
            text(
                "INSERT INTO conversations (id, app_id, end_user_id, subject, last_seq, "
                "last_activity_at) SELECT gen_random_uuid(), :app, u.id, 'About ' || u.name, :m, "
                "now() - (row_number() OVER (ORDER BY u.external_id)) * interval '1 second' "
                "FROM end_users u WHERE u.app_id = :app AND u.external_id LIKE 'seed-%'"
            ),
            {"app": app_id, "m": messages_each},
        )
        await session.execute(
            text(
                "INSERT INTO messages (id, app_id, conversation_id, seq, client_msg_id, sender, "
                "body, body_html, created_at) SELECT gen_random_uuid(), :app, c.id, s, "
                "'seed-' || s, CASE WHEN (:m - s) % 2 = 0 THEN 'user' ELSE 'agent' END, "
                "'Message ' || s, '<p>Message ' || s || '</p>', "
                "c.last_activity_at - (:m - s) * interval '1 millisecond' "
                "FROM conversations c CROSS JOIN generate_series(1, :m) s "
                "WHERE c.app_id = :app AND c.last_seq = :m"
            ),
            {"app": app_id, "m": messages_each},
        )
