"""Invariant 1: a query that forgets `WHERE app_id` still sees only the bound tenant's rows."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from replyhq.db import Database
from replyhq.db.models import metadata
from replyhq.messaging import statements
from replyhq.runtime import Runtime
from tests.conftest import MakeTenant, Servers, Tenant, identify, start_conversation
from tests.test_accounts_tenancy import ACCOUNT_TABLES
from tests.test_billing_tenancy import BILLING_TABLES
from tests.test_push_tokens import seed_push

TENANT_TABLES = [
    "apps",
    "end_users",
    "devices",
    "conversations",
    "messages",
    "read_markers",
    "onboarding_states",  # made by the seed's identify (the checklist's first step)
    "labels",
    "conversation_labels",
    "saved_replies",
    "timeline_items",
    "assignment_settings",
]
TENANT_TABLES += ["events", "event_daily_counts", "event_latest", "segments"]
TENANT_TABLES += ["campaigns", "campaign_messages"]  # a campaign sent to the seeded user
TENANT_TABLES += ["triggered_messages", "triggered_message_sends"]  # and a triggered message
# The messenger's (seeded below: settings with office hours that are never in, so the first
# message gets an away reply; the device's context; a closing rated).
TENANT_TABLES += [
    "messenger_settings",
    "away_replies",
    "visitor_contexts",
    "conversation_metrics",
    "conversation_ratings",
]
# replyhq.reports' rollups (migration 0080), written by triggers from the seed's data
TENANT_TABLES += ["report_day_messages", "report_day_histograms", "report_agent_histograms"]

# replyhq.attachments (migration 0070): a picture sent in the seeded conversation
TENANT_TABLES += ["attachments"]

# replyhq.push (migrations 0040, 0110)
TENANT_TABLES += [
    "push_credentials",
    "push_settings",
    "agent_notification_prefs",
    "push_notifications",
    "push_queue",  # the seeded campaign's message, an agent's, awaits its push decision
]


async def _seed(client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant) -> dict[str, object]:
    owner = {"X-App-Id": str(tenant.id), "X-Api-Key": tenant.secret_key}
    away = {"office_hours_enabled": True, "office_hours": []}
    assert (await client.patch("/admin/api/messenger", headers=owner, json=away)).is_success
    identified = await identify(
        client, tenant, "device-a", user_id="u1", user_hash=tenant.user_hash("u1")
    )
    context = {"page_url": "https://shop.example/"}
    assert (
        await client.post("/v1/context", headers=tenant.sdk("device-a"), json=context)
    ).is_success
    conversation = await start_conversation(client, tenant, "device-a", body="secret plans")
    await client.post(
        f"/v1/conversations/{conversation['id']}/read",
        headers=tenant.sdk("device-a"),
        json={"seq": 1},
    )
    tracked = await client.post(
        "/v1/events", headers=tenant.sdk("device-a"), json={"events": [{"name": "signed_in"}]}
    )
    assert tracked.status_code == 202
    await _seed_workspace(client, tenant, conversation["id"])
    await _seed_attachment(client, tenant, conversation["id"])
    user = identified["user"]
    assert isinstance(user, dict)
    await seed_push(client, runtime, tenant, "device-a", str(user["id"]))
    url = f"/admin/api/conversations/{conversation['id']}"
    assert (await client.patch(url, headers=owner, json={"status": "closed"})).is_success
    rating = await client.post(
        f"/v1/conversations/{conversation['id']}/rating",
        headers=tenant.sdk("device-a"),
        json={"score": 5},
    )
    assert rating.status_code == 201
    saved = await client.post(
        "/admin/api/segments",
        headers={"X-App-Id": str(tenant.id), "X-Api-Key": tenant.secret_key},
        json={
            "name": "All",
            "query": {
                "operator": "AND",
                "conditions": [{"type": "event", "eventName": "signed_in"}],
            },
        },
    )
    assert saved.status_code == 201, saved.text
    await _seed_campaign(client, runtime, tenant, str(saved.json()["id"]))
    return conversation


async def _seed_campaign(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant, segment_id: str
) -> None:
    from replyhq.campaigns.tasks import send_campaign
    from replyhq.jobs.registry import JobRun
    from replyhq.triggered.tasks import send_triggered
    from tests.staff import add_staff

    sender = await add_staff(runtime, tenant, "AGENT")
    launched = await client.post(
        "/admin/api/campaigns",
        headers={"X-App-Id": str(tenant.id), "X-Api-Key": tenant.secret_key},
        json={"name": "Hi", "segment_id": segment_id, "sender_id": str(sender.id), "body": "Hi"},
    )
    assert launched.status_code == 201, launched.text
    run = JobRun(1, "campaigns.send", 1, runtime)
    await send_campaign.func(run, app_id=str(tenant.id), campaign_id=launched.json()["id"])
    triggered = await client.post(
        "/admin/api/triggered-messages",
        headers={"X-App-Id": str(tenant.id), "X-Api-Key": tenant.secret_key},
        json={"name": "Hi", "event_name": "paid", "sender_id": str(sender.id), "body": "Thanks"},
    )
    assert triggered.status_code == 201, triggered.text
    tracked = await client.post(
        "/v1/events", headers=tenant.sdk("device-a"), json={"events": [{"name": "paid"}]}
    )
    assert tracked.status_code == 202
    await send_triggered.func(
        JobRun(2, "triggered_messages.send", 1, runtime), app_id=str(tenant.id)
    )


async def _seed_attachment(client: httpx.AsyncClient, tenant: Tenant, cid: object) -> None:
    from tests.attachment_support import png

    admin = {"X-App-Id": str(tenant.id), "X-Api-Key": tenant.secret_key}
    uploaded = await client.post(
        f"/admin/api/conversations/{cid}/attachments",
        headers={**admin, "Content-Type": "image/png"},
        content=png(20, 20),
    )
    assert uploaded.status_code == 201, uploaded.text
    sent = await client.post(
        f"/admin/api/conversations/{cid}/messages",
        headers=admin,
        json={"client_msg_id": "picture", "attachment_ids": [uploaded.json()["id"]]},
    )
    assert sent.status_code == 201, sent.text


async def _seed_workspace(client: httpx.AsyncClient, tenant: Tenant, cid: object) -> None:
    """A label on the conversation, a note in it and a saved reply (the workspace's tables)."""
    admin = {"X-App-Id": str(tenant.id), "X-Api-Key": tenant.secret_key}
    label = await client.post("/admin/api/labels", headers=admin, json={"name": "VIP"})
    labelled = await client.put(
        f"/admin/api/conversations/{cid}/labels/{label.json()['id']}", headers=admin
    )
    note = await client.post(
        f"/admin/api/conversations/{cid}/notes",
        headers=admin,
        json={"body": "secret note", "client_msg_id": "n1"},
    )
    reply = await client.post(
        "/admin/api/saved-replies",
        headers=admin,
        json={"name": "Hi", "shortcut": "hi", "body": "Hello {{user.name}}"},
    )
    settings = await client.put("/admin/api/assignment", headers=admin, json={"mode": "off"})
    assert [r.status_code for r in (label, labelled, note, reply, settings)] == [
        201,
        200,
        201,
        201,
        200,
    ]


@pytest.fixture
async def two_tenants(
    client: httpx.AsyncClient, runtime: Runtime, make_tenant: MakeTenant
) -> tuple[Tenant, Tenant, dict[str, object], dict[str, object]]:
    a, b = await make_tenant("A"), await make_tenant("B")
    return a, b, await _seed(client, runtime, a), await _seed(client, runtime, b)


def test_every_table_with_app_id_is_covered() -> None:
    with_app_id = {t.name for t in metadata.sorted_tables if "app_id" in t.c} | {"apps"}
    # The accounts and billing tables are covered by tests/test_accounts_tenancy.py and
    # tests/test_billing_tenancy.py.
    assert with_app_id == set(TENANT_TABLES) | set(ACCOUNT_TABLES) | set(BILLING_TABLES)


async def test_runtime_role_cannot_bypass_rls(db: Database) -> None:
    async with db.engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT r.rolsuper, r.rolbypassrls, "
                    "EXISTS (SELECT 1 FROM pg_tables WHERE tableowner = current_user) AS owns "
                    "FROM pg_roles r WHERE r.rolname = current_user"
                )
            )
        ).one()
    assert (row.rolsuper, row.rolbypassrls, row.owns) == (False, False, False)


