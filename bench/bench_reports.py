"""Reports (replyhq.reports) over 90 days of an app with 100,000 conversations.

The data: 100,000 conversations spread over 90 days (1,000 end users, 10 agents), three messages
each (the end user, an agent's reply 30 s to 1 h later, the end user again), 80% closed 5 min to
2 days after they started, 30% of the closings rated; plus a second app with 10,000 conversations
(its rows must cost the first nothing).
Rows are inserted by bulk SQL, so the triggers of migration 0060 fill conversation_metrics as
they do for real traffic; the rollups' triggers (0080) are off during the load and the rollups
rebuilt after it, as docs/reports.md says to do for a bulk load of history. Then: the time to
rebuild the app's rollups from scratch (what a time zone change costs), and how far the
rollups' percentiles are from the exact ones (percentile_cont over every conversation, the raw
rows) for the whole range and per agent.

Measured in-process (no HTTP): replyhq.reports.service.build_report in a tenant transaction (RLS
applies) for the 90 days, by day and by week, RUNS times each, alternating, p50 and p95; and, as
the baseline, the first-response figures alone computed the way one would without
conversation_metrics (the first agent message of each conversation found in `messages`), run once
between the reports when BENCH_REPORTS_BASELINE=1 (it took over 20 minutes at full size).
Goal: p95 <= 200 ms.

Standalone: `python -m bench.bench_reports` (BENCH_REPORTS_CONVERSATIONS to change the size).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import text

from bench import common
from replyhq.accounts import service as accounts
from replyhq.accounts.permissions import Role
from replyhq.reports import service as reports

CONVERSATIONS = int(os.environ.get("BENCH_REPORTS_CONVERSATIONS", "100000"))
DAYS = 90
RUNS = int(os.environ.get("BENCH_REPORTS_RUNS", "12"))
GOAL_P95_MS = 200.0
# The baseline ran for over 20 minutes on 100,000 conversations on the shared machine (a nested
# loop over messages); off unless BENCH_REPORTS_BASELINE=1.
BASELINE_ON = os.environ.get("BENCH_REPORTS_BASELINE") == "1"

BASELINE = """
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.at - c.created_at)),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM r.at - c.created_at))
FROM conversations c
CROSS JOIN LATERAL (
  SELECT min(m.created_at) AS at FROM messages m
  WHERE m.conversation_id = c.id AND m.sender = 'agent'
) r
WHERE c.app_id = :app_id AND c.created_at >= :start AND c.created_at < :end AND r.at IS NOT NULL
"""


EXACT = """
SELECT who, metric,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY s) AS median,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY s) AS p90
FROM (
  SELECT 'f' AS metric, first_responder_id AS who,
         extract(epoch FROM first_response_at - created_at) AS s
  FROM conversation_metrics
  WHERE app_id = %(app)s AND first_response_at IS NOT NULL
    AND created_at >= %(start)s AND created_at < %(end)s
  UNION ALL
  SELECT 'r', closed_assignee_id, extract(epoch FROM closed_at - created_at)
  FROM conversation_metrics
  WHERE app_id = %(app)s AND closed_at >= %(start)s AND closed_at < %(end)s
) AS d
GROUP BY GROUPING SETS ((metric), (metric, who))
"""


def accuracy(owner_url: str, window: dict[str, Any], report: Any) -> dict[str, float]:
    """The largest relative error of the report's medians and p90s (totals and per agent)
    against percentile_cont over the raw rows; and the time to rebuild the app's rollups."""
    errors: list[float] = []
    with psycopg.connect(common.system_dsn(owner_url), autocommit=True) as connection:
        exact = connection.execute(
            EXACT, {"app": window["app_id"], "start": window["start"], "end": window["end"]}
        ).fetchall()
        began = time.perf_counter()
        connection.execute("SELECT replyhq_reports_rebuild(%s)", (window["app_id"],))
        rebuild_ms = (time.perf_counter() - began) * 1000
    agents = {a.staff_id: a for a in report.agents}
    for who, metric, median, p90 in exact:
        row = report.totals if who is None else agents[who]
        got = row.first_response if metric == "f" else row.resolution
        for value, want in ((got.median, median), (got.p90, p90)):
            assert value is not None
            errors.append(abs(value - want) / want)
    return {"max_error": max(errors), "rebuild_ms": rebuild_ms, "compared": len(errors)}


