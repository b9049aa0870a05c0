"""A newcomer signed up through POST /admin/signup: their tokens and their app's keys."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from replyhq.users.service import user_hash
from tests.conftest import Tenant

PASSWORD = "violet harbour tractor 42"


@dataclass
class Newcomer:
    email: str
    body: dict[str, Any]

    @property
    def app_id(self) -> str:
        return str(self.body["app"]["id"])

    @property
    def access(self) -> str:
        return str(self.body["access_token"])

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}

    @property
    def tenant(self) -> Tenant:
        app = self.body["app"]
        return Tenant(
            uuid.UUID(app["id"]),
            app["name"],
            app["sdk_key"],
            app["secret_key"],
            app["identity_secret"],
        )

    def user_hash(self, user_id: str) -> str:
        return user_hash(self.body["app"]["identity_secret"], user_id)


async def sign_up(client: httpx.AsyncClient, app_name: str = "Acme") -> Newcomer:
    email = f"newcomer-{uuid.uuid4().hex[:8]}@example.test"
    response = await client.post(
        "/admin/signup",
        json={"email": email, "password": PASSWORD, "name": "Ada", "app_name": app_name},
    )
    assert response.status_code == 201, response.text
    return Newcomer(email, response.json())
