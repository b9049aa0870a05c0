"""@replyhq/sdk (sdk/js): built from its lock file, run by Node 20 against a live server
(identify, send, receive once and in order, typing, read receipts, unread count, typed errors,
optional routes, the offline queue across a restart, a new conversation's first messages queued
offline, events not counted unread, attachments: uploads sent in a message and as a new
conversation's first, identity switch), and free of Node and DOM
built-ins so that React Native bundles it (the bundle check)."""

from __future__ import annotations

import asyncio
import base64
import fcntl
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tests.attachment_support import png
from tests.conftest import SocketServer, Tenant
from tests.staff import signed_in

ROOT = Path(__file__).resolve().parents[1]
SDK = ROOT / "sdk" / "js"
LOCK = Path(tempfile.gettempdir()) / "replyhq-sdk-js.lock"


def _run(*command: str) -> None:
    done = subprocess.run(command, cwd=SDK, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def built_sdk() -> str:
    """`node`, with sdk/js installed from its lock file and built (once per run)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("Node.js 20+ and npm are required for the JavaScript SDK's tests")
    with LOCK.open("w") as lock:  # parallel runs install and build one at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (SDK / "node_modules" / ".package-lock.json").exists():
            _run(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
        _run(npm, "run", "build", "--silent")
    return node


@pytest.fixture(scope="session")
def node_sdk() -> str:
    return built_sdk()


async def test_the_sdk_works_in_node_against_a_live_server(
    node_sdk: str, socket_server: SocketServer, http: httpx.AsyncClient, tenant: Tenant
) -> None:
    staff = await signed_in(socket_server.runtime, http, tenant, "AGENT", name="Sam")
    config = {
        "url": socket_server.url,
        "app_id": str(tenant.id),
        "sdk_key": tenant.sdk_key,
        "secret_key": tenant.secret_key,
        "identity_secret": tenant.identity_secret,
        "agent_token": staff.access,
        "png": base64.b64encode(png(60, 40)).decode(),
    }
    process = await asyncio.create_subprocess_exec(
        node_sdk,
        "test/live.mjs",
        json.dumps(config),
        cwd=SDK,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 120)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    steps = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert process.returncode == 0, f"{out.decode()[-3000:]}\n{err.decode()[-3000:]}"
    names = [s["step"] for s in steps]
    assert names == [
        "identified",
        "sent",
        "received",
        "read",
        "typing",
        "errors",
        "optional",
        "offline_queue",
        "new_conversation",
        "attachments",
        "switched",
        "done",
    ]
    assert steps[2]["seqs"] == [1, 2, 3, 4, 5, 6, 7]
    assert steps[7]["seq"] == 8  # the queued message, sent once after the restart
    assert steps[8]["seqs"] == [1, 2]  # a new conversation's first two, queued offline

    # Bob signed in on Ann's phone: her device's push token was withdrawn (else her
    # notifications would keep reaching the phone Bob now holds).
    async with socket_server.runtime.db.tenant_session(tenant.id) as session:
        tokens = (
            await session.execute(
                text("SELECT count(*) FROM devices WHERE push_token = 'fcm-token-of-ann'")
            )
        ).scalar_one()
    assert tokens == 0

    # The SDK's read marker reached the server: the agents' view shows it.
    conversations = await http.get("/admin/api/conversations", headers=staff.auth())
    assert conversations.status_code == 200, conversations.text
    (conversation,) = [
        c
        for c in conversations.json()["items"]
        if c["user"]["user_id"] == "ann" and c["subject"] == "Order #42"
    ]
    assert conversation["peer_read_seq"] >= 7


def test_the_bundle_has_no_node_or_dom_built_ins(node_sdk: str) -> None:
    """What Metro (React Native) resolves: the SDK and socket.io-client with the react-native
    and browser conditions; no Node built-in may be imported, and the SDK's own code names no
    DOM or Node global (its TypeScript build has neither type library, so it would not compile)."""
    done = subprocess.run(
        [node_sdk, "scripts/check-bundle.mjs", "--json"],
        cwd=SDK,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["node_imports"] == []
    assert report["sdk_globals"] == []
    assert report["bytes_min"] > 0
