"""`replyhq apps ...` and `replyhq migrate` run as an operator would, against this run's servers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
from sqlalchemy import text

from replyhq.runtime import Runtime
from replyhq.settings import DEV_MASTER_KEY, Settings
from tests.conftest import Servers, Tenant, free_port

MASTER = {"X-Master-Key": DEV_MASTER_KEY}


def run_cli(
    servers: Servers, cwd: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """`replyhq ARGS` with the settings of this run (and `env`), in a folder without a .env."""
    names = {name.upper() for name in Settings.model_fields}
    environment = {k: v for k, v in os.environ.items() if k.upper() not in names}
    environment.update(
        DATABASE_URL=servers.database_url,
        REDIS_URL=servers.redis_url,
        REDIS_PREFIX=servers.prefix,
        BCRYPT_ROUNDS="4",
    )
    environment.update(env)
    for name in [k for k, v in env.items() if v == ""]:
        del environment[name]  # "" means: leave the variable unset
    return subprocess.run(
        [sys.executable, "-m", "replyhq.cli", *args],
        env=environment,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def failed(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a failing command prints on standard error."""
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("replyhq: ")
    return lines[0]


def _text_keys(stdout: str) -> dict[str, str]:
    fields = dict(line.split(None, 1) for line in stdout.splitlines()[:5])
    assert "shown only now" in stdout
    return fields


def _sdk(app: dict[str, str], device: str = "cli-device") -> dict[str, str]:
    return {"X-App-Id": app["id"], "X-Api-Key": app["sdk_key"], "X-Device-Id": device}


async def _identify(client: httpx.AsyncClient, app: dict[str, str]) -> httpx.Response:
    return await client.post("/v1/identify", headers=_sdk(app), json={"platform": "ios"})


def _as_app(tenant: Tenant) -> dict[str, str]:
    return {"id": str(tenant.id), "sdk_key": tenant.sdk_key}


async def _count_apps(runtime: Runtime) -> int:
    async with runtime.db.system_session() as session:
        count = await session.scalar(text("SELECT count(*) FROM apps"))
    assert count is not None
    return int(count)


