"""/admin/api/segments and /admin/api/users?segment=: every operator and nesting through the API,
validation pointing at the bad node, injection attempts, tenancy, saved segments, the timeout."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text

from replyhq.runtime import Runtime
from replyhq.segments import service
from tests.conftest import MakeTenant, Servers, SocketServer, Tenant
from tests.staff import Staff, signed_in

NOW = datetime.now(UTC)


async def _person(
    http: httpx.AsyncClient,
    tenant: Tenant,
    device: str,
    events: list[dict[str, Any]] | None = None,
    **identity: Any,
) -> str:
    body = {"platform": "ios", **identity}
    response = await http.post("/v1/identify", headers=tenant.sdk(device), json=body)
    assert response.status_code == 200, response.text
    if events:
        tracked = await http.post("/v1/events", headers=tenant.sdk(device), json={"events": events})
        assert tracked.status_code == 202, tracked.text
    return str(response.json()["user"]["id"])


def _ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).isoformat()


@pytest.fixture(scope="module")
async def world(socket_server: SocketServer, make_tenant: MakeTenant) -> dict[str, Any]:
    """Ann (pro, 3 seats, tags [a, b]) bought twice this week and opened once 20 days ago;
    Bob (free, 1 seat) opened the app an hour ago on Android; Cy (no attributes) did nothing.
    Another app has a pro user too."""
    tenant, other = await make_tenant("Seg"), await make_tenant("SegOther")
    async with httpx.AsyncClient(base_url=socket_server.url) as http:
        ann = await _person(
            http,
            tenant,
            "ann",
            [
                {
                    "name": "purchase",
                    "properties": {"plan": "pro", "amount": 49},
                    "timestamp": _ago(days=1),
                },
                {
                    "name": "purchase",
                    "properties": {"plan": "team", "amount": 99},
                    "timestamp": _ago(days=2),
                },
                {"name": "open", "timestamp": _ago(days=20)},
            ],
            user_id="ann",
            name="Ann O'Neil",
            email="ann@example.com",
            locale="fr-FR",
            attributes={"plan": "pro", "seats": 3, "tags": ["a", "b"], "beta": True},
        )
        bob = await _person(
            http,
            tenant,
            "bob",
            [{"name": "open", "properties": {"screen": "home"}, "timestamp": _ago(hours=1)}],
            user_id="bob",
            platform="android",
            attributes={"plan": "free", "seats": 1},
        )
        cy = await _person(http, tenant, "cy")
        await _person(http, other, "eve", user_id="eve", attributes={"plan": "pro"})
        admin = await signed_in(socket_server.runtime, http, tenant, "ADMIN")
        agent = await signed_in(socket_server.runtime, http, tenant, "AGENT")
        other_admin = await signed_in(socket_server.runtime, http, other, "ADMIN")
    return {
        "tenant": tenant,
        "other": other,
        "ann": ann,
        "bob": bob,
        "cy": cy,
        "admin": admin,
        "agent": agent,
        "other_admin": other_admin,
    }


def _q(*conditions: dict[str, Any], operator: str = "AND") -> dict[str, Any]:
    return {"operator": operator, "conditions": list(conditions)}


def _attr(field: str, operator: str, value: Any = None) -> dict[str, Any]:
    node = {"type": "user_attribute", "field": field, "operator": operator}
    return node if value is None else {**node, "value": value}


async def _preview(http: httpx.AsyncClient, staff: Staff, query: Any) -> httpx.Response:
    return await http.post(
        "/admin/api/segments/preview", headers=staff.auth(), json={"query": query}
    )


async def _who(http: httpx.AsyncClient, world: dict[str, Any], query: Any) -> set[str]:
    response = await _preview(http, world["agent"], query)
    assert response.status_code == 200, response.text
    body = response.json()
    names = {v: k for k, v in world.items() if k in ("ann", "bob", "cy")}
    found = {names[u["id"]] for u in body["sample"]}
    assert body["count"] == len(found)
    return found


ATTRIBUTE_CASES = [
    (_attr("plan", "equals", "pro"), {"ann"}),
    (_attr("plan", "not_equals", "pro"), {"bob", "cy"}),  # missing counts as not equal
    (_attr("attributes.plan", "equals", "free"), {"bob"}),
    (_attr("seats", "equals", 3.0), {"ann"}),  # numbers by value
    (_attr("beta", "equals", 1), set()),  # true is not 1
    (_attr("seats", "gt", 1), {"ann"}),
    (_attr("seats", "gte", 1), {"ann", "bob"}),
    (_attr("seats", "lt", 3), {"bob"}),
    (_attr("seats", "lte", 3), {"ann", "bob"}),
    (_attr("plan", "gt", 0), set()),  # text is not a number
    (_attr("plan", "contains", "RO"), {"ann"}),  # case-insensitive
    (_attr("tags", "contains", "b"), {"ann"}),  # an element of a list
    (_attr("plan", "not_contains", "O"), {"bob", "cy"}),
    (_attr("plan", "in", ["free", "team"]), {"bob"}),
    (_attr("plan", "not_in", ["free", "team"]), {"ann", "cy"}),
    (_attr("seats", "exists"), {"ann", "bob"}),
    (_attr("seats", "not_exists"), {"cy"}),
    (_attr("user_id", "equals", "bob"), {"bob"}),
    (_attr("user_id", "not_exists"), {"cy"}),
    (_attr("name", "contains", "o'n"), {"ann"}),
    (_attr("email", "in", ["ann@example.com"]), {"ann"}),
    (_attr("platform", "equals", "android"), {"bob"}),
    (_attr("platform", "not_equals", "android"), {"ann", "cy"}),
    (_attr("locale", "exists"), {"ann"}),
    (_attr("verified", "equals", False), {"ann", "bob", "cy"}),
    (_attr("created_at", "gt", {"ago": 1, "unit": "days"}), {"ann", "bob", "cy"}),
    (_attr("created_at", "lt", "2000-01-01T00:00:00+00:00"), set()),
    (_attr("last_seen_at", "gte", {"ago": 10, "unit": "hours"}), {"ann", "bob", "cy"}),
]

EVENT_CASES = [
    ({"type": "event", "eventName": "purchase"}, {"ann"}),
    ({"type": "event", "eventName": "purchase", "operator": "not_exists"}, {"bob", "cy"}),
    (
        {
            "type": "event",
            "eventName": "open",
            "timeframe": {"type": "relative", "value": 7, "unit": "days"},
        },
        {"bob"},
    ),
    (
        {
            "type": "event",
            "eventName": "open",
            "timeframe": {"type": "relative", "value": 30, "unit": "days"},
        },
        {"ann", "bob"},
    ),
    (
        {
            "type": "event",
            "eventName": "open",
            "timeframe": {"type": "relative", "value": 2, "unit": "hours"},
        },
        {"bob"},
    ),
    ({"type": "event", "eventName": "purchase", "count": {"operator": "gte", "value": 2}}, {"ann"}),
    (
        {"type": "event", "eventName": "purchase", "count": {"operator": "lt", "value": 2}},
        {"bob", "cy"},
    ),
    (
        {"type": "event", "eventName": "purchase", "count": {"operator": "equals", "value": 0}},
        {"bob", "cy"},
    ),
    (
        {
            "type": "event",
            "eventName": "purchase",
            "field": "properties.plan",
            "operator": "equals",
            "value": "team",
        },
        {"ann"},
    ),
    (
        {
            "type": "event",
            "eventName": "purchase",
            "field": "properties.amount",
            "operator": "gt",
            "value": 50,
            "count": {"operator": "equals", "value": 1},
        },
        {"ann"},
    ),
    (
        {
            "type": "event",
            "eventName": "open",
            "field": "properties.screen",
            "operator": "not_exists",
        },
        {"ann"},
    ),
    (
        {
            "type": "event",
            "eventName": "open",
            "field": "platform",
            "operator": "in",
            "value": ["android"],
        },
        {"bob"},
    ),
]


@pytest.mark.parametrize(("condition", "expected"), ATTRIBUTE_CASES + EVENT_CASES)
async def test_every_operator(
    http: httpx.AsyncClient, world: dict[str, Any], condition: dict[str, Any], expected: set[str]
) -> None:
    assert await _who(http, world, _q(condition)) == expected


async def test_nesting(http: httpx.AsyncClient, world: dict[str, Any]) -> None:
    pro_or_android = _q(
        _attr("plan", "equals", "pro"), _attr("platform", "equals", "android"), operator="OR"
    )
    assert await _who(http, world, pro_or_android) == {"ann", "bob"}
    both = _q(
        pro_or_android,
        {
            "type": "event",
            "eventName": "open",
            # Today and yesterday (UTC days): Bob's open an hour ago, even just after midnight.
            "timeframe": {"type": "relative", "value": 2, "unit": "days"},
        },
    )
    assert await _who(http, world, both) == {"bob"}
    deep: dict[str, Any] = _attr("seats", "exists")
    for level in range(4):  # five groups in all
        deep = _q(deep, _attr("plan", "equals", "pro"), operator="AND" if level % 2 else "OR")
    # ((((seats OR pro) AND pro) OR pro) AND pro): only Ann
    assert await _who(http, world, _q(deep)) == {"ann"}
    too_deep = await _preview(http, world["agent"], _q(_q(deep)))
    assert too_deep.status_code == 400
    assert too_deep.json()["code"] == "INVALID_SEGMENT"
    assert too_deep.json()["details"][0]["field"] == "query" + ".conditions.0" * 5


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ({"operator": "XOR", "conditions": [_attr("plan", "exists")]}, "query.operator"),
        ({"operator": "AND", "conditions": []}, "query.conditions"),
        (
            _q(_attr("plan", "equals", "a"), _attr("plan", "like", "a")),
            "query.conditions.1.operator",
        ),
        (_q(_q(_attr("plan", "gt", "ten"))), "query.conditions.0.conditions.0.value"),
        (_q(_attr("plan", "in", [])), "query.conditions.0.value"),
        (_q(_attr("plan", "in", [{"a": 1}])), "query.conditions.0.value.0"),
        (_q(_attr("plan", "equals", None)), "query.conditions.0.value"),
        (_q(_attr("plan", "exists", "x")), "query.conditions.0.value"),
        (_q(_attr("verified", "equals", "yes")), "query.conditions.0.value"),
        (_q(_attr("verified", "contains", "y")), "query.conditions.0.operator"),
        (_q(_attr("created_at", "gt", "yesterday")), "query.conditions.0.value"),
        (
            _q(_attr("created_at", "gt", {"ago": -1, "unit": "days"})),
            "query.conditions.0.value.ago",
        ),
        (_q({"type": "user", "field": "plan", "operator": "exists"}), "query.conditions.0.type"),
        (_q({**_attr("plan", "exists"), "sql": "1"}), "query.conditions.0.sql"),
        (_q({"type": "event", "eventName": ""}), "query.conditions.0.eventName"),
        (
            _q({"type": "event", "eventName": "x", "field": "plan", "operator": "exists"}),
            "query.conditions.0.field",
        ),
        (
            _q({"type": "event", "eventName": "x", "operator": "equals"}),
            "query.conditions.0.operator",
        ),
        (
            _q(
                {
                    "type": "event",
                    "eventName": "x",
                    "timeframe": {"type": "relative", "value": 0, "unit": "days"},
                }
            ),
            "query.conditions.0.timeframe.value",
        ),
        (
            _q(
                {
                    "type": "event",
                    "eventName": "x",
                    "timeframe": {"type": "relative", "value": 1, "unit": "weeks"},
                }
            ),
            "query.conditions.0.timeframe.unit",
        ),
        (
            _q({"type": "event", "eventName": "x", "count": {"operator": "gte", "value": -1}}),
            "query.conditions.0.count.value",
        ),
        (_q(*[_attr("plan", "exists")] * 51), "query.conditions"),
        (_q(*[_q(*[_attr("plan", "exists")] * 10)] * 6), "query.conditions.5.conditions.0"),
    ],
)
async def test_invalid_queries_point_at_the_bad_node(
    http: httpx.AsyncClient, world: dict[str, Any], query: Any, path: str
) -> None:
    response = await _preview(http, world["agent"], query)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "INVALID_SEGMENT"
    assert body["details"][0]["field"] == path, body


def _fingerprint(servers: Servers) -> list[Any]:
    """Every table's row count and content digest, and the tables that exist."""
    with psycopg.connect(servers.database_url) as owner:
        tables = [
            r[0]
            for r in owner.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            ).fetchall()
        ]
        return [tables] + [
            owner.execute(
                f"SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {t} AS t"
            ).fetchone()
            for t in tables
            if not t.startswith(("procrastinate", "alembic"))
        ]


