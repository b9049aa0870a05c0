"""What a failure writes to the logs and to Sentry carries no value a client sent: not the
parameters of a failed SQL statement (message bodies, e-mails, key hashes), and not the text of
a Socket.IO library traceback, which goes through the same JSON lines and redactor as ours."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sentry_sdk
import socketio
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text

from replyhq.app import create_app
from replyhq.runtime import Runtime
from replyhq.web.deps import SDKApp
from tests.conftest import Servers, Tenant, free_port, make_settings, server_env
from tests.sentry_support import SentryServer

# Looks like nothing the redactor knows: only never showing SQL values keeps it out.
PRIVATE = "my-private-message-body-7f3a9c"
KEY = "rhq_sk_" + "L" * 40


@pytest.fixture
async def failing_app(servers: Servers, sentry_server: SentryServer) -> AsyncIterator[FastAPI]:
    """Test-only routes whose SQL fails on a value the client sent, the three ways it can."""
    settings = make_settings(servers, sentry_dsn=sentry_server.dsn, sentry_traces_sample_rate=0.0)
    app = create_app(settings)

    @app.post("/test-only/cast")  # the ORM session: a value PostgreSQL cannot convert
    async def cast(caller: SDKApp, payload: dict[str, Any]) -> None:
        runtime: Runtime = app.state.runtime
        async with runtime.db.tenant_session(caller.app_id) as session:
            await session.execute(text("SELECT CAST(:v AS integer)"), {"v": payload["v"]})

    @app.post("/test-only/duplicate")  # a constraint whose DETAIL names the value
    async def duplicate(caller: SDKApp, payload: dict[str, Any]) -> None:
        runtime: Runtime = app.state.runtime
        async with runtime.db.tenant_session(caller.app_id) as session:
            await session.execute(text("CREATE TEMP TABLE seen (v text UNIQUE)"))
            for _ in range(2):
                await session.execute(text("INSERT INTO seen VALUES (:v)"), {"v": payload["v"]})

    @app.post("/test-only/statement")  # the one-statement path (raw psycopg)
    async def statement(caller: SDKApp, payload: dict[str, Any]) -> None:
        runtime: Runtime = app.state.runtime
        await runtime.db.tenant_statement(
            caller.app_id, "SELECT %(v)s::uuid, %(n)s::int", {"v": payload["v"], "n": "x"}
        )

    async with LifespanManager(app):
        yield app


async def test_a_failed_statement_logs_and_reports_none_of_its_values(
    failing_app: FastAPI,
    sentry_server: SentryServer,
    tenant: Tenant,
    capsys: pytest.CaptureFixture[str],
) -> None:
    transport = httpx.ASGITransport(app=failing_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        identified = await client.post(
            "/v1/identify", headers=tenant.sdk(), json={"platform": "ios"}
        )
        assert identified.status_code == 200
        capsys.readouterr()
        for route in ("cast", "duplicate", "statement"):
            response = await client.post(
                f"/test-only/{route}", headers=tenant.sdk(), json={"v": PRIVATE}
            )
            assert response.status_code == 500, response.text
    sentry_sdk.flush(timeout=5)

    output = capsys.readouterr().out
    faults = [json.loads(line) for line in output.splitlines() if '"unhandled_error"' in line]
    assert len(faults) == 3, output
    tracebacks = "\n".join(fault["exception"] for fault in faults)
    for cause in ("InvalidTextRepresentation", "UniqueViolation"):  # still says what failed
        assert cause in tracebacks
    assert PRIVATE not in output

    events = sentry_server.events()
    assert len(events) == 3, events
    assert PRIVATE not in b"\n".join(sentry_server.bodies).decode()


# A server process like `replyhq serve`'s, plus a namespace whose handlers fail outside our own
# error handling (as a bug in a handshake or in the library would), with a key in the error.
EXPLODING_SERVER = """
import sys

import uvicorn

from replyhq.app import create_app

port, key = int(sys.argv[1]), sys.argv[2]
app = create_app()
sio = app.state.realtime.sio


async def connect(sid, environ, auth=None):
    if auth and auth.get("explode"):
        raise RuntimeError(f"upstream refused key {key} during the handshake")
    return True


async def explode(sid, data):
    raise RuntimeError(f"upstream refused key {key} for an event")


sio.on("connect", connect, namespace="/explode")
sio.on("explode", explode, namespace="/explode")
uvicorn.run(app.state.realtime.asgi(app), port=port, log_config=None, lifespan="on")
"""


@pytest.fixture
def exploding_server(servers: Servers, tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """(its URL, its stdout, its stderr)"""
    script, out, err = tmp_path / "server.py", tmp_path / "stdout", tmp_path / "stderr"
    script.write_text(EXPLODING_SERVER)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(script), str(port), KEY],
        env=server_env(servers, REDIS_PREFIX=f"{servers.prefix}{uuid.uuid4().hex[:8]}:"),
        stdout=out.open("wb"),
        stderr=err.open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            assert process.poll() is None, err.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield url, out, err
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_socket_library_tracebacks_are_redacted_json_lines(
    exploding_server: tuple[str, Path, Path],
) -> None:
    url, out, err = exploding_server
    refused = socketio.AsyncClient()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.connect(
            url,
            namespaces=["/explode"],
            auth={"explode": True},
            transports=["websocket"],
            wait_timeout=1,
        )
    await refused.disconnect()
    client = socketio.AsyncClient()
    await client.connect(url, namespaces=["/explode"], transports=["websocket"])
    await client.emit("explode", {}, namespace="/explode")
    for _ in range(100):  # the server handles it a moment later
        if "for an event" in out.read_text():
            break
        await asyncio.sleep(0.05)
    await client.disconnect()

    output, errors = out.read_text(), err.read_text()
    assert KEY not in output + errors
    assert errors == ""  # the library wrote its tracebacks bare to stderr, unredacted
    lines = [json.loads(line) for line in output.splitlines()]  # every line JSON
    failures = [e for e in lines if "upstream refused key" in json.dumps(e)]
    assert len(failures) == 2, output
    for entry in failures:
        assert entry["level"] == "error"
        assert "upstream refused key [REDACTED]" in entry["exception"]
