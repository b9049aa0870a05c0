"""The Python SDK as its own distribution (sdk/python, `replyhq-sdk`): it builds into a wheel
that carries only `replyhq_sdk` (typed) and imports nothing of the server; its blocking wrapper
works against a live server; `replyhq.sdk` still imports it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import SocketServer, Tenant
from tests.staff import secret

ROOT = Path(__file__).resolve().parents[1]


def test_the_distribution_stands_alone(tmp_path: Path) -> None:
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT / "sdk" / "python"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = tmp_path.glob("replyhq_sdk-0.1.0-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {
        "replyhq_sdk/__init__.py",
        "replyhq_sdk/client.py",
        "replyhq_sdk/sync.py",
        "replyhq_sdk/py.typed",
    } <= set(names)
    assert not [n for n in names if n.startswith("replyhq/")]
    metadata = (
        zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    )
    assert "Name: replyhq-sdk" in metadata
    assert "Requires-Dist: python-socketio[asyncio_client]==5.18.1" in metadata
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(wheel).extractall(unpacked)
    probe = (
        "import sys, replyhq_sdk; "
        "assert replyhq_sdk.__file__.startswith(sys.argv[1]), replyhq_sdk.__file__; "
        "assert not [m for m in sys.modules if m == 'replyhq' or m.startswith('replyhq.')]"
    )
    alone = subprocess.run(
        [sys.executable, "-c", probe, str(unpacked)],
        env={"PYTHONPATH": str(unpacked)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert alone.returncode == 0, alone.stderr


def test_the_old_import_path_still_works() -> None:
    from replyhq.sdk.client import ReplyHQError

    import replyhq_sdk
    from replyhq.sdk import ReplyHQClient

    assert ReplyHQClient is replyhq_sdk.ReplyHQClient
    assert ReplyHQError is replyhq_sdk.ReplyHQError


async def test_the_blocking_wrapper_against_a_live_server(
    socket_server: SocketServer, http: httpx.AsyncClient, tenant: Tenant
) -> None:
    from replyhq_sdk import ReplyHQSyncClient

    received: list[dict[str, Any]] = []
    arrived = threading.Event()

    def on_message(message: dict[str, Any]) -> None:
        received.append(message)
        if message["sender"] == "agent":
            arrived.set()

    def as_a_script() -> str:
        client = ReplyHQSyncClient(
            socket_server.url,
            str(tenant.id),
            tenant.sdk_key,
            "sync-1",
            user_id="sy",
            user_hash=tenant.user_hash("sy"),
            on_message=on_message,
        )
        try:
            client.identify(name="Sy")
            conversation_id = client.start_conversation("Blocking")
            client.connect()
            stored = client.send(conversation_id, "Hello from blocking code")
            assert stored["seq"] == 1 and client.pending == 0
            client.typing(conversation_id, True)
            return conversation_id
        finally:
            client.close()

    # The server runs on this test's event loop: the blocking client runs in a thread.
    conversation_id = await asyncio.to_thread(as_a_script)
    assert [m["body"] for m in received] == ["Hello from blocking code"]
    history = await http.get(
        f"/admin/api/conversations/{conversation_id}/messages", headers=secret(tenant)
    )
    assert [m["body"] for m in history.json()["items"]] == ["Hello from blocking code"]
