"""`replyhq` commands run beside `make dev` share its embedded PostgreSQL and Redis: they never stop
a server another process is still using, and commands that need no Redis never touch it."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from replyhq.settings import Settings
from tests.realtime_clients import Recorder
from tests.test_embedded import Demo, _interrupt, _services_of, _start, data_dir

__all__ = ["data_dir"]  # the fixture, shared with test_embedded


def replyhq(data: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`replyhq ARGS` as a newcomer runs it in a second terminal: no DATABASE_URL or REDIS_URL."""
    names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env.pop("XDG_RUNTIME_DIR", None)  # unset for root on a server, as on our machines
    env["DATA_DIR"] = str(data)
    return subprocess.run(
        [sys.executable, "-m", "replyhq.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def owner_login(demo: Demo) -> dict[str, str]:
    banner = demo.log.read_text()
    found = re.search(r"owner login\s+(\S+)\s+password\s+(\S+)", banner)
    assert found, banner
    return {"email": found.group(1), "password": found.group(2)}


async def still_live(demo: Demo) -> None:
    """Ready, and real time works: a device socket connects and staff see it online."""
    async with httpx.AsyncClient(base_url=demo.url, timeout=10) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
        identified = await http.post(
            "/v1/identify",
            headers=demo.sdk("phone"),
            json={"platform": "ios", "user_id": "ann", "name": "Ann"},
        )
        assert identified.status_code == 200, identified.text
        user_id = identified.json()["user"]["id"]
        device = Recorder()
        await device.connect(
            demo.url, {"app_id": demo.app_id, "api_key": demo.sdk_key, "device_id": "phone"}
        )
        try:
            signed_in = await http.post("/admin/login", json=owner_login(demo))
            assert signed_in.status_code == 200, signed_in.text
            token = signed_in.json()["access_token"]
            presence = await http.get(
                "/admin/api/presence",
                params={"user_id": user_id},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert presence.status_code == 200, presence.text
            assert presence.json()["users"] == {user_id: True}
        finally:
            await device.close()


def test_commands_beside_serve_leave_its_embedded_servers_running(
    tmp_path: Path, data_dir: Path
) -> None:
    data = data_dir
    serve = _start(tmp_path, data, 1)
    try:
        asyncio.run(still_live(serve))
        redis_before = (data / "redis" / "redis.rdb.settings").read_text()

        listed = replyhq(data, tmp_path, "apps", "list")  # needs no Redis
        assert listed.returncode == 0, listed.stderr
        assert serve.app_id in listed.stdout
        stats = replyhq(data, tmp_path, "jobs", "stats")
        assert stats.returncode == 0, stats.stderr
        # a command that does use Redis attaches to the running one, and leaves it running
        updated = replyhq(data, tmp_path, "apps", "update", serve.app_id, "--name", "Demo app")
        assert updated.returncode == 0, updated.stderr

        assert (data / "redis" / "redis.rdb.settings").read_text() == redis_before
        asyncio.run(still_live(serve))
    finally:
        code = _interrupt(serve)
    assert code == 0, serve.log.read_text()[-3000:]
    assert _services_of(data) == [], "serve, the last user, did not stop its servers"


def test_a_command_alone_stops_the_servers_it_started(tmp_path: Path, data_dir: Path) -> None:
    listed = replyhq(data_dir, tmp_path, "apps", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr == ""  # no library warning before a command's own one-line errors
    assert _services_of(data_dir) == []
    assert not (data_dir / "redis").exists(), "apps list started Redis"
