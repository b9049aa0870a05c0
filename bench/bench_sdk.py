"""The JavaScript SDK (sdk/js): its bundle size (minified + gzip, goal <= 20 KB besides
socket.io-client) and how many messages per second one client receives in Node, against a bare
socket.io-client in the same run (goal >= 0.8x). Both receive the same `message:new` stream from
a local Socket.IO server in Node (bench/node/sdk_receive.mjs) that answers the SDK's handshake
and sync, so that the clients, not the database, set the pace; rounds alternate bare/SDK and the
median of each is compared (the machine is shared: absolute figures are noisy, the ratio less)."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Any

from bench import common

ROOT = Path(__file__).resolve().parents[1]
SDK = ROOT / "sdk" / "js"
SCRIPT = ROOT / "bench" / "node" / "sdk_receive.mjs"
MESSAGES = 20_000
ROUNDS = 9


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is required")
    subprocess.run(["make", "sdk-js"], cwd=ROOT, check=True, capture_output=True)
    if not (ROOT / "node_modules" / "socket.io").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True)
    return node


def _receive(node: str, kind: str, url: str) -> float:
    done = subprocess.run(
        [node, str(SCRIPT), "client", kind, url, str(MESSAGES)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["received"] == MESSAGES
    return float(result["per_second"])


def run() -> list[dict[str, Any]]:
    node = _node()
    sizes = json.loads(
        subprocess.run(
            [node, "scripts/check-bundle.mjs", "--json"],
            cwd=SDK,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    server = subprocess.Popen(
        [node, str(SCRIPT), "server"], stdout=subprocess.PIPE, text=True, cwd=SCRIPT.parent
    )
    try:
        assert server.stdout is not None
        port = json.loads(server.stdout.readline())["port"]
        url = f"http://127.0.0.1:{port}"
        rates: dict[str, list[float]] = {"bare": [], "sdk": []}
        for _ in range(ROUNDS):
            for kind in ("bare", "sdk"):
                rates[kind].append(_receive(node, kind, url))
    finally:
        server.terminate()
        server.wait(timeout=10)
    bare, sdk = statistics.median(rates["bare"]), statistics.median(rates["sdk"])
    gzip_kb = sizes["bytes_gzip"] / 1024
    return [
        common.row(
            "sdk",
            "@replyhq/sdk bundle, min+gzip (without socket.io-client)",
            gzip_kb,
            "KB",
            goal="<= 20 KB",
            ok=gzip_kb <= 20,
            note=f"{sizes['bytes_min'] / 1024:.1f} KB minified; with socket.io-client "
            f"{sizes['with_socket_io_gzip'] / 1024:.1f} KB min+gzip (React Native resolution)",
        ),
        common.row(
            "sdk",
            "messages/s received by one client in Node",
            sdk,
            "msg/s",
            baseline=bare,
            ratio=sdk / bare,
            goal=">= 0.8x bare socket.io-client",
            ok=sdk / bare >= 0.8,
            note=f"median of {ROUNDS} alternating rounds of {MESSAGES:,} message:new each; "
            f"bare {[round(r) for r in rates['bare']]}, sdk {[round(r) for r in rates['sdk']]}",
        ),
    ]