INJECTIONS = [
    "'; DROP TABLE end_users; --",
    "pro' OR '1'='1",
    "\\'; DELETE FROM segments; --",
    "%' OR 1=1 --",
    "$$; DROP TABLE events; $$",
    "x') OR true; --",
]


async def test_injection_through_values_and_event_names_matches_nothing(
    http: httpx.AsyncClient, world: dict[str, Any], servers: Servers
) -> None:
    before = _fingerprint(servers)
    for attack in INJECTIONS:
        for condition in [
            _attr("plan", "equals", attack),
            _attr("plan", "contains", attack),
            _attr("plan", "in", [attack, 1]),
            _attr("name", "equals", attack),
            _attr("email", "contains", attack),
            _attr("platform", "in", [attack]),
            {"type": "event", "eventName": attack},
            {
                "type": "event",
                "eventName": "purchase",
                "field": "properties.plan",
                "operator": "equals",
                "value": attack,
            },
            {"type": "event", "eventName": attack, "count": {"operator": "gte", "value": 1}},
        ]:
            assert await _who(http, world, _q(condition)) == set(), (attack, condition)
    assert _fingerprint(servers) == before


@pytest.mark.parametrize(
    "query",
    [
        _q(_attr("plan'; DROP TABLE end_users; --", "exists")),
        _q(_attr("attributes.x' OR 1=1", "exists")),
        _q(_attr("plan", "equals; DROP TABLE end_users", "x")),
        _q({"type": "event", "eventName": "x", "field": "properties.a'--", "operator": "exists"}),
        _q(
            {
                "type": "event",
                "eventName": "x",
                "field": "end_user_id) OR (1=1",
                "operator": "exists",
            }
        ),
        _q({"type": "event", "eventName": "x", "count": {"operator": "> 0 OR 1=1 --", "value": 1}}),
        {"operator": "AND) OR (1=1", "conditions": [_attr("plan", "exists")]},
        _q({**_attr("plan", "exists"), "field; DROP TABLE end_users": 1}),
        _q({"type": "user_attribute", "field": {"plan": 1}, "operator": "exists"}),
    ],
)
async def test_injection_through_fields_operators_and_keys_is_refused(
    http: httpx.AsyncClient, world: dict[str, Any], servers: Servers, query: Any
) -> None:
    before = _fingerprint(servers)
    response = await _preview(http, world["agent"], query)
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_SEGMENT"
    assert _fingerprint(servers) == before


