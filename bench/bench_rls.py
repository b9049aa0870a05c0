"""Row-level security on vs bypassed, for the send and list workloads.

Two throwaway databases are built the same way by the real migrations and seeded the same way; in
the second, row-level security is then disabled on every table that has it, so the only
difference left is the policies' evaluation. The same code (the services the routes call, inside
`Database.tenant_session`, as the runtime role) runs against both, taking turns call by call in
an order that rotates each round, so that machine noise falls on both sides alike; each ratio
comes with a bootstrap interval that says how much of it chance alone could explain.
BENCH_RLS_PER_ROW=1 adds a third database with the policies as first migrated, reading the tenant
setting once per row (see per_row_policies), to show what migration 0003 changed.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from bench import common
from replyhq.db import Database
from replyhq.db.rls import tenant_predicate
from replyhq.messaging import service as messaging
from replyhq.messaging import summaries
from replyhq.messaging.service import Participant
from replyhq.users.service import device_user

TENANTS = 4  # the first is measured; the others' rows are what the policies filter out
DEVICES = 50  # per tenant, each with its end user and a conversation
HISTORY = 40  # messages added to each conversation before measuring
WARMUP = 100  # iterations per side and workload
ROUNDS = 20  # each round: one batch per side, the order rotating
BATCH = 40  # iterations per batch; ROUNDS * BATCH samples per side and workload


@dataclass
class Side:
    label: str
    db: Database
    app_id: uuid.UUID
    devices: list[common.Device]
    cursor: int = 0

    def next_device(self) -> common.Device:
        self.cursor += 1
        return self.devices[self.cursor % len(self.devices)]


Workload = Callable[[Side], Awaitable[None]]


async def send(side: Side) -> None:
    device = side.next_device()
    async with side.db.tenant_session(side.app_id) as session:
        user_id, name = await device_user(session, side.app_id, device.device_id)
        message, _ = await messaging.send_message(
            session,
            side.app_id,
            device.conversation_id,
            Participant("user", user_id, name),
            "How do I reset my password?",
            uuid.uuid4().hex,
            end_user_id=user_id,
        )
        messaging.message_out(message)


async def list_conversations(side: Side) -> None:
    device = side.next_device()
    async with side.db.tenant_session(side.app_id) as session:
        user_id, name = await device_user(session, side.app_id, device.device_id)
        await summaries.list_conversations(
            session, side.app_id, Participant("user", user_id, name), end_user_id=user_id
        )


async def list_messages(side: Side) -> None:
    device = side.next_device()
    async with side.db.tenant_session(side.app_id) as session:
        user_id, _ = await device_user(session, side.app_id, device.device_id)
        await messaging.require_conversation(
            session, side.app_id, device.conversation_id, end_user_id=user_id
        )
        await messaging.list_messages(session, side.app_id, device.conversation_id, limit=50)


AGENT = Participant("agent", uuid.UUID(int=1), "Agent")


async def list_all_conversations(side: Side) -> None:
    async with side.db.tenant_session(side.app_id) as session:
        await summaries.list_conversations(session, side.app_id, AGENT, limit=20)


WORKLOADS: dict[str, Workload] = {
    "send": send,
    "list_conversations (end user)": list_conversations,
    "list_messages (50)": list_messages,
    "list_conversations (agent, all)": list_all_conversations,
}


def disable_rls(owner_url: str) -> list[str]:
    """Turn row-level security off on every table that has it; the tables' names."""
    with psycopg.connect(owner_url, autocommit=True) as connection:
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT relname FROM pg_class WHERE relrowsecurity "
                "AND relnamespace = 'public'::regnamespace ORDER BY relname"
            )
        ]
        for table in tables:
            for statement in ("NO FORCE ROW LEVEL SECURITY", "DISABLE ROW LEVEL SECURITY"):
                connection.execute(
                    sql.SQL("ALTER TABLE {} " + statement).format(sql.Identifier(table))
                )
    return tables


def per_row_policies(owner_url: str) -> None:
    """The policies as migrations 0001 and 0002 created them (before 0003): each setting read
    once per row rather than once per query. The text is replyhq.db.rls's."""
    with psycopg.connect(owner_url, autocommit=True) as connection:
        tables = connection.execute(
            "SELECT tablename FROM pg_policies WHERE schemaname = 'public' "
            "AND policyname = 'tenant_isolation'"
        ).fetchall()
        for (table,) in tables:
            predicate = sql.SQL(
                tenant_predicate("id" if table == "apps" else "app_id", per_row=True)
            )
            connection.execute(
                sql.SQL("ALTER POLICY tenant_isolation ON {} USING ({}) WITH CHECK ({})").format(
                    sql.Identifier(table), predicate, predicate
                )
            )


