"""Fixtures: real PostgreSQL and Redis (the environment's, or embedded), a fresh database per run
built by the real migrations, and tenants created through the real services."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from psycopg import sql
from sqlalchemy.engine import make_url

from replyhq import embedded
from replyhq.app import create_app
from replyhq.apps import service as apps_service
from replyhq.db import Database
from replyhq.db.migrate import upgrade
from replyhq.runtime import Runtime
from replyhq.settings import Settings
from replyhq.users.service import user_hash
from replyhq.web.protocol import http_options
from tests.realtime_clients import Recorder

# job_queue, job_worker: jobs run in the test process; smtp, mail_app: mail read from real SMTP;
# providers: fake FCM, APNs and Web Push services; sentry_server: a local Sentry
pytest_plugins = [
    "tests.jobs_support",
    "tests.mail_support",
    "tests.billing_support",
    "tests.push_support",
    "tests.sentry_support",
]


@dataclass(frozen=True)
class Servers:
    database_url: str  # the owner's URL of this run's own database
    redis_url: str
    prefix: str  # Redis key prefix of this run, so parallel runs never collide


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    base_db = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    started = embedded.start(
        tmp_path_factory.mktemp("embedded"),
        need_postgres=not base_db,
        need_redis=not redis_url,
    )
    base_db = base_db or started.database_url
    redis_url = redis_url or started.redis_url
    name = f"replyhq_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_plain(base_db), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    database_url = _plain(make_url(base_db).set(database=name).render_as_string(False))
    upgrade(database_url, Settings())
    try:
        yield Servers(database_url, redis_url, f"rhqtest:{name}:")
    finally:
        with psycopg.connect(_plain(base_db), autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        started.stop()


def make_settings(servers: Servers, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": servers.database_url,
        "redis_url": servers.redis_url,
        "redis_prefix": servers.prefix,
        "bcrypt_rounds": 4,  # the cost-12 default is checked in test_keys.py
        "rate_limit_auth": "10000/minute",
        "rate_limit_login_account": "10000/minute",
        "rate_limit_login_address": "10000/minute",
        "rate_limit_login_device": "10000/minute",
        "rate_limit_token_failures": "10000/minute",
        "rate_limit_setup": "10000/minute",
        "rate_limit_v1": "10000/minute",
        "rate_limit_v1_ip": "100000/minute",
        "rate_limit_signup": "10000/minute",
        "rate_limit_signup_ip": "10000/minute",
        "allowed_origins": "https://customer.example",
        # Attachments of this run in a folder of their own (never the work tree's DATA_DIR).
        "attachment_dir": Path(tempfile.gettempdir()) / f"{servers.prefix.replace(':', '-')}files",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def settings(servers: Servers) -> Settings:
    return make_settings(servers)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture(scope="session")
def runtime(app: FastAPI) -> Runtime:
    rt: Runtime = app.state.runtime
    return rt


@pytest.fixture(scope="session")
def db(runtime: Runtime) -> Database:
    return runtime.db


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass(frozen=True)
class Tenant:
    id: uuid.UUID
    name: str
    sdk_key: str
    secret_key: str
    identity_secret: str

    def sdk(self, device_id: str = "device-1") -> dict[str, str]:
        return {"X-App-Id": str(self.id), "X-Api-Key": self.sdk_key, "X-Device-Id": device_id}

    def user_hash(self, user_id: str) -> str:
        return user_hash(self.identity_secret, user_id)


MakeTenant = Callable[..., Awaitable[Tenant]]


@pytest.fixture(scope="session")
def make_tenant(runtime: Runtime) -> MakeTenant:
    async def make(name: str = "Acme") -> Tenant:
        async with runtime.db.system_session() as session:
            app, keys = await apps_service.create_app(session, name, rounds=4)
        return Tenant(app.id, name, keys.sdk_key, keys.secret_key, keys.identity_secret)

    return make


@pytest.fixture
async def tenant(make_tenant: MakeTenant) -> Tenant:
    return await make_tenant()


async def identify(
    client: httpx.AsyncClient, tenant: Tenant, device_id: str = "device-1", **body: object
) -> dict[str, object]:
    response = await client.post(
        "/v1/identify", headers=tenant.sdk(device_id), json={"platform": "ios", **body}
    )
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


async def start_conversation(
    client: httpx.AsyncClient, tenant: Tenant, device_id: str = "device-1", body: str = "Hello"
) -> dict[str, object]:
    response = await client.post(
        "/v1/conversations",
        headers=tenant.sdk(device_id),
        json={"first_message": {"body": body, "client_msg_id": uuid.uuid4().hex}},
    )
    assert response.status_code == 201, response.text
    result: dict[str, object] = response.json()
    return result


# --- real server processes ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def server_env(servers: Servers, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
        "REDIS_PREFIX": servers.prefix,
        "BCRYPT_ROUNDS": "4",
        "RATE_LIMIT_AUTH": "10000/minute",
        "RATE_LIMIT_LOGIN_ACCOUNT": "10000/minute",
        "RATE_LIMIT_LOGIN_ADDRESS": "10000/minute",
        "RATE_LIMIT_LOGIN_DEVICE": "10000/minute",
        "RATE_LIMIT_TOKEN_FAILURES": "10000/minute",
        "RATE_LIMIT_V1": "10000/minute",
        "RATE_LIMIT_V1_IP": "100000/minute",
    }
    env.update(extra)
    return env


def start_server(servers: Servers, log_dir: Path, *args: str, **env: str) -> LiveServer:
    port = free_port()
    log = log_dir / f"server-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "replyhq.cli", "serve", "--port", str(port), *args],
        env=server_env(servers, **env),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return LiveServer(url, process, log)
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


@pytest.fixture
def live_server(servers: Servers, tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(servers, tmp_path)
    yield server
    server.stop()


# --- an in-process server on a real socket (for Socket.IO clients) -----------------------------


@dataclass
class SocketServer:
    url: str
    app: FastAPI

    @property
    def runtime(self) -> Runtime:
        rt: Runtime = self.app.state.runtime
        return rt


async def serve_asgi(
    asgi: Any, lifespan: str = "off", **options: Any
) -> tuple[int, Callable[[], Awaitable[None]]]:
    """Serve `asgi` with uvicorn in this process, with `replyhq serve`'s websocket options (and
    any other uvicorn `options`), on a free port: (the port, a coroutine function that stops
    it)."""
    import asyncio

    import uvicorn

    from replyhq.realtime.websocket import WEBSOCKET_OPTIONS

    port = free_port()
    config = uvicorn.Config(
        asgi,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan=lifespan,
        **{**WEBSOCKET_OPTIONS, **options},
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)

    async def stop() -> None:
        server.should_exit = True
        await task

    return port, stop


async def serve_in_process(
    settings: Settings,
) -> tuple[SocketServer, Callable[[], Awaitable[None]]]:
    app = create_app(settings)
    asgi = app.state.realtime.asgi(app)
    port, stop = await serve_asgi(asgi, "on", **http_options(settings.max_header_bytes))
    return SocketServer(f"http://127.0.0.1:{port}", app), stop


@pytest.fixture(scope="session")
async def socket_server(servers: Servers) -> AsyncIterator[SocketServer]:
    server, stop = await serve_in_process(make_settings(servers, presence_ttl_seconds=3))
    yield server
    await stop()


@pytest.fixture
async def http(socket_server: SocketServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the in-process socket server (same process, same database)."""
    async with httpx.AsyncClient(base_url=socket_server.url) as client:
        yield client


@pytest.fixture
async def recorders() -> AsyncIterator[list[Recorder]]:
    """Socket.IO clients a test opens; each is closed after the test."""
    opened: list[Recorder] = []
    yield opened
    for recorder in opened:
        await recorder.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """test_indexes first: it judges query plans on statistics of the run's shared tables, which
    the other modules' tenants skew (its own tenant has a handful of rows); before them, the
    planner sees what a fresh app sees."""
    items.sort(key=lambda item: getattr(item.module, "__name__", "") != "tests.test_indexes")
