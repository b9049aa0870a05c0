"""Caches that vouch for credentials remember a verdict only for the exact claims it was given:
a token that differs in any claim the cache vouches for is checked on its own."""

from __future__ import annotations

import asyncio

import httpx
import jwt

from replyhq.accounts import tokens
from replyhq.runtime import Runtime
from replyhq.settings import Settings
from tests.conftest import MakeTenant, identify, start_conversation
from tests.staff import signed_in


async def _until_caching(runtime: Runtime) -> None:
    for _ in range(100):  # the verifier remembers nothing until its listener is subscribed
        if runtime.staff._listening:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the staff verifier never started caching")


async def test_a_token_naming_another_app_is_not_accepted_on_a_cached_verdict(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, make_tenant: MakeTenant
) -> None:
    home, other = await make_tenant("Home"), await make_tenant("Other")
    await identify(client, other, "other-device", user_id="carol", name="Carol")
    await start_conversation(client, other, "other-device", "a secret of Other's")
    owner = await signed_in(runtime, client, home, "OWNER")
    await _until_caching(runtime)
    mine = await client.get("/admin/api/conversations", headers=owner.auth())
    assert mine.status_code == 200  # the genuine token's verdict is now remembered
    assert mine.json()["items"] == []

    claims = jwt.decode(owner.access, options={"verify_signature": False})
    # Everything the genuine token says, but for another app: signed with the real secret, as
    # anyone holding it (a leaked secret, a second deployment sharing it) could.
    forged = tokens.issue_access_token(
        settings,
        staff_id=owner.id,
        app_id=other.id,
        session_id=claims["sid"],
        role=claims["role"],
        version=claims["ver"],
    )
    response = await client.get(
        "/admin/api/conversations", headers={"Authorization": f"Bearer {forged}"}
    )
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "TOKEN_REVOKED"
    # ...and the genuine token still works, from the cache or not.
    again = await client.get("/admin/api/conversations", headers=owner.auth())
    assert again.status_code == 200
