"""Property: for random segment queries, the compiled SQL (run as the server runs it: the runtime
role, in the tenant's transaction) selects exactly the users the plain Python evaluator of
tests/segment_oracle.py selects, on random data stored through the real API."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, select, text

from replyhq.db.session import runtime_url
from replyhq.runtime import Runtime
from replyhq.segments import service
from replyhq.segments.compile import compile_query
from replyhq.segments.dsl import parse
from replyhq.segments.schemas import SAMPLE_SIZE
from replyhq.settings import Settings
from replyhq.users.models import EndUser
from tests import segment_oracle as oracle
from tests.conftest import MakeTenant, Servers, Tenant

KEYS = ["plan", "seats", "score", "tags", "beta", "nick", "never_set"]
TEXTS = [
    "pro",
    "free",
    "Pro",
    "team",
    "O'Brien",
    "100%",
    "a_b",
    "x\\y",
    "'; DROP TABLE end_users;--",
]
NUMBERS = [0, 1, 2, 2.5, 10, -3]
EVENT_NAMES = ["open", "buy", "share", "never_sent"]
PLATFORMS = ["ios", "android", "web"]
LOCALES = ["en", "fr-FR", "de"]


def _attribute_value(rng: random.Random, key: str) -> Any:
    if key == "tags":
        return rng.sample(["a", "b", "pro", "x y"], rng.randint(0, 3))
    if key == "beta":
        return rng.choice([True, False])
    return rng.choice([*TEXTS, *NUMBERS, True])


def _properties(rng: random.Random) -> dict[str, Any]:
    keys = rng.sample(["plan", "amount", "tags", "beta"], rng.randint(0, 3))
    return {k: _attribute_value(rng, k) for k in keys}


@dataclass
class Dataset:
    app_id: uuid.UUID
    users: list[oracle.User]
    others: set[uuid.UUID]  # another app's users: never selected
    now: datetime
    engine: Engine


async def _seed(
    client: httpx.AsyncClient, tenant: Tenant, rng: random.Random, people: int, now: datetime
) -> None:
    for i in range(people):
        user_id = f"user{i}" if rng.random() < 0.8 else None
        proof = {"user_hash": tenant.user_hash(user_id)} if user_id and rng.random() < 0.4 else {}
        devices = 0 if rng.random() < 0.1 else rng.randint(1, 2)
        for d in range(max(devices, 1)):
            body: dict[str, Any] = {
                "platform": rng.choice(PLATFORMS),
                "app_version": rng.choice(["1.0", "2.0", None]),
                "locale": rng.choice([*LOCALES, None]),
                **({"user_id": user_id, **proof} if user_id else {}),
            }
            if d == 0:
                keys = rng.sample(KEYS[:-1], rng.randint(0, 5))
                body["attributes"] = {k: _attribute_value(rng, k) for k in keys}
                body["name"] = rng.choice(["Ann", "bob", "O'Neil", None])
                body["email"] = rng.choice([f"p{i}@example.com", None])
            response = await client.post(
                "/v1/identify", headers=tenant.sdk(f"p{i}-d{d}"), json=body
            )
            assert response.status_code == 200, response.text
            if d == 0 and user_id is None:
                break  # an anonymous person has one device
        events = []
        for _ in range(rng.randint(0, 9)):
            at = now - timedelta(minutes=rng.randint(-600, 29 * 24 * 60))
            events.append(
                {
                    "name": rng.choice(EVENT_NAMES[:-1]),
                    "properties": _properties(rng),
                    "timestamp": at.isoformat(),
                }
            )
        # In two requests (two flushes) at a random cut, so that a person's second batch is
        # merged into the rollups of the first (event_latest.recent: replyhq_merge_recent), in
        # any order of their times.
        cut = rng.randint(0, len(events))
        for part in (events[:cut], events[cut:]):
            if not part:
                continue
            tracked = await client.post(
                "/v1/events", headers=tenant.sdk(f"p{i}-d0"), json={"events": part}
            )
            assert tracked.status_code == 202, tracked.text


def _load(
    servers: Servers, app_id: uuid.UUID, rng: random.Random, now: datetime
) -> list[oracle.User]:
    """Random creation and last-seen times (test setup: no API sets them), then what is stored."""
    with psycopg.connect(servers.database_url) as owner:
        for (user,) in owner.execute(
            "SELECT id FROM end_users WHERE app_id = %s", (app_id,)
        ).fetchall():
            owner.execute(
                "UPDATE end_users SET created_at = %s WHERE id = %s",
                (now - timedelta(hours=rng.randint(0, 24 * 100)), user),
            )
        for (device,) in owner.execute(
            "SELECT id FROM devices WHERE app_id = %s", (app_id,)
        ).fetchall():
            owner.execute(
                "UPDATE devices SET last_seen_at = %s WHERE id = %s",
                (now - timedelta(hours=rng.randint(0, 24 * 60)), device),
            )
        users = {
            row[0]: oracle.User(*row)
            for row in owner.execute(
                "SELECT id, external_id, name, email, verified, created_at, attributes "
                "FROM end_users WHERE app_id = %s",
                (app_id,),
            ).fetchall()
        }
        for user_id, platform, locale, seen in owner.execute(
            "SELECT end_user_id, platform, locale, last_seen_at FROM devices WHERE app_id = %s",
            (app_id,),
        ).fetchall():
            users[user_id].devices.append(oracle.Device(platform, locale, seen))
        for user_id, name, props, at, platform, version in owner.execute(
            "SELECT end_user_id, name, properties, occurred_at, platform, app_version "
            "FROM events WHERE app_id = %s",
            (app_id,),
        ).fetchall():
            users[user_id].events.append(oracle.Event(name, props, at, platform, version))
    return list(users.values())


@pytest.fixture(scope="module")
async def dataset(
    app: FastAPI, servers: Servers, settings: Settings, make_tenant: MakeTenant
) -> AsyncIterator[Dataset]:
    rng = random.Random(16)
    now = datetime.now(UTC)
    mine, theirs = await make_tenant("Segments"), await make_tenant("Elsewhere")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await _seed(client, mine, rng, 40, now)
        await _seed(client, theirs, rng, 8, now)
    users = _load(servers, mine.id, rng, now)
    others = {u.id for u in _load(servers, theirs.id, rng, now)}
    engine = create_engine(runtime_url(settings, servers.database_url))
    yield Dataset(mine.id, users, others, now, engine)
    engine.dispose()


# --- random queries ---------------------------------------------------------------------------

SCALARS = st.sampled_from([*TEXTS, *NUMBERS, True, False])


@st.composite
def _attribute(draw: st.DrawFn) -> dict[str, Any]:
    field = draw(
        st.sampled_from(
            [
                *KEYS,
                "attributes.plan",
                "user_id",
                "name",
                "email",
                "platform",
                "locale",
                "verified",
                "created_at",
                "last_seen_at",
            ]
        )
    )
    if field == "verified":
        return {
            "type": "user_attribute",
            "field": field,
            "operator": draw(st.sampled_from(["equals", "not_equals"])),
            "value": draw(st.booleans()),
        }
    if field in ("created_at", "last_seen_at"):
        op = draw(st.sampled_from(["gt", "gte", "lt", "lte", "exists", "not_exists"]))
        if op.endswith("exists"):
            return {"type": "user_attribute", "field": field, "operator": op}
        value: Any = {
            "ago": draw(st.integers(0, 120)),
            "unit": draw(st.sampled_from(["days", "hours"])),
        }
        return {"type": "user_attribute", "field": field, "operator": op, "value": value}
    text_field = field in ("user_id", "name", "email", "platform", "locale")
    return {"type": "user_attribute", "field": field, **draw(_predicate(text_field))}


@st.composite
def _predicate(draw: st.DrawFn, text_field: bool) -> dict[str, Any]:
    ops = [
        "equals",
        "not_equals",
        "contains",
        "not_contains",
        "in",
        "not_in",
        "exists",
        "not_exists",
    ]
    if not text_field:
        ops += ["gt", "gte", "lt", "lte"]
    op = draw(st.sampled_from(ops))
    texts = st.sampled_from([*TEXTS, *PLATFORMS, *LOCALES, "Ann", "o", "user1", "a"])
    if op.endswith("exists"):
        return {"operator": op}
    if op in ("gt", "gte", "lt", "lte"):
        return {"operator": op, "value": draw(st.sampled_from(NUMBERS))}
    if op.endswith("contains"):
        return {"operator": op, "value": draw(texts)}
    one = texts if text_field else SCALARS
    if op.endswith("in"):
        return {"operator": op, "value": draw(st.lists(one, min_size=1, max_size=4))}
    return {"operator": op, "value": draw(one)}


@st.composite
def _event(draw: st.DrawFn) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "event", "eventName": draw(st.sampled_from(EVENT_NAMES))}
    if draw(st.booleans()):
        node["timeframe"] = {
            "type": "relative",
            "value": draw(st.integers(1, 40)),
            "unit": draw(st.sampled_from(["days", "hours"])),
        }
    shape = draw(st.sampled_from(["did", "did_not", "field", "count", "field_count"]))
    if shape == "did_not":
        node["operator"] = "not_exists"
    if shape in ("field", "field_count"):
        field = draw(
            st.sampled_from(
                [
                    "properties.plan",
                    "properties.amount",
                    "properties.tags",
                    "platform",
                    "app_version",
                ]
            )
        )
        node["field"] = field
        node.update(draw(_predicate(field in ("platform", "app_version"))))
    if shape in ("count", "field_count"):
        node["count"] = {
            "operator": draw(st.sampled_from(["equals", "not_equals", "gt", "gte", "lt", "lte"])),
            "value": draw(st.integers(0, 4)),
        }
    return node


def _group(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "operator": st.sampled_from(["AND", "OR"]),
            "conditions": st.lists(children, min_size=1, max_size=4),
        }
    )


QUERIES = _group(st.recursive(st.one_of(_attribute(), _event()), _group, max_leaves=4))


def _selected(data: Dataset, raw: dict[str, Any], correlated: bool = False) -> set[uuid.UUID]:
    query = parse(raw, data.now)
    condition = compile_query(query, data.app_id, data.now, correlated=correlated)
    with data.engine.begin() as connection:
        connection.execute(
            text("SELECT set_config('app.current_tenant', :t, true)"), {"t": str(data.app_id)}
        )
        rows = connection.execute(select(EndUser.id).where(condition)).scalars()
        return set(rows)


@pytest.fixture(scope="module")
def data(dataset: Dataset) -> Dataset:
    return dataset


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=QUERIES)
def test_compiled_sql_selects_what_the_evaluator_selects(
    data: Dataset, raw: dict[str, Any]
) -> None:
    query = parse(raw, data.now)
    expected = {u.id for u in data.users if oracle.selects(query, u, data.now)}
    assert _selected(data, raw) == expected
    # The same condition with every membership a correlated lookup (a preview's sample).
    assert _selected(data, raw, correlated=True) == expected


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=QUERIES, batch=st.one_of(st.none(), st.integers(1, 60)))
async def test_a_preview_counts_and_samples_what_the_evaluator_selects(
    data: Dataset, runtime: Runtime, raw: dict[str, Any], batch: int | None
) -> None:
    """The preview's count is how many the evaluator selects, and its sample their newest 20
    (created_at, then id, descending), through either path of the sample: the `batch` newest
    users tested one by one (falling back to the whole segment when they hold too few), or the
    whole segment at once (None); the dataset is too small for the preview to choose a batch
    by itself."""
    query = parse(raw, data.now)
    chosen = [u for u in data.users if oracle.selects(query, u, data.now)]
    chosen.sort(key=lambda u: (u.created_at, u.id), reverse=True)
    with mock.patch.object(service, "_batch", return_value=batch):
        async with runtime.db.tenant_session(data.app_id) as session:
            found = await service.preview(session, data.app_id, raw, 5000, now=data.now)
    assert found.count == len(chosen)
    assert [u.id for u in found.sample] == [u.id for u in chosen[:SAMPLE_SIZE]]


def test_the_dataset_exercises_the_operators(data: Dataset) -> None:
    """The random data is not degenerate: conditions select some users and not others."""
    everyone = {u.id for u in data.users}
    for raw in [
        {"operator": "AND", "conditions": [{"type": "event", "eventName": "open"}]},
        {
            "operator": "AND",
            "conditions": [{"type": "user_attribute", "field": "plan", "operator": "exists"}],
        },
        {
            "operator": "AND",
            "conditions": [
                {
                    "type": "event",
                    "eventName": "buy",
                    "count": {"operator": "gte", "value": 2},
                    "timeframe": {"type": "relative", "value": 7, "unit": "days"},
                }
            ],
        },
        {
            "operator": "AND",
            "conditions": [
                {
                    "type": "user_attribute",
                    "field": "platform",
                    "operator": "equals",
                    "value": "ios",
                }
            ],
        },
    ]:
        selected = _selected(data, raw)
        assert selected and selected != everyone, raw
        assert not selected & data.others
