"""Reports over one app's data: SQL over conversation_metrics (one row per conversation, kept by
triggers: replyhq.messenger.models), conversation_ratings and messages, each query bounded by
the app and a time range on an index (ix_conversation_metrics_created / _closed,
ix_conversation_ratings_created, ix_messages_app_created). Periods are days or ISO weeks in the
app's time zone. Everything runs in the caller's tenant transaction.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.accounts import team
from replyhq.errors import BadRequest
from replyhq.messenger import service as messenger
from replyhq.reports.schemas import (
    AgentRow,
    Csat,
    Durations,
    Grouping,
    HourCount,
    Period,
    Report,
)

MAX_DAYS = 366

_DURATIONS = """
    count(*) FILTER (WHERE {done}) AS {name}_count,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM {span}))
        FILTER (WHERE {done}) AS {name}_median,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM {span}))
        FILTER (WHERE {done}) AS {name}_p90"""

FIRST_RESPONSE = _DURATIONS.format(
    name="fr", done="first_response_at IS NOT NULL", span="first_response_at - created_at"
)
RESOLUTION = _DURATIONS.format(name="res", done="true", span="closed_at - created_at")

STARTED = f"""
SELECT date_trunc(:unit, created_at AT TIME ZONE :tz)::date AS period, count(*) AS started,
       {FIRST_RESPONSE}
FROM conversation_metrics
WHERE app_id = :app_id AND created_at >= :start AND created_at < :end
GROUP BY ROLLUP (1)
"""  # noqa: S608 (constant fragments; every value is bound)

CLOSED = f"""
SELECT date_trunc(:unit, closed_at AT TIME ZONE :tz)::date AS period, count(*) AS closed,
       {RESOLUTION}
FROM conversation_metrics
WHERE app_id = :app_id AND closed_at >= :start AND closed_at < :end
GROUP BY ROLLUP (1)
"""  # noqa: S608 (constant fragments; every value is bound)

MESSAGES = """
SELECT date_trunc(:unit, created_at AT TIME ZONE :tz)::date AS period, count(*) AS messages
FROM messages
WHERE app_id = :app_id AND created_at >= :start AND created_at < :end AND kind = 'message'
GROUP BY ROLLUP (1)
"""

RATINGS = """
SELECT date_trunc(:unit, created_at AT TIME ZONE :tz)::date AS period, count(*) AS rated,
       avg(score)::float AS average, count(*) FILTER (WHERE score >= 4) AS satisfied
FROM conversation_ratings
WHERE app_id = :app_id AND created_at >= :start AND created_at < :end
GROUP BY ROLLUP (1)
"""

HOURS = """
SELECT (extract(isodow FROM created_at AT TIME ZONE :tz) - 1)::int AS weekday,
       extract(hour FROM created_at AT TIME ZONE :tz)::int AS hour, count(*) AS conversations
FROM conversation_metrics
WHERE app_id = :app_id AND created_at >= :start AND created_at < :end
GROUP BY 1, 2 ORDER BY 1, 2
"""

AGENT_FIRST = f"""
SELECT first_responder_id AS staff_id, {FIRST_RESPONSE}
FROM conversation_metrics
WHERE app_id = :app_id AND created_at >= :start AND created_at < :end
  AND first_response_at IS NOT NULL
GROUP BY 1
"""  # noqa: S608 (constant fragments; every value is bound)

AGENT_CLOSED = f"""
SELECT closed_assignee_id AS staff_id, count(*) AS closed, {RESOLUTION}
FROM conversation_metrics
WHERE app_id = :app_id AND closed_at >= :start AND closed_at < :end
  AND closed_assignee_id IS NOT NULL
GROUP BY 1
"""  # noqa: S608 (constant fragments; every value is bound)

AGENT_RATINGS = """
SELECT assignee_id AS staff_id, count(*) AS rated, avg(score)::float AS average,
       count(*) FILTER (WHERE score >= 4) AS satisfied
FROM conversation_ratings
WHERE app_id = :app_id AND created_at >= :start AND created_at < :end
  AND assignee_id IS NOT NULL
GROUP BY 1
"""


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def _durations(row: dict[str, Any] | None, name: str) -> Durations:
    if row is None:
        return Durations(count=0, median=None, p90=None)
    return Durations(
        count=int(row[f"{name}_count"] or 0),
        median=_seconds(row[f"{name}_median"]),
        p90=_seconds(row[f"{name}_p90"]),
    )


def _csat(row: dict[str, Any] | None) -> Csat:
    if row is None or not row["rated"]:
        return Csat(count=0, average=None, satisfied_percent=None)
    return Csat(
        count=int(row["rated"]),
        average=round(float(row["average"]), 2),
        satisfied_percent=round(100 * int(row["satisfied"]) / int(row["rated"]), 1),
    )


def periods(start: date, end: date, group: Grouping) -> list[date]:
    first = start - timedelta(days=start.weekday()) if group == "week" else start
    step = timedelta(days=7 if group == "week" else 1)
    out = []
    while first <= end:
        out.append(first)
        first += step
    return out


def check_range(start: date, end: date) -> None:
    if end < start:
        raise BadRequest(
            "end is before start.",
            code="VALIDATION_ERROR",
            details=[{"field": "end", "reason": "must be on or after start"}],
        )
    if (end - start).days + 1 > MAX_DAYS:
        raise BadRequest(
            f"A report covers at most {MAX_DAYS} days.",
            code="VALIDATION_ERROR",
            details=[{"field": "end", "reason": f"at most {MAX_DAYS} days after start"}],
        )


async def _rows(session: AsyncSession, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in (await session.execute(text(sql), params)).mappings()]


def _by_period(rows: list[dict[str, Any]]) -> tuple[dict[date, dict[str, Any]], dict[str, Any]]:
    """Rows keyed by period, and the ROLLUP's total row (period NULL)."""
    keyed = {r["period"]: r for r in rows if r["period"] is not None}
    total = next((r for r in rows if r["period"] is None), None)
    return keyed, total or {}


