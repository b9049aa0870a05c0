"""Where a tracked batch's time goes, stage by stage (issue 16): `python -m bench.ingest_stages`.

A throwaway database (DEVICES identified devices, a few events), one server started through
bench/stage_server.py (`replyhq serve` with a timestamp at each stage of POST /v1/events), and
open-loop rounds of RATE batches of 10 a second from two load generators in turn:

- `node`: bench/node/events_load.cjs, its own process (what bench_analytics uses);
- `httpx`: the client bench_analytics used before, in this process (as its `_open_round`).

Each request carries X-Bench-Seq; its client-side times (due, written, answered) and the server's
(bench/stage_server.py) share one clock (CLOCK_MONOTONIC), so every stage of every request is
known. Printed: per generator, p50 / p99 / max of each stage and of the whole, and the mean of
each stage over the slowest 1% (where the tail goes). Then the flush statement alone, replayed
from this process on its own connection: its execution and its COMMIT timed apart (BEGIN;
statement; COMMIT), with and without the `event_latest` upsert, alternating.

BENCH_STAGES_RATE (100), _ROUND_SECONDS (5), _ROUND_COUNT (3), _ENV ("NAME=value,...": this
tree's server's settings), BENCH_STAGES_BASE (another tree's src, e.g. an export of main's: its
server is measured too, every round on both, alternating), BENCH_STAGES_FLUSHES (200).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import common
from bench.bench_analytics import _load
from replyhq.analytics import ingest
from replyhq.db.session import runtime_url
from replyhq.settings import Settings

RATE = float(os.environ.get("BENCH_STAGES_RATE", "100"))
SECONDS = float(os.environ.get("BENCH_STAGES_ROUND_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_STAGES_ROUND_COUNT", "3"))
REPLAYS = int(os.environ.get("BENCH_STAGES_FLUSHES", "200"))
# Another tree's src (e.g. main's): its server is measured too, in alternating rounds.
BASE = os.environ.get("BENCH_STAGES_BASE", "")
DEVICES = 1000
BATCH = 10
NODE = Path(__file__).parent / "node" / "events_load.cjs"
ENV = dict(p.split("=", 1) for p in os.environ.get("BENCH_STAGES_ENV", "").split(",") if p)

# (label, from, to): consecutive stages, their durations sum to the whole.
STAGES = [
    ("leave late", "due", "written"),
    ("client -> server", "written", "asgi_in"),
    ("middleware", "asgi_in", "hot_in"),
    ("body + validate", "hot_in", "auth_in"),
    ("key + limits (Redis)", "auth_in", "auth_out"),
    ("route -> enqueue", "auth_out", "enqueued"),
    ("buffer (delay, flush ahead)", "enqueued", "flush_in"),
    ("parameters", "flush_in", "stmt_in"),
    ("statement + commit", "stmt_in", "stmt_out"),
    ("wake the request", "stmt_out", "written_srv"),
    ("answer", "written_srv", "reply"),
    ("server -> client", "reply", "answered"),
]


def _start(url: str, redis_url: str, src: str | None) -> common.Server:
    env = {} if src else dict(ENV)
    if src:  # that tree's replyhq, this tree's bench (the probe wraps replyhq from outside)
        env["PYTHONPATH"] = os.pathsep.join([src, str(Path(__file__).parent.parent)])
    return common.start_server(
        url, redis_url, common.redis_prefix("stages"), module="bench.stage_server", **env
    )


def _node(url: str, headers: list[dict[str, str]], mode: str, seconds: float) -> dict[str, Any]:
    spec = {
        "base_url": url,
        "headers": headers,
        "batch": BATCH,
        "mode": mode,
        "rate": RATE,
        "clients": 16,
        "seconds": seconds,
        "tag": True,
    }
    done = subprocess.run(
        ["node", str(NODE)], input=json.dumps(spec), capture_output=True, text=True, check=True
    )
    out: dict[str, Any] = json.loads(done.stdout)
    if out["failed"]:
        raise RuntimeError(out["failed"])
    return out


async def _httpx(url: str, headers: list[dict[str, str]], base: int) -> list[list[float]]:
    """bench_analytics' former open loop (httpx in this process), each request tagged."""
    records: list[list[float]] = []
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        tasks = []
        start = time.perf_counter()

        async def one(n: int, due: float) -> None:
            h = {**headers[n % len(headers)], "X-Bench-Seq": str(base + n)}
            body = {"events": [{"name": "tap", "properties": {"n": i}} for i in range(BATCH)]}
            written = time.perf_counter()
            response = await client.post("/v1/events", headers=h, json=body)
            records.append([base + n, due, written, time.perf_counter()])
            assert response.status_code == 202, response.text

        for n in range(int(RATE * SECONDS)):
            due = start + n / RATE
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(one(n, due)))
        await asyncio.gather(*tasks)
    return records


