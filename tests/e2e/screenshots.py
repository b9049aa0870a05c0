"""Screenshots of each screen for the README: `python -m tests.e2e.screenshots [OUT_DIR]`.

Starts `replyhq serve --demo` on a scratch database (DATABASE_URL/REDIS_URL when set, embedded
servers otherwise), fills it with a few conversations through the public API, and photographs the
messenger and the dashboard in Debian's Chromium.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

import httpx
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from replyhq import embedded
from replyhq.db.migrate import upgrade
from replyhq.settings import Settings
from replyhq.users.service import user_hash
from tests.conftest import Servers, start_server
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS

PEOPLE = [
    ("cust-1001", "Maya Okafor", {"plan": "business", "company": "Okafor Design", "seats": 14}),
    ("cust-1002", "Liam Chen", {"plan": "pro", "country": "CA"}),
    ("cust-1003", "Sofia Rossi", {"plan": "free", "signed_up": "2026-11-02"}),
]
SUBJECTS = ["Charged twice in November", "Export to PDF", "Logged out on tab switch"]
THREADS = [
    ["Hi! I was charged twice for my November invoice.", "Could you refund one of them?"],
    ["How do I export my projects as PDF?"],
    ["The app logs me out every time I switch tabs."],
]


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def seed(base: str, app: dict[str, str], owner: dict[str, str]) -> str:
    """Conversations from three customers and a reply to the first; returns its id."""
    first = ""
    with httpx.Client(base_url=base, timeout=10) as http:
        for (person, name, attributes), thread, subject in zip(
            PEOPLE, THREADS, SUBJECTS, strict=True
        ):
            headers = {"X-App-Id": app["id"], "X-Api-Key": app["sdk_key"], "X-Device-Id": person}
            body = {
                "platform": "web",
                "user_id": person,
                "user_hash": user_hash(app["identity_secret"], person),
                "name": name,
                "email": f"{name.split()[0].lower()}@example.com",
                "attributes": attributes,
            }
            http.post("/v1/identify", headers=headers, json=body).raise_for_status()
            created = http.post(
                "/v1/conversations",
                headers=headers,
                json={
                    "subject": subject,
                    "first_message": {"body": thread[0], "client_msg_id": f"{person}-1"},
                },
            ).json()
            for n, text in enumerate(thread[1:], start=2):
                http.post(
                    f"/v1/conversations/{created['id']}/messages",
                    headers=headers,
                    json={"body": text, "client_msg_id": f"{person}-{n}"},
                ).raise_for_status()
            first = first or created["id"]
        login = http.post("/admin/login", json=owner).json()
        auth = {"Authorization": f"Bearer {login['access_token']}"}
        reply = "Sorry about that, Maya! I can see both charges — refunding one **right now**."
        http.post(
            f"/admin/api/conversations/{first}/messages",
            headers=auth,
            json={"body": reply, "client_msg_id": "agent-1"},
        ).raise_for_status()
        for email, role in (("sam@okafor.example", "ADMIN"), ("ria@okafor.example", "AGENT")):
            http.post("/admin/api/team/invites", headers=auth, json={"email": email, "role": role})
    return first


async def photograph(base: str, app: dict[str, str], owner: dict[str, str], out: Path) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        size = {"width": 1360, "height": 820}

        # The end user: Maya on the demo site, chatting.
        user = await (await browser.new_context(viewport=size)).new_page()
        await user.goto(f"{base}/demo")
        maya = {
            "user_id": PEOPLE[0][0],
            "user_hash": user_hash(app["identity_secret"], PEOPLE[0][0]),
            "name": PEOPLE[0][1],
        }
        await user.evaluate("(m) => ReplyHQ.identify(m)", maya)
        await user.get_by_test_id("rhq-launcher").click()  # opens on the unread reply
        await user.get_by_test_id("rhq-message").nth(2).wait_for()

        # The agent: sign-in screen, then the inbox with Maya's conversation open.
        agent = await (await browser.new_context(viewport=size)).new_page()
        await agent.goto(f"{base}/dashboard")
        await agent.get_by_test_id("login-email").fill(owner["email"])
        await agent.get_by_test_id("login-password").fill(owner["password"])
        await agent.screenshot(path=out / "login.png")
        await agent.get_by_test_id("login-submit").click()
        await agent.get_by_test_id("inbox-item").filter(has_text="Maya Okafor").click()
        await agent.get_by_test_id("attributes").wait_for()
        await user.get_by_test_id("rhq-composer").press_sequentially("Thank you!", delay=30)
        await agent.get_by_test_id("typing").wait_for()
        await agent.get_by_test_id("composer").fill("You should see it within 3 business days.")
        await agent.wait_for_timeout(300)
        await agent.screenshot(path=out / "inbox.png")

        await agent.get_by_test_id("composer").press("Enter")
        await user.get_by_test_id("rhq-message").nth(3).wait_for()
        await user.wait_for_timeout(300)
        await user.screenshot(path=out / "messenger.png")

        # The same desk on a phone: one screen at a time.
        phone = await (await browser.new_context(viewport={"width": 375, "height": 740})).new_page()
        await phone.goto(f"{base}/dashboard")
        await phone.get_by_test_id("login-email").fill(owner["email"])
        await phone.get_by_test_id("login-password").fill(owner["password"])
        await phone.get_by_test_id("login-submit").click()
        await phone.get_by_test_id("inbox-item").filter(has_text="Maya Okafor").click()
        await phone.get_by_test_id("message").nth(3).wait_for()
        await phone.screenshot(path=out / "phone.png")

        await agent.get_by_test_id("nav-team").click()
        await agent.get_by_test_id("member").first.wait_for()
        await agent.screenshot(path=out / "team.png")
        await agent.get_by_test_id("nav-settings").click()
        await agent.get_by_test_id("settings").wait_for()
        await agent.screenshot(path=out / "settings.png")
        await browser.close()


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        started = embedded.start(
            Path(tmp) / "services",
            need_postgres=not os.environ.get("DATABASE_URL"),
            need_redis=not os.environ.get("REDIS_URL"),
        )
        base_db = os.environ.get("DATABASE_URL") or started.database_url
        redis_url = os.environ.get("REDIS_URL") or started.redis_url
        name = f"replyhq_shots_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(_plain(base_db), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        database_url = _plain(make_url(base_db).set(database=name).render_as_string(False))
        server = None
        try:
            upgrade(database_url, Settings())
            servers = Servers(database_url, redis_url, f"rhqshots:{name}:")
            server = start_server(servers, Path(tmp), "--demo", DATA_DIR=tmp)
            app = json.loads((Path(tmp) / "demo-app.json").read_text())
            owner = {"email": app["owner_email"], "password": app["owner_password"]}
            seed(server.url, app, owner)
            asyncio.run(photograph(server.url, app, owner, out))
        finally:
            if server is not None:
                server.stop()
            with psycopg.connect(_plain(base_db), autocommit=True) as connection:
                connection.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
            started.stop()
    print(f"screenshots written to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