async def build_report(
    session: AsyncSession, app_id: uuid.UUID, start: date, end: date, group: Grouping
) -> Report:
    check_range(start, end)
    zone_name = (await messenger.get_settings(session, app_id)).timezone
    zone = ZoneInfo(zone_name)
    params = {
        "app_id": app_id,
        "tz": zone_name,
        "unit": group,
        "start": datetime.combine(start, time(), tzinfo=zone),
        "end": datetime.combine(end + timedelta(days=1), time(), tzinfo=zone),
    }
    started, started_total = _by_period(await _rows(session, STARTED, params))
    closed, closed_total = _by_period(await _rows(session, CLOSED, params))
    messages, messages_total = _by_period(await _rows(session, MESSAGES, params))
    ratings, ratings_total = _by_period(await _rows(session, RATINGS, params))

    def period(
        key: date | None,
        s: dict[str, Any] | None,
        c: dict[str, Any] | None,
        m: dict[str, Any] | None,
        r: dict[str, Any] | None,
    ) -> Period:
        return Period(
            period=key or start,
            new_conversations=int((s or {}).get("started") or 0),
            messages=int((m or {}).get("messages") or 0),
            closed=int((c or {}).get("closed") or 0),
            first_response=_durations(s or None, "fr"),
            resolution=_durations(c or None, "res"),
            csat=_csat(r or None),
        )

    series = [
        period(p, started.get(p), closed.get(p), messages.get(p), ratings.get(p))
        for p in periods(start, end, group)
    ]
    totals = period(None, started_total, closed_total, messages_total, ratings_total)
    hours = [HourCount(**r) for r in await _rows(session, HOURS, params)]
    return Report(
        start=start,
        end=end,
        group=group,
        timezone=zone_name,
        totals=totals,
        series=series,
        busiest_hours=hours,
        agents=await _agents(session, app_id, params),
    )


async def _agents(
    session: AsyncSession, app_id: uuid.UUID, params: dict[str, Any]
) -> list[AgentRow]:
    rows: dict[uuid.UUID, dict[str, dict[str, Any]]] = defaultdict(dict)
    for kind, sql in (("first", AGENT_FIRST), ("closed", AGENT_CLOSED), ("csat", AGENT_RATINGS)):
        for row in await _rows(session, sql, params):
            rows[row["staff_id"]][kind] = row
    members = {m.id: m for m in await team.list_team(session, app_id)}
    out = []
    for staff_id, parts in rows.items():
        member = members.get(staff_id)  # None: the app's secret key (author id = the app's id)
        first, closing = parts.get("first"), parts.get("closed")
        out.append(
            AgentRow(
                staff_id=staff_id,
                name=member.name if member else ("API" if staff_id == app_id else None),
                email=member.email if member else None,
                first_responses=int(first["fr_count"]) if first else 0,
                first_response=_durations(first, "fr"),
                closed=int(closing["closed"]) if closing else 0,
                resolution=_durations(closing, "res"),
                csat=_csat(parts.get("csat")),
            )
        )
    out.sort(key=lambda a: (-(a.first_responses + a.closed), a.name or "", str(a.staff_id)))
    return out


CSV_COLUMNS = (
    "period",
    "new_conversations",
    "messages",
    "closed",
    "first_response_count",
    "first_response_median_seconds",
    "first_response_p90_seconds",
    "resolution_count",
    "resolution_median_seconds",
    "resolution_p90_seconds",
    "csat_count",
    "csat_average",
    "csat_satisfied_percent",
)


def _blank(value: object) -> object:
    return "" if value is None else value


def report_csv(report: Report) -> str:
    """The series, one row per period, and a final `total` row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for label, p in [*((str(p.period), p) for p in report.series), ("total", report.totals)]:
        writer.writerow(
            [
                label,
                p.new_conversations,
                p.messages,
                p.closed,
                p.first_response.count,
                _blank(p.first_response.median),
                _blank(p.first_response.p90),
                p.resolution.count,
                _blank(p.resolution.median),
                _blank(p.resolution.p90),
                p.csat.count,
                _blank(p.csat.average),
                _blank(p.csat.satisfied_percent),
            ]
        )
    return out.getvalue()
