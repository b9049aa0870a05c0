"""`replyhq admins create` and the demo owner login of `make dev`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from replyhq.accounts.cli import DEMO_OWNER_EMAIL, ensure_demo_owner
from replyhq.cli import ensure_demo_app
from replyhq.runtime import Runtime
from tests.conftest import Servers, Tenant, make_settings, server_env, start_server


def _cli(servers: Servers, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "replyhq.cli", *args],
        env=server_env(servers),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_admins_create_adds_a_staff_user_who_can_log_in(servers: Servers, tenant: Tenant) -> None:
    created = _cli(
        servers,
        "admins",
        "create",
        "--app",
        str(tenant.id),
        "--email",
        "Ops@Example.com",
        "--role",
        "OWNER",
        "--json",
        stdin="a long enough password\n",
    )
    assert created.returncode == 0, created.stderr
    staff = json.loads(created.stdout)
    assert (staff["email"], staff["role"], staff["app_id"]) == (
        "ops@example.com",
        "OWNER",
        str(tenant.id),
    )
    again = _cli(
        servers,
        "admins",
        "create",
        "--app",
        str(tenant.id),
        "--email",
        "ops@example.com",
        "--role",
        "AGENT",
        "--password",
        "another password",
    )
    assert again.returncode == 1
    assert "already on the team" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--app", "nope", "--email", "a@b.c", "--role", "ADMIN", "--password", "long enough"],
            "not an app id",
        ),
        (
            [
                "--app",
                "00000000-0000-0000-0000-000000000000",
                "--email",
                "a@b.c",
                "--role",
                "ADMIN",
                "--password",
                "long enough",
            ],
            "no such app",
        ),
        (
            [
                "--app",
                "00000000-0000-0000-0000-000000000000",
                "--email",
                "a@b.c",
                "--role",
                "ADMIN",
                "--password",
                "short",
            ],
            "invalid input",
        ),
        (
            [
                "--app",
                "00000000-0000-0000-0000-000000000000",
                "--email",
                "nope",
                "--role",
                "ADMIN",
                "--password",
                "long enough",
            ],
            "invalid input",
        ),
    ],
)
def test_admins_create_refuses_bad_input_in_one_line(
    servers: Servers, args: list[str], message: str
) -> None:
    result = _cli(servers, "admins", "create", *args)
    assert result.returncode == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


async def test_the_demo_app_gets_an_owner_login_kept_in_the_data_dir(
    servers: Servers, runtime: Runtime, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    settings = make_settings(servers, data_dir=tmp_path)
    demo = await ensure_demo_app(settings, runtime)
    login = await ensure_demo_owner(settings, runtime, demo["id"])
    assert login["owner_email"] == DEMO_OWNER_EMAIL
    stored = json.loads((tmp_path / "demo-app.json").read_text())
    assert stored["owner_password"] == login["owner_password"]
    assert stored["secret_key"] == demo["secret_key"]
    assert (tmp_path / "demo-app.json").stat().st_mode & 0o777 == 0o600
    # Same login on the next start; the password really opens the demo app as its OWNER.
    assert await ensure_demo_owner(settings, runtime, demo["id"]) == login
    response = await client.post(
        "/admin/login",
        json={"email": DEMO_OWNER_EMAIL, "password": login["owner_password"], "app_id": demo["id"]},
    )
    assert response.status_code == 200
    assert response.json()["staff"]["role"] == "OWNER"
    # A lost password is replaced, not left unusable.
    (tmp_path / "demo-app.json").write_text(json.dumps({**stored, "owner_password": "lost"}))
    renewed = await ensure_demo_owner(settings, runtime, demo["id"])
    assert renewed["owner_password"] not in ("lost", login["owner_password"])


@pytest.mark.slow
def test_serve_demo_prints_the_owner_login(servers: Servers, tmp_path: Path) -> None:
    server = start_server(servers, tmp_path, "--demo", DATA_DIR=str(tmp_path / "data"))
    try:
        banner = server.log.read_text()
        match = re.search(r"owner login\s+(\S+)\s+password (\S+)", banner)
        assert match is not None, banner[-2000:]
        email, password = match.groups()
        app_id = json.loads((tmp_path / "data" / "demo-app.json").read_text())["id"]
        response = httpx.post(
            server.url + "/admin/login",
            json={"email": email, "password": password, "app_id": app_id},
        )
        assert response.status_code == 200, response.text
    finally:
        server.stop()
