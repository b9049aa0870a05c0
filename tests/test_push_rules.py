"""Smart delivery's rules as functions (quiet hours across midnight, time zones and DST; the
notification's text), the log's 30-day clean-up, and credentials refused in production without
a key of the operator's own."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import text

from replyhq.jobs.registry import JobRun
from replyhq.push import tasks
from replyhq.push.rules import quiet_until, summary, zone
from replyhq.runtime import Runtime
from replyhq.settings import Settings
from tests.conftest import Servers, Tenant, identify, make_settings
from tests.staff import signed_in

UTC = dt.UTC
PARIS = ZoneInfo("Europe/Paris")


def _at(text_: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text_).replace(tzinfo=UTC)


def test_quiet_hours_across_midnight_end_the_next_morning_in_the_persons_zone() -> None:
    start, end = dt.time(22, 0), dt.time(8, 0)
    # 21:30 UTC in winter is 22:30 in Paris: quiet until 08:00 Paris, 07:00 UTC.
    assert quiet_until(_at("2026-01-10T21:30"), PARIS, start, end) == _at("2026-01-11T07:00")
    # The same instant for someone in UTC: 21:30, not quiet yet.
    assert quiet_until(_at("2026-01-10T21:30"), ZoneInfo("UTC"), start, end) is None
    # After midnight, before the end.
    assert quiet_until(_at("2026-01-11T05:00"), PARIS, start, end) == _at("2026-01-11T07:00")
    # At the end: not quiet any more.
    assert quiet_until(_at("2026-01-11T07:00"), PARIS, start, end) is None


def test_quiet_hours_within_a_day_and_none() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    start, end = dt.time(12, 0), dt.time(13, 30)
    assert quiet_until(_at("2026-06-01T03:15"), tokyo, start, end) == _at("2026-06-01T04:30")
    assert quiet_until(_at("2026-06-01T04:30"), tokyo, start, end) is None
    assert quiet_until(_at("2026-06-01T03:15"), tokyo, None, None) is None
    assert quiet_until(_at("2026-06-01T03:15"), tokyo, start, start) is None


def test_quiet_hours_end_on_the_wall_clock_across_a_dst_change() -> None:
    # The night of 28-29 March 2026 Paris moves from UTC+1 to UTC+2: 08:00 is 06:00 UTC.
    until = quiet_until(_at("2026-03-28T23:00"), PARIS, dt.time(22, 0), dt.time(8, 0))
    assert until == _at("2026-03-29T06:00")


def test_an_unknown_zone_falls_back_to_the_apps_then_utc() -> None:
    assert zone("Mars/Olympus", "Europe/Paris").key == "Europe/Paris"
    assert zone(None, "nonsense").key == "UTC"
    assert zone("../../etc/passwd", "UTC").key == "UTC"


def test_one_reply_shows_itself_several_collapse() -> None:
    assert summary("Acme", [("Sam", "Your   order\n shipped")]) == (
        "Sam from Acme",
        "Your order shipped",
    )
    assert summary("Acme", [(None, "x" * 300)])[1] == "x" * 179 + "…"
    assert summary("Acme", [("Sam", "a"), ("Ivy", "b"), (None, "c")]) == (
        "Acme",
        "3 new messages from Acme",
    )


async def test_the_log_is_kept_30_days(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    user = (await identify(client, tenant, "phone"))["user"]
    assert isinstance(user, dict)
    old, new = uuid.uuid4(), uuid.uuid4()
    async with runtime.db.tenant_session(tenant.id) as session:
        for row_id, age in ((old, 31), (new, 29)):
            await session.execute(
                text(
                    "INSERT INTO push_notifications (id, app_id, end_user_id, channel, decision, "
                    "created_at) VALUES (:id, :a, :u, 'push', 'sent', now() - make_interval("
                    "days => :d))"
                ),
                {"id": row_id, "a": tenant.id, "u": user["id"], "d": age},
            )
    run = JobRun(id=1, task="push.prune", attempt=1, runtime=runtime)
    await tasks.prune.func(run, timestamp=0)
    async with runtime.db.tenant_session(tenant.id) as session:
        left = set((await session.execute(text("SELECT id FROM push_notifications"))).scalars())
    assert new in left and old not in left


@pytest.fixture
def production(servers: Servers) -> Settings:
    return make_settings(
        servers,
        environment="production",
        master_api_key="m" * 32,
        jwt_secret="j" * 32,
        jwt_refresh_secret="r" * 32,
    )


async def test_production_refuses_credentials_under_the_public_default_key(
    production: Settings, make_tenant: object
) -> None:
    from asgi_lifespan import LifespanManager

    from replyhq.app import create_app

    application = create_app(production)
    async with LifespanManager(application):
        runtime: Runtime = application.state.runtime
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert callable(make_tenant)
            tenant = await make_tenant()  # type: ignore[misc]
            owner = await signed_in(runtime, client, tenant, "OWNER")
            answer = await client.post(
                "/admin/api/push/credentials/webpush",
                headers=owner.auth(),
                json={"subject": "mailto:ops@example.com"},
            )
    assert answer.status_code == 409
    assert answer.json()["code"] == "PUSH_CREDENTIALS_KEY_UNSET"
