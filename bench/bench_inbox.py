"""The agents' inbox on an app with 1,000 conversations and 20,000 messages.

Measures, server-side (inside the ASGI app, no network), `GET /admin/api/conversations` with a
staff token: p50/p99 latency and SQL statements per request; then the same page data fetched the
N+1 way (one query for the page, then the end user, last message and unread count of each
conversation one by one), as the ratio the ROADMAP (1.1) asks about. Goal: p99 <= 10 ms.
The service rows compare the page of 50 through the SQLAlchemy session into models
(summaries.inbox) with the route's way (summaries.inbox_json: one statement of its own, rows
straight to JSON). Statements are counted at the driver, so those run without a session count too.

Runs against DATABASE_URL / REDIS_URL when set (a throw-away database is created and dropped),
otherwise against embedded servers. Standalone: `python -m bench.bench_inbox`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
from asgi_lifespan import LifespanManager
from psycopg import sql
from sqlalchemy import and_, func, select, text
from sqlalchemy.engine import make_url
from starlette.types import ASGIApp, Receive, Scope, Send

from bench import common
from replyhq import embedded
from replyhq.accounts import service as accounts
from replyhq.accounts.permissions import Role
from replyhq.app import create_app
from replyhq.apps import service as apps
from replyhq.db.migrate import upgrade
from replyhq.messaging import service as messaging
from replyhq.messaging import summaries
from replyhq.messaging.models import Conversation, Message, ReadMarker
from replyhq.runtime import Runtime
from replyhq.settings import Settings
from replyhq.users.models import EndUser

CONVERSATIONS = 1000
MESSAGES_EACH = 20
PAGE = 50
GOAL_P99_MS = 10.0


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def _database(base_url: str) -> Iterator[str]:
    name = f"replyhq_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_plain(base_url), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _plain(make_url(base_url).set(database=name).render_as_string(False))
    finally:
        with psycopg.connect(_plain(base_url), autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


class ServerTimer:
    """ASGI wrapper: the time from a request's arrival to the last byte of its response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.last = (0.0, 0.0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started, cpu = time.perf_counter(), time.process_time()
        await self.app(scope, receive, send)
        self.last = (time.perf_counter() - started, time.process_time() - cpu)


