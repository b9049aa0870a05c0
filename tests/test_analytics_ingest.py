"""POST /v1/events and the socket's `track`: limits, batched writes, rollups, partitions, RLS."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from replyhq.analytics import partitions
from replyhq.db import Database
from replyhq.observability.metrics import EVENT_FLUSH_SIZE
from replyhq.runtime import Runtime
from tests.conftest import MakeTenant, Servers, SocketServer, Tenant, identify
from tests.realtime_clients import Recorder
from tests.test_realtime_devices import connect, device_auth


async def _events(db: Database, tenant: Tenant) -> list[dict[str, Any]]:
    async with db.tenant_session(tenant.id) as session:
        rows = await session.execute(
            text(
                "SELECT end_user_id, device_id, platform, app_version, name, properties, "
                "occurred_at FROM events ORDER BY occurred_at, name"
            )
        )
        return [dict(r._mapping) for r in rows]


async def _counts(db: Database, tenant: Tenant) -> dict[tuple[str, str], int]:
    async with db.tenant_session(tenant.id) as session:
        rows = await session.execute(
            text("SELECT name, day, count FROM event_daily_counts ORDER BY name, day")
        )
        return {(r.name, r.day.isoformat()): r.count for r in rows}


async def test_a_batch_is_stored_with_the_devices_user_and_counted(
    client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    user = await identify(client, tenant, "phone", user_id="ann", app_version="2.1")
    yesterday = datetime.now(UTC) - timedelta(days=1)
    body = {
        "events": [
            {"name": "feature_used", "properties": {"feature_id": "x", "n": 2}},
            {"name": "feature_used", "timestamp": yesterday.isoformat()},
            {"name": "purchase", "properties": {"plan": "pro"}},
        ]
    }
    response = await client.post("/v1/events", headers=tenant.sdk("phone"), json=body)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 3}

    stored = await _events(db, tenant)
    assert len(stored) == 3
    assert {str(e["end_user_id"]) for e in stored} == {user["user"]["id"]}  # type: ignore[index]
    assert {(e["device_id"], e["platform"], e["app_version"]) for e in stored} == {
        ("phone", "ios", "2.1")
    }
    assert stored[0]["occurred_at"] == yesterday
    assert sorted((e["properties"] for e in stored[1:]), key=str) == sorted(
        [{"feature_id": "x", "n": 2}, {"plan": "pro"}], key=str
    )
    today = datetime.now(UTC).date().isoformat()
    assert await _counts(db, tenant) == {
        ("feature_used", yesterday.date().isoformat()): 1,
        ("feature_used", today): 1,
        ("purchase", today): 1,
    }
    again = await client.post("/v1/events", headers=tenant.sdk("phone"), json=body)
    assert again.status_code == 202
    assert (await _counts(db, tenant))[("feature_used", today)] == 2


def _big(n: int) -> str:
    return "x" * n


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"events": []}, 400, "events"),
        ({"events": [{"name": "e"}] * 101}, 400, "events"),
        ({"events": [{"name": ""}]}, 400, "events.0.name"),
        ({"events": [{"name": "n" * 101}]}, 400, "events.0.name"),
        ({"events": [{"name": "bad\nname"}]}, 400, "events.0.name"),
        ({"events": [{"name": "e", "properties": {f"k{i}": i for i in range(51)}}]}, 400, None),
        ({"events": [{"name": "e", "properties": {"k": _big(1100)}}]}, 400, None),
        ({"events": [{"name": "e", "properties": {"bad key!": 1}}]}, 400, None),
        ({"events": [{"name": "e", "timestamp": "2026-01-01T00:00:00"}]}, 400, None),  # no offset
        ({"events": [{"name": "e", "extra": 1}]}, 400, None),
        ({"events": [{"name": "e", "properties": {"k": _big(900)}}] * 80}, 413, None),
    ],
)
async def test_bad_batches_are_refused_and_store_nothing(
    client: httpx.AsyncClient,
    db: Database,
    tenant: Tenant,
    body: dict[str, Any],
    status: int,
    field: str | None,
) -> None:
    await identify(client, tenant, "phone")
    response = await client.post("/v1/events", headers=tenant.sdk("phone"), json=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["code"] in {"VALIDATION_ERROR", "PAYLOAD_TOO_LARGE"}
    if field is not None:
        assert field in {d["field"] for d in error["details"]}
    assert await _events(db, tenant) == []


@pytest.fixture(scope="module")
def owner(servers: Servers) -> Any:
    with psycopg.connect(servers.database_url, autocommit=True) as connection:
        yield connection


DAY = datetime(2026, 12, 4, tzinfo=UTC).date()


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    batches=st.lists(st.lists(st.integers(0, 70), min_size=1, max_size=8), min_size=1, max_size=5)
)
def test_recent_counts_merge_batches_into_the_counts_of_32_days(
    owner: Any, batches: list[list[int]]
) -> None:
    """event_latest.recent as the flush keeps it (migration 0210): each batch's days counted by
    replyhq_recent_counts and merged in arrival order by replyhq_merge_recent give, for every
    k <= 32, the number of events on the latest day and the k-1 days before it."""
    recent: list[int] | None = None
    anchor = None
    for days_ago in batches:
        days = [DAY - timedelta(days=n) for n in days_ago]
        (counted,) = owner.execute("SELECT replyhq_recent_counts(%s::date[])", (days,)).fetchone()
        if recent is None:
            recent, anchor = counted, max(days)
        else:
            (recent,) = owner.execute(
                "SELECT replyhq_merge_recent(%s, %s, %s, %s)",
                (recent, anchor, counted, max(days)),
            ).fetchone()
            anchor = max(anchor, max(days))
        assert recent is not None and 1 <= len(recent) <= 32
    assert recent is not None and anchor is not None
    every = [DAY - timedelta(days=n) for batch in batches for n in batch]
    for k in range(1, 33):
        expected = sum(1 for d in every if (anchor - d).days < k)
        assert recent[min(k, len(recent)) - 1] == expected, (k, recent)


async def test_a_batch_up_to_64_kb_is_accepted(
    client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    await identify(client, tenant, "phone")
    body = {"events": [{"name": "e", "properties": {"k": _big(600)}}] * 100}  # ~62 KB
    response = await client.post("/v1/events", headers=tenant.sdk("phone"), json=body)
    assert response.status_code == 202, response.text
    assert len(await _events(db, tenant)) == 100


@pytest.mark.parametrize(
    ("offset", "reason"),
    [(timedelta(days=1, minutes=5), "future"), (-timedelta(days=30, minutes=5), "older")],
)
async def test_timestamps_outside_the_window_are_refused(
    client: httpx.AsyncClient, db: Database, tenant: Tenant, offset: timedelta, reason: str
) -> None:
    await identify(client, tenant, "phone")
    at = (datetime.now(UTC) + offset).isoformat()
    body = {"events": [{"name": "ok"}, {"name": "late", "timestamp": at}]}
    response = await client.post("/v1/events", headers=tenant.sdk("phone"), json=body)
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == "events.1.timestamp"
    assert reason in response.json()["details"][0]["reason"]
    assert await _events(db, tenant) == []


async def test_a_device_that_has_not_identified_is_refused(
    client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    body = {"events": [{"name": "e"}]}
    response = await client.post("/v1/events", headers=tenant.sdk("stranger"), json=body)
    assert response.status_code == 401
    assert response.json()["code"] == "DEVICE_UNKNOWN"
    assert await _events(db, tenant) == []


async def test_an_unproven_device_of_a_verified_user_is_refused(
    client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    await identify(client, tenant, "phone", user_id="vip", user_hash=tenant.user_hash("vip"))
    await identify(client, tenant, "laptop")  # anonymous ...
    async with db.tenant_session(tenant.id) as session:  # ... then bound to vip without proof
        await session.execute(
            text(
                "UPDATE devices SET end_user_id = (SELECT end_user_id FROM devices "
                "WHERE device_id = 'phone'), verified = false WHERE device_id = 'laptop'"
            )
        )
    response = await client.post(
        "/v1/events", headers=tenant.sdk("laptop"), json={"events": [{"name": "e"}]}
    )
    assert response.status_code == 401
    assert response.json()["code"] == "DEVICE_UNVERIFIED"
    assert await _events(db, tenant) == []


async def test_concurrent_requests_share_flushes(
    client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    devices = [f"d{i}" for i in range(40)]
    for device in devices:
        await identify(client, tenant, device)
    flushes_before = _flush_count()
    responses = await asyncio.gather(
        *[
            client.post("/v1/events", headers=tenant.sdk(d), json={"events": [{"name": "tap"}]})
            for d in devices
        ],
        # One stranger among them: refused alone, the others stored.
        client.post("/v1/events", headers=tenant.sdk("ghost"), json={"events": [{"name": "x"}]}),
    )
    assert [r.status_code for r in responses] == [202] * 40 + [401]
    assert len(await _events(db, tenant)) == 40
    assert {e["device_id"] for e in await _events(db, tenant)} == set(devices)
    assert _flush_count() - flushes_before < 40  # many requests per INSERT


def _flush_count() -> float:
    for metric in EVENT_FLUSH_SIZE.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                return sample.value
    return 0.0


async def test_socket_track_is_acknowledged_once_stored(
    socket_server: SocketServer,
    http: httpx.AsyncClient,
    recorders: list[Recorder],
    tenant: Tenant,
) -> None:
    await identify(http, tenant, "phone")
    phone = await connect(socket_server, recorders, device_auth(tenant, "phone"))
    ack = await phone.call("track", {"events": [{"name": "opened", "properties": {"a": 1}}]})
    assert ack == {"ok": True, "accepted": 1}
    stored = await _events(socket_server.runtime.db, tenant)
    assert [(e["name"], e["properties"]) for e in stored] == [("opened", {"a": 1})]
    bad = await phone.call("track", {"events": [{"name": "n" * 101}]})
    assert bad["ok"] is False and bad["code"] == "VALIDATION_ERROR"
    assert bad["details"][0]["field"] == "events.0.name"


async def test_tenants_see_only_their_own_events_and_partitions_are_closed(
    client: httpx.AsyncClient, db: Database, make_tenant: MakeTenant
) -> None:
    a, b = await make_tenant("A"), await make_tenant("B")
    for tenant in (a, b):
        await identify(client, tenant, "phone")
        response = await client.post(
            "/v1/events", headers=tenant.sdk("phone"), json={"events": [{"name": tenant.name}]}
        )
        assert response.status_code == 202
    for table in ("events", "event_daily_counts"):
        async with db.tenant_session(a.id) as session:
            names = set((await session.execute(text(f"SELECT name FROM {table}"))).scalars())
        assert names == {"A"}
    partition = "events_" + datetime.now(UTC).strftime("%Y%m%d")
    async with db.engine.connect() as connection:  # the runtime role, straight at a partition
        with pytest.raises(Exception, match="permission denied"):
            await connection.execute(text(f"SELECT * FROM {partition}"))
    async with db.system_session() as session:  # the system role sees both, through the parent
        names = set((await session.execute(text("SELECT name FROM events"))).scalars())
    assert {"A", "B"} <= names


def _partitions(servers: Servers, parent: str) -> list[str]:
    with psycopg.connect(servers.database_url) as connection:
        rows = connection.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass ORDER BY 1",
            (parent,),
        ).fetchall()
    return [r[0] for r in rows]


async def test_retention_drops_old_partitions_and_makes_the_coming_ones(
    servers: Servers, db: Database, tenant: Tenant
) -> None:
    today = datetime.now(UTC).date()
    old = today - timedelta(days=95)
    kept = today - timedelta(days=30)
    with psycopg.connect(servers.database_url, autocommit=True) as owner:
        owner.execute("SELECT replyhq_ensure_event_partitions(%s, %s)", (old, old))
    assert f"events_{old:%Y%m%d}" in _partitions(servers, "events")
    # Latest occurrences (with their recent counts) in a dropped day and in a kept one.
    latest = "SELECT name FROM event_latest WHERE app_id = %s ORDER BY name"
    with psycopg.connect(servers.database_url) as owner:
        owner.execute("SELECT set_config('app.current_tenant', %s, true)", (str(tenant.id),))
        for name, day in (("gone", old), ("kept", kept)):
            owner.execute(
                "INSERT INTO event_latest (app_id, name, end_user_id, last_at, recent) "
                "VALUES (%s, %s, gen_random_uuid(), %s, '{1}')",
                (tenant.id, name, datetime.combine(day, datetime.min.time(), UTC)),
            )
        assert owner.execute(latest, (tenant.id,)).fetchall() == [("gone",), ("kept",)]

    made, dropped = await partitions.maintain(db, 90)

    with psycopg.connect(servers.database_url) as owner:
        owner.execute("SELECT set_config('app.current_tenant', %s, true)", (str(tenant.id),))
        assert owner.execute(latest, (tenant.id,)).fetchall() == [("kept",)]

    events = _partitions(servers, "events")
    counts = _partitions(servers, "event_daily_counts")
    assert f"events_{old:%Y%m%d}" not in events
    assert f"event_daily_counts_{old:%Y%m%d}" not in counts
    assert dropped >= 2
    assert f"events_{kept:%Y%m%d}" in events
    for ahead in range(partitions.AHEAD_DAYS + 1):
        day = today + timedelta(days=ahead)
        assert f"events_{day:%Y%m%d}" in events
        assert f"event_daily_counts_{day:%Y%m%d}" in counts
    assert min(events) >= f"events_{today - timedelta(days=89):%Y%m%d}"
    assert made >= 0


async def test_an_insert_that_meets_no_partition_makes_it(
    client: httpx.AsyncClient, servers: Servers, db: Database, tenant: Tenant
) -> None:
    tomorrow = datetime.now(UTC) + timedelta(hours=23)
    day = tomorrow.date()
    with psycopg.connect(servers.database_url, autocommit=True) as owner:
        owner.execute(f"DROP TABLE IF EXISTS events_{day:%Y%m%d}")
        owner.execute(f"DROP TABLE IF EXISTS event_daily_counts_{day:%Y%m%d}")
    await identify(client, tenant, "phone")
    body = {"events": [{"name": "soon", "timestamp": tomorrow.isoformat()}]}
    response = await client.post("/v1/events", headers=tenant.sdk("phone"), json=body)
    assert response.status_code == 202, response.text
    assert [e["name"] for e in await _events(db, tenant)] == ["soon"]
    assert f"events_{day:%Y%m%d}" in _partitions(servers, "events")


async def test_the_writer_flushes_what_is_pending_when_closed(
    runtime: Runtime, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    from replyhq.analytics.ingest import EventWriter, Row

    await identify(client, tenant, "phone")
    writer = EventWriter(
        runtime.db, runtime.settings.model_copy(update={"event_flush_delay_ms": 50})
    )
    now = datetime.now(UTC)
    pending = asyncio.create_task(writer.write(tenant.id, "phone", [Row("late", "{}", now)]))
    await asyncio.sleep(0)
    await writer.close()
    await pending
    assert [e["name"] for e in await _events(runtime.db, tenant)] == ["late"]
    with pytest.raises(RuntimeError, match="closed"):
        await writer.write(tenant.id, "phone", [Row("after", "{}", now)])


async def test_the_catalog_lists_event_names_and_attribute_keys_with_counts(
    socket_server: SocketServer, http: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    from tests.staff import signed_in

    tenant, other = await make_tenant("Cat"), await make_tenant("Other")
    await identify(http, tenant, "a", attributes={"plan": "pro", "seats": 3})
    await identify(http, tenant, "b", attributes={"plan": "free"})
    await identify(http, other, "c", attributes={"secret": 1})
    events = {"events": [{"name": "open"}, {"name": "open"}, {"name": "buy"}]}
    assert (await http.post("/v1/events", headers=tenant.sdk("a"), json=events)).status_code == 202
    await http.post("/v1/events", headers=other.sdk("c"), json={"events": [{"name": "theirs"}]})
    agent = await signed_in(socket_server.runtime, http, tenant, "AGENT")
    response = await http.get("/admin/api/analytics/catalog", headers=agent.auth())
    assert response.status_code == 200
    body = response.json()
    assert [(e["name"], e["count"]) for e in body["events"]] == [("open", 2), ("buy", 1)]
    assert body["attributes"] == [{"key": "plan", "users": 2}, {"key": "seats", "users": 1}]