REPORT_TRIGGERS = (
    ("conversation_metrics", "report_metrics"),
    ("conversation_ratings", "report_ratings"),
    ("messages", "report_messages_inserted"),
)


def report_triggers(owner_url: str, on: bool) -> None:
    """A bulk load of 90 days of history goes around the rollups' triggers, then rebuilds them
    (docs/reports.md: a back-dated row moves an agent's running histogram on every later day)."""
    with psycopg.connect(owner_url.replace("+psycopg", ""), autocommit=True) as connection:
        for table, trigger in REPORT_TRIGGERS:
            state = "ENABLE" if on else "DISABLE"
            connection.execute(f"ALTER TABLE {table} {state} TRIGGER {trigger}")


def fill(owner_url: str, app_id: Any, staff: list[Any], conversations: int, end: datetime) -> None:
    report_triggers(owner_url, False)
    with psycopg.connect(common.system_dsn(owner_url), autocommit=True) as connection:
        connection.execute(
            """
            INSERT INTO end_users (id, app_id, external_id)
            SELECT gen_random_uuid(), %(app)s, 'user-' || n FROM generate_series(1, 1000) n
            """,
            {"app": app_id},
        )
        connection.execute(
            """
            INSERT INTO conversations (id, app_id, end_user_id, status, last_seq, created_at,
                                       last_activity_at, updated_at)
            WITH users AS (SELECT array_agg(id) AS ids FROM end_users WHERE app_id = %(app)s)
            SELECT gen_random_uuid(), %(app)s, users.ids[1 + s.n %% 1000], 'open', 3, t, t, t
            FROM (SELECT n, %(end)s - random() * interval '%(days)s days' AS t
                  FROM generate_series(1, %(n)s) n) s, users
            """,
            {"app": app_id, "n": conversations, "end": end, "days": DAYS},
        )
        connection.execute(
            """
            INSERT INTO messages (id, app_id, conversation_id, seq, client_msg_id, sender,
                                  author_id, body, body_html, created_at)
            SELECT gen_random_uuid(), c.app_id, c.id, k,
                   'bench-' || k, CASE WHEN k = 2 THEN 'agent' ELSE 'user' END,
                   CASE WHEN k = 2 THEN (%(staff)s::uuid[])[1 + floor(random() * %(agents)s)]
                        ELSE c.end_user_id END,
                   'Message', '<p>Message</p>',
                   c.created_at + CASE k
                       WHEN 1 THEN interval '0'
                       WHEN 2 THEN interval '30 seconds' + random() * interval '1 hour'
                       ELSE interval '2 hours' END
            FROM conversations c, generate_series(1, 3) k
            WHERE c.app_id = %(app)s
            ORDER BY c.id, k
            """,
            {"app": app_id, "staff": staff, "agents": len(staff)},
        )
        connection.execute(
            """
            UPDATE conversations
            SET assignee_id = (%(staff)s::uuid[])[1 + floor(random() * %(agents)s)]
            WHERE app_id = %(app)s AND random() < 0.8
            """,
            {"app": app_id, "staff": staff, "agents": len(staff)},
        )
        connection.execute(
            """
            UPDATE conversations
            SET status = 'closed',
                updated_at = created_at + interval '5 minutes' + random() * interval '2 days'
            WHERE app_id = %(app)s AND assignee_id IS NOT NULL
            """,
            {"app": app_id},
        )
        connection.execute(
            """
            INSERT INTO conversation_ratings (id, app_id, conversation_id, closing, score,
                                              assignee_id, created_at)
            SELECT gen_random_uuid(), app_id, conversation_id, closings,
                   1 + floor(random() * 5), closed_assignee_id, closed_at + interval '1 minute'
            FROM conversation_metrics
            WHERE app_id = %(app)s AND closed_at IS NOT NULL AND random() < 0.3
            """,
            {"app": app_id},
        )
    report_triggers(owner_url, True)
    with psycopg.connect(common.system_dsn(owner_url), autocommit=True) as connection:
        began = time.perf_counter()
        connection.execute("SELECT replyhq_reports_rebuild(%s)", (app_id,))
        print(f"  rollups rebuilt in {time.perf_counter() - began:.1f} s", flush=True)
    # The triggers rewrote each metrics row two or three times: what autovacuum would do (as the
    # tables' owner: the system role may not vacuum them).
    with psycopg.connect(owner_url.replace("+psycopg", ""), autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")


async def _staff(db: Any, app_id: Any, count: int) -> list[Any]:
    ids = []
    async with db.tenant_session(app_id) as session:
        for index in range(count):
            member = await accounts.create_staff(
                session,
                app_id,
                email=f"agent{index}@bench.example",
                password_hash="x",
                role=Role.AGENT,
                name=f"Agent {index}",
            )
            ids.append(member.id)
    return ids


async def _measure(owner_url: str) -> dict[str, list[float]]:
    db = common.database(owner_url, pool_size=2)
    try:
        tenant = await common.create_tenant(db, "Reports", rounds=4)
        other = await common.create_tenant(db, "Other", rounds=4)
        end = datetime.now(UTC).replace(microsecond=0)
        staff = await _staff(db, tenant.id, 10)
        other_staff = await _staff(db, other.id, 2)
        started = time.perf_counter()
        fill(owner_url, tenant.id, staff, CONVERSATIONS, end)
        fill(owner_url, other.id, other_staff, CONVERSATIONS // 10, end)
        print(f"  data: {time.perf_counter() - started:.0f} s", flush=True)
        last = end.date()
        first = last - timedelta(days=DAYS - 1)
        window = {
            "app_id": tenant.id,
            "start": datetime.combine(first, datetime.min.time(), tzinfo=UTC),
            "end": datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=UTC),
        }
        samples: dict[str, list[float]] = {"day": [], "week": [], "baseline": []}
        async with db.tenant_session(tenant.id) as session:
            whole = await reports.build_report(session, tenant.id, first, last, "day")
        checked = accuracy(owner_url, window, whole)
        print(f"  accuracy and rebuild: {checked}", flush=True)
        samples["max_error"] = [checked["max_error"]]
        samples["rebuild_ms"] = [checked["rebuild_ms"]]
        for run in range(RUNS + 1):
            # The baseline is slow: every third round only, still between reports.
            kinds = ("day", "week", "baseline") if run == 1 and BASELINE_ON else ("day", "week")
            for kind in kinds:
                began = time.perf_counter()
                async with db.tenant_session(tenant.id) as session:
                    if kind == "baseline":
                        await session.execute(text(BASELINE), window)
                    else:
                        built = await reports.build_report(
                            session,
                            tenant.id,
                            first,
                            last,
                            kind,  # type: ignore[arg-type]
                        )
                        assert built.totals.new_conversations == CONVERSATIONS, built.totals
                if run:  # the first round warms caches
                    samples[kind].append((time.perf_counter() - began) * 1000)
        return samples
    finally:
        await db.dispose()


def rows(samples: dict[str, list[float]]) -> list[dict[str, Any]]:
    out = []
    baseline = common.median(samples["baseline"])
    for kind in ("day", "week"):
        p95 = common.percentile(samples[kind], 95)
        p50 = common.median(samples[kind])
        name = f"reports 90 days / {CONVERSATIONS:,} conversations by {kind}"
        out.append(common.row(name, "p50", p50, "ms"))
        out.append(
            common.row(
                name,
                "p95",
                p95,
                "ms",
                goal=f"<= {GOAL_P95_MS:.0f} ms",
                ok=p95 <= GOAL_P95_MS,
                note="whole report: one rollup statement + settings + team",
            )
        )
    out.append(
        common.row(
            "rollup percentiles vs exact (totals and per agent)",
            "max relative error",
            samples["max_error"][0] * 100,
            "%",
            note="median and p90 of first-response and resolution times",
        )
    )
    out.append(
        common.row(
            "rebuild of the app's rollups (a time zone change)",
            "time",
            samples["rebuild_ms"][0],
            "ms",
        )
    )
    if not samples["baseline"]:
        return out
    out.append(
        common.row(
            "first response from messages (no metrics table)",
            "p50",
            baseline,
            "ms",
            note="baseline: first-response median/p90 alone, from messages",
        )
    )
    day = common.median(samples["day"])
    out.append(
        common.row(
            "whole report by day vs first-response-only baseline",
            "ratio p50",
            day / baseline if baseline else float("nan"),
            "x",
            baseline=baseline,
            ratio=day / baseline if baseline else None,
        )
    )
    return out


def run() -> list[dict[str, Any]]:
    with common.throwaway_database("reports") as owner_url:
        return rows(common.run_async(_measure(owner_url)))


if __name__ == "__main__":
    for line in run():
        print(line)
