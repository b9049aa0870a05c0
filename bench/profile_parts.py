"""Where a ReplyHQ server's CPU goes per part of a message (issue 21): py-spy samples of a server
under the e2e load (bench_e2e with BENCH_E2E_PROFILE=<system>), each stack given to one part.

A stack belongs to the part of the first frame, from the innermost outwards, that names one:
redis-py and json frames name none (they serve both the rate limits and the publish), so they
go to whoever called them. Samples of an idle process (waiting in the event loop) are not taken:
py-spy records only running threads unless told otherwise.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

PARTS = ("HTTP + auth + limits", "send (service + statement)", "publish", "fan-out", "logging")
OTHER = "event loop and other"
# (part, pattern on one frame "function (file:line)"), tried in order on each frame.
_MARKERS: list[tuple[str, re.Pattern[str]]] = [
    ("logging", re.compile(r"structlog|/logging/__init__|observability/logging\.py")),
    ("fan-out", re.compile(r"_emit_here|_send_eio_packet|engineio/|realtime/websocket\.py")),
    ("publish", re.compile(r"_publish_all|emit_all|realtime/delivery\.py|after_commit")),
    (
        "send (service + statement)",
        re.compile(r"psycopg|sqlalchemy|db/session\.py|messaging/(service|render|statements)"),
    ),
    (
        "HTTP + auth + limits",
        re.compile(
            r"ratelimit|web/deps\.py|apps/keys\.py|web/hot\.py|starlette/|fastapi/|uvicorn/|"
            r"httptools|web/middleware\.py|web/nul\.py|web/origins\.py|observability/http\.py|"
            r"observability/metrics\.py|prometheus_client|socketio/async_server"
        ),
    ),
]


def start(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes] | None:
    """py-spy recording `pid` for `seconds` into `output` (raw, collapsed stacks); None without
    py-spy."""
    binary = shutil.which("py-spy") or str(Path(__import__("sys").executable).parent / "py-spy")
    if not Path(binary).exists():
        return None
    command = [binary, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
    command += ["--rate", "200", "--format", "raw", "--nonblocking", "--output", str(output)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def part_of(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):  # innermost first
        for part, pattern in _MARKERS:
            if pattern.search(frame):
                return part
    return OTHER


def parts(raw: str) -> Counter[str]:
    """Samples per part in py-spy's raw output ("frame;frame;... count" per line)."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, number = line.rpartition(" ")
        if stack and number.isdigit():
            counts[part_of(stack)] += int(number)
    return counts