async def test_rls_is_forced_on_every_tenant_table(db: Database) -> None:
    async with db.engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    "SELECT relname FROM pg_class WHERE relname = ANY(:t) "
                    "AND relrowsecurity AND relforcerowsecurity"
                ),
                {"t": TENANT_TABLES},
            )
        ).scalars()
        assert sorted(rows) == sorted(TENANT_TABLES)


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_unfiltered_select_sees_only_the_bound_tenant(
    db: Database, two_tenants: tuple[Tenant, Tenant, object, object], table: str
) -> None:
    a, _, _, _ = two_tenants
    column = "id" if table == "apps" else "app_id"
    async with db.tenant_session(a.id) as session:
        owners = set((await session.execute(text(f"SELECT {column} FROM {table}"))).scalars())
    assert owners == {a.id}
    async with db.engine.connect() as connection:  # nothing bound at all
        count = (await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar()
    assert count == 0


async def test_cannot_write_rows_for_another_tenant(
    db: Database, two_tenants: tuple[Tenant, Tenant, dict[str, object], object]
) -> None:
    a, b, conversation_a, _ = two_tenants
    with pytest.raises(DBAPIError, match="row-level security"):
        async with db.tenant_session(a.id) as session:
            await session.execute(
                text("UPDATE conversations SET app_id = :b WHERE id = :c"),
                {"b": b.id, "c": conversation_a["id"]},
            )
    async with db.tenant_session(b.id) as session:
        updated = await session.execute(
            text("UPDATE conversations SET subject = 'hijacked' WHERE id = :c"),
            {"c": conversation_a["id"]},
        )
        assert updated.rowcount == 0  # type: ignore[attr-defined]


async def test_pooled_connection_never_carries_a_tenant_over(
    servers: Servers, runtime: Runtime, two_tenants: tuple[Tenant, Tenant, object, object]
) -> None:
    a, b, _, _ = two_tenants
    # One connection in the pool, so every session below reuses the same server connection.
    single = Database.from_settings(
        runtime.settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0}),
        servers.database_url,
    )
    try:
        with pytest.raises(RuntimeError, match="half way"):
            async with single.tenant_session(a.id) as session:
                seen = set((await session.execute(text("SELECT app_id FROM messages"))).scalars())
                assert seen == {a.id}
                raise RuntimeError("failed half way")
        async with single.tenant_session(b.id) as session:
            pid_b = (await session.execute(text("SELECT pg_backend_pid()"))).scalar()
            seen = set((await session.execute(text("SELECT app_id FROM messages"))).scalars())
        assert seen == {b.id}
        async with single.engine.connect() as connection:
            pid_none = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar()
            count = (await connection.execute(text("SELECT count(*) FROM messages"))).scalar()
        assert pid_none == pid_b  # really the same pooled connection
        assert count == 0
    finally:
        await single.dispose()


