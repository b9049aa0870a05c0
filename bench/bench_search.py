"""Message search over a million messages of one app (issue 19: p95 <= 50 ms on this machine).

A throwaway database built by the real migrations gets one measured app with 20,000
conversations of 50 messages each (1,000,000) and a private note in each (20,000), written by
generate_series in SQL, plus a second app whose rows the tenant policy must filter out. Bodies
are 8 to 19 words drawn from a Zipf-like vocabulary (a few words are in most messages, most
words in few), so queries range from a handful of hits to hundreds of thousands. The search runs
as the server runs it (replyhq.search.service, its one statement as the runtime
role, RLS on), in rounds that take the query classes in turn. The search indexes are built after
the rows are written (as a restore would), and the per-message triggers (push, metrics: agents'
replies queue jobs) are off during the load. Figures mean something only on a quiet machine
(docs/benchmarks.md).

BENCH_SEARCH_MESSAGES changes the count (default 1,000,000), BENCH_SEARCH_ROUNDS the rounds (30).
BENCH_SEARCH_KEEP=1 keeps the generated database (replyhq_bench_search_<count>_kept) for the next
run, which then skips the load (drop it by hand when the load itself changes).
BENCH_SEARCH_BASELINE=<git revision> runs that revision's search too, query by query in turn
with the current one, on the same data: the table's baseline and ratio (new / old).
BENCH_SEARCH_EXPLAIN=1 prints EXPLAIN (ANALYZE, BUFFERS) of each class's slowest query, as the
runtime role under row-level security.
"""

from __future__ import annotations

import inspect
import os
import random
import subprocess
import time
import types
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import event

from bench import common
from replyhq.db import Database
from replyhq.search import service
from replyhq.settings import Settings

PER_CONVERSATION = 50
ROUNDS = 30
VOCABULARY = 5000
# Real words at the head of the vocabulary (the most frequent), then `w<n>` tokens.
HEAD = [
    "the",
    "i",
    "to",
    "a",
    "my",
    "and",
    "is",
    "it",
    "you",
    "for",
    "order",
    "not",
    "can",
    "please",
    "refund",
    "help",
    "with",
    "on",
    "this",
    "account",
    "payment",
    "app",
    "card",
    "when",
    "we",
    "error",
    "password",
    "login",
    "shipping",
    "delivery",
    "invoice",
    "cancel",
    "subscription",
    "charged",
    "twice",
    "email",
    "update",
    "address",
    "broken",
    "crash",
    "screen",
]

# Query classes: how many messages each matches grows from the first to the last.
CLASSES: dict[str, list[str]] = {
    "rare word": [f"w{n}" for n in range(4000, 4990, 7)],
    "mid word": [f"w{n}" for n in range(300, 900, 5)],
    "two words": [f"refund w{n}" for n in range(100, 700, 5)],
    "phrase": ['"charged twice"', '"cancel subscription"', '"payment error"', '"login help"'],
    "common word": ["refund", "order", "password", "payment", "please"],
    "with filters": [f"w{n}" for n in range(300, 900, 5)],
}


# Migrations 0050 and 0120's search indexes, dropped before the load and built after it.
SEARCH_INDEXES = {
    "ix_messages_search": "CREATE INDEX ix_messages_search ON messages USING gin (search)",
    "ix_messages_search_recent": "CREATE INDEX ix_messages_search_recent ON messages "
    "(app_id, created_at DESC) INCLUDE (id, conversation_id, search) "
    "WHERE kind = 'message' AND octet_length(body) <= 400",
    "ix_messages_search_long": "CREATE INDEX ix_messages_search_long ON messages USING gin "
    "(search) WHERE kind = 'message' AND octet_length(body) > 400",
}


