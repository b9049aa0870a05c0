"""`replyhq serve --demo` without DATABASE_URL and REDIS_URL: embedded PostgreSQL and Redis under
DATA_DIR, a working API, a clean Ctrl-C, and the data still there after a restart."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from replyhq import embedded
from replyhq.settings import Settings
from tests.conftest import free_port


@dataclass
class Demo:
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    app_id: str
    sdk_key: str

    def sdk(self, device: str = "laptop") -> dict[str, str]:
        return {"X-App-Id": self.app_id, "X-Api-Key": self.sdk_key, "X-Device-Id": device}


def _start(home: Path, data: Path, attempt: int) -> Demo:
    names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env["DATA_DIR"] = str(data)
    port = free_port()
    log = home / f"serve-{attempt}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "replyhq.cli", "serve", "--demo", "--port", str(port)],
        env=env,
        cwd=home,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # a loaded machine migrates slowly
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    else:
        process.kill()
        raise AssertionError(f"serve never became ready:\n{log.read_text()[-3000:]}")
    banner = log.read_text()
    app_id = re.search(r"demo app id\s+(\S+)", banner)
    sdk_key = re.search(r"SDK key\s+(rhq_sdk_\S+)", banner)
    assert app_id and sdk_key, banner
    assert str(data.resolve()) in banner
    return Demo(process, url, log, app_id.group(1), sdk_key.group(1))


def _interrupt(demo: Demo) -> int:
    demo.process.send_signal(signal.SIGINT)
    try:
        return demo.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        demo.process.kill()
        raise AssertionError(
            f"Ctrl-C did not stop serve:\n{demo.log.read_text()[-3000:]}"
        ) from None


def _services_of(data: Path) -> list[str]:
    """Processes still running PostgreSQL or Redis for this data directory."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if ("postgres" in command or "redis-server" in command) and (
            str(data) in command or cwd.startswith(str(data))
        ):
            found.append(f"{entry.name}: {command}")
    return found


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """Not under pytest's tmp_path: as root, the embedded PostgreSQL runs as another user that must
    traverse every parent folder, and each new pytest session (a parallel run) makes pytest's own
    folder private again."""
    home = Path(tempfile.mkdtemp(prefix="replyhq-embedded-test-"))
    yield home / "data"
    shutil.rmtree(home, ignore_errors=True)


def test_serve_embedded_demo_then_ctrl_c_then_restart(tmp_path: Path, data_dir: Path) -> None:
    data = data_dir
    first = _start(tmp_path, data, 1)
    try:
        assert _services_of(data), "no embedded PostgreSQL/Redis found for DATA_DIR"
        ready = httpx.get(first.url + "/readyz").json()
        assert ready["checks"] == {"database": "ok", "redis": "ok"}
        with httpx.Client(base_url=first.url, timeout=10) as http:
            identified = http.post("/v1/identify", headers=first.sdk(), json={"platform": "web"})
            assert identified.status_code == 200, identified.text
            started = http.post(
                "/v1/conversations",
                headers=first.sdk(),
                json={"first_message": {"body": "kept across restarts", "client_msg_id": "m1"}},
            )
            assert started.status_code == 201, started.text
            conversation_id = started.json()["id"]
            sent = http.post(
                f"/v1/conversations/{conversation_id}/messages",
                headers=first.sdk(),
                json={"body": "second", "client_msg_id": uuid.uuid4().hex},
            )
            assert sent.status_code == 201
    finally:
        code = _interrupt(first)
    assert code == 0, first.log.read_text()[-3000:]
    assert _services_of(data) == []

    again = _start(tmp_path, data, 2)
    try:
        assert (again.app_id, again.sdk_key) == (first.app_id, first.sdk_key)
        with httpx.Client(base_url=again.url, timeout=10) as http:
            listed = http.get("/v1/conversations", headers=again.sdk())
            assert [c["id"] for c in listed.json()["items"]] == [conversation_id]
            history = http.get(f"/v1/conversations/{conversation_id}/messages", headers=again.sdk())
            assert [m["body"] for m in history.json()["items"]] == [
                "kept across restarts",
                "second",
            ]
    finally:
        code = _interrupt(again)
    assert code == 0, again.log.read_text()[-3000:]
    assert _services_of(data) == []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_embedded_redis_stops_even_with_a_client_still_connected(tmp_path: Path) -> None:
    started = embedded.start(tmp_path, need_postgres=False, need_redis=True)
    straggler = redis.Redis.from_url(started.redis_url)  # a pool nobody closed
    straggler.set("kept", "yes")
    pids = [int(line.split(":")[0]) for line in _services_of(tmp_path)]
    assert pids
    started.stop()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids), "redis-server left running"

    again = embedded.start(tmp_path, need_postgres=False, need_redis=True)
    try:
        assert redis.Redis.from_url(again.redis_url).get("kept") == b"yes"
    finally:
        again.stop()
