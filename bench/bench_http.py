"""Authenticated message POSTs against a real server process, from a load generator in another
process (bench/loadgen.py), at 100 and 1,000 concurrent clients; each point beside /healthz of the
same server under the same load, and beside it pgbench doing the same single-row insert, as the
database's ceiling on this machine.

Each client is its own device with its own conversation, and every POST carries a fresh
client_msg_id, so every request stores a message. The server runs as `replyhq serve` does in
production (rate limits on, only raised; JSON access log to a file).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import psycopg

from bench import common

CLIENTS = (100, 1000)
WORKERS = (1, 2)
DURATION = 10.0  # seconds counted per point
WARMUP = 3.0  # seconds before counting (connections open, caches warm)
PACED_SHARE = 0.5  # the paced run offers this share of the capacity just measured
PGBENCH_MAX_CLIENTS = 30  # as many as the server's pool; max_connections is shared with others
BODY = "How do I reset my password?"
ROOT = Path(__file__).resolve().parent.parent


def _bcrypt_seconds() -> float:
    """One bcrypt check at the server's cost (12) on this machine, now."""
    hashed = bcrypt.hashpw(b"rhq_sdk_prime", bcrypt.gensalt(12))
    began = time.monotonic()
    bcrypt.checkpw(b"rhq_sdk_prime", hashed)
    return time.monotonic() - began


@dataclass(frozen=True)
class Load:
    result: dict[str, Any]
    server_cpu: float  # cores the server used on average over the run

    def __getitem__(self, key: str) -> Any:
        return self.result[key]


def server_settings(workers: int) -> dict[str, str]:
    # About 30 connections in all: more than two cores can keep busy, well under max_connections.
    size, overflow = (20, 10) if workers == 1 else (12, 3)
    return {
        "DB_POOL_SIZE": str(size),
        "DB_MAX_OVERFLOW": str(overflow),
        # Steady state: a verified key stays cached for the whole run, so that no run pays the
        # bcrypt of an expiring cache entry (bench_keys measures what that costs).
        "API_KEY_CACHE_TTL_SECONDS": "3600",
    }


def prime(
    server: common.Server, tenant: common.Tenant, device: common.Device, workers: int
) -> None:
    """Every worker verifies the key once before the load, instead of every client's first
    request paying a bcrypt at the same time (bench_keys measures that stampede). Which worker
    takes a connection is the kernel's choice: send bursts of requests on fresh connections
    until three bursts in a row are all fast (no bcrypt), i.e. every worker has the key."""
    url = f"{server.url}/v1/conversations/{device.conversation_id}/messages"
    headers = {**tenant.headers(device.device_id), "Connection": "close"}
    burst = 2 * workers
    fast = _bcrypt_seconds() / 2  # an answer this quick paid no bcrypt

    def post(index: int) -> float:
        began = time.monotonic()
        response = httpx.post(
            url,
            headers=headers,
            json={"body": BODY, "client_msg_id": uuid.uuid4().hex},
            timeout=120,
        )
        response.raise_for_status()
        return time.monotonic() - began

    fast_bursts = 0
    deadline = time.monotonic() + 120
    with ThreadPoolExecutor(burst) as pool:
        while fast_bursts < 3 and time.monotonic() < deadline:
            slowest = max(pool.map(post, range(burst)))
            fast_bursts = fast_bursts + 1 if slowest < fast else 0


def settle(server: common.Server, limit: float = 60.0) -> None:
    """Wait until the server has finished what an earlier run left it (abandoned requests)."""
    deadline = time.monotonic() + limit
    with httpx.Client(timeout=limit) as client:
        while time.monotonic() < deadline:
            began = time.monotonic()
            with contextlib.suppress(httpx.HTTPError):
                client.get(server.url + "/healthz")
                if time.monotonic() - began < 0.05:
                    return
            time.sleep(0.5)


