"""Reports against hand-computed figures on a small fixed data set (known timestamps), tenant
isolation, permissions, the CSV export and bad input."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from replyhq.runtime import Runtime
from tests.conftest import MakeTenant, Tenant, identify, start_conversation
from tests.staff import Staff, secret, signed_in

URL = "/admin/api/reports"
RANGE = {"start": "2026-11-02", "end": "2026-11-08"}  # Monday to Sunday


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


async def _conversation(
    client: httpx.AsyncClient,
    runtime: Runtime,
    tenant: Tenant,
    *,
    created: datetime,
    reply: tuple[Staff, int] | None = None,
    close: tuple[Staff, datetime] | None = None,
    rating: int | None = None,
) -> str:
    """A conversation made through the API, then moved to known times."""
    device = uuid.uuid4().hex[:8]
    await identify(client, tenant, device)
    cid = str((await start_conversation(client, tenant, device))["id"])
    if reply:
        staff, _ = reply
        sent = await client.post(
            f"/admin/api/conversations/{cid}/messages",
            headers=staff.auth(),
            json={"body": "Hello!", "client_msg_id": uuid.uuid4().hex},
        )
        assert sent.status_code == 201
    if close:
        staff, _ = close
        for change in ({"assignee_id": str(staff.id)}, {"status": "closed"}):
            patched = await client.patch(
                f"/admin/api/conversations/{cid}", headers=staff.auth(), json=change
            )
            assert patched.status_code == 200, patched.text
    if rating:
        rated = await client.post(
            f"/v1/conversations/{cid}/rating", headers=tenant.sdk(device), json={"score": rating}
        )
        assert rated.status_code == 201
    async with runtime.db.system_session() as session:
        values: dict[str, Any] = {"id": cid, "created": created}
        await session.execute(
            text(
                "UPDATE conversation_metrics SET created_at = :created, "
                "first_response_at = :created + :delay, closed_at = :closed "
                "WHERE conversation_id = :id"
            ),
            {
                **values,
                "delay": timedelta(seconds=reply[1]) if reply else None,
                "closed": close[1] if close else None,
            },
        )
        await session.execute(
            text(
                "UPDATE messages SET created_at = :created + seq * interval '1 second' "
                "WHERE conversation_id = :id"
            ),
            values,
        )
        await session.execute(
            text(
                "UPDATE conversation_ratings SET created_at = :closed WHERE conversation_id = :id"
            ),
            {"id": cid, "closed": close[1] if close else None},
        )
    return cid


async def _data_set(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> tuple[Staff, Staff]:
    ann = await signed_in(runtime, client, tenant, "AGENT", name="Ann")
    bob = await signed_in(runtime, client, tenant, "AGENT", name="Bob")
    await _conversation(
        client, runtime, tenant, created=at(2, 9), reply=(ann, 60), close=(ann, at(2, 10)), rating=5
    )
    await _conversation(
        client,
        runtime,
        tenant,
        created=at(2, 14, 30),
        reply=(bob, 120),
        close=(bob, at(3, 14, 30)),
        rating=2,
    )
    await _conversation(client, runtime, tenant, created=at(3, 9, 15), reply=(ann, 600))
    await _conversation(client, runtime, tenant, created=at(5, 23, 59))
    await _conversation(client, runtime, tenant, created=at(9, 12), reply=(ann, 5))  # after range
    return ann, bob


def _durations(d: dict[str, Any]) -> tuple[int, float | None, float | None]:
    return d["count"], d["median"], d["p90"]


async def test_report_figures_match_the_hand_computed_ones(
    client: httpx.AsyncClient, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    ann, bob = await _data_set(client, runtime, tenant)
    owner = await signed_in(runtime, client, tenant, "OWNER")
    response = await client.get(URL, headers=owner.auth(), params=RANGE)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["timezone"] == "UTC"

    totals = report["totals"]
    assert totals["new_conversations"] == 4
    assert totals["messages"] == 7  # 2 + 2 + 2 + 1; the fifth conversation is outside
    assert totals["closed"] == 2
    # First responses 60, 120, 600 s: median 120, p90 120 + 0.8 * 480 = 504.
    assert _durations(totals["first_response"]) == (3, 120, 504)
    # Resolutions 3600 and 86400 s: median 45000, p90 3600 + 0.9 * 82800 = 78120.
    assert _durations(totals["resolution"]) == (2, 45000, 78120)
    assert totals["csat"] == {"count": 2, "average": 3.5, "satisfied_percent": 50.0}

    days = {p["period"]: p for p in report["series"]}
    assert list(days) == [f"2026-11-0{d}" for d in range(2, 9)]  # every day, empty ones too
    monday, tuesday = days["2026-11-02"], days["2026-11-03"]
    assert (monday["new_conversations"], monday["messages"], monday["closed"]) == (2, 4, 1)
    assert _durations(monday["first_response"]) == (2, 90, 114)
    assert _durations(monday["resolution"]) == (1, 3600, 3600)
    assert monday["csat"] == {"count": 1, "average": 5.0, "satisfied_percent": 100.0}
    assert (tuesday["new_conversations"], tuesday["closed"]) == (1, 1)
    assert _durations(tuesday["resolution"]) == (1, 86400, 86400)
    assert tuesday["csat"]["satisfied_percent"] == 0.0
    assert days["2026-11-05"]["first_response"] == {"count": 0, "median": None, "p90": None}
    assert days["2026-11-04"]["new_conversations"] == 0

    hours = {(h["weekday"], h["hour"]): h["conversations"] for h in report["busiest_hours"]}
    assert hours == {(0, 9): 1, (0, 14): 1, (1, 9): 1, (3, 23): 1}

    agents = {a["name"]: a for a in report["agents"]}
    assert set(agents) == {"Ann", "Bob"}
    assert agents["Ann"]["staff_id"] == str(ann.id)
    assert agents["Ann"]["first_responses"] == 2
    assert _durations(agents["Ann"]["first_response"]) == (2, 330, 546)  # 60 and 600
    assert (agents["Ann"]["closed"], agents["Ann"]["resolution"]["median"]) == (1, 3600)
    assert agents["Ann"]["csat"]["average"] == 5.0
    assert (agents["Bob"]["closed"], agents["Bob"]["csat"]["average"]) == (1, 2.0)
    assert agents["Bob"]["staff_id"] == str(bob.id)

    weekly = (await client.get(URL, headers=owner.auth(), params={**RANGE, "group": "week"})).json()
    assert [p["period"] for p in weekly["series"]] == ["2026-11-02"]
    assert weekly["series"][0]["new_conversations"] == 4
    assert _durations(weekly["series"][0]["first_response"]) == (3, 120, 504)


async def test_reports_follow_the_apps_time_zone(
    client: httpx.AsyncClient, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    await _conversation(client, runtime, tenant, created=at(5, 23, 59))
    zone = {"timezone": "Europe/Paris"}  # 23:59 UTC is 00:59 on the next day in Paris
    await client.patch("/admin/api/messenger", headers=secret(tenant), json=zone)
    report = (await client.get(URL, headers=secret(tenant), params=RANGE)).json()
    days = {p["period"]: p["new_conversations"] for p in report["series"]}
    assert (days["2026-11-05"], days["2026-11-06"]) == (0, 1)
    assert report["busiest_hours"] == [{"weekday": 4, "hour": 0, "conversations": 1}]


async def test_csv_export_has_one_row_per_period_and_a_total(
    client: httpx.AsyncClient, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant()
    await _data_set(client, runtime, tenant)
    response = await client.get(f"{URL}/export.csv", headers=secret(tenant), params=RANGE)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["period"] for r in rows] == [*(f"2026-11-0{d}" for d in range(2, 9)), "total"]
    total = rows[-1]
    assert (total["new_conversations"], total["messages"], total["closed"]) == ("4", "7", "2")
    assert (total["first_response_median_seconds"], total["first_response_p90_seconds"]) == (
        "120.0",
        "504.0",
    )
    assert (total["csat_average"], total["csat_satisfied_percent"]) == ("3.5", "50.0")
    assert rows[2]["first_response_median_seconds"] == ""  # 2026-11-04: no data


async def test_reports_are_per_app_and_for_owners_and_admins(
    client: httpx.AsyncClient, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant, other = await make_tenant(), await make_tenant()
    await _data_set(client, runtime, tenant)
    theirs = (await client.get(URL, headers=secret(other), params=RANGE)).json()
    assert theirs["totals"]["new_conversations"] == 0
    assert theirs["totals"]["messages"] == 0
    assert theirs["agents"] == [] and theirs["busiest_hours"] == []
    admin = await signed_in(runtime, client, tenant, "ADMIN")
    assert (await client.get(URL, headers=admin.auth(), params=RANGE)).status_code == 200
    agent = await signed_in(runtime, client, tenant, "AGENT")
    refused = await client.get(URL, headers=agent.auth(), params=RANGE)
    assert refused.status_code == 403
    assert refused.json()["required"] == "reports:read"
    csv_refused = await client.get(f"{URL}/export.csv", headers=agent.auth(), params=RANGE)
    assert csv_refused.status_code == 403


async def test_bad_ranges_are_400(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for params in (
        {"start": "2026-11-08", "end": "2026-11-01"},
        {"start": "2025-01-01", "end": "2026-11-01"},
        {"start": "yesterday", "end": "2026-11-01"},
        {"start": "2026-11-01"},
        {**RANGE, "group": "month"},
    ):
        response = await client.get(URL, headers=secret(tenant), params=params)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["code"] == "VALIDATION_ERROR"