async def test_apps_create_prints_working_keys_once(
    servers: Servers, tmp_path: Path, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    # The operator's default cost (12), not the tests' 4.
    stdout = ok(run_cli(servers, tmp_path, "apps", "create", "Text app", BCRYPT_ROUNDS=""))
    shown = _text_keys(stdout)
    assert set(shown) == {"id", "name", "sdk_key", "secret_key", "identity_secret"}
    assert shown["name"] == "Text app"
    assert uuid.UUID(shown["id"])
    assert shown["sdk_key"].startswith("rhq_sdk_")
    assert shown["secret_key"].startswith("rhq_sk_")
    assert (await _identify(client, shown)).status_code == 200
    async with runtime.db.system_session() as session:
        hashes = (
            await session.execute(
                text("SELECT sdk_key_hash, secret_key_hash FROM apps WHERE id = :id"),
                {"id": shown["id"]},
            )
        ).one()
    assert all(h.startswith("$2b$12$") for h in hashes)


async def test_apps_create_json_and_list_without_keys(
    servers: Servers, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    created = json.loads(ok(run_cli(servers, tmp_path, "apps", "create", "Listed", "--json")))
    assert {"id", "name", "sdk_key", "secret_key", "identity_secret", "created_at"} <= set(created)
    assert created["name"] == "Listed"
    assert (await _identify(client, created)).status_code == 200

    listing = ok(run_cli(servers, tmp_path, "apps", "list"))
    mine = [line for line in listing.splitlines() if created["id"] in line]
    assert len(mine) == 1
    assert mine[0].endswith("Listed")
    as_json = json.loads(ok(run_cli(servers, tmp_path, "apps", "list", "--json")))
    entry = next(a for a in as_json if a["id"] == created["id"])
    assert entry["name"] == "Listed"
    for output in (listing, json.dumps(as_json)):
        for secret in (created["sdk_key"], created["secret_key"], created["identity_secret"]):
            assert secret not in output
        assert "rhq_sdk_" not in output
        assert "rhq_sk_" not in output
        assert "$2b$" not in output


async def test_rotate_keys_stops_the_old_key_at_once_in_a_running_server(
    servers: Servers, tmp_path: Path, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    old = _as_app(tenant)
    assert (await _identify(client, old)).status_code == 200  # now cached by the server

    new = json.loads(ok(run_cli(servers, tmp_path, "apps", "rotate-keys", old["id"], "--json")))
    assert new["id"] == old["id"]
    assert new["sdk_key"] != old["sdk_key"]
    assert new["secret_key"] != tenant.secret_key
    assert (await _identify(client, old)).status_code == 401
    assert (await _identify(client, new)).status_code == 200

    as_text = _text_keys(ok(run_cli(servers, tmp_path, "apps", "rotate-keys", old["id"])))
    assert as_text["id"] == old["id"]
    assert (await _identify(client, new)).status_code == 401
    assert (await _identify(client, as_text)).status_code == 200


async def test_update_sets_identity_verification_and_name(
    servers: Servers, tmp_path: Path, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    app = _as_app(tenant)
    ok(run_cli(servers, tmp_path, "apps", "update", app["id"], "--require-identity", "on"))
    anonymous = await _identify(client, app)
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "IDENTITY_REQUIRED"

    args = ("apps", "update", app["id"], "--require-identity", "off", "--name", "Relaxed")
    assert "app updated" in ok(run_cli(servers, tmp_path, *args))
    assert (await _identify(client, app)).status_code == 200
    listed = (await client.get("/setup/apps", headers=MASTER)).json()
    assert next(a for a in listed if a["id"] == app["id"])["name"] == "Relaxed"


async def test_migrate_on_a_migrated_database_is_a_no_op_and_warns_without_autovacuum(
    servers: Servers, tmp_path: Path, runtime: Runtime
) -> None:
    """The send's cached plan needs statistics that follow the tables (migration 0230): an
    operator whose PostgreSQL runs without autovacuum is told so, in one log line."""
    result = run_cli(servers, tmp_path, "migrate")
    assert "migrations applied" in ok(result)
    async with runtime.db.engine.connect() as connection:
        autovacuum = (await connection.execute(text("SHOW autovacuum"))).scalar_one()
    warned = [line for line in result.stderr.splitlines() if "autovacuum is off" in line]
    assert len(warned) == (0 if autovacuum == "on" else 1), result.stderr
    if warned:
        assert "ANALYZE on a schedule" in warned[0]


BAD_INPUT: list[tuple[tuple[str, ...], str]] = [
    (("apps", "rotate-keys", "not-a-uuid"), "not an app id: 'not-a-uuid'"),
    (("apps", "rotate-keys", str(uuid.UUID(int=7))), "No such app"),
    (("apps", "update", str(uuid.UUID(int=7)), "--require-identity", "on"), "No such app"),
    (("apps", "create", ""), "invalid app name"),
    (("apps", "create", "x" * 201), "invalid app name"),
]


async def test_bad_input_exits_non_zero_with_one_line_and_changes_nothing(
    servers: Servers, tmp_path: Path, runtime: Runtime
) -> None:
    before = await _count_apps(runtime)
    closed = f"postgresql://replyhq@127.0.0.1:{free_port()}/replyhq"
    # Side by side: each is a fresh interpreter, and together they take little more than one.
    results = await asyncio.gather(
        *(asyncio.to_thread(run_cli, servers, tmp_path, *args) for args, _ in BAD_INPUT),
        asyncio.to_thread(run_cli, servers, tmp_path, "apps", "list", DATABASE_URL=closed),
    )
    for (args, reason), result in zip(BAD_INPUT, results, strict=False):
        line = failed(result)
        assert reason in line, (args, line)
    assert "connect" in failed(results[-1]).lower()
    assert await _count_apps(runtime) == before
