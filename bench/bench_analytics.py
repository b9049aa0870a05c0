"""Analytics (issue 16): event ingest and segment previews at scale, on this machine.

A throwaway database built by the real migrations gets one measured app with USERS end users
(attributes, a device each) and EVENTS events over the last 30 days (with their daily counts and
catalog, as ingest keeps them), written by generate_series in SQL, plus a second app whose rows
the policies must filter out. Then, against a real `replyhq serve` process:

- ingest: CONCURRENCY clients each POST /v1/events batches of BATCH events; p50/p99 of a batch's
  round trip (answered once committed) and events/s, alternating with a COPY of the same number
  of rows into `events` (the bulk-load ceiling, in the same run, same tables and indexes);
- segment preview p95 for five representative queries (POST /admin/api/segments/preview: the
  count and a sample of 20, as the runtime role under RLS);
- the message POST (the SDK's hot path) alone and with ingest running beside it, alternating:
  p50 and the ratio.

The issue asks for 100,000 users and 10,000,000 events; the default here is 100,000 users and
1,000,000 events: BENCH_ANALYTICS_USERS / BENCH_ANALYTICS_EVENTS set them. The load is SQL only
(generate_series; the events' indexes built after their rows): 10,000,000 events took 137 s on
the quiet 2-core machine. BENCH_ANALYTICS_DB=<name> keeps the generated data in that database
between runs (made again only when it holds other sizes): the next run starts measuring at once.
The figures are from a shared machine: compare ratios measured in the same run.
BENCH_ANALYTICS_ONLY=ingest stops after the ingest rows (with where a batch's time went: the
server's own event_queue_seconds / event_flush_seconds histograms over the measured rounds);
BENCH_ANALYTICS_ONLY=preview measures the previews alone. `python -m bench.segment_plans`
times the previews in process and prints their plans (EXPLAIN ANALYZE, as the runtime role).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime
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
ROUNDS = 3
ROUND_SECONDS = 6.0
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
            db.execute(definition)  # the catalog's own text
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
            db.execute(
                "INSERT INTO event_names (app_id, name, count, last_at) SELECT app_id, name, "
                "sum(count), max(last_at) FROM event_daily_counts WHERE app_id = %(app)s "
                "GROUP BY 1, 2",
                {"app": str(app)},
            )
        db.commit()
    with psycopg.connect(owner_url, autocommit=True) as db:
        db.execute("VACUUM ANALYZE end_users, devices, events, event_daily_counts, event_names")
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


async def _ingest_round(
    client: httpx.AsyncClient, headers: list[dict[str, str]], seconds: float
) -> tuple[list[float], int]:
    latencies: list[float] = []
    stored = 0
    deadline = time.perf_counter() + seconds

    async def one(h: dict[str, str]) -> None:
        nonlocal stored
        while time.perf_counter() < deadline:
            body = {"events": [{"name": "tap", "properties": {"n": i}} for i in range(BATCH)]}
            started = time.perf_counter()
            response = await client.post("/v1/events", headers=h, json=body)
            latencies.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 202, response.text
            stored += BATCH

    await asyncio.gather(*[one(h) for h in headers])
    return latencies, stored


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
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> list[dict[str, Any]]:
    """Where a batch's time went, from the server's own histograms over the measured rounds."""

    def mean(name: str) -> float:
        total = after[name][0] - before.get(name, (0.0, 0.0))[0]
        count = after[name][1] - before.get(name, (0.0, 0.0))[1]
        return total / count if count else 0.0

    return [
        common.row(
            "analytics",
            "ingest: mean request in the server",
            mean("server") * 1000,
            "ms",
            note="the server's http_request_duration_seconds for POST /v1/events",
        ),
        common.row(
            "analytics",
            "ingest: mean wait in the buffer",
            mean("event_queue_seconds") * 1000,
            "ms",
            note="before the request's flush was sent (the delay, and flushes ahead of it)",
        ),
        common.row(
            "analytics",
            "ingest: mean flush statement",
            mean("event_flush_seconds") * 1000,
            "ms",
            note="send to commit, one round trip",
        ),
        common.row("analytics", "ingest: mean events per flush", mean("event_flush_events"), ""),
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


async def _measure(url: str, server: common.Server, tenant: common.Tenant) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
        if os.environ.get("BENCH_ANALYTICS_ONLY") == "preview":
            return await _previews(client, tenant)
        headers = [tenant.headers(f"d{i}") for i in range(1, CONCURRENCY + 1)]
        # Warm up: key cache, connections, plans.
        await _ingest_round(client, headers, 1.0)
        ingest_ms: list[float] = []
        ingest_rate: list[float] = []
        copy_rate: list[float] = []
        before = await _histograms(client)
        for _ in range(ROUNDS):
            started = time.perf_counter()
            latencies, stored = await _ingest_round(client, headers, ROUND_SECONDS)
            ingest_ms += latencies
            ingest_rate.append(stored / (time.perf_counter() - started))
            copy_rate.append(_copy_round(common.plain(url), tenant.id, stored))
        breakdown = _breakdown(before, await _histograms(client))
        rate, ceiling = common.median(ingest_rate), common.median(copy_rate)
        p99 = common.percentile(ingest_ms, 99)
        out += [
            common.row(
                "analytics", f"ingest batch of {BATCH} p50", common.percentile(ingest_ms, 50), "ms"
            ),
            common.row(
                "analytics",
                f"ingest batch of {BATCH} p99",
                p99,
                "ms",
                baseline=50.0,
                ratio=p99 / 50.0,
                goal="<= 10 ms (seed 50)",
                ok=p99 <= 10,
                note=f"{CONCURRENCY} concurrent clients over HTTP",
            ),
            common.row(
                "analytics",
                "ingest events/s",
                rate,
                "events/s",
                baseline=ceiling,
                ratio=rate / ceiling,
                note="baseline: COPY of as many rows, same run",
            ),
            *breakdown,
        ]
        if os.environ.get("BENCH_ANALYTICS_ONLY") == "ingest":
            return out

        out += await _previews(client, tenant)

        sends = []
        for i in range(4):
            h = tenant.headers(f"d{CONCURRENCY + 1 + i}")
            made = await client.post(
                "/v1/conversations",
                headers=h,
                json={"first_message": {"body": "hi", "client_msg_id": uuid.uuid4().hex}},
            )
            assert made.status_code == 201, made.text
            sends.append((h, made.json()["id"]))
        alone: list[float] = []
        beside: list[float] = []
        for _ in range(ROUNDS):
            alone += await _send_round(client, sends, ROUND_SECONDS / 2)
            busy = asyncio.create_task(_ingest_round(client, headers, ROUND_SECONDS / 2))
            beside += await _send_round(client, sends, ROUND_SECONDS / 2)
            await busy
        a, b = common.percentile(alone, 50), common.percentile(beside, 50)
        out += [
            common.row("analytics", "message POST p50 alone", a, "ms"),
            common.row(
                "analytics",
                "message POST p50 beside ingest",
                b,
                "ms",
                baseline=a,
                ratio=b / a,
                note=f"{CONCURRENCY} ingest clients on the same 2 cores",
            ),
        ]
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
        server = common.start_server(url, services.redis_url, common.redis_prefix("analytics"))
        try:
            out = common.run_async(_measure(url, server, tenant))
        finally:
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
