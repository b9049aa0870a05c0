"""The messenger of a signed-in person whose device's proof no longer counts (identified before
the upgrade that started recording proofs, or before the identity secret rotated) when the server
asks for it again (DEVICE_UNVERIFIED): it identifies again with the page's user_hash and carries
on, instead of "trying again" forever."""

from __future__ import annotations

import httpx
from playwright.async_api import expect
from sqlalchemy import update

from replyhq.events import Revoke, record
from replyhq.runtime import Runtime
from replyhq.settings import DEV_MASTER_KEY
from replyhq.users.models import Device
from replyhq.users.service import user_hash
from tests.conftest import MakeTenant
from tests.e2e.conftest import Demo, Pages
from tests.e2e.test_chat import user_send
from tests.e2e.test_embed import customer_site


async def test_a_signed_in_messenger_proves_its_identity_again_when_asked(
    demo: Demo, pages: Pages, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("Turning strict")
    html = f"""<!doctype html><html><body><h1>Shop</h1>
      <script src="{demo.url}/widget.js" data-app-id="{tenant.id}"
              data-api-key="{tenant.sdk_key}"></script></body></html>"""
    page = await pages.new()
    with customer_site(demo.customer_site, html):
        await page.goto(f"{demo.customer_site}/shop")
        proof = user_hash(tenant.identity_secret, "client-9")
        await page.evaluate(
            "([id, hash]) => ReplyHQ.identify({user_id: id, user_hash: hash, name: 'Dora'})",
            ["client-9", proof],
        )
        await page.get_by_test_id("rhq-launcher").click()
        status = page.get_by_test_id("rhq-status")
        await expect(status).to_have_attribute("data-state", "connected")

        # The app starts requiring verified users, and the device's proof is forgotten (as
        # migration 0007 leaves devices identified before it); its socket drops (a restart, a
        # network change), and the next handshake is refused with DEVICE_UNVERIFIED.
        async with httpx.AsyncClient(base_url=demo.url) as http:
            response = await http.patch(
                f"/setup/apps/{tenant.id}",
                headers={"X-Master-Key": DEV_MASTER_KEY},
                json={"identity_verification_required": True},
            )
            assert response.status_code == 200, response.text
        async with runtime.db.tenant_session(tenant.id) as session:
            await session.execute(
                update(Device).where(Device.app_id == tenant.id).values(verified=False)
            )
            record(session, Revoke(tenant.id, all_devices=True))
        await expect(status).not_to_have_attribute("data-state", "connected")

        await expect(status).to_have_attribute("data-state", "connected", timeout=15000)
        await expect(page.get_by_test_id("rhq-panel")).not_to_contain_text("trying again")
        await user_send(page, "still here")
        await expect(page.get_by_test_id("rhq-message")).to_have_count(1)
        await expect(page.get_by_test_id("rhq-message")).not_to_contain_text("Not sent")