async def test_a_json_key_is_bound_not_written_into_sql(
    http: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    # Keys of the allowed alphabet that would mean something in a JSON path or SQL text.
    for key in ["a.b", "-1", "..", "plan.", "_", "0"]:
        assert await _who(http, world, _q(_attr(key, "exists"))) == set()


async def test_a_segment_never_counts_another_apps_users(
    http: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    everyone = _q(_attr("plan", "equals", "pro"))
    mine = await _preview(http, world["agent"], everyone)
    theirs = await _preview(http, world["other_admin"], everyone)
    assert mine.json()["count"] == 1 and theirs.json()["count"] == 1
    assert mine.json()["sample"][0]["id"] != theirs.json()["sample"][0]["id"]
    did = _q({"type": "event", "eventName": "purchase"})
    assert (await _preview(http, world["other_admin"], did)).json()["count"] == 0


async def test_events_of_a_dropped_day_no_longer_count(
    http: httpx.AsyncClient, socket_server: SocketServer, make_tenant: MakeTenant, servers: Servers
) -> None:
    """Once retention has dropped the day of someone's last `open`, they did not open, with or
    without a timeframe (the latest occurrence is trusted only within the days kept)."""
    tenant = await make_tenant("Retained")
    old = NOW - timedelta(days=29)
    gone = await _person(http, tenant, "gone", [{"name": "open", "timestamp": old.isoformat()}])
    here = await _person(
        http,
        tenant,
        "here",
        [
            {"name": "open", "timestamp": old.isoformat()},
            {"name": "open", "timestamp": _ago(days=3)},
        ],
    )
    agent = await signed_in(socket_server.runtime, http, tenant, "AGENT")

    async def who(**condition: Any) -> set[str]:
        query = _q({"type": "event", "eventName": "open", **condition})
        response = await _preview(http, agent, query)
        assert response.status_code == 200, response.text
        return {u["id"] for u in response.json()["sample"]}

    month = {"type": "relative", "value": 30, "unit": "days"}
    twice = {"operator": "gte", "value": 2}
    assert await who() == await who(timeframe=month) == {gone, here}
    # Counted within 31 days from each person's recent counts (event_latest.recent), which
    # still hold the dropped day: they must count from the oldest day kept.
    assert await who(timeframe=month, count=twice) == {here}
    day = old.astimezone(UTC).date()
    with psycopg.connect(servers.database_url, autocommit=True) as owner:
        owner.execute(f"DROP TABLE events_{day:%Y%m%d}, event_daily_counts_{day:%Y%m%d}")
        owner.execute("SELECT replyhq_ensure_event_partitions(%s, %s)", (day, day))
    assert await who() == await who(timeframe=month) == {here}
    assert await who(timeframe=month, operator="not_exists") == {gone}
    assert await who(timeframe=month, count=twice) == set()
    assert await who(timeframe=month, count={"operator": "equals", "value": 1}) == {here}
    assert await who(timeframe=month, count={"operator": "lt", "value": 1}) == {gone}


async def test_device_fields_follow_each_persons_devices(
    http: httpx.AsyncClient, socket_server: SocketServer, make_tenant: MakeTenant, servers: Servers
) -> None:
    """`platform`, `locale` (any of their devices') and `last_seen_at` (their latest) follow the
    devices as they are added, move to someone else, sign in from a visitor, or are seen."""
    tenant = await make_tenant("Devices")
    agent = await signed_in(socket_server.runtime, http, tenant, "AGENT")

    async def who(field: str, operator: str, value: Any = None) -> set[str]:
        response = await _preview(http, agent, _q(_attr(field, operator, value)))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["count"] == len(body["sample"])
        return {u["user_id"] or "visitor" for u in body["sample"]}

    await _person(http, tenant, "dee-phone", user_id="dee", platform="ios", locale="de-DE")
    await _person(http, tenant, "dee-laptop", user_id="dee", platform="web")
    assert await who("platform", "equals", "web") == {"dee"}
    assert await who("platform", "in", ["ios", "android"]) == {"dee"}
    assert await who("locale", "equals", "de-DE") == {"dee"}
    assert await who("last_seen_at", "gte", {"ago": 1, "unit": "hours"}) == {"dee"}

    # The laptop is now Eve's: Dee keeps the phone's platform only.
    await _person(http, tenant, "dee-laptop", user_id="eve", platform="web")
    assert await who("platform", "equals", "web") == {"eve"}
    assert await who("platform", "not_equals", "web") == {"dee"}
    assert await who("platform", "contains", "O") == {"dee"}

    # A visitor's device signs in as Fay: the visitor is gone, Fay has its android.
    await _person(http, tenant, "tablet", platform="android", locale="pt-BR")
    assert await who("platform", "equals", "android") == {"visitor"}
    await _person(http, tenant, "tablet", user_id="fay", platform="android")
    assert await who("platform", "equals", "android") == {"fay"}
    assert await who("locale", "exists") == {"dee"}  # Fay's identify gave no locale

    # Dee's phone last seen three days ago (her laptop is Eve's): she was not seen since.
    with psycopg.connect(servers.database_url, autocommit=True) as owner:
        owner.execute(
            "UPDATE devices SET last_seen_at = now() - interval '3 days' "
            "WHERE app_id = %s AND device_id = 'dee-phone'",
            (tenant.id,),
        )
    assert await who("last_seen_at", "lt", {"ago": 1, "unit": "days"}) == {"dee"}
    assert await who("last_seen_at", "gte", {"ago": 1, "unit": "days"}) == {"eve", "fay"}


async def test_saved_segments_and_their_members(
    http: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    admin, agent, other = world["admin"], world["agent"], world["other_admin"]
    query = _q(_attr("seats", "exists"))
    refused = await http.post(
        "/admin/api/segments", headers=agent.auth(), json={"name": "x", "query": query}
    )
    assert refused.status_code == 403
    bad = await http.post(
        "/admin/api/segments",
        headers=admin.auth(),
        json={"name": "x", "query": _q(_attr("seats", "gt", "x"))},
    )
    assert (
        bad.status_code == 400 and bad.json()["details"][0]["field"] == "query.conditions.0.value"
    )
    created = await http.post(
        "/admin/api/segments", headers=admin.auth(), json={"name": "Seated", "query": query}
    )
    assert created.status_code == 201, created.text
    segment = created.json()
    assert segment["name"] == "Seated" and segment["query"] == query
    sid = segment["id"]

    listed = await http.get("/admin/api/segments", headers=agent.auth())
    assert [s["id"] for s in listed.json()["items"]] == [sid]
    members = await http.get(f"/admin/api/users?segment={sid}&limit=1", headers=agent.auth())
    assert members.status_code == 200
    first = members.json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    rest = await http.get(
        f"/admin/api/users?segment={sid}&limit=1&cursor={first['next_cursor']}",
        headers=agent.auth(),
    )
    ids = {first["items"][0]["id"], rest.json()["items"][0]["id"]}
    assert ids == {world["ann"], world["bob"]} and rest.json()["next_cursor"] is None
    everyone = await http.get("/admin/api/users", headers=agent.auth())
    assert {u["id"] for u in everyone.json()["items"]} == {world["ann"], world["bob"], world["cy"]}

    renamed = await http.patch(
        f"/admin/api/segments/{sid}",
        headers=admin.auth(),
        json={"name": "Pro", "query": _q(_attr("plan", "equals", "pro"))},
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "Pro"
    members = await http.get(f"/admin/api/users?segment={sid}", headers=agent.auth())
    assert [u["id"] for u in members.json()["items"]] == [world["ann"]]

    for call in [
        http.get(f"/admin/api/segments/{sid}", headers=other.auth()),
        http.get(f"/admin/api/users?segment={sid}", headers=other.auth()),
        http.patch(f"/admin/api/segments/{sid}", headers=other.auth(), json={"name": "mine"}),
        http.delete(f"/admin/api/segments/{sid}", headers=other.auth()),
    ]:
        response = await call
        assert response.status_code == 404
        assert response.json()["code"] == "SEGMENT_NOT_FOUND"
    assert (
        await http.delete(f"/admin/api/segments/{sid}", headers=admin.auth())
    ).status_code == 204
    gone = await http.get(f"/admin/api/segments/{sid}", headers=agent.auth())
    assert gone.status_code == 404
    unknown = await http.get(f"/admin/api/users?segment={uuid.uuid4()}", headers=agent.auth())
    assert unknown.status_code == 404


async def test_a_slow_query_stops_at_the_statement_timeout(
    runtime: Runtime, tenant: Tenant
) -> None:
    with pytest.raises(service.SegmentTimeout):
        async with runtime.db.tenant_session(tenant.id) as session, service.timed(session, 100):
            await session.execute(text("SELECT pg_sleep(2)"))
    async with runtime.db.tenant_session(tenant.id) as session:  # not carried over
        setting = await session.scalar(text("SELECT current_setting('statement_timeout')"))
        planning = await session.scalar(text("SELECT current_setting('plan_cache_mode')"))
    assert setting != "100ms"
    assert planning == "auto"  # a segment's per-call planning stays in its transaction


@pytest.mark.parametrize("number", ["Infinity", "NaN", "1e400"])
async def test_numbers_json_cannot_hold_are_refused(
    http: httpx.AsyncClient, world: dict[str, Any], number: str
) -> None:
    condition = '{"type": "user_attribute", "field": "seats", "operator": "gt", "value": %s}'
    body = '{"query": {"operator": "AND", "conditions": [%s]}}' % (condition % number)
    response = await http.post(
        "/admin/api/segments/preview",
        headers={**world["agent"].auth(), "Content-Type": "application/json"},
        content=body,
    )
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == "query.conditions.0.value"


def segment_cases(client: httpx.AsyncClient) -> dict[tuple[str, str], Any]:
    """The analytics and segment routes' cases of tests/test_accounts_rbac.py's matrix."""
    segment_query = {"operator": "AND", "conditions": [{"type": "event", "eventName": "x"}]}
    segment_body = {"name": "Seg", "query": segment_query}

    async def _segment(w: Any) -> str:
        made = await client.post("/admin/api/segments", headers=w.owner.auth(), json=segment_body)
        return str(made.json()["id"])

    async def catalog(w: Any) -> tuple[str, str, None]:
        return "GET", "/admin/api/analytics/catalog", None

    async def segment_preview(w: Any) -> tuple[str, str, dict[str, object]]:
        return "POST", "/admin/api/segments/preview", {"query": segment_query}

    async def segments(w: Any) -> tuple[str, str, None]:
        return "GET", "/admin/api/segments", None

    async def save_segment(w: Any) -> tuple[str, str, dict[str, object]]:
        return "POST", "/admin/api/segments", segment_body

    async def get_segment(w: Any) -> tuple[str, str, None]:
        return "GET", f"/admin/api/segments/{await _segment(w)}", None

    async def patch_segment(w: Any) -> tuple[str, str, dict[str, object]]:
        return "PATCH", f"/admin/api/segments/{await _segment(w)}", {"name": "Renamed"}

    async def delete_segment(w: Any) -> tuple[str, str, None]:
        return "DELETE", f"/admin/api/segments/{await _segment(w)}", None

    async def members(w: Any) -> tuple[str, str, None]:
        return "GET", f"/admin/api/users?segment={await _segment(w)}", None

    async def _campaign(w: Any) -> str:
        made = await client.post(
            "/admin/api/campaigns", headers=w.owner.auth(), json=await _campaign_body(w)
        )
        return str(made.json()["id"])

    async def _campaign_body(w: Any) -> dict[str, object]:
        return {
            "name": "C",
            "segment_id": await _segment(w),
            "sender_id": str(w.owner.id),
            "body": "Hello",
        }

    async def campaigns(w: Any) -> tuple[str, str, None]:
        return "GET", "/admin/api/campaigns", None

    async def launch(w: Any) -> tuple[str, str, dict[str, object]]:
        return "POST", "/admin/api/campaigns", await _campaign_body(w)

    async def campaign(w: Any) -> tuple[str, str, None]:
        return "GET", f"/admin/api/campaigns/{await _campaign(w)}", None

    async def stop(w: Any) -> tuple[str, str, None]:
        return "POST", f"/admin/api/campaigns/{await _campaign(w)}/stop", None

    return {
        ("GET", "/admin/api/analytics/catalog"): catalog,
        ("POST", "/admin/api/segments/preview"): segment_preview,
        ("GET", "/admin/api/segments"): segments,
        ("POST", "/admin/api/segments"): save_segment,
        ("GET", "/admin/api/segments/{segment_id}"): get_segment,
        ("PATCH", "/admin/api/segments/{segment_id}"): patch_segment,
        ("DELETE", "/admin/api/segments/{segment_id}"): delete_segment,
        ("GET", "/admin/api/users"): members,
        ("GET", "/admin/api/campaigns"): campaigns,
        ("POST", "/admin/api/campaigns"): launch,
        ("GET", "/admin/api/campaigns/{campaign_id}"): campaign,
        ("POST", "/admin/api/campaigns/{campaign_id}/stop"): stop,
    }