@contextlib.contextmanager
def _statements(runtime: Runtime) -> Iterator[list[str]]:
    """Statements sent while the block runs, seen at the driver (psycopg's cursors): also those
    run without a SQLAlchemy session (Database.tenant_statement, which the inbox route uses)."""
    seen: list[str] = []
    execute = psycopg.AsyncCursor.execute

    async def recording(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        seen.append(str(query))
        return await execute(self, query, params, **kwargs)

    psycopg.AsyncCursor.execute = recording  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        psycopg.AsyncCursor.execute = execute  # type: ignore[method-assign]


async def _seed(runtime: Runtime, app_id: uuid.UUID) -> None:
    """1,000 end users with one conversation each, 20 messages per conversation (alternating
    user and agent, the last from the user)."""
    params = {"app": app_id, "n": CONVERSATIONS, "m": MESSAGES_EACH}
    async with runtime.db.tenant_session(app_id) as session:
        await session.execute(
            text(
                "INSERT INTO end_users (id, app_id, external_id, name, email) "
                "SELECT gen_random_uuid(), :app, 'user-' || g, 'User ' || g, "
                "'user' || g || '@example.com' FROM generate_series(1, :n) g"
            ),
            params,
        )
        await session.execute(
            text(
                "INSERT INTO conversations (id, app_id, end_user_id, subject, last_seq, "
                "last_activity_at, status) SELECT gen_random_uuid(), :app, u.id, "
                "'About ' || u.name, :m, "
                "now() - (row_number() OVER (ORDER BY u.external_id)) * interval '1 minute', "
                "CASE WHEN random() < 0.2 THEN 'closed' ELSE 'open' END "
                "FROM end_users u WHERE u.app_id = :app"
            ),
            params,
        )
        await session.execute(
            text(
                "INSERT INTO messages (id, app_id, conversation_id, seq, client_msg_id, sender, "
                "body, body_html, created_at) SELECT gen_random_uuid(), :app, c.id, s, 'm-' || s, "
                "CASE WHEN (:m - s) % 2 = 0 THEN 'user' ELSE 'agent' END, "
                "'Message number ' || s, '<p>Message number ' || s || '</p>', "
                "c.last_activity_at - (:m - s) * interval '1 second' "
                "FROM conversations c CROSS JOIN generate_series(1, :m) s WHERE c.app_id = :app"
            ),
            params,
        )
    # Statistics, as autovacuum would gather them on a live database (the owner may ANALYZE).
    with psycopg.connect(_plain(runtime.settings.database_url or ""), autocommit=True) as owner:
        owner.execute("ANALYZE end_users, conversations, messages, read_markers")


async def _naive_inbox(
    runtime: Runtime, app_id: uuid.UUID, reader_id: uuid.UUID, limit: int
) -> list[dict[str, Any]]:
    """The N+1 way: the page, then per conversation its user, last message and unread count."""
    items = []
    async with runtime.db.tenant_session(app_id) as session:
        conversations = (
            await session.scalars(
                select(Conversation)
                .where(Conversation.app_id == app_id)
                .order_by(Conversation.last_activity_at.desc(), Conversation.id.desc())
                .limit(limit)
            )
        ).all()
        for conversation in conversations:
            user = await session.get(EndUser, conversation.end_user_id)
            last = await session.scalar(
                select(Message)
                .where(Message.conversation_id == conversation.id)
                .order_by(Message.seq.desc())
                .limit(1)
            )
            marker = await session.scalar(
                select(ReadMarker.last_read_seq).where(
                    ReadMarker.conversation_id == conversation.id,
                    ReadMarker.reader_type == "agent",
                    ReadMarker.reader_id == reader_id,
                )
            )
            unread = await session.scalar(
                select(func.count())
                .select_from(Message)
                .where(
                    and_(
                        Message.conversation_id == conversation.id,
                        Message.seq > (marker or 0),
                        Message.sender != "agent",
                    )
                )
            )
            items.append({"id": conversation.id, "user": user, "last": last, "unread": unread})
    return items


Timing = tuple[float, float]  # (wall, this process' CPU) seconds


async def _measure(
    runtime: Runtime, work: Callable[[], Awaitable[Timing]], iterations: int, warmup: int
) -> tuple[list[Timing], int]:
    """Per-iteration timings (as `work` reports them) and statements of one iteration."""
    for _ in range(warmup):
        await work()
    with _statements(runtime) as seen:
        await work()
    queries = len(seen)
    return [await work() for _ in range(iterations)], queries


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def _row(name: str, timings: list[Timing], queries: int, **extra: Any) -> dict[str, Any]:
    wall = [w for w, _ in timings]
    cpu = [c for _, c in timings]
    return {
        "name": name,
        "iterations": len(timings),
        "p50_ms": round(statistics.median(wall) * 1000, 3),
        "p99_ms": round(_p99(wall) * 1000, 3),
        "cpu_p50_ms": round(statistics.median(cpu) * 1000, 3),
        "queries": queries,
        "load_average": round(os.getloadavg()[0], 2),
        **extra,
    }


def _median_wall(timings: list[Timing]) -> float:
    return statistics.median(w for w, _ in timings)


@contextlib.asynccontextmanager
async def _app(database_url: str, redis_url: str) -> AsyncIterator[tuple[Any, Runtime]]:
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=f"rhqbench:{uuid.uuid4().hex}:",
        bcrypt_rounds=4,
        rate_limit_enabled=False,
        log_level="WARNING",
    )
    upgrade(database_url, settings)
    application = create_app(settings)
    async with LifespanManager(application):
        yield application, application.state.runtime