def load(
    server: common.Server,
    clients: list[dict[str, Any]],
    *,
    expect: int,
    interval: float | None = None,
) -> Load:
    spec = {
        "base_url": server.url,
        "duration": DURATION,
        "warmup": WARMUP,
        "interval": interval,
        "expect": expect,
        "clients": clients,
    }
    cpu_before = server.cpu_seconds()
    completed = subprocess.run(
        [sys.executable, "-m", "bench.loadgen"],
        input=json.dumps(spec).encode(),
        capture_output=True,
        cwd=ROOT,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"load generator failed: {completed.stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(completed.stdout)
    cpu = (server.cpu_seconds() - cpu_before) / result["wall_seconds"]
    if result["unfinished"]:
        settle(server)
    return Load(result, cpu)


def health_clients(count: int) -> list[dict[str, Any]]:
    return [{"method": "GET", "path": "/healthz"} for _ in range(count)]


def message_clients(tenant: common.Tenant, devices: list[common.Device]) -> list[dict[str, Any]]:
    return [
        {
            "method": "POST",
            "path": f"/v1/conversations/{device.conversation_id}/messages",
            "headers": tenant.headers(device.device_id),
            "json": {"body": BODY},
            "fresh_client_msg_id": True,
        }
        for device in devices
    ]


def _ms(seconds: float | None) -> float:
    return float("nan") if seconds is None else seconds * 1e3


def point_rows(workers: int, clients: int, post: Load, health: Load) -> list[dict[str, Any]]:
    label = f"POST message, {workers}w, {clients} clients"
    ratio = post["throughput"] / health["throughput"] if health["throughput"] else float("nan")
    errors = post["errors"] + health["errors"]
    rows = [
        common.row(
            "http",
            f"{label}: throughput",
            post["throughput"],
            "req/s",
            baseline=health["throughput"],
            ratio=ratio,
            goal="ratio >= 0.30",
            ok=ratio >= 0.3,
            note=f"baseline: GET /healthz, same server and clients (p99 "
            f"{_ms(health['p99']):.1f} ms, server {health.server_cpu:.2f} cores, load "
            f"generator {health['cpu_seconds'] / health['wall_seconds']:.2f} cores); POST: "
            f"server {post.server_cpu:.2f} cores, load generator "
            f"{post['cpu_seconds'] / post['wall_seconds']:.2f} cores",
        ),
        common.row("http", f"{label}: p50", _ms(post["p50"]), "ms"),
    ]
    p99 = _ms(post["p99"])
    at_scale = clients >= 1000
    rows.append(
        common.row(
            "http",
            f"{label}: p99",
            p99,
            "ms",
            goal="<= 100 ms" if at_scale else None,
            ok=p99 <= 100 if at_scale else None,
            note=(
                "closed loop: each client sends again as soon as answered, so every request "
                "queues behind the other clients'; in steady state it waits about clients / "
                f"throughput ({clients / max(post['throughput'], 1e-9):.1f} s here), which a "
                f"run of {WARMUP:g}+{DURATION:g} s may not reach: the paced run gives latency "
                "under a load the server can carry"
            )
            if at_scale
            else None,
        )
    )
    rows.append(
        common.row(
            "http",
            f"{label}: errors",
            float(errors),
            "count",
            goal="= 0",
            ok=errors == 0,
            note=f"{post['error_samples'] + health['error_samples']}" if errors else None,
        )
    )
    return rows


def paced_rows(workers: int, paced: Load) -> list[dict[str, Any]]:
    clients = paced["clients"]
    interval = paced["interval"]
    offered = clients / interval
    label = f"POST message, {workers}w, {clients} clients paced {offered:.0f}/s"
    p99 = _ms(paced["p99"])
    return [
        common.row("http", f"{label}: throughput", paced["throughput"], "req/s"),
        common.row("http", f"{label}: p50", _ms(paced["p50"]), "ms"),
        common.row(
            "http",
            f"{label}: p99",
            p99,
            "ms",
            goal="<= 100 ms",
            ok=p99 <= 100,
            note=f"each client sends one message every {interval:.1f} s (offered "
            f"{offered:.0f} req/s, {PACED_SHARE:.0%} of the capacity measured just before); "
            "latency from when each request was due; server "
            f"{paced.server_cpu:.2f} cores",
        ),
        common.row(
            "http",
            f"{label}: errors",
            float(paced["errors"]),
            "count",
            goal="= 0",
            ok=paced["errors"] == 0,
            note=str(paced["error_samples"]) if paced["errors"] else None,
        ),
    ]


# --- pgbench ---------------------------------------------------------------------------------


def pgbench_binary() -> str | None:
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True)
    return str(candidates[0]) if candidates else None


SCRATCH = """
CREATE TABLE bench_scratch (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    app_id uuid NOT NULL,
    conversation_id uuid NOT NULL,
    seq integer NOT NULL,
    client_msg_id varchar(64) NOT NULL,
    sender varchar(16) NOT NULL,
    body text NOT NULL,
    body_html text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (conversation_id, client_msg_id)
)
"""

INSERT = """\\set seq random(1, 2000000000)
INSERT INTO bench_scratch (app_id, conversation_id, seq, client_msg_id, sender, body, body_html)
VALUES ('{app_id}', md5(:client_id::text)::uuid, :seq, md5(random()::text), 'user',
        '{body}', '<p>{body}</p>');
"""


def pgbench(owner_url: str, clients: int) -> dict[str, float] | None:
    """Single-row inserts (one transaction each, as the server commits each message) into a
    scratch table shaped like messages: the commits per second this machine's PostgreSQL can do."""
    binary = pgbench_binary()
    if binary is None:
        return None
    with psycopg.connect(owner_url, autocommit=True) as connection:
        connection.execute("DROP TABLE IF EXISTS bench_scratch")
        connection.execute(SCRATCH)
    work = Path(tempfile.mkdtemp(prefix="replyhq-pgbench-"))
    try:
        script = work / "insert.sql"
        script.write_text(INSERT.format(app_id=uuid.uuid4(), body=BODY))
        threads = max(1, min(clients, os.cpu_count() or 1))
        command = [binary, "-n", "-M", "prepared", "-c", str(clients), "-j", str(threads)]
        command += ["-T", str(int(DURATION)), "-f", str(script), "-l", "--log-prefix"]
        command += [str(work / "log"), owner_url]
        completed = subprocess.run(command, capture_output=True, cwd=work, check=False)
        output = completed.stdout.decode() + completed.stderr.decode()
        if completed.returncode != 0:
            raise RuntimeError(f"pgbench failed: {output[-2000:]}")
        tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", output)
        latencies = [
            int(line.split()[2]) / 1e6
            for log in work.glob("log*")
            for line in log.read_text().splitlines()
            if line.strip()
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "tps": float(tps.group(1)) if tps else float("nan"),
        "p50": common.percentile(latencies, 50),
        "p99": common.percentile(latencies, 99),
    }