def add_history(owner_url: str) -> None:
    """HISTORY more messages in every conversation, alternating user and agent (bulk SQL as the
    owner: only their presence matters here, not how they came)."""
    with psycopg.connect(common.system_dsn(owner_url), autocommit=True) as connection:
        connection.execute(
            """
            INSERT INTO messages (id, app_id, conversation_id, seq, client_msg_id, sender,
                                  author_id, body, body_html, created_at)
            SELECT gen_random_uuid(), c.app_id, c.id, c.last_seq + n, 'history-' || n,
                   CASE WHEN n %% 2 = 0 THEN 'user' ELSE 'agent' END,
                   CASE WHEN n %% 2 = 0 THEN c.end_user_id END,
                   'Message ' || n, '<p>Message ' || n || '</p>',
                   now() - make_interval(secs => %(history)s - n)
            FROM conversations c, generate_series(1, %(history)s) AS n
            """,
            {"history": HISTORY},
        )
        connection.execute(
            "UPDATE conversations SET last_seq = last_seq + %(history)s, last_activity_at = now()",
            {"history": HISTORY},
        )
        connection.execute("ANALYZE")


async def seed(owner_url: str, label: str) -> Side:
    db = common.database(owner_url, pool_size=5)
    sides = []
    for index in range(TENANTS):
        tenant = await common.create_tenant(db, f"Tenant {index}", rounds=4)
        devices = await common.create_devices(db, tenant.id, DEVICES)
        sides.append(Side(label, db, tenant.id, devices))
    return sides[0]


async def _measure(urls: dict[str, str]) -> dict[str, dict[str, list[float]]]:
    sides = [await seed(url, label) for label, url in urls.items()]
    for url in urls.values():
        add_history(url)
    samples: dict[str, dict[str, list[float]]] = {}
    try:
        for name, workload in WORKLOADS.items():
            for side in sides:
                for _ in range(WARMUP):
                    await workload(side)
            timings: dict[str, list[float]] = {side.label: [] for side in sides}
            for round_ in range(ROUNDS):
                # Rotate the order, so that no side always runs first or last; and take turns
                # call by call, so that a burst of load from elsewhere on the machine (which sets
                # the p99) falls on every side alike rather than on one side's batch.
                shift = round_ % len(sides)
                for _ in range(BATCH):
                    for side in sides[shift:] + sides[:shift]:
                        began = time.perf_counter()
                        await workload(side)
                        timings[side.label].append(time.perf_counter() - began)
            samples[name] = timings
    finally:
        for side in sides:
            await side.db.dispose()
    return samples


def ratio_interval(
    on: list[float], off: list[float], q: float, resamples: int = 1000
) -> tuple[float, float]:
    """How far the ratio of the two sides' q-th percentiles could move by chance: its 2.5th and
    97.5th percentiles over resamplings (with replacement) of each side's samples. An interval
    that holds 1 means the samples cannot tell the sides apart at that percentile."""
    chance = random.Random(0)  # the same interval for the same samples
    ratios = [
        common.percentile(chance.choices(on, k=len(on)), q)
        / common.percentile(chance.choices(off, k=len(off)), q)
        for _ in range(resamples)
    ]
    return common.percentile(ratios, 2.5), common.percentile(ratios, 97.5)


def rows(samples: dict[str, dict[str, list[float]]]) -> list[dict[str, Any]]:
    out = []
    for name, timings in samples.items():
        off = timings["off"]
        for label, on in timings.items():
            if label == "off":
                continue
            # Per round, the ratio of the two batches' medians: a second, noise-robust estimate.
            per_round = [
                common.median(on[i : i + BATCH]) / common.median(off[i : i + BATCH])
                for i in range(0, len(on), BATCH)
            ]
            candidate = label != "on"
            for q, limit in ((50, 1.03), (99, 1.05)):
                value = common.percentile(on, q) * 1e3
                baseline = common.percentile(off, q) * 1e3
                ratio = value / baseline
                low, high = ratio_interval(on, off, q)
                note = (
                    f"{len(on)} samples a side in {ROUNDS} rotating rounds; "
                    f"95 % bootstrap interval of the ratio {low:.3f}-{high:.3f}"
                )
                if q == 50:
                    note += f"; median of per-round p50 ratios {common.median(per_round):.3f}"
                out.append(
                    common.row(
                        "rls",
                        f"{name}{' [' + label + ']' if candidate else ''} p{q}",
                        value,
                        "ms",
                        baseline=baseline,
                        ratio=ratio,
                        goal=None if candidate else f"ratio <= {limit:.2f}",
                        ok=None if candidate else ratio <= limit,
                        note=note,
                    )
                )
    return out


def run() -> list[dict[str, Any]]:
    """RLS as migrated ("on") and bypassed ("off"); with BENCH_RLS_PER_ROW=1 also the policies
    as they were before migration 0003 ("per-row")."""
    labels = ["on", "off"] + (["per-row"] if os.environ.get("BENCH_RLS_PER_ROW") else [])
    with contextlib.ExitStack() as stack:
        urls = {
            label: stack.enter_context(common.throwaway_database(f"rls_{label.replace('-', '_')}"))
            for label in labels
        }
        tables = disable_rls(urls["off"])
        assert tables, "no table has row-level security: nothing to compare"
        if "per-row" in urls:
            per_row_policies(urls["per-row"])
        samples = common.run_async(_measure(urls))
    return rows(samples)