async def _bench(database_url: str, redis_url: str) -> list[dict[str, Any]]:
    async with _app(database_url, redis_url) as (application, runtime):
        async with runtime.db.system_session() as session:
            app, _ = await apps.create_app(session, "Bench", rounds=4)
        password = "bench password 1"
        async with runtime.db.tenant_session(app.id) as session:
            staff = await accounts.create_staff(
                session,
                app.id,
                email="agent@bench.local",
                password_hash=accounts.hash_password(password, 4),
                role=Role.AGENT,
                name="Agent",
            )
        await _seed(runtime, app.id)

        timer = ServerTimer(application)
        transport = httpx.ASGITransport(app=timer)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            login = await client.post(
                "/admin/login", json={"email": "agent@bench.local", "password": password}
            )
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

            async def http_page(params: dict[str, Any]) -> Callable[[], Awaitable[Timing]]:
                async def once() -> Timing:
                    response = await client.get(
                        "/admin/api/conversations", headers=headers, params=params
                    )
                    assert response.status_code == 200, response.text
                    return timer.last

                return once

            reader = messaging.Participant("agent", staff.id, "Agent")

            def service_page(limit: int) -> Callable[[], Awaitable[Timing]]:
                async def once() -> Timing:
                    started, cpu = time.perf_counter(), time.process_time()
                    async with runtime.db.tenant_session(app.id) as session:
                        page = await summaries.inbox(session, app.id, reader, limit=limit)
                    assert len(page.items) == min(limit, CONVERSATIONS)
                    return time.perf_counter() - started, time.process_time() - cpu

                return once

            def json_page(limit: int) -> Callable[[], Awaitable[Timing]]:
                """What the route runs: one statement of its own, rows straight to JSON."""

                async def once() -> Timing:
                    started, cpu = time.perf_counter(), time.process_time()
                    body = await summaries.inbox_json(runtime.db, app.id, reader, limit=limit)
                    assert body.count(b'"unread_count"') == min(limit, CONVERSATIONS)
                    return time.perf_counter() - started, time.process_time() - cpu

                return once

            def naive_page(limit: int) -> Callable[[], Awaitable[Timing]]:
                async def once() -> Timing:
                    started, cpu = time.perf_counter(), time.process_time()
                    items = await _naive_inbox(runtime, app.id, staff.id, limit)
                    assert len(items) == min(limit, CONVERSATIONS)
                    return time.perf_counter() - started, time.process_time() - cpu

                return once

            rows = []
            for label, params in (
                (f"HTTP inbox, page of {PAGE}", {"limit": PAGE}),
                ("HTTP inbox, page of 100, open only", {"limit": 100, "status": "open"}),
                ("HTTP inbox, page of 20", {"limit": 20}),
            ):
                timings, queries = await _measure(runtime, await http_page(params), 300, 30)
                row = _row(label, timings, queries, goal_p99_ms=GOAL_P99_MS)
                rows.append({**row, "meets_goal": row["p99_ms"] <= GOAL_P99_MS})

            ours, ours_q = await _measure(runtime, service_page(PAGE), 200, 20)
            as_json, as_json_q = await _measure(runtime, json_page(PAGE), 200, 20)
            naive, naive_q = await _measure(runtime, naive_page(PAGE), 30, 3)
            rows.append(_row(f"service inbox, page of {PAGE}", ours, ours_q))
            rows.append(
                _row(
                    f"service inbox_json, page of {PAGE}",
                    as_json,
                    as_json_q,
                    faster_x=round(_median_wall(ours) / _median_wall(as_json), 2),
                )
            )
            rows.append(
                _row(
                    f"N+1 inbox, page of {PAGE}",
                    naive,
                    naive_q,
                    slower_x=round(_median_wall(naive) / _median_wall(ours), 1),
                )
            )

            all_ours, all_ours_q = await _measure(runtime, service_page(CONVERSATIONS), 20, 2)
            all_naive, all_naive_q = await _measure(runtime, naive_page(CONVERSATIONS), 3, 1)
            rows.append(_row(f"service inbox, all {CONVERSATIONS}", all_ours, all_ours_q))
            rows.append(
                _row(
                    f"N+1 inbox, all {CONVERSATIONS}",
                    all_naive,
                    all_naive_q,
                    slower_x=round(_median_wall(all_naive) / _median_wall(all_ours), 1),
                )
            )
        return [
            {
                "bench": "inbox",
                "conversations": CONVERSATIONS,
                "messages": CONVERSATIONS * MESSAGES_EACH,
                **row,
            }
            for row in rows
        ]