def _joined(records: list[list[float]], server: dict[str, Any]) -> list[dict[str, Any]]:
    """Each request's client and server times, and the server's collection time (ms) that
    overlapped it."""
    out = []
    collections = server["gc"]
    for seq, due, written, answered in records:
        s = server["requests"].get(str(int(seq)))
        if s is None or "stmt_out" not in s:
            continue
        gc_ms = sum(
            (min(start + took, answered) - max(start, due)) * 1000
            for start, _, took in collections
            if start < answered and start + took > due
        )
        full = any(g == 2 and due < start < answered for start, g, _ in collections)
        out.append(
            {
                **s,
                "due": due,
                "written": written,
                "answered": answered,
                "written_srv": s["written"],
                "gc_ms": gc_ms,
                "gc2": full,
            }
        )
    return out


def _report(label: str, rows: list[dict[str, Any]]) -> None:
    totals = sorted(((r["answered"] - r["due"]) * 1000, i) for i, r in enumerate(rows))
    n = len(totals)
    tail = [rows[i] for _, i in totals[n - max(1, n // 100) :]]
    print(
        f"\n{label}: {n} batches; whole p50 {common.percentile([t for t, _ in totals], 50):.2f}"
        f" p99 {common.percentile([t for t, _ in totals], 99):.2f} max {totals[-1][0]:.2f} ms"
    )
    print(f"  {'stage':30} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7} {'tail 1% mean':>13}")
    for name, a, b in STAGES:
        values = [(r[b] - r[a]) * 1000 for r in rows]
        slow = statistics.mean((r[b] - r[a]) * 1000 for r in tail)
        print(
            f"  {name:30} {common.percentile(values, 50):7.2f} {common.percentile(values, 90):7.2f}"
            f" {common.percentile(values, 99):7.2f} {max(values):7.2f} {slow:13.2f}"
        )
    sizes = [r["flush_requests"] for r in rows]
    print(
        f"  requests per flush: mean {statistics.mean(sizes):.2f}, max {max(sizes)}; "
        f"in the slowest 1%: {statistics.mean(r['flush_requests'] for r in tail):.2f}"
    )
    overlap = statistics.mean(r["gc_ms"] for r in rows)
    print(
        f"  garbage collection overlapping a request: mean {overlap:.2f}"
        f" ms, the slowest 1% {statistics.mean(r['gc_ms'] for r in tail):.2f} ms; a full"
        f" (generation 2) collection during {sum(r['gc2'] for r in rows)} requests,"
        f" {sum(r['gc2'] for r in tail)} of the slowest {len(tail)}"
    )


def _collections(label: str, collections: list[list[float]], seconds: float) -> None:
    print(f"  {label}: the server's collections over {seconds:.0f} s:", end="")
    for generation in (0, 1, 2):
        took = [c[2] * 1000 for c in collections if c[1] == generation]
        if took:
            print(
                f" gen{generation} {len(took)} (p50 {common.percentile(took, 50):.2f},"
                f" max {max(took):.2f} ms)",
                end="",
            )
    print()


def _without_latest(sql: str) -> str:
    """The flush statement without its `latest` CTE (the event_latest upsert)."""
    cut = re.sub(r"\), latest AS \(.*?\), triggered AS \(", "), triggered AS (", sql, flags=re.S)
    assert cut != sql and "event_latest" not in cut
    return cut


def _params(app_id: uuid.UUID, turn: int, requests: int) -> dict[str, Any]:
    """A flush's parameters: `requests` batches of BATCH events, the devices from `turn` on."""
    devices = [f"d{1 + (turn + k) % DEVICES}" for k in range(requests)]
    return {
        "app_id": app_id,
        "device_ids": [d for d in devices for _ in range(BATCH)],
        "names": ["tap"] * BATCH * requests,
        "properties": [f'{{"n":{k}}}' for _ in devices for k in range(BATCH)],
        "occurred_at": [datetime.now(UTC)] * BATCH * requests,
        "senders": sorted(devices),
        "job_queue": ingest.TRIGGER_JOB_QUEUE,
        "job_task": ingest.TRIGGER_JOB_TASK,
        "job_args": json.dumps({"app_id": str(app_id), "_meta": {}}),
    }


async def _server_path(owner_url: str, app_id: uuid.UUID) -> None:
    """The flush as the server sends it (Database.tenant_statement: the binding and the
    statement pipelined, one round trip, committed at the Sync), in this otherwise idle process:
    what the statement costs from the server's side without HTTP load beside it."""
    db = common.database(owner_url)
    try:
        for requests in (1, 4):
            took = []
            for i in range(REPLAYS):
                params = _params(app_id, i * requests, requests)
                started = time.perf_counter()
                await db.tenant_statement(app_id, ingest._FLUSH, params)
                if i >= 10:
                    took.append((time.perf_counter() - started) * 1000)
            print(
                f"  server path, {requests * BATCH} events: p50 {common.percentile(took, 50):.2f}"
                f" p99 {common.percentile(took, 99):.2f} mean {statistics.mean(took):.2f} ms"
            )
    finally:
        await db.dispose()


def _replay(owner_url: str, app_id: uuid.UUID) -> None:
    """The flush statement from one connection as the runtime role: 1 and 4 requests of 10
    events (devices in turn), with and without the event_latest upsert, alternating; BEGIN,
    the statement, COMMIT timed apart."""
    url = runtime_url(Settings(), owner_url).replace("postgresql+psycopg://", "postgresql://", 1)
    by_day = ingest._FLUSH.replace(
        "WHERE l.last_at < excluded.last_at",
        "WHERE l.last_at < date_trunc('day', excluded.last_at, 'UTC')",
    )
    variants = {"as is": ingest._FLUSH, "no event_latest": _without_latest(ingest._FLUSH)}
    if by_day != ingest._FLUSH:  # the upsert of migration 0190 (last_at only)
        variants["latest by day"] = by_day
    times: dict[tuple[str, int], dict[str, list[float]]] = {}
    turn = 0
    with psycopg.connect(url, autocommit=True) as db:
        for i in range(REPLAYS):
            for requests in (1, 4):
                order = list(variants.items())
                order = order[i % len(order) :] + order[: i % len(order)]
                for name, sql in order:
                    params = _params(app_id, turn, requests)
                    turn += requests
                    db.execute("BEGIN")
                    db.execute("SELECT set_config('app.current_tenant', %s, true)", (str(app_id),))
                    t1 = time.perf_counter()
                    db.execute(sql, params, prepare=True).fetchall()
                    t2 = time.perf_counter()
                    db.execute("COMMIT")
                    t3 = time.perf_counter()
                    if i >= 10:  # warm-up
                        slot = times.setdefault((name, requests), {"exec": [], "commit": []})
                        slot["exec"].append((t2 - t1) * 1000)
                        slot["commit"].append((t3 - t2) * 1000)
    print(f"\nflush statement replayed ({REPLAYS - 10} each, alternating), ms:")
    print(
        f"  {'variant':18} {'events':>6} {'exec p50':>9} {'exec p99':>9} {'commit p50':>11}"
        f" {'commit p99':>11} {'sum mean':>9}"
    )
    for (name, requests), slot in times.items():
        run, commit = slot["exec"], slot["commit"]
        total = statistics.mean(a + b for a, b in zip(run, commit, strict=True))
        print(
            f"  {name:18} {requests * BATCH:6} {common.percentile(run, 50):9.2f}"
            f" {common.percentile(run, 99):9.2f} {common.percentile(commit, 50):11.2f}"
            f" {common.percentile(commit, 99):11.2f} {total:9.2f}"
        )


def main() -> None:
    services = common.services()
    with common.throwaway_database("stages") as url:

        async def tenant() -> common.Tenant:
            db = common.database(url)
            try:
                return await common.create_tenant(db, "Stages", rounds=4)
            finally:
                await db.dispose()

        t, other = common.run_async(tenant()), common.run_async(tenant())
        _load(common.plain(url), t.id, other.id, DEVICES, 20_000)
        headers = [t.headers(f"d{i}") for i in range(1, DEVICES + 1)]
        servers = {"branch": _start(url, services.redis_url, None)}
        if BASE:
            servers["base"] = _start(url, services.redis_url, BASE)
        print(f"load average at start: {os.getloadavg()}")
        try:
            for server in servers.values():
                _node(server.url, headers, "closed", 2.0)  # warm-up
                httpx.get(server.url + "/__stages")
            seen: dict[tuple[str, str], list[dict[str, Any]]] = {}
            collected: dict[tuple[str, str], list[list[float]]] = {}
            base = 1 << 30
            for round_ in range(ROUNDS):
                names = list(servers) if round_ % 2 == 0 else list(servers)[::-1]
                for name in names:
                    url_ = servers[name].url
                    for who in ["node", "httpx"] if round_ % 2 == 0 else ["httpx", "node"]:
                        if who == "node":
                            records = _node(url_, headers, "open", SECONDS)["records"]
                        else:
                            records = common.run_async(_httpx(url_, headers, base))
                            base += 1 << 20
                        stages = httpx.get(url_ + "/__stages").json()
                        seen.setdefault((name, who), []).extend(_joined(records, stages))
                        collected.setdefault((name, who), []).extend(stages["gc"])
            for (name, who), rows in sorted(seen.items()):
                _report(f"{name} tree, {who} client at {RATE:g} batches/s", rows)
                _collections(who, collected[(name, who)], SECONDS * ROUNDS)
            print(f"load average after the rounds: {os.getloadavg()}")
        finally:
            for server in servers.values():
                server.stop()
        _replay(common.plain(url), t.id)
        common.run_async(_server_path(url, t.id))
        print(f"\nload average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