def pgbench_rows(owner_url: str) -> list[dict[str, Any]]:
    rows = []
    for clients in sorted({min(c, PGBENCH_MAX_CLIENTS) for c in CLIENTS}):
        try:
            measured = pgbench(owner_url, clients)
        except RuntimeError as exc:
            note = str(exc).splitlines()[-1][:200]
            return [common.row("http", "pgbench", float("nan"), "", note=note)]
        if measured is None:
            return [common.row("http", "pgbench", float("nan"), "", note="pgbench not found")]
        label = f"pgbench single-row insert, {clients} clients"
        rows += [
            common.row(
                "http",
                f"{label}: throughput",
                measured["tps"],
                "tx/s",
                note="the database's ceiling for one committed insert per request "
                f"(clients capped at {PGBENCH_MAX_CLIENTS}: connections are shared)",
            ),
            common.row("http", f"{label}: p50", measured["p50"] * 1e3, "ms"),
            common.row("http", f"{label}: p99", measured["p99"] * 1e3, "ms"),
        ]
    return rows


# --- the run ---------------------------------------------------------------------------------


async def _tenant(owner_url: str) -> common.Tenant:
    db = common.database(owner_url, pool_size=1)
    try:
        return await common.create_tenant(db)
    finally:
        await db.dispose()


def _prepare(owner_url: str, count: int) -> tuple[common.Tenant, list[common.Device]]:
    tenant: common.Tenant = common.run_async(_tenant(owner_url))
    return tenant, common.bulk_devices(owner_url, tenant.id, count)


def _log(message: str) -> None:
    print(f"   http: {message}", flush=True)


def _summary(what: str, result: Load) -> None:
    _log(
        f"{what}: {result['throughput']:.0f} req/s, p50 {_ms(result['p50']):.1f} ms, "
        f"p99 {_ms(result['p99']):.1f} ms, errors {result['errors']}, unfinished "
        f"{result['unfinished']}, server {result.server_cpu:.2f} cores"
    )


def measure_server(
    owner_url: str,
    tenant: common.Tenant,
    devices: list[common.Device],
    workers: int,
    clients_list: tuple[int, ...],
    *,
    paced: bool,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    redis_url = common.services().redis_url
    server = common.start_server(
        owner_url,
        redis_url,
        common.redis_prefix("http"),
        workers=workers,
        **server_settings(workers),
    )
    try:
        prime(server, tenant, devices[0], workers)
        capacities: list[Load] = []
        for clients in clients_list:
            health = load(server, health_clients(clients), expect=200)
            _summary(f"{workers}w {clients} clients GET /healthz", health)
            post = load(server, message_clients(tenant, devices[:clients]), expect=201)
            _summary(f"{workers}w {clients} clients POST message", post)
            capacities.append(post)
            rows += point_rows(workers, clients, post, health)
        if paced:
            # 1,000 clients sending at half the rate the server just sustained: latency under a
            # load it can carry, whatever the machine (closed loop only says how long the queue is).
            capacity = max(post["throughput"] for post in capacities) if capacities else 1.0
            clients = max(clients_list)
            interval = clients / max(1.0, PACED_SHARE * capacity)
            result = load(
                server,
                message_clients(tenant, devices[:clients]),
                expect=201,
                interval=interval,
            )
            result.result["interval"] = interval
            _summary(f"{workers}w {clients} clients POST message paced", result)
            rows += paced_rows(workers, result)
    finally:
        server.stop()
    rows.append(
        common.row(
            "http",
            f"server log, {workers}w: warnings and errors",
            float(len(server.problems)),
            "kinds",
            note="; ".join(server.problems)[:1000] or None,
        )
    )
    return rows


def run() -> list[dict[str, Any]]:
    common.raise_open_files()
    rows: list[dict[str, Any]] = []
    with common.throwaway_database("http") as owner_url:
        began = time.monotonic()
        tenant, devices = _prepare(owner_url, max(CLIENTS))
        _log(f"{len(devices)} devices ready in {time.monotonic() - began:.0f} s")
        rows += measure_server(owner_url, tenant, devices, 1, CLIENTS, paced=True)
        for workers in WORKERS[1:]:
            rows += measure_server(
                owner_url, tenant, devices, workers, (max(CLIENTS),), paced=False
            )
        rows += pgbench_rows(owner_url)
    return rows
