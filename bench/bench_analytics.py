"""Analytics (issue 16): event ingest and segment previews at scale, on this machine.

A throwaway database built by the real migrations gets one measured app with USERS end users
(attributes, a device each) and EVENTS events over the last 30 days (with their daily counts, as
ingest keeps them), written by generate_series in SQL, plus a second app whose rows
the policies must filter out. Then, against a real `replyhq serve` process:

- ingest: CONCURRENCY clients each POST /v1/events batches of BATCH events as fast as they are
  answered (closed loop; the devices of DEVICES end users in turn); p50/p99 of a batch's round
  trip (answered once committed) and events/s, alternating with a COPY of the same number of rows
  into `events` (the bulk-load ceiling, in the same run, same tables and indexes); then batches
  at a fixed RATE a second (open loop: the latency of a batch at a given load, not of a queue).
  The batches come from bench/node/events_load.cjs, a Node process of its own, for every tree
  measured (httpx in this process cost the shared cores as much CPU per batch as the server,
  and its event loop's stalls were counted as the server's latency: see bench.ingest_stages);
- segment preview p95 for five representative queries (POST /admin/api/segments/preview: the
  count and a sample of 20, as the runtime role under RLS);
- the message POST (the SDK's hot path) alone and with ingest running beside it (at RATE, or
  the closed loop when RATE is 0), alternating: p50 and the ratio.

BENCH_ANALYTICS_BEFORE=<another tree's src> (e.g. a git worktree of main) starts a second server
from that tree on the same database: every round is run on both, alternating, and this tree's
figures are given against it (BENCH_ANALYTICS_AFTER_ENV="NAME=value,...": settings of this tree's
server only). BENCH_ANALYTICS_ROUNDS / _ROUND_SECONDS / _DEVICES / _RATE set the
rounds (3 of 6 s), the devices (1,000) and the open-loop rate (100 batches/s, 0: none).

The issue asks for 100,000 users and 10,000,000 events; the default here is 100,000 users and
1,000,000 events: BENCH_ANALYTICS_USERS / BENCH_ANALYTICS_EVENTS set them. The load is SQL only
(generate_series; the events' indexes built after their rows): 10,000,000 events took 137 s on
the quiet 2-core machine. BENCH_ANALYTICS_DB=<name> keeps the generated data in that database
between runs (made again only when it holds other sizes): the next run starts measuring at once.
The figures are from a shared machine: compare ratios measured in the same run.
BENCH_ANALYTICS_ONLY=ingest skips the previews (the ingest rows come with where a batch's time
went: the server's own event_queue_seconds / event_flush_seconds histograms over the closed-loop
rounds); BENCH_ANALYTICS_ONLY=preview measures the previews alone. `python -m bench.segment_plans`
times the previews in process and prints their plans (EXPLAIN ANALYZE, as the runtime role).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from bench import common

NAMES = [
    "app_opened",
    "screen_viewed",
    "feature_used",
    "search",
    "purchase",
    "share",
    "invite_sent",
    "settings_changed",
    "logout",
    "signup",
]
BATCH = 10
CONCURRENCY = 16
ROUNDS = int(os.environ.get("BENCH_ANALYTICS_ROUNDS", "3"))
ROUND_SECONDS = float(os.environ.get("BENCH_ANALYTICS_ROUND_SECONDS", "6"))
# Devices (each its own end user) the ingest clients take in turn: an app's traffic comes from
# many people, whose daily counts are different rows.
DEVICES = int(os.environ.get("BENCH_ANALYTICS_DEVICES", "1000"))
# Batches a second of the open-loop ingest rounds (0: none), and the load beside the message POST.
RATE = float(os.environ.get("BENCH_ANALYTICS_RATE", "100"))
# Another source tree's `src` (e.g. a git worktree of main): its server is measured too, in
# alternating rounds on the same database, and this tree's figures are given against it.
BEFORE = os.environ.get("BENCH_ANALYTICS_BEFORE", "")
# Settings of this tree's server only ("NAME=value,..."): with BEFORE set to this tree's own src,
# an A/B of a setting in one run.
AFTER_ENV = dict(
    pair.split("=", 1)
    for pair in os.environ.get("BENCH_ANALYTICS_AFTER_ENV", "").split(",")
    if pair
)
PREVIEW_ROUNDS = 15


def _load(owner_url: str, app_id: uuid.UUID, other_id: uuid.UUID, users: int, events: int) -> float:
    """Generate the apps' users, devices and events in SQL (generate_series, no row crosses the
    wire). The events' indexes are dropped while they load and built again afterwards (a bulk
    build, much cheaper than 10,000,000 random inserts into three indexes), by their own
    definitions as the migrations made them."""
    started = time.perf_counter()
    with psycopg.connect(owner_url) as db:
        db.execute("SET LOCAL work_mem = '256MB'")
        db.execute("SET LOCAL maintenance_work_mem = '512MB'")
        indexes = db.execute(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'events'::regclass"
        ).fetchall()
        for name, _ in indexes:
            db.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        apps = ((app_id, users, events), (other_id, users // 10, events // 10))
        for app, count, share in apps:
            db.execute("SELECT set_config('app.current_tenant', %s, true)", (str(app),))
            db.execute(
                """
                INSERT INTO end_users (id, app_id, external_id, attributes, created_at)
                SELECT md5(%(app)s::text || i)::uuid, %(app)s::uuid, 'u' || i,
                       jsonb_build_object(
                         'plan', (ARRAY['free', 'pro', 'team'])[1 + i %% 3],
                         'seats', i %% 50,
                         'country', (ARRAY['FR', 'DE', 'US', 'JP', 'BR'])[1 + i %% 5]),
                       now() - (i %% 365) * interval '1 day'
                FROM generate_series(1, %(n)s) AS i
                """,
                {"app": str(app), "n": count},
            )
            db.execute(
                """
                INSERT INTO devices (id, app_id, device_id, end_user_id, platform, last_seen_at)
                SELECT gen_random_uuid(), %(app)s::uuid, 'd' || i, md5(%(app)s::text || i)::uuid,
                       (ARRAY['ios', 'android', 'web'])[1 + i %% 3],
                       now() - (i %% 60) * interval '1 day'
                FROM generate_series(1, %(n)s) AS i
                """,
                {"app": str(app), "n": count},
            )
            # A few users do most events (power law); names likewise.
            db.execute(
                """
                INSERT INTO events (app_id, end_user_id, device_id, platform, name, properties,
                                    occurred_at)
                SELECT %(app)s::uuid, md5(%(app)s::text || u)::uuid, 'd' || u, 'ios',
                       (%(names)s::text[])[1 + floor(10 * random() ^ 2)::int],
                       jsonb_build_object('plan', (ARRAY['free', 'pro'])[1 + g %% 2],
                                          'amount', g %% 100),
                       now() - random() * interval '29 days'
                FROM generate_series(1, %(n)s) AS g,
                     -- g * 0: correlated, so drawn again for every event (else once)
                     LATERAL (SELECT 1 + floor(%(users)s * random() ^ 3)::int + g * 0 AS u) AS pick
                """,
                {"app": str(app), "n": share, "users": count, "names": NAMES},
            )
        for _, definition in indexes:
            # The catalog's own text, but for ONLY: pg_get_indexdef gives a partitioned index as
            # `ON ONLY public.events`, which makes it on the parent alone, invalid, and builds
            # none on the partitions (the datasets made before 2026-12-04 20:40 had no index on
            # `events` at all); without ONLY it is built on every partition, as the migrations
            # made it.
            db.execute(definition.replace(" ON ONLY ", " ON ", 1))
        for app, _, _ in apps:
            db.execute("SELECT set_config('app.current_tenant', %s, true)", (str(app),))
            # In the primary key's order: each partition's index grows at its right edge.
            db.execute(
                """
                INSERT INTO event_daily_counts (app_id, name, day, end_user_id, count, last_at)
                SELECT app_id, name, (occurred_at AT TIME ZONE 'UTC')::date, end_user_id,
                       count(*), max(occurred_at)
                FROM events WHERE app_id = %(app)s GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
                """,
                {"app": str(app)},
            )
            # Each person's latest of each name, with their counts of the 32 days up to it
            # (recent[k]: the latest day and the k-1 before it; migration 0210).
            db.execute(
                """
                INSERT INTO event_latest (app_id, name, end_user_id, last_at, recent)
                SELECT s.app_id, s.name, s.end_user_id, s.last_at,
                       array_agg(
                         (SELECT sum(x.count)::integer
                          FROM unnest(s.days, s.counts) AS x (day, count) WHERE x.day > s.top - k)
                         ORDER BY k)
                FROM (
                  SELECT app_id, name, end_user_id, max(last_at) AS last_at, max(day) AS top,
                         min(day) AS bottom, array_agg(day) AS days, array_agg(count) AS counts
                  FROM event_daily_counts WHERE app_id = %(app)s GROUP BY 1, 2, 3
                ) AS s,
                generate_series(1, least(32, s.top - s.bottom + 1)) AS k
                GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3
                """,
                {"app": str(app)},
            )
        db.commit()
    with psycopg.connect(owner_url, autocommit=True) as db:
        # The devices' trigger wrote every user again (their platforms and last seen, migration
        # 0250): compacted, as a table filled over time would be, not twice its size.
        db.execute("VACUUM FULL end_users")
        db.execute("VACUUM ANALYZE end_users, devices, events, event_daily_counts, event_latest")
    return time.perf_counter() - started


QUERIES: dict[str, dict[str, Any]] = {
    "attribute equals": {
        "operator": "AND",
        "conditions": [
            {"type": "user_attribute", "field": "plan", "operator": "equals", "value": "pro"}
        ],
    },
    "did X in 7 days": {
        "operator": "AND",
        "conditions": [
            {
                "type": "event",
                "eventName": "purchase",
                "timeframe": {"type": "relative", "value": 7, "unit": "days"},
            }
        ],
    },
    "X >= 3 times in 30 days": {
        "operator": "AND",
        "conditions": [
            {
                "type": "event",
                "eventName": "feature_used",
                "count": {"operator": "gte", "value": 3},
                "timeframe": {"type": "relative", "value": 30, "unit": "days"},
            }
        ],
    },
    "property in 24 hours": {
        "operator": "AND",
        "conditions": [
            {
                "type": "event",
                "eventName": "purchase",
                "field": "properties.plan",
                "operator": "equals",
                "value": "pro",
                "timeframe": {"type": "relative", "value": 24, "unit": "hours"},
            }
        ],
    },
    "nested mix": {
        "operator": "AND",
        "conditions": [
            {"type": "user_attribute", "field": "country", "operator": "in", "value": ["FR", "DE"]},
            {
                "operator": "OR",
                "conditions": [
                    {
                        "type": "user_attribute",
                        "field": "last_seen_at",
                        "operator": "lt",
                        "value": {"ago": 14, "unit": "days"},
                    },
                    {
                        "type": "event",
                        "eventName": "signup",
                        "operator": "not_exists",
                        "timeframe": {"type": "relative", "value": 30, "unit": "days"},
                    },
                ],
            },
            {
                "type": "user_attribute",
                "field": "platform",
                "operator": "not_equals",
                "value": "web",
            },
        ],
    },
}


NODE_LOAD = Path(__file__).parent / "node" / "events_load.cjs"


async def _node_load(
    client: httpx.AsyncClient, headers: list[dict[str, str]], spec: dict[str, Any]
) -> dict[str, Any]:
    """bench/node/events_load.cjs against `client`'s server: batches of BATCH events from a
    process of its own (in Node: the generator's CPU on the shared cores is a fraction of what
    httpx in this process cost, and this process' event loop no longer delays the requests)."""
    spec = {
        "base_url": str(client.base_url).rstrip("/"),
        "headers": headers,
        "batch": BATCH,
        **spec,
    }
    process = await asyncio.create_subprocess_exec(
        "node",
        str(NODE_LOAD),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate(json.dumps(spec).encode())
    if process.returncode:
        raise RuntimeError(f"events_load.cjs exited with {process.returncode}")
    result: dict[str, Any] = json.loads(out)
    if result["failed"]:
        raise AssertionError(result["failed"])  # a batch answered other than 202
    return result


async def _ingest_round(
    client: httpx.AsyncClient, headers: list[dict[str, str]], seconds: float
) -> tuple[list[float], int]:
    """CONCURRENCY clients, each posting a batch as soon as its last one was answered (closed
    loop), the devices taken in turn: (latencies in ms, events stored)."""
    spec = {"mode": "closed", "clients": CONCURRENCY, "seconds": seconds}
    result = await _node_load(client, headers, spec)
    return result["latencies"], result["stored"]


async def _open_round(
    client: httpx.AsyncClient, headers: list[dict[str, str]], rate: float, seconds: float
) -> tuple[list[float], int]:
    """Batches sent at `rate` a second whatever the answers (open loop), the devices in turn:
    each latency counts from when its batch was due, so a server (or client) falling behind
    shows as latency rather than as fewer samples. (latencies in ms, batches that were late
    to leave by more than 5 ms)."""
    result = await _node_load(client, headers, {"mode": "open", "rate": rate, "seconds": seconds})
    return result["latencies"], result["late"]


def _copy_round(owner_url: str, app_id: uuid.UUID, rows: int) -> float:
    """Events/s of a COPY of `rows` rows like the ingest's, in one transaction."""
    now = datetime.now(UTC)
    user = uuid.uuid4()
    started = time.perf_counter()
    with psycopg.connect(owner_url) as db:
        db.execute("SELECT set_config('app.current_tenant', %s, true)", (str(app_id),))
        with db.cursor().copy(
            "COPY events (app_id, end_user_id, device_id, platform, name, properties, "
            "occurred_at) FROM STDIN"
        ) as copy:
            for i in range(rows):
                copy.write_row((app_id, user, "copy", "ios", "tap", f'{{"n": {i % BATCH}}}', now))
    return rows / (time.perf_counter() - started)


async def _send_round(
    client: httpx.AsyncClient, sends: list[tuple[dict[str, str], str]], seconds: float
) -> list[float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def one(h: dict[str, str], conversation: str) -> None:
        while time.perf_counter() < deadline:
            body = {"body": "hello", "client_msg_id": uuid.uuid4().hex}
            started = time.perf_counter()
            response = await client.post(
                f"/v1/conversations/{conversation}/messages", headers=h, json=body
            )
            latencies.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 201, response.text

    await asyncio.gather(*[one(h, c) for h, c in sends])
    return latencies


_SERIES = ("event_queue_seconds", "event_flush_seconds", "event_flush_events")


async def _histograms(client: httpx.AsyncClient) -> dict[str, tuple[float, float]]:
    """(sum, count) of the ingest's histograms, from the server's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    text = (await client.get("/metrics")).text
    out: dict[str, tuple[float, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name in _SERIES:
            values = {s.name: s.value for s in family.samples}
            out[family.name] = (values[family.name + "_sum"], values[family.name + "_count"])
        elif family.name == "http_request_duration_seconds":
            # The server's own time for the ingest route (from the first byte to the answer).
            mine = [
                s
                for s in family.samples
                if s.labels.get("route") == "/v1/events" and s.labels.get("status") == "202"
            ]
            total = sum(s.value for s in mine if s.name.endswith("_sum"))
            count = sum(s.value for s in mine if s.name.endswith("_count"))
            out["server"] = (total, count)
    return out


def _breakdown(
    label: str, before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> list[dict[str, Any]]:
    """Where a batch's time went, from the server's own histograms over the measured rounds."""

    prefix = f"{label}: " if label else ""

    def mean(name: str) -> float:
        total = after[name][0] - before.get(name, (0.0, 0.0))[0]
        count = after[name][1] - before.get(name, (0.0, 0.0))[1]
        return total / count if count else 0.0

    return [
        common.row(
            "analytics",
            prefix + "ingest: mean request in the server",
            mean("server") * 1000,
            "ms",
            note="the server's http_request_duration_seconds for POST /v1/events",
        ),
        common.row(
            "analytics",
            prefix + "ingest: mean wait in the buffer",
            mean("event_queue_seconds") * 1000,
            "ms",
            note="before the request's flush was sent (the delay, and flushes ahead of it)",
        ),
        common.row(
            "analytics",
            prefix + "ingest: mean flush statement",
            mean("event_flush_seconds") * 1000,
            "ms",
            note="send to commit, one round trip",
        ),
        common.row(
            "analytics", prefix + "ingest: mean events per flush", mean("event_flush_events"), ""
        ),
    ]


async def _previews(client: httpx.AsyncClient, tenant: common.Tenant) -> list[dict[str, Any]]:
    """p95 of POST /admin/api/segments/preview for each of QUERIES, and of all five."""
    out: list[dict[str, Any]] = []
    admin = {"X-App-Id": str(tenant.id), "X-Api-Key": tenant.secret_key}
    everything: list[float] = []
    for name, query in QUERIES.items():
        samples = []
        counts = set()
        timeouts = 0
        # Warm up (not counted): the server's first plan of it, and the pages it reads.
        await client.post("/admin/api/segments/preview", headers=admin, json={"query": query})
        for _ in range(PREVIEW_ROUNDS):
            started = time.perf_counter()
            response = await client.post(
                "/admin/api/segments/preview", headers=admin, json={"query": query}
            )
            samples.append((time.perf_counter() - started) * 1000)
            if response.status_code == 503:  # past SEGMENT_TIMEOUT_MS: counted as such
                timeouts += 1
                continue
            assert response.status_code == 200, response.text
            counts.add(response.json()["count"])
        everything += samples
        p95 = common.percentile(samples, 95)
        note = f"{', '.join(f'{c:,}' for c in sorted(counts))} users"
        if timeouts:
            note += f"; {timeouts} of {PREVIEW_ROUNDS} past the statement timeout"
        out.append(common.row("analytics", f"preview '{name}' p95", p95, "ms", note=note))
    p95 = common.percentile(everything, 95)
    out.append(
        common.row(
            "analytics",
            "preview, all five p95",
            p95,
            "ms",
            baseline=500.0,
            ratio=p95 / 500.0,
            goal="<= 100 ms (seed 500)",
            ok=p95 <= 100,
        )
    )
    return out


@dataclass
class _Target:
    """A server measured: this tree's, or (BENCH_ANALYTICS_BEFORE) the tree it is compared to."""

    label: str
    client: httpx.AsyncClient
    closed_ms: list[float] = field(default_factory=list)
    closed_rate: list[float] = field(default_factory=list)
    open_ms: list[float] = field(default_factory=list)
    late: int = 0
    alone: list[float] = field(default_factory=list)
    beside: list[float] = field(default_factory=list)
    before: dict[str, tuple[float, float]] = field(default_factory=dict)
    breakdown: list[dict[str, Any]] = field(default_factory=list)


def _in_turn(targets: list[_Target], round_: int) -> list[_Target]:
    """The targets in this round's order (alternating, so neither always goes first)."""
    return targets if round_ % 2 == 0 else targets[::-1]


def _ingest_rows(t: _Target, versus: _Target | None, copy_rate: float) -> list[dict[str, Any]]:
    """The ingest rows of one target: against `versus` (the tree compared to) when given, else
    the p99 against the issue's seed."""
    prefix = f"{t.label}: " if t.label else ""

    def p50(x: _Target) -> float:
        return common.percentile(x.closed_ms, 50)

    def p99(x: _Target) -> float:
        return common.percentile(x.closed_ms, 99)

    def open_p99(x: _Target) -> float:
        return common.percentile(x.open_ms, 99)

    def rate(x: _Target) -> float:
        return common.median(x.closed_rate)

    def vs(figure: Callable[[_Target], float], seed: float | None = None) -> dict[str, Any]:
        other = figure(versus) if versus else seed
        return {"baseline": other, "ratio": figure(t) / other} if other else {}

    loop = f"{CONCURRENCY} clients"
    rows = [
        common.row(
            "analytics", f"{prefix}ingest batch of {BATCH} p50, {loop}", p50(t), "ms", **vs(p50)
        ),
        common.row(
            "analytics",
            f"{prefix}ingest batch of {BATCH} p99, {loop}",
            p99(t),
            "ms",
            **vs(p99, 50.0),
            goal="<= 10 ms (seed 50)",
            ok=p99(t) <= 10,
            note=f"closed loop over HTTP, {DEVICES} devices in turn",
        ),
        common.row(
            "analytics",
            f"{prefix}ingest events/s, {loop}",
            rate(t),
            "events/s",
            baseline=copy_rate,
            ratio=rate(t) / copy_rate,
            note="baseline: COPY of as many rows, same run"
            + (f"; {rate(t) / rate(versus):.2f}x the {versus.label} tree" if versus else ""),
        ),
    ]
    if t.open_ms:
        rows.append(
            common.row(
                "analytics",
                f"{prefix}ingest batch of {BATCH} p99 at {RATE:g} batches/s",
                open_p99(t),
                "ms",
                **vs(open_p99),
                goal="<= 10 ms (seed 50)",
                ok=open_p99(t) <= 10,
                note=f"open loop ({RATE * BATCH:,.0f} events/s offered); p50 "
                f"{common.percentile(t.open_ms, 50):.1f} ms; {t.late} batches left late",
            )
        )
    return rows + t.breakdown


async def _measure(
    url: str, servers: list[tuple[str, common.Server]], tenant: common.Tenant
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=64)
    async with contextlib.AsyncExitStack() as stack:
        targets = [
            _Target(
                label,
                await stack.enter_async_context(
                    httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits)
                ),
            )
            for label, server in servers
        ]
        client = targets[0].client  # this tree's server, for the previews
        if os.environ.get("BENCH_ANALYTICS_ONLY") == "preview":
            return await _previews(client, tenant)
        headers = [tenant.headers(f"d{i}") for i in range(1, DEVICES + 1)]
        for t in targets:  # warm up: key cache, connections, plans
            await _ingest_round(t.client, headers, 1.0)
            t.before = await _histograms(t.client)
        copy_rate: list[float] = []
        for round_ in range(ROUNDS):
            for t in _in_turn(targets, round_):
                started = time.perf_counter()
                latencies, stored = await _ingest_round(t.client, headers, ROUND_SECONDS)
                t.closed_ms += latencies
                t.closed_rate.append(stored / (time.perf_counter() - started))
                copy_rate.append(_copy_round(common.plain(url), tenant.id, stored))
            for t in _in_turn(targets, round_) if RATE else []:
                latencies, late = await _open_round(t.client, headers, RATE, ROUND_SECONDS)
                t.open_ms += latencies
                t.late += late
        for t in targets:
            t.breakdown = _breakdown(t.label, t.before, await _histograms(t.client))
        versus = targets[1] if len(targets) > 1 else None
        out += _ingest_rows(targets[0], versus, common.median(copy_rate))
        if versus:
            out += _ingest_rows(versus, None, common.median(copy_rate))

        # The message POST alone and with ingest beside it (open loop at RATE batches/s when
        # set, else the closed loop), alternating, for each tree.
        sends = []
        for i in range(4):
            h = tenant.headers(f"d{DEVICES + 1 + i}")
            made = await client.post(
                "/v1/conversations",
                headers=h,
                json={"first_message": {"body": "hi", "client_msg_id": uuid.uuid4().hex}},
            )
            assert made.status_code == 201, made.text
            sends.append((h, made.json()["id"]))
        half = ROUND_SECONDS / 2
        for round_ in range(ROUNDS):
            for t in _in_turn(targets, round_):
                t.alone += await _send_round(t.client, sends, half)
                busy = asyncio.create_task(
                    _open_round(t.client, headers, RATE, half)
                    if RATE
                    else _ingest_round(t.client, headers, half)
                )
                t.beside += await _send_round(t.client, sends, half)
                await busy
        load = f"ingest at {RATE:g} batches/s" if RATE else f"{CONCURRENCY} ingest clients"
        for t in targets:
            prefix = f"{t.label}: " if t.label else ""
            a, b = common.percentile(t.alone, 50), common.percentile(t.beside, 50)
            out += [
                common.row("analytics", f"{prefix}message POST p50 alone", a, "ms"),
                common.row(
                    "analytics",
                    f"{prefix}message POST p50 beside ingest",
                    b,
                    "ms",
                    baseline=a,
                    ratio=b / a,
                    note=f"{load} on the same 2 cores; p99 "
                    f"{common.percentile(t.alone, 99):.1f} alone, "
                    f"{common.percentile(t.beside, 99):.1f} beside",
                ),
            ]
        if os.environ.get("BENCH_ANALYTICS_ONLY") == "ingest":
            return out
        out += await _previews(client, tenant)
    return out


def _kept(url: str, users: int, events: int) -> common.Tenant | None:
    """The dataset a kept database already holds, when it is of these sizes."""
    with psycopg.connect(common.plain(url)) as db:
        if db.execute("SELECT to_regclass('bench_dataset')").fetchone() == (None,):
            return None
        found = db.execute(
            "SELECT app_id, sdk_key, secret_key FROM bench_dataset "
            "WHERE users = %s AND events = %s",
            (users, events),
        ).fetchone()
        if found is None:
            return None
        # Today's partitions, should the day have turned since it was loaded.
        db.execute(
            "SELECT replyhq_ensure_event_partitions((now() AT TIME ZONE 'UTC')::date - 1, "
            "(now() AT TIME ZONE 'UTC')::date + 3)"
        )
    return common.Tenant(found[0], found[1], found[2])


def _kept_name(users: int, events: int) -> str | None:
    """BENCH_ANALYTICS_DB: the database to keep the dataset in between runs (made again when it
    holds other sizes); unset, a throwaway one."""
    name = os.environ.get("BENCH_ANALYTICS_DB")
    if not name:
        return None
    base = common.services().postgres_url
    with psycopg.connect(base, autocommit=True) as db:
        if not db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return name
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    if _kept(url, users, events) is not None:
        return name
    common.drop_database(name)  # another size, or a load that did not finish
    return name


def prefix() -> str:
    return common.redis_prefix("analytics")


def run() -> list[dict[str, Any]]:
    users = int(os.environ.get("BENCH_ANALYTICS_USERS", "100000"))
    events = int(os.environ.get("BENCH_ANALYTICS_EVENTS", "1000000"))
    keep = _kept_name(users, events)
    place = common.kept_database(keep) if keep else common.throwaway_database("analytics")
    with place as url:
        kept = _kept(url, users, events) if keep else None
        load_note: str | None
        if kept is not None:
            tenant = kept
            load_note = f"reused from database {keep}"
            load_seconds = float("nan")
        else:

            async def tenants() -> tuple[common.Tenant, common.Tenant]:
                db = common.database(url)
                try:
                    return (
                        await common.create_tenant(db, "Tracked", rounds=4),
                        await common.create_tenant(db, "Other", rounds=4),
                    )
                finally:
                    await db.dispose()

            tenant, other = common.run_async(tenants())
            load_seconds = _load(common.plain(url), tenant.id, other.id, users, events)
            load_note = f"kept in database {keep}" if keep else None
            if keep:
                _remember(common.plain(url), tenant, users, events)
        services = common.services()
        redis_url = services.redis_url
        this = common.start_server(url, redis_url, prefix(), **AFTER_ENV)
        servers = [("after" if BEFORE else "", this)]
        try:
            if BEFORE:
                before = common.start_server(url, redis_url, prefix(), PYTHONPATH=BEFORE)
                servers.append(("before", before))
            load_before = os.getloadavg()
            out = common.run_async(_measure(url, servers, tenant))
            load_after = os.getloadavg()
        finally:
            for _, server in servers:
                server.stop()
    return [
        common.row(
            "analytics",
            "users / events of the app",
            float(users),
            "users",
            note=f"{events:,} events over 30 days",
        ),
        common.row("analytics", "load (SQL) + daily counts", load_seconds, "s", note=load_note),
        *out,
        common.row(
            "analytics",
            "load average (1 min) at the end",
            load_after[0],
            "",
            note=f"{load_before[0]:.2f} at the start of the measurement",
        ),
    ]


def _remember(owner_url: str, tenant: common.Tenant, users: int, events: int) -> None:
    with psycopg.connect(owner_url) as db:
        db.execute(
            "CREATE TABLE bench_dataset (users integer, events bigint, app_id uuid, "
            "sdk_key text, secret_key text)"
        )
        db.execute(
            "INSERT INTO bench_dataset VALUES (%s, %s, %s, %s, %s)",
            (users, events, tenant.id, tenant.sdk_key, tenant.secret_key),
        )