def measure() -> list[dict[str, Any]]:
    """One dict per measurement, with everything measured."""
    base_db, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    with tempfile.TemporaryDirectory(prefix="replyhq-bench-") as tmp:
        started = embedded.start(Path(tmp), need_postgres=not base_db, need_redis=not redis_url)
        try:
            with _database(base_db or started.database_url) as database_url:
                return asyncio.run(_bench(database_url, redis_url or started.redis_url))
        finally:
            started.stop()


def table_rows(measured: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The measurements as rows of `python -m bench`'s table: p50 and p99 of each, the N+1
    ways' p50 as a ratio to the one-query way's, the goal on the HTTP pages' p99."""
    out: list[dict[str, Any]] = []
    ours: dict[str, float] = {}
    for m in measured:
        note = (
            f"CPU p50 {m['cpu_p50_ms']:.2f} ms, {m['queries']} SQL statements, "
            f"{m['iterations']} requests, load average {m['load_average']}"
        )
        baseline: float | None = None
        ratio: float | None = None
        if m["name"].startswith("service inbox_json"):  # to the session and models' way
            baseline = ours[m["name"].split(", ", 1)[1]]
            ratio = m["p50_ms"] / baseline
        elif m["name"].startswith("service"):
            ours[m["name"].split(", ", 1)[1]] = m["p50_ms"]
        elif m["name"].startswith("N+1"):
            baseline = ours[m["name"].split(", ", 1)[1]]
            ratio = m["p50_ms"] / baseline
        out.append(
            common.row(
                "inbox",
                f"{m['name']}: p50",
                m["p50_ms"],
                "ms",
                baseline=baseline,
                ratio=ratio,
                note=note,
            )
        )
        goal = m.get("goal_p99_ms")
        out.append(
            common.row(
                "inbox",
                f"{m['name']}: p99",
                m["p99_ms"],
                "ms",
                goal=None if goal is None else f"<= {goal:g} ms",
                ok=None if goal is None else m["p99_ms"] <= goal,
                note=note,
            )
        )
    return out


def run() -> list[dict[str, Any]]:
    """The bench harness' entry point: rows of its table."""
    return table_rows(measure())


def _print(rows: list[dict[str, Any]]) -> None:
    load = rows[0]["load_average"] if rows else 0
    print(f"server-side timings; load average {load} on {os.cpu_count()} cores")
    print(f"{'measurement':42} {'p50 ms':>9} {'p99 ms':>9} {'CPU ms':>8} {'queries':>8}  notes")
    for row in rows:
        notes = []
        if "slower_x" in row:
            notes.append(f"{row['slower_x']}x slower than one query")
        if "meets_goal" in row:
            notes.append(
                f"goal p99 <= {row['goal_p99_ms']} ms: {'met' if row['meets_goal'] else 'MISSED'}"
            )
        print(
            f"{row['name']:42} {row['p50_ms']:9.2f} {row['p99_ms']:9.2f} "
            f"{row['cpu_p50_ms']:8.2f} {row['queries']:8d}  " + "; ".join(notes)
        )


if __name__ == "__main__":
    results = measure()
    _print(results)
    out = Path(__file__).parent / "results" / "bench_inbox.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"written to {out}")