async def test_failed_statement_mid_transaction_then_next_tenant(
    servers: Servers, runtime: Runtime, two_tenants: tuple[Tenant, Tenant, object, object]
) -> None:
    a, b, _, _ = two_tenants
    single = Database.from_settings(
        runtime.settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0}),
        servers.database_url,
    )
    try:
        with pytest.raises(DBAPIError):
            async with single.tenant_session(a.id) as session:
                await session.execute(text("SELECT 1 / 0"))
        async with single.tenant_session(b.id) as session:
            seen = set((await session.execute(text("SELECT app_id FROM devices"))).scalars())
        assert seen == {b.id}
    finally:
        await single.dispose()


async def test_v1_routes_answer_404_for_another_tenants_ids(
    client: httpx.AsyncClient,
    two_tenants: tuple[Tenant, Tenant, dict[str, object], dict[str, object]],
) -> None:
    a, b, conversation_a, _ = two_tenants
    cid = conversation_a["id"]
    headers = b.sdk("device-a")  # same device name, same user id, other app
    calls = [
        client.get(f"/v1/conversations/{cid}", headers=headers),
        client.get(f"/v1/conversations/{cid}/messages", headers=headers),
        client.post(
            f"/v1/conversations/{cid}/messages",
            headers=headers,
            json={"body": "intrusion", "client_msg_id": "x1"},
        ),
        client.post(f"/v1/conversations/{cid}/read", headers=headers, json={"seq": 1}),
    ]
    for call in calls:
        response = await call
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "CONVERSATION_NOT_FOUND"
    listed = await client.get("/v1/conversations", headers=headers)
    assert cid not in {c["id"] for c in listed.json()["items"]}
    history = await client.get(f"/v1/conversations/{cid}/messages", headers=a.sdk("device-a"))
    assert [m["body"] for m in history.json()["items"] if m["sender"] == "user"] == ["secret plans"]


