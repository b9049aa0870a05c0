"""The reports' rollups (migration 0080) stay right as data changes: after messages, first
responses, closings, reopenings, ratings, deletions and a time zone change, the rows the triggers
kept equal the rows rebuilt from scratch, and the report read from them equals the figures
computed from the raw rows (percentile_cont over every conversation) within the documented
bucket width."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from replyhq.runtime import Runtime
from tests.conftest import MakeTenant, Tenant, identify, start_conversation
from tests.staff import Staff, secret, signed_in

URL = "/admin/api/reports"

# The figures as computed before the rollups: straight from the raw rows, exact percentiles.
RAW = """
WITH m AS (SELECT * FROM conversation_metrics WHERE app_id = :app),
fr AS (SELECT extract(epoch FROM first_response_at - created_at) AS s, first_responder_id AS who
       FROM m WHERE first_response_at IS NOT NULL
         AND (created_at AT TIME ZONE :tz)::date BETWEEN :first AND :last),
res AS (SELECT extract(epoch FROM closed_at - created_at) AS s, closed_assignee_id AS who
        FROM m WHERE closed_at IS NOT NULL
          AND (closed_at AT TIME ZONE :tz)::date BETWEEN :first AND :last)
SELECT
  (SELECT count(*) FROM m WHERE (created_at AT TIME ZONE :tz)::date BETWEEN :first AND :last)
    AS started,
  (SELECT count(*) FROM messages WHERE app_id = :app AND kind = 'message'
     AND (created_at AT TIME ZONE :tz)::date BETWEEN :first AND :last) AS messages,
  (SELECT count(*) FROM fr) AS fr_count,
  (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) FROM fr) AS fr_median,
  (SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY s) FROM fr) AS fr_p90,
  (SELECT count(*) FROM res) AS res_count,
  (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) FROM res) AS res_median,
  (SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY s) FROM res) AS res_p90,
  (SELECT count(*) FROM conversation_ratings WHERE app_id = :app
     AND (created_at AT TIME ZONE :tz)::date BETWEEN :first AND :last) AS rated,
  (SELECT avg(score)::float FROM conversation_ratings WHERE app_id = :app
     AND (created_at AT TIME ZONE :tz)::date BETWEEN :first AND :last) AS csat_average
"""

RAW_HOURS = """
SELECT (extract(isodow FROM created_at AT TIME ZONE :tz) - 1)::int AS weekday,
       extract(hour FROM created_at AT TIME ZONE :tz)::int AS hour, count(*) AS conversations
FROM conversation_metrics
WHERE app_id = :app AND (created_at AT TIME ZONE :tz)::date BETWEEN :first AND :last
GROUP BY 1, 2 ORDER BY 1, 2
"""


async def _rollups(runtime: Runtime, app_id: uuid.UUID) -> dict[Any, Any]:
    """The app's rollup rows, normalised: empty buckets and rows dropped, sums rounded."""
    out: dict[Any, Any] = {}
    async with runtime.db.system_session() as session:
        rows = await session.execute(
            text(
                "SELECT day, metric, NULL, buckets, counts, sums, squares "
                "FROM report_day_histograms WHERE app_id = :app UNION ALL "
                "SELECT day, metric, staff_id, buckets, counts, sums, squares "
                "FROM report_agent_histograms WHERE app_id = :app"
            ),
            {"app": app_id},
        )
        previous: dict[Any, Any] = {}
        for day, metric, staff, buckets, counts, sums, squares in sorted(
            rows, key=lambda r: (r[1], str(r[2]), r[0])
        ):
            kept = {
                b: (n, round(s, 3), round(q, 1))
                for b, n, s, q in zip(buckets, counts, sums, squares, strict=True)
                if n
            }
            # An agent's running row that says no more than the day before is no information
            # (the triggers keep a day whose values were all taken away; a rebuild has none).
            if kept and (staff is None or previous.get((metric, staff)) != kept):
                out[(day, metric, staff)] = kept
            previous[(metric, staff)] = kept
        # A day's message count is the sum of its rows (migration 0200: how it is split among
        # them depends on which transactions ran at once).
        messages = await session.execute(
            text(
                "SELECT day, sum(messages) FROM report_day_messages WHERE app_id = :app "
                "GROUP BY day HAVING sum(messages) <> 0"
            ),
            {"app": app_id},
        )
        out.update({(day, "messages"): n for day, n in messages})
    return out


async def _rebuilt(runtime: Runtime, app_id: uuid.UUID) -> dict[Any, Any]:
    async with runtime.db.system_session() as session:
        await session.execute(text("SELECT replyhq_reports_rebuild(:app)"), {"app": app_id})
    return await _rollups(runtime, app_id)