def _load(owner_url: str, app_id: uuid.UUID, other_id: uuid.UUID, messages: int) -> float:
    """Write the rows (as the system role, which the tenant policies let see every app); the
    seconds it took, index included."""
    conversations = messages // PER_CONVERSATION
    words = HEAD + [f"w{n}" for n in range(len(HEAD), VOCABULARY)]
    started = time.monotonic()
    with psycopg.connect(owner_url, autocommit=True) as owner:
        for index in SEARCH_INDEXES:
            owner.execute(f"DROP INDEX IF EXISTS {index}")
        owner.execute("ALTER TABLE messages DISABLE TRIGGER USER")
    with psycopg.connect(common.system_dsn(owner_url), autocommit=True) as connection:
        for app, count in ((app_id, conversations), (other_id, max(1, conversations // 10))):
            connection.execute(
                "INSERT INTO end_users (id, app_id, external_id, name, email) "
                "SELECT gen_random_uuid(), %(app)s, 'u' || g, 'User ' || g, 'u' || g || '@x.io' "
                "FROM generate_series(1, %(n)s) g",
                {"app": app, "n": count},
            )
            connection.execute(
                "INSERT INTO conversations (id, app_id, end_user_id, status, last_seq, "
                "last_activity_at) SELECT gen_random_uuid(), app_id, id, "
                "CASE WHEN random() < 0.3 THEN 'closed' ELSE 'open' END, %(per)s, now() "
                "FROM end_users WHERE app_id = %(app)s",
                {"app": app, "per": PER_CONVERSATION},
            )
            # Each body: 8..19 words, word k drawn as floor(V * r^3) (Zipf-like). The subquery
            # names the outer row (s, c.id) so that it is evaluated for every message.
            connection.execute(
                """
                INSERT INTO messages (id, app_id, conversation_id, seq, client_msg_id, sender,
                                      body, body_html, created_at)
                SELECT gen_random_uuid(), c.app_id, c.id, s, 'b' || s,
                       CASE WHEN s %% 2 = 1 THEN 'user' ELSE 'agent' END, body.text, '',
                       now() - (random() * interval '365 days')
                FROM conversations c
                CROSS JOIN generate_series(1, %(per)s) s
                CROSS JOIN LATERAL (
                    SELECT string_agg(
                        (%(words)s::text[])[1 + floor(%(v)s * power(random(), 3))::int], ' '
                    ) AS text
                    FROM generate_series(1, 8 + ((s + length(c.id::text)) %% 12))
                    WHERE c.id IS NOT NULL
                ) body
                WHERE c.app_id = %(app)s
                """,
                {"app": app, "per": PER_CONVERSATION, "words": words, "v": VOCABULARY},
            )
            # A private note in each conversation, after its 25th message.
            connection.execute(
                """
                INSERT INTO timeline_items (id, app_id, conversation_id, after_seq, kind,
                                            client_msg_id, body, body_html, created_at)
                SELECT gen_random_uuid(), c.app_id, c.id, 25, 'note', 'note', body.text, '',
                       now() - (random() * interval '365 days')
                FROM conversations c
                CROSS JOIN LATERAL (
                    SELECT string_agg(
                        (%(words)s::text[])[1 + floor(%(v)s * power(random(), 3))::int], ' '
                    ) AS text
                    FROM generate_series(1, 12) WHERE c.id IS NOT NULL
                ) body
                WHERE c.app_id = %(app)s
                """,
                {"app": app, "words": words, "v": VOCABULARY},
            )
    with psycopg.connect(owner_url, autocommit=True) as owner:
        owner.execute("ALTER TABLE messages ENABLE TRIGGER USER")
        owner.execute("SET maintenance_work_mem = '256MB'")
        for index in SEARCH_INDEXES.values():
            owner.execute(index)
        for table in ("messages", "timeline_items", "conversations", "end_users"):
            owner.execute(f"VACUUM ANALYZE {table}")
    return time.monotonic() - started


Search = Callable[..., Awaitable[list[Any]]]


def _baseline(ref: str) -> Search:
    """`ref`'s search_messages (a git revision's replyhq/search/service.py, loaded beside the
    current one): the same queries on the same data, interleaved, for the ratio."""
    source = subprocess.run(
        ["git", "show", f"{ref}:src/replyhq/search/service.py"],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType(f"search_service_at_{ref}")
    exec(compile(source, f"{ref}:service.py", "exec"), module.__dict__)  # noqa: S102
    found: Search = module.search_messages
    return found


async def _search(search: Search, db: Database, app_id: uuid.UUID, q: str, **filters: Any) -> int:
    """One search as the route runs it (in a tenant transaction, or given the Database where the
    service opens its own); how many hits."""
    if next(iter(inspect.signature(search).parameters)) == "session":
        async with db.tenant_session(app_id) as session:
            return len(await search(session, app_id, q, **filters))
    return len(await search(db, app_id, q, **filters))


def _filters(name: str) -> dict[str, Any]:
    return {"status": "open"} if name == "with filters" else {}


async def _measure(
    owner_url: str, app_id: uuid.UUID, searches: dict[str, Search], rounds: int
) -> tuple[dict[str, dict[str, list[float]]], dict[str, tuple[float, str]]]:
    """Each search's milliseconds per query class, the searches taking turns on every query;
    and each class's slowest query (of the current search) with its time."""
    db = common.database(owner_url)
    samples = {who: {name: [] for name in CLASSES} for who in searches}
    slowest: dict[str, tuple[float, str]] = {}
    rng = random.Random(19)
    try:
        for search in searches.values():  # warm the caches, connections and plans
            for name, queries in CLASSES.items():
                await _search(search, db, app_id, queries[0], **_filters(name))
        turns = list(searches.items())
        for round_no in range(rounds):
            for name, queries in CLASSES.items():
                q = rng.choice(queries)
                # Who goes first alternates by round: the second finds the first one's blocks
                # cached (a rare word's matches are read from the table).
                for who, search in turns[::-1] if round_no % 2 else turns:
                    began = time.perf_counter()
                    await _search(search, db, app_id, q, **_filters(name))
                    ms = (time.perf_counter() - began) * 1000
                    samples[who][name].append(ms)
                    if who == "new" and ms > slowest.get(name, (0.0, ""))[0]:
                        slowest[name] = (ms, q)
    finally:
        await db.dispose()
    return samples, slowest


def _explain(owner_url: str, app_id: uuid.UUID, search: Search, queries: dict[str, str]) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of every search statement that `search` runs for `queries`
    (class: q), as the runtime role under row-level security: auto_explain, set for that role in
    this database for the while, sends each plan to the client as a notice."""
    role = Settings().database_app_role
    settings = {
        "session_preload_libraries": "auto_explain",
        "auto_explain.log_min_duration": "0",
        "auto_explain.log_analyze": "on",
        "auto_explain.log_buffers": "on",
        "auto_explain.log_level": "notice",
    }
    with psycopg.connect(owner_url, autocommit=True) as owner:
        for name, value in settings.items():
            owner.execute(
                sql.SQL("ALTER ROLE {} IN DATABASE {} SET {} = {}").format(
                    sql.Identifier(role),
                    sql.Identifier(owner.info.dbname),
                    sql.Identifier(*name.split(".")),
                    sql.Literal(value),
                )
            )
    plans: list[str] = []
    shown: list[str] = []

    async def explain() -> None:
        db = common.database(owner_url, pool_size=1)

        def listen(connection: Any, _record: Any) -> None:
            connection.driver_connection.add_notice_handler(
                lambda notice: plans.append(notice.message_primary or "")
            )

        event.listen(db.engine.sync_engine, "connect", listen)
        try:
            for name, q in queries.items():
                await _search(search, db, app_id, q, **_filters(name))  # warm
                first = len(plans)
                await _search(search, db, app_id, q, **_filters(name))
                shown.append(f"== {name}: {q!r}")
                # The search's statements, not the tenant binding's.
                shown.extend(plan for plan in plans[first:] if "tsquery" in plan)
        finally:
            await db.dispose()

    try:
        common.run_async(explain())
    finally:
        with psycopg.connect(owner_url, autocommit=True) as owner:
            owner.execute(
                sql.SQL("ALTER ROLE {} IN DATABASE {} RESET ALL").format(
                    sql.Identifier(role), sql.Identifier(owner.info.dbname)
                )
            )
    return "\n".join(shown)


def _match_counts(owner_url: str, app_id: uuid.UUID) -> dict[str, int]:
    """How many messages the first query of each class matches (for the table's notes)."""
    counts = {}
    with psycopg.connect(common.system_dsn(owner_url)) as connection:
        for name, queries in CLASSES.items():
            row = connection.execute(
                "SELECT count(*) FROM messages WHERE app_id = %s "
                "AND search @@ websearch_to_tsquery('simple', %s)",
                (app_id, queries[0]),
            ).fetchone()
            counts[name] = int(row[0]) if row else 0
    return counts


def _kept_apps(name: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The apps of the kept database `name` if an earlier run loaded it whole (its comment, set
    once the load is done); one that a run left half loaded is dropped."""
    with psycopg.connect(common.services().postgres_url, autocommit=True) as connection:
        found = connection.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (name,),
        ).fetchone()
    if found is None:
        return None
    if found[0] is None:
        common.drop_database(name)
        return None
    app_id, other_id = found[0].split()
    return uuid.UUID(app_id), uuid.UUID(other_id)


def run() -> list[dict[str, Any]]:
    messages = int(os.environ.get("BENCH_SEARCH_MESSAGES", "1000000"))
    rounds = int(os.environ.get("BENCH_SEARCH_ROUNDS", str(ROUNDS)))
    keep = os.environ.get("BENCH_SEARCH_KEEP", "") not in ("", "0")
    baseline = os.environ.get("BENCH_SEARCH_BASELINE")
    searches: dict[str, Search] = {"new": service.search_messages}
    if baseline:
        searches["old"] = _baseline(baseline)
    name = f"replyhq_bench_search_{messages}_kept"
    kept = _kept_apps(name) if keep else None
    place = common.kept_database(name) if keep else common.throwaway_database("search")
    with place as url:
        load_seconds = float("nan")
        if kept:
            app_id, other_id = kept
        else:

            async def tenants() -> tuple[uuid.UUID, uuid.UUID]:
                db = common.database(url)
                try:
                    first = await common.create_tenant(db, "Searched", rounds=4)
                    second = await common.create_tenant(db, "Other", rounds=4)
                finally:
                    await db.dispose()
                return first.id, second.id

            app_id, other_id = common.run_async(tenants())
            load_seconds = _load(url, app_id, other_id, messages)
            with psycopg.connect(url, autocommit=True) as owner:
                owner.execute(
                    sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                        sql.Identifier(owner.info.dbname), sql.Literal(f"{app_id} {other_id}")
                    )
                )
        counts = _match_counts(url, app_id)
        samples, slowest = common.run_async(_measure(url, app_id, searches, rounds))
        if os.environ.get("BENCH_SEARCH_EXPLAIN"):
            queries = {name: q for name, (_, q) in slowest.items()}
            print(_explain(url, app_id, service.search_messages, queries), flush=True)
    out = [
        common.row("search", "messages of the app", float(messages), "messages"),
        common.row("search", "load + index (n/a: kept from an earlier run)", load_seconds, "s"),
    ]
    for name in CLASSES:
        for q in (50, 95):
            value = common.percentile(samples["new"][name], q)
            old = common.percentile(samples["old"][name], q) if baseline else None
            out.append(
                common.row(
                    "search",
                    f"{name} p{q}",
                    value,
                    "ms",
                    baseline=old,
                    ratio=value / old if old else None,
                    note=f"first query matches {counts[name]:,} messages; slowest "
                    f"{slowest[name][1]!r} {slowest[name][0]:.1f} ms"
                    if q == 50
                    else None,
                )
            )
    everything = [s for values in samples["new"].values() for s in values]
    p95 = common.percentile(everything, 95)
    old_p95 = (
        common.percentile([s for v in samples["old"].values() for s in v], 95) if baseline else None
    )
    out.append(
        common.row(
            "search",
            "all queries p95",
            p95,
            "ms",
            baseline=old_p95,
            ratio=p95 / old_p95 if old_p95 else None,
            goal="<= 50 ms",
            ok=p95 <= 50,
            note=f"baseline: {baseline}" if baseline else None,
        )
    )
    return out