async def test_another_end_user_of_the_same_app_gets_404(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await identify(client, tenant, "alice-phone", user_id="alice")
    await identify(client, tenant, "bob-phone", user_id="bob")
    conversation = await start_conversation(client, tenant, "alice-phone")
    response = await client.get(
        f"/v1/conversations/{conversation['id']}/messages", headers=tenant.sdk("bob-phone")
    )
    assert response.status_code == 404
    unknown = await client.get(f"/v1/conversations/{uuid.uuid4()}", headers=tenant.sdk("bob-phone"))
    assert unknown.status_code == 404


async def test_sdk_key_of_one_app_cannot_name_another_app(
    client: httpx.AsyncClient, two_tenants: tuple[Tenant, Tenant, object, object]
) -> None:
    a, b, _, _ = two_tenants
    headers = {"X-App-Id": str(b.id), "X-Api-Key": a.sdk_key, "X-Device-Id": "device-a"}
    response = await client.get("/v1/conversations", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_CREDENTIALS"


# --- Database.tenant_statement: one statement, its own transaction, one round trip -----------


def _single(servers: Servers, runtime: Runtime) -> Database:
    """A pool of one connection, so that every call below reuses the same server connection."""
    return Database.from_settings(
        runtime.settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0}),
        servers.database_url,
    )


async def _unbound_view(database: Database) -> tuple[int, int, bool]:
    """(backend pid, messages visible, autocommit) of the pooled connection with nothing bound."""
    async with database.engine.connect() as connection:
        pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar()
        count = (await connection.execute(text("SELECT count(*) FROM messages"))).scalar()
        raw = await connection.get_raw_connection()
        autocommit = raw.driver_connection.autocommit  # type: ignore[union-attr]
    assert isinstance(pid, int) and isinstance(count, int)
    return pid, count, autocommit


async def test_tenant_statement_sees_only_its_tenant_and_leaves_nothing_bound(
    servers: Servers, runtime: Runtime, two_tenants: tuple[Tenant, Tenant, object, object]
) -> None:
    a, b, _, _ = two_tenants
    single = _single(servers, runtime)
    sql = "SELECT app_id, pg_backend_pid() AS pid FROM messages"
    try:
        rows_a = await single.tenant_statement(a.id, sql, {})
        rows_b = await single.tenant_statement(b.id, sql, {})
        assert {r["app_id"] for r in rows_a} == {a.id}
        assert {r["app_id"] for r in rows_b} == {b.id}
        pid, count, autocommit = await _unbound_view(single)
        assert {r["pid"] for r in rows_a + rows_b} == {pid}  # one connection throughout
        assert count == 0
        assert autocommit is False  # handed back as SQLAlchemy expects it
    finally:
        await single.dispose()