async def _check_against_raw(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant, zone: str = "UTC"
) -> dict[str, Any]:
    """The report for yesterday..tomorrow (the app's days) against the raw rows' figures."""
    kept = await _rollups(runtime, tenant.id)
    assert kept == await _rebuilt(runtime, tenant.id)  # the triggers missed nothing
    today = datetime.now(UTC).date()
    first, last = today - timedelta(days=2), today + timedelta(days=2)
    params = {"start": str(first), "end": str(last)}
    report = (await client.get(URL, headers=secret(tenant), params=params)).json()
    assert report["timezone"] == zone
    bound = {"app": tenant.id, "tz": zone, "first": first, "last": last}
    async with runtime.db.system_session() as session:
        raw = dict((await session.execute(text(RAW), bound)).mappings().one())
        hours = [dict(r) for r in (await session.execute(text(RAW_HOURS), bound)).mappings()]
    totals = report["totals"]
    assert totals["new_conversations"] == raw["started"]
    assert sum(p["new_conversations"] for p in report["series"]) == raw["started"]
    assert totals["messages"] == raw["messages"]
    assert sum(p["messages"] for p in report["series"]) == raw["messages"]
    assert totals["first_response"]["count"] == raw["fr_count"]
    assert totals["resolution"]["count"] == totals["closed"] == raw["res_count"]
    assert totals["csat"]["count"] == raw["rated"]
    if raw["rated"]:
        assert totals["csat"]["average"] == round(raw["csat_average"], 2)
    for name in ("fr_median", "fr_p90", "res_median", "res_p90"):
        figure = totals["first_response" if name.startswith("fr") else "resolution"]
        got, want = figure[name.split("_")[1]], raw[name]
        if want is None:
            assert got is None
        else:  # within the bucket's width (2^(1/16) of 1 + seconds), and 0.1 s of rounding
            assert abs(got - float(want)) <= 0.045 * (1 + float(want)) + 0.1, (name, got, want)
    assert report["busiest_hours"] == hours
    return report


async def _reply(client: httpx.AsyncClient, staff: Staff, cid: object) -> None:
    sent = await client.post(
        f"/admin/api/conversations/{cid}/messages",
        headers=staff.auth(),
        json={"body": "On it", "client_msg_id": uuid.uuid4().hex},
    )
    assert sent.status_code == 201, sent.text


async def _patch(client: httpx.AsyncClient, staff: Staff, cid: object, **change: object) -> None:
    patched = await client.patch(
        f"/admin/api/conversations/{cid}", headers=staff.auth(), json=change
    )
    assert patched.status_code == 200, patched.text


async def _user_writes(client: httpx.AsyncClient, tenant: Tenant, device: str, cid: object) -> None:
    sent = await client.post(
        f"/v1/conversations/{cid}/messages",
        headers=tenant.sdk(device),
        json={"body": "Still there?", "client_msg_id": uuid.uuid4().hex},
    )
    assert sent.status_code == 201, sent.text


async def _rate(
    client: httpx.AsyncClient, tenant: Tenant, device: str, cid: object, score: int
) -> None:
    rated = await client.post(
        f"/v1/conversations/{cid}/rating", headers=tenant.sdk(device), json={"score": score}
    )
    assert rated.status_code == 201, rated.text


async def _system(runtime: Runtime, sql: str, **params: object) -> None:
    async with runtime.db.system_session() as session:
        await session.execute(text(sql), params)


