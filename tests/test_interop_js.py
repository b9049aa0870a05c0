"""Any official Socket.IO client works: the JavaScript `socket.io-client` from npm, run by Node,
against a real server process (refused handshake, send with ack, live event, sync)."""

from __future__ import annotations

import asyncio
import fcntl
import json
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, Servers, Tenant, start_server

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "js" / "interop.mjs"
CLIENT = ROOT / "node_modules" / "socket.io-client" / "package.json"
INSTALL_LOCK = Path(tempfile.gettempdir()) / "replyhq-npm-ci.lock"


def node_tooling() -> str:
    """The `node` executable, with the root package.json's modules installed (npm ci, once)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "Node.js is required for the Socket.IO interop test and was not found on PATH: "
            "install Node 20+ and npm (e.g. `apt-get install nodejs npm`), then run "
            "`npm ci --no-audit --no-fund` at the repository root."
        )
    if CLIENT.exists():
        return node
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is required to install socket.io-client (`npm ci` at the repository root)")
    with INSTALL_LOCK.open("w") as lock:  # parallel runs install once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not CLIENT.exists():
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if done.returncode != 0:
                pytest.fail(f"npm ci failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return node


@pytest.fixture(scope="session")
def node() -> str:
    return node_tooling()


@pytest.fixture
def server(servers: Servers, tmp_path: Path) -> Iterator[LiveServer]:
    live = start_server(servers, tmp_path, "--no-migrate")
    yield live
    live.stop()


class Script:
    """The Node script's stdout, one JSON object per line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.steps: list[dict[str, Any]] = []

    async def next(self, step: str) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 30)
        if not line:
            stderr = await self.process.stderr.read() if self.process.stderr else b""
            raise AssertionError(f"node exited before {step!r}: {stderr.decode()[-2000:]}")
        got: dict[str, Any] = json.loads(line)
        self.steps.append(got)
        assert got["step"] == step, got
        return got


async def test_the_official_javascript_client_works(
    node: str, server: LiveServer, tenant: Tenant
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        body = {"platform": "web", "user_id": "ann", "user_hash": tenant.user_hash("ann")}
        identified = await http.post("/v1/identify", headers=tenant.sdk("js-phone"), json=body)
        assert identified.status_code == 200, identified.text
        started = await http.post(
            "/v1/conversations",
            headers=tenant.sdk("js-phone"),
            json={"first_message": {"body": "First", "client_msg_id": "first"}},
        )
        assert started.status_code == 201, started.text
        conversation_id = started.json()["id"]

        reply_id = uuid.uuid4().hex
        config = {
            "url": server.url,
            "app_id": str(tenant.id),
            "api_key": tenant.sdk_key,
            "device_id": "js-phone",
            "user_id": "ann",
            "user_hash": tenant.user_hash("ann"),
            "conversation_id": conversation_id,
            "client_msg_id": "from-js",
            "wait_for_client_msg_id": reply_id,
        }
        process = await asyncio.create_subprocess_exec(
            node,
            str(SCRIPT),
            json.dumps(config),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        script = Script(process)
        try:
            refused = await script.next("refused")
            assert refused["data"]["code"] == "INVALID_CREDENTIALS", refused

            connected = await script.next("connected")
            assert connected["transport"] == "websocket"

            ack = (await script.next("sent"))["ack"]
            assert ack["ok"] is True and ack["created"] is True, ack
            sent = ack["message"]
            assert sent["seq"] == 2 and sent["sender"] == "user"
            assert sent["body"] == "Hello from socket.io-client"
            assert sent["client_msg_id"] == "from-js"

            secret = {"X-App-Id": str(tenant.id), "X-Api-Key": tenant.secret_key}
            replied = await http.post(
                f"/admin/api/conversations/{conversation_id}/messages",
                headers=secret,
                json={"body": "Hi from support", "client_msg_id": reply_id},
            )
            assert replied.status_code == 201, replied.text
            reply = replied.json()

            received = (await script.next("received"))["events"]
            live = [event["message"] for event in received]
            assert live[-1] == reply  # the stored message, exactly as HTTP returned it
            assert [m["seq"] for m in live] == sorted({m["seq"] for m in live})

            synced = (await script.next("synced"))["ack"]
            history = await http.get(
                f"/v1/conversations/{conversation_id}/messages", headers=tenant.sdk("js-phone")
            )
            assert synced["ok"] is True and synced["has_more"] is False
            assert synced["messages"] == history.json()["items"]
            assert [m["seq"] for m in synced["messages"]] == [1, 2, 3]
            assert synced["messages"][1] == sent and synced["messages"][2] == reply

            await script.next("done")
            assert await asyncio.wait_for(process.wait(), 10) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