async def test_tenant_statement_cannot_write_for_another_tenant(
    db: Database, two_tenants: tuple[Tenant, Tenant, dict[str, object], object]
) -> None:
    a, b, conversation_a, _ = two_tenants
    with pytest.raises(psycopg.Error, match="row-level security"):
        await db.tenant_statement(
            a.id,
            "UPDATE conversations SET app_id = %(b)s WHERE id = %(c)s",
            {"b": b.id, "c": conversation_a["id"]},
        )
    rows = await db.tenant_statement(
        b.id,
        "UPDATE conversations SET subject = 'hijacked' WHERE id = %(c)s RETURNING id",
        {"c": conversation_a["id"]},
    )
    assert rows == []


class RoundTrips:
    """A TCP proxy in front of PostgreSQL counting round trips: each answer from the server that
    follows something sent by the client since the server last spoke."""

    def __init__(self, server: URL) -> None:
        self.server = server
        self.count = 0
        self._last = "server"
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        socket_dir = self.server.query.get("host")
        if isinstance(socket_dir, str):  # the embedded PostgreSQL listens on a Unix socket
            path = f"{socket_dir}/.s.PGSQL.{self.server.port or 5432}"
            server_r, server_w = await asyncio.open_unix_connection(path)
        else:
            target = (self.server.host or "127.0.0.1", self.server.port or 5432)
            server_r, server_w = await asyncio.open_connection(*target)
        for pipe in (
            self._pipe(client_r, server_w, "client"),
            self._pipe(server_r, client_w, "server"),
        ):
            task = asyncio.create_task(pipe)
            self._pipes.add(task)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, side: str
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if side == "server" and self._last == "client":
                    self.count += 1
                self._last = side
                writer.write(chunk)
                await writer.drain()
        finally:
            writer.close()


async def _counted(servers: Servers, runtime: Runtime) -> tuple[RoundTrips, Database]:
    """A pool of one connection through a RoundTrips proxy."""
    url = make_url(servers.database_url)
    proxy = RoundTrips(url)
    port = await proxy.start()
    through_proxy = url.set(
        host="127.0.0.1", port=port, query={k: v for k, v in url.query.items() if k != "host"}
    ).render_as_string(hide_password=False)
    single = Database.from_settings(
        runtime.settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0}),
        through_proxy,
    )
    return proxy, single


async def test_tenant_statement_is_one_round_trip(
    servers: Servers, runtime: Runtime, two_tenants: tuple[Tenant, Tenant, object, object]
) -> None:
    """The binding, the statement and their one Sync go out together and come back together,
    also once psycopg prepares the statement (after five runs)."""
    a, _, _, _ = two_tenants
    proxy, single = await _counted(servers, runtime)
    sql = "SELECT count(*) AS n FROM messages WHERE sender = 'user'"
    try:
        await single.tenant_statement(a.id, sql, {})  # connects
        for _ in range(8):
            before = proxy.count
            (row,) = await single.tenant_statement(a.id, sql, {})
            assert row["n"] == 1
            assert proxy.count - before == 1
    finally:
        await single.dispose()
        await proxy.close()


