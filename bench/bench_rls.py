"""Row-level security on vs bypassed, for the send and list workloads.

Two throwaway databases are built the same way by the real migrations and seeded the same way; in
the second, row-level security is then disabled on every table that has it, so the only
difference left is the policies' evaluation. The same code (the services the routes call, inside
`Database.tenant_session`, as the runtime role) runs against both, in alternating batches (on/off,
then off/on) so that machine noise falls on both sides alike.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from bench import common
from replyhq.db import Database
from replyhq.messaging import service as messaging
from replyhq.messaging.service import Participant
from replyhq.users.service import device_user

TENANTS = 4  # the first is measured; the others' rows are what the policies filter out
DEVICES = 50  # per tenant, each with its end user and a conversation
HISTORY = 40  # messages added to each conversation before measuring
WARMUP = 100  # iterations per side and workload
ROUNDS = 20  # each round: one batch per side, the order alternating
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
        await messaging.list_conversations(
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
        await messaging.list_conversations(session, side.app_id, AGENT, limit=20)


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


def add_history(owner_url: str) -> None:
    """HISTORY more messages in every conversation, alternating user and agent (bulk SQL as the
    owner: only their presence matters here, not how they came)."""
    with psycopg.connect(owner_url, autocommit=True) as connection:
        connection.execute("SELECT set_config('app.system', 'on', false)")
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


async def _measure(on_url: str, off_url: str) -> dict[str, dict[str, list[float]]]:
    on = await seed(on_url, "on")
    off = await seed(off_url, "off")
    add_history(on_url)
    add_history(off_url)
    samples: dict[str, dict[str, list[float]]] = {}
    try:
        for name, workload in WORKLOADS.items():
            for side in (on, off):
                for _ in range(WARMUP):
                    await workload(side)
            timings: dict[str, list[float]] = {"on": [], "off": []}
            for round_ in range(ROUNDS):
                order = (on, off) if round_ % 2 == 0 else (off, on)
                for side in order:
                    for _ in range(BATCH):
                        began = time.perf_counter()
                        await workload(side)
                        timings[side.label].append(time.perf_counter() - began)
            samples[name] = timings
    finally:
        await on.db.dispose()
        await off.db.dispose()
    return samples


def rows(samples: dict[str, dict[str, list[float]]]) -> list[dict[str, Any]]:
    out = []
    for name, timings in samples.items():
        on, off = timings["on"], timings["off"]
        # Per round, the ratio of the two batches' medians: a second, noise-robust estimate.
        per_round = [
            common.median(on[i : i + BATCH]) / common.median(off[i : i + BATCH])
            for i in range(0, len(on), BATCH)
        ]
        for q, limit in ((50, 1.03), (99, 1.05)):
            value = common.percentile(on, q) * 1e3
            baseline = common.percentile(off, q) * 1e3
            ratio = value / baseline
            note = f"{len(on)} samples a side in {ROUNDS} alternating rounds"
            if q == 50:
                note += f"; median of per-round p50 ratios {common.median(per_round):.3f}"
            out.append(
                common.row(
                    "rls",
                    f"{name} p{q}",
                    value,
                    "ms",
                    baseline=baseline,
                    ratio=ratio,
                    goal=f"ratio <= {limit:.2f}",
                    ok=ratio <= limit,
                    note=note,
                )
            )
    return out


def run() -> list[dict[str, Any]]:
    with (
        common.throwaway_database("rls_on") as on_url,
        common.throwaway_database("rls_off") as off_url,
    ):
        tables = disable_rls(off_url)
        assert tables, "no table has row-level security: nothing to compare"
        samples = common.run_async(_measure(on_url, off_url))
    return rows(samples)
