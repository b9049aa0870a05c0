"""The conformance suite (python -m replyhq.conformance) against a real server it starts and
restarts itself, with faults injected between client and server: the JavaScript SDK and the
Python SDK pass every rule; a client that breaks the rules fails the ones it breaks."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.conftest import Servers, server_env
from tests.test_sdk_js import SDK
from tests.test_sdk_js import node_sdk as node_sdk  # the fixture

RULES = {
    "identify_and_connect",
    "start_conversation",
    "live_in_order",
    "own_send_once",
    "duplicate_delivery",
    "reordered_delivery",
    "dropped_socket",
    "duplicate_send",
    "offline_queue",
    "server_restart",
    "exactly_once_in_order",
    "identity_switch",
    "logout",
    "server_events_match_schemas",
}


async def conformance(
    servers: Servers, tmp_path: Path, *adapter: str, wait: float = 30
) -> dict[str, dict]:
    results = tmp_path / "results.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "replyhq.conformance",
        "--serve",
        "--serve-arg=--no-migrate",
        "--json",
        str(results),
        f"--wait={wait}",
        "--",
        *adapter,
        env=server_env(servers),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), 600)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    print(out.decode()[-5000:])
    assert results.exists(), out.decode()[-3000:]
    by_rule = {r["rule"]: r for r in json.loads(results.read_text())}
    assert set(by_rule) == RULES
    return by_rule


@pytest.mark.slow
async def test_the_javascript_sdk_passes_every_rule(
    node_sdk: str, servers: Servers, tmp_path: Path
) -> None:
    results = await conformance(
        servers, tmp_path, node_sdk, str(SDK / "conformance" / "adapter.mjs")
    )
    failed = {name: r["detail"] for name, r in results.items() if not r["passed"]}
    assert failed == {}
    assert "stopped and started again" in results["server_restart"]["detail"]


@pytest.mark.slow
async def test_the_python_sdk_passes_every_rule(servers: Servers, tmp_path: Path) -> None:
    results = await conformance(
        servers, tmp_path, sys.executable, "-m", "replyhq.conformance.python_adapter"
    )
    failed = {name: r["detail"] for name, r in results.items() if not r["passed"]}
    assert failed == {}


@pytest.mark.slow
async def test_a_client_that_breaks_the_rules_fails_them(
    node_sdk: str, servers: Servers, tmp_path: Path
) -> None:
    """A bare socket.io-client shown every message:new as it comes: no dedupe, no reordering,
    no sync after a reconnect, no retried sends."""
    naive = Path(__file__).parent / "js" / "naive_adapter.mjs"
    results = await conformance(servers, tmp_path, node_sdk, str(naive), wait=6)
    assert results["identify_and_connect"]["passed"]
    assert results["live_in_order"]["passed"]
    for rule in (
        "duplicate_delivery",
        "reordered_delivery",
        "exactly_once_in_order",
        "identity_switch",  # it keeps its socket and device id for the next person
    ):
        assert not results[rule]["passed"], results[rule]