async def test_tenant_statement_that_fails_or_is_cancelled_leaks_nothing(
    servers: Servers, runtime: Runtime, two_tenants: tuple[Tenant, Tenant, object, object]
) -> None:
    a, b, _, _ = two_tenants
    single = _single(servers, runtime)
    try:
        pid, _, _ = await _unbound_view(single)
        with pytest.raises(psycopg.errors.DivisionByZero):
            await single.tenant_statement(a.id, "SELECT 1 / 0", {})
        rows = await single.tenant_statement(
            b.id, "SELECT app_id, pg_backend_pid() AS pid FROM devices", {}
        )
        assert {r["app_id"] for r in rows} == {b.id}
        assert {r["pid"] for r in rows} == {pid}  # a failed statement leaves it reusable
        assert (await _unbound_view(single))[1] == 0

        # Cancelled half way (a client that went away): the connection is closed, never reused.
        slow = asyncio.create_task(single.tenant_statement(a.id, "SELECT pg_sleep(5)", {}))
        await asyncio.sleep(0.3)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        after, count, autocommit = await _unbound_view(single)
        assert after != pid
        assert (count, autocommit) == (0, False)
    finally:
        await single.dispose()


def _send_params(app_id: uuid.UUID, conversation_id: object, device_id: str) -> dict[str, object]:
    return {
        "app_id": app_id,
        "conversation_id": conversation_id,
        "device_id": device_id,
        "message_id": uuid.uuid4(),
        "client_msg_id": uuid.uuid4().hex,
        "kind": "user",
        "body": "hello",
        "body_html": "<p>hello</p>",
        "writable": True,
    }


async def test_send_function_is_the_send_statement(db: Database) -> None:
    """replyhq_send_from_device (migration 0180) runs the statement of messaging/statements.py:
    a statement changed without a migration that renders the function again fails here."""
    async with db.engine.connect() as connection:
        source, config = (
            await connection.execute(
                text("SELECT prosrc, proconfig FROM pg_proc WHERE proname = :name"),
                {"name": statements.SEND_FROM_DEVICE},
            )
        ).one()
    assert source == statements.send_from_device_body()
    # PostgreSQL's cached plan, made again after each ANALYZE (migration 0230 undid 0181's
    # per-call planning; docs/operations.md asks for autovacuum).
    assert config is None


async def test_send_function_binds_only_its_tenant_and_leaves_nothing_bound(
    servers: Servers,
    runtime: Runtime,
    two_tenants: tuple[Tenant, Tenant, dict[str, object], object],
) -> None:
    """The function binds the tenant it is given, for its own transaction only: app A naming
    B's conversation (or A's device) finds nothing and writes nothing, one command, one round
    trip, and the pooled connection is handed back with nothing bound."""
    a, b, conversation_a, _ = two_tenants
    proxy, single = await _counted(servers, runtime)
    call = statements.SEND_FROM_DEVICE_CALL
    try:
        pid, _, _ = await _unbound_view(single)
        (row,) = await single.tenant_function(
            call, _send_params(b.id, conversation_a["id"], "device-a")
        )
        assert (row["found"], row["created"]) == (False, False)
        trips = []
        for _ in range(7):
            before = proxy.count
            (row,) = await single.tenant_function(
                call, _send_params(a.id, conversation_a["id"], "device-a")
            )
            trips.append(proxy.count - before)
            assert (row["found"], row["created"]) == (True, True)
        # One round trip a call; once per connection, at its fifth run, psycopg prepares the
        # call first (outside a pipeline, a round trip of its own).
        assert sorted(trips) == [1] * 6 + [2]
        assert (await _unbound_view(single)) == (pid, 0, False)
        rows = await single.tenant_statement(
            b.id,
            "SELECT count(*) AS n FROM messages WHERE conversation_id = %(c)s",
            {"c": conversation_a["id"]},
        )
        assert rows == [{"n": 0}]  # B still sees none of A's messages
        mine = await single.tenant_statement(
            a.id,
            "SELECT seq FROM messages WHERE conversation_id = %(c)s ORDER BY seq",
            {"c": conversation_a["id"]},
        )
        seqs = [r["seq"] for r in mine]
        assert seqs == list(range(1, len(seqs) + 1))  # gap-free, none written for B's call
    finally:
        await single.dispose()
        await proxy.close()
