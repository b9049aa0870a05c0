"""Migration 0250: what a person's devices say of them (`last_seen_at`, `platforms`, `locales`)
is backfilled onto `end_users` for the devices already there, and kept by the trigger as devices
are added, move, change or go. (Segments read it: tests/test_segments_api.py.)"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from alembic import command
from psycopg import sql
from sqlalchemy.engine import make_url

from replyhq.db.migrate import alembic_config, upgrade
from replyhq.settings import Settings
from tests.conftest import Servers

APP, ANN, BOB, CY = (uuid.uuid4() for _ in range(4))
EARLY = datetime(2026, 1, 1, tzinfo=UTC)
LATE = datetime(2026, 2, 1, tzinfo=UTC)


@pytest.fixture
def before_0250(servers: Servers) -> Iterator[str]:
    """A database of its own, migrated up to 0240 only."""
    name = f"replyhq_0250_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(servers.database_url, autocommit=True) as owner:
        owner.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(servers.database_url).set(database=name).render_as_string(False)
    try:
        command.upgrade(alembic_config(url, Settings()), "0240")
        yield url
    finally:
        with psycopg.connect(servers.database_url, autocommit=True) as owner:
            owner.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _summaries(owner: psycopg.Connection) -> dict[uuid.UUID, tuple[object, list[str], list[str]]]:
    rows = owner.execute(
        "SELECT id, last_seen_at, platforms, locales FROM end_users WHERE app_id = %s", (APP,)
    ).fetchall()
    return {r[0]: (r[1], sorted(r[2]), sorted(r[3])) for r in rows}


def _seed(owner: psycopg.Connection, people: tuple[uuid.UUID, ...], devices: list[Any]) -> None:
    """The app, its `people`, and `devices` as (device_id, person, platform, locale, last seen)."""
    owner.execute(
        "INSERT INTO apps (id, name, sdk_key_hash, secret_key_hash, identity_secret) "
        "VALUES (%s, 'Devices', 'x', 'x', 'x')",
        (APP,),
    )
    for person in people:
        owner.execute("INSERT INTO end_users (id, app_id) VALUES (%s, %s)", (person, APP))
    for device, person, platform, locale, seen in devices:
        owner.execute(
            "INSERT INTO devices (id, app_id, device_id, end_user_id, platform, locale, "
            "last_seen_at) VALUES (gen_random_uuid(), %s, %s, %s, %s, %s, coalesce(%s, now()))",
            (APP, device, person, platform, locale, seen),
        )


def test_devices_already_there_are_summarised_then_kept(before_0250: str) -> None:
    with psycopg.connect(before_0250, autocommit=True) as owner:
        devices = [
            ("ann-phone", ANN, "ios", "fr-FR", EARLY),
            ("ann-laptop", ANN, "web", None, LATE),
            ("ann-tablet", ANN, "ios", "fr-FR", EARLY),
            ("bob-phone", BOB, "android", None, EARLY),
        ]
        _seed(owner, (ANN, BOB, CY), devices)

    upgrade(before_0250, Settings())

    with psycopg.connect(before_0250, autocommit=True) as owner:
        assert _summaries(owner) == {
            ANN: (LATE, ["ios", "web"], ["fr-FR"]),
            BOB: (EARLY, ["android"], []),
            CY: (None, [], []),  # no device: never seen
        }
        # The laptop moves to Bob, Ann's tablet goes, Cy gets a device.
        owner.execute("UPDATE devices SET end_user_id = %s WHERE device_id = 'ann-laptop'", (BOB,))
        owner.execute("DELETE FROM devices WHERE device_id = 'ann-tablet'")
        owner.execute(
            "INSERT INTO devices (id, app_id, device_id, end_user_id, platform, locale) "
            "VALUES (gen_random_uuid(), %s, 'cy-phone', %s, 'ios', 'de-DE')",
            (APP, CY),
        )
        cy_seen = owner.execute(
            "SELECT last_seen_at FROM devices WHERE device_id = 'cy-phone'"
        ).fetchone()
        assert cy_seen is not None
        assert _summaries(owner) == {
            ANN: (EARLY, ["ios"], ["fr-FR"]),
            BOB: (LATE, ["android", "web"], []),
            CY: (cy_seen[0], ["ios"], ["de-DE"]),
        }
        # A device that is not one of these three columns' business changes nothing.
        owner.execute("UPDATE devices SET app_version = '2.0' WHERE device_id = 'bob-phone'")
        assert _summaries(owner)[BOB] == (LATE, ["android", "web"], [])


def test_two_transactions_changing_one_persons_devices_both_count(before_0250: str) -> None:
    """The second waits for the first (the person's row is locked before their devices are read),
    then summarises with the first's change: neither platform is lost."""
    upgrade(before_0250, Settings())
    with psycopg.connect(before_0250, autocommit=True) as owner:
        _seed(owner, (ANN,), [(d, ANN, "ios", None, None) for d in ("phone", "laptop")])
    with psycopg.connect(before_0250) as first, psycopg.connect(before_0250) as second:
        first.execute("UPDATE devices SET platform = 'android' WHERE device_id = 'phone'")
        done = threading.Event()

        def other() -> None:
            second.execute("UPDATE devices SET platform = 'web' WHERE device_id = 'laptop'")
            second.commit()
            done.set()

        waiting = threading.Thread(target=other)
        waiting.start()
        assert not done.wait(0.5)  # blocked on Ann's row, held by the first
        first.commit()
        waiting.join(10)
        assert done.is_set()
    with psycopg.connect(before_0250, autocommit=True) as owner:
        assert _summaries(owner)[ANN][1] == ["android", "web"]