async def test_rollups_follow_messages_closings_reopenings_ratings_and_deletions(
    client: httpx.AsyncClient, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant, other = await make_tenant(), await make_tenant()
    ann = await signed_in(runtime, client, tenant, "AGENT", name="Ann")
    bob = await signed_in(runtime, client, tenant, "AGENT", name="Bob")
    conversations = {}
    for device in ("d1", "d2", "d3", "d4"):
        await identify(client, tenant, device)
        conversations[device] = (await start_conversation(client, tenant, device))["id"]
    await identify(client, other, "o1")
    await start_conversation(client, other, "o1")  # another app's rows change nothing here
    report = await _check_against_raw(client, runtime, tenant)
    assert (report["totals"]["new_conversations"], report["totals"]["messages"]) == (4, 4)

    # First responses (a second reply changes nothing), an end user's follow-up.
    await _reply(client, ann, conversations["d1"])
    await _reply(client, bob, conversations["d2"])
    await _reply(client, ann, conversations["d2"])
    await _reply(client, ann, conversations["d3"])
    await _user_writes(client, tenant, "d1", conversations["d1"])
    report = await _check_against_raw(client, runtime, tenant)
    assert report["totals"]["first_response"]["count"] == 3
    agents = {a["name"]: a["first_responses"] for a in report["agents"]}
    assert agents == {"Ann": 2, "Bob": 1}

    # Closings (assigned and not), a rating; a reopening by the end user's message and by an
    # agent; a closing again, rated again.
    await _patch(client, ann, conversations["d1"], assignee_id=str(ann.id))
    await _patch(client, ann, conversations["d1"], status="closed")
    await _rate(client, tenant, "d1", conversations["d1"], 5)
    await _patch(client, bob, conversations["d2"], assignee_id=str(bob.id))
    await _patch(client, bob, conversations["d2"], status="closed")
    await _patch(client, ann, conversations["d3"], status="closed")
    report = await _check_against_raw(client, runtime, tenant)
    assert report["totals"]["closed"] == 3
    assert report["totals"]["csat"]["count"] == 1
    await _user_writes(client, tenant, "d2", conversations["d2"])  # reopens it
    await _patch(client, ann, conversations["d3"], status="open")
    report = await _check_against_raw(client, runtime, tenant)
    assert report["totals"]["closed"] == 1
    await _patch(client, bob, conversations["d2"], status="closed")
    await _rate(client, tenant, "d2", conversations["d2"], 2)
    report = await _check_against_raw(client, runtime, tenant)
    assert report["totals"]["closed"] == 2
    assert report["totals"]["csat"] == {"count": 2, "average": 3.5, "satisfied_percent": 50.0}
    assert {a["name"]: a["closed"] for a in report["agents"]} == {"Ann": 1, "Bob": 1}

    # Rows moved in time (as an import or a correction would), then deleted: a message, a
    # rating, a whole conversation (its metrics, messages and rating go by cascade).
    await _system(
        runtime,
        "UPDATE messages SET created_at = created_at - interval '1 day' "
        "WHERE conversation_id = :id AND seq = 1",
        id=conversations["d3"],
    )
    await _system(
        runtime,
        "UPDATE conversation_metrics SET created_at = created_at - interval '30 minutes', "
        "closed_at = closed_at + interval '3 hours' WHERE conversation_id = :id",
        id=conversations["d1"],
    )
    await _check_against_raw(client, runtime, tenant)
    await _system(
        runtime,
        "DELETE FROM messages WHERE conversation_id = :id AND seq = 1",
        id=conversations["d4"],
    )
    await _system(
        runtime,
        "DELETE FROM conversation_ratings WHERE conversation_id = :id",
        id=conversations["d2"],
    )
    report = await _check_against_raw(client, runtime, tenant)
    assert report["totals"]["csat"]["count"] == 1
    await _system(runtime, "DELETE FROM conversations WHERE id = :id", id=conversations["d1"])
    report = await _check_against_raw(client, runtime, tenant)
    assert report["totals"]["new_conversations"] == 3
    assert report["totals"]["csat"]["count"] == 0

    # A new time zone rebuilds the rollups in the app's days; the figures still agree.
    zone = {"timezone": "Asia/Kolkata"}  # +05:30: the local hours are not UTC's
    assert (
        await client.patch("/admin/api/messenger", headers=secret(tenant), json=zone)
    ).is_success
    await _check_against_raw(client, runtime, tenant, zone="Asia/Kolkata")
    await _reply(client, bob, conversations["d4"])
    await _check_against_raw(client, runtime, tenant, zone="Asia/Kolkata")

    # The other app's report still holds its own conversation only.
    theirs = (
        await client.get(
            URL,
            headers=secret(other),
            params={"start": str(datetime.now(UTC).date()), "end": str(datetime.now(UTC).date())},
        )
    ).json()
    assert (theirs["totals"]["new_conversations"], theirs["totals"]["messages"]) == (1, 1)


async def test_deleting_an_app_takes_its_rollups(
    client: httpx.AsyncClient, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    await identify(client, tenant, "d1")
    await start_conversation(client, tenant, "d1")
    assert await _rollups(runtime, tenant.id)
    await _system(runtime, "DELETE FROM apps WHERE id = :id", id=tenant.id)
    assert await _rollups(runtime, tenant.id) == {}


async def test_a_send_does_not_wait_for_day_counter_rows_another_transaction_holds(
    client: httpx.AsyncClient, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    """Concurrent senders of one app each count into a row of the day no other transaction
    holds (migration 0200), so a send never queues behind another's commit for it; the day's
    count stays exact."""
    tenant = await make_tenant()
    await identify(client, tenant, "d1")
    cid = (await start_conversation(client, tenant, "d1"))["id"]
    async with runtime.db.system_session() as holder:  # as senders still committing would
        held = await holder.execute(
            text("SELECT shard FROM report_day_messages WHERE app_id = :app FOR UPDATE"),
            {"app": tenant.id},
        )
        assert held.all()
        await asyncio.wait_for(_user_writes(client, tenant, "d1", cid), timeout=10)
        # Taking a message away never makes a row: with every row held it waits for one.
        await holder.execute(
            text("SELECT shard FROM report_day_messages WHERE app_id = :app FOR UPDATE"),
            {"app": tenant.id},
        )
        deleting = asyncio.create_task(
            _system(runtime, "DELETE FROM messages WHERE conversation_id = :id AND seq = 1", id=cid)
        )
        await asyncio.sleep(0.2)
        assert not deleting.done()
    await asyncio.wait_for(deleting, timeout=10)
    report = await _check_against_raw(client, runtime, tenant)
    assert report["totals"]["messages"] == 1
