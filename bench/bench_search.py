"""Message search over a million messages of one app (issue 19: p95 <= 50 ms on this machine).

A throwaway database built by the real migrations gets one measured app with 20,000
conversations of 50 messages each (1,000,000) and a private note in each (20,000), written by
generate_series in SQL, plus a second app whose rows the tenant policy must filter out. Bodies
are 8 to 19 words drawn from a Zipf-like vocabulary (a few words are in most messages, most
words in few), so queries range from a handful of hits to hundreds of thousands. The search runs
as the server runs it (replyhq.search.service inside Database.tenant_session, as the runtime
role, RLS on), in rounds that take the query classes in turn. The search indexes are built after
the rows are written (as a restore would), and the per-message triggers (push, metrics: agents'
replies queue jobs) are off during the load; the figures are from a shared, noisy 2-core machine.

BENCH_SEARCH_MESSAGES changes the count (default 1,000,000).
"""

from __future__ import annotations

import os
import random
import time
import uuid
from typing import Any

import psycopg
from sqlalchemy import text

from bench import common
from replyhq.search import service

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


async def _measure(
    owner_url: str, app_id: uuid.UUID
) -> tuple[dict[str, list[float]], dict[str, str]]:
    db = common.database(owner_url)
    samples: dict[str, list[float]] = {name: [] for name in CLASSES}
    hits: dict[str, list[int]] = {name: [] for name in CLASSES}
    rng = random.Random(19)
    try:
        async with db.tenant_session(app_id) as session:  # warm the caches and plans
            for queries in CLASSES.values():
                await service.search_messages(session, app_id, queries[0])
        for _ in range(ROUNDS):
            for name, queries in CLASSES.items():
                q = rng.choice(queries)
                filters: dict[str, Any] = {"status": "open"} if name == "with filters" else {}
                began = time.perf_counter()
                async with db.tenant_session(app_id) as session:
                    found = await service.search_messages(session, app_id, q, **filters)
                samples[name].append((time.perf_counter() - began) * 1000)
                hits[name].append(len(found))
        plans = {}
        for word in ("refund", "w4500"):  # a common word, a rare one: the route's own SQL
            async with db.tenant_session(app_id) as session:
                await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
                explained = await session.execute(
                    text("EXPLAIN " + service._sql([], ("message", "note"))),
                    {
                        "app_id": app_id,
                        "q": word,
                        "pool": service.POOL,
                        "limit": 20,
                        "short": 280,
                        "whole": "",
                        "headline": "",
                    },
                )
                plans[word] = "\n".join(explained.scalars())
        plan = plans
    finally:
        await db.dispose()
    return samples, plan


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


def _scans(plan: str) -> str:
    """The plan's scans of messages, in short."""
    return " | ".join(
        line.strip().removeprefix("->  ").split("  (")[0]
        for line in plan.splitlines()
        if "Scan" in line and ("messages" in line or "ix_messages" in line)
    )[:300]


def run() -> list[dict[str, Any]]:
    messages = int(os.environ.get("BENCH_SEARCH_MESSAGES", "1000000"))
    with common.throwaway_database("search") as url:

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
        counts = _match_counts(url, app_id)
        samples, plan = common.run_async(_measure(url, app_id))
    common_plan, rare_plan = plan["refund"], plan["w4500"]
    walks = "Index Only Scan using ix_messages_search_recent" in common_plan
    gin = "Bitmap Index Scan on ix_messages_search " in rare_plan + " "
    everything = [s for values in samples.values() for s in values]
    out = [
        common.row("search", "messages of the app", float(messages), "messages"),
        common.row("search", "load + index", load_seconds, "s"),
        common.row(
            "search",
            "common word: index-only walk, newest first",
            1.0 if walks else 0.0,
            "bool",
            ok=walks,
            note=_scans(common_plan),
        ),
        common.row(
            "search",
            "rare word: GIN index under RLS",
            1.0 if gin else 0.0,
            "bool",
            ok=gin,
            note=_scans(rare_plan),
        ),
    ]
    for name, values in samples.items():
        for q in (50, 95):
            out.append(
                common.row(
                    "search",
                    f"{name} p{q}",
                    common.percentile(values, q),
                    "ms",
                    note=f"first query matches {counts[name]:,} messages" if q == 50 else None,
                )
            )
    p95 = common.percentile(everything, 95)
    out.append(common.row("search", "all queries p95", p95, "ms", goal="<= 50 ms", ok=p95 <= 50))
    return out
