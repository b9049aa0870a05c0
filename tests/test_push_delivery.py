"""Pushes over the real protocols to local fake providers, smart delivery's rules, the delivery
log and the test push: an app whose providers are the fakes (tests/push_support.py) and a job
worker on its push and mail queues, in this process."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text

from replyhq.app import create_app
from replyhq.jobs.worker import JobWorker
from replyhq.runtime import Runtime
from replyhq.settings import Settings
from tests.conftest import MakeTenant, Servers, SocketServer, Tenant, make_settings
from tests.jobs_support import FAST
from tests.mail_support import PUBLIC_URL, SmtpServer, text_of
from tests.push_support import (
    BUNDLE_ID,
    KEY_ID,
    TEAM_ID,
    FakeProviders,
    push_settings,
)
from tests.realtime_clients import Recorder
from tests.staff import add_staff, login, secret

APNS_TOKEN = "ab" * 32


@pytest.fixture(scope="module")
def app_settings(servers: Servers, providers: FakeProviders, smtp: SmtpServer) -> Settings:
    values: dict[str, object] = {**FAST, **push_settings(providers)}
    return make_settings(
        servers,
        **values,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_tls="none",
        public_url=PUBLIC_URL,
        mail_from="Support <support@example.test>",
    )


@pytest.fixture(scope="module")
async def push_app(app_settings: Settings, servers: Servers) -> AsyncIterator[FastAPI]:
    # Agent replies of the session's earlier tests queued their conversations for a push (a
    # trigger does) that no worker ran: this module's worker must not start behind that backlog,
    # nor run other modules' apps' pushes against this module's fakes (it made the first FCM
    # tests time out; and those apps' service accounts, unknown to this fake, were refused).
    _drop_queued_push_jobs(servers)
    application = create_app(app_settings)
    async with LifespanManager(application):
        runtime: Runtime = application.state.runtime
        worker = JobWorker(app_settings, runtime, queues=["push", "mail"], concurrency=8)
        worker.start()
        yield application
        await worker.aclose()
    # Replies of this module scheduled rechecks and e-mails for later: no later test's worker
    # should run them.
    _drop_queued_push_jobs(servers)


def _drop_queued_push_jobs(servers: Servers) -> None:
    with psycopg.connect(servers.database_url, autocommit=True) as connection:
        connection.execute(
            "DELETE FROM procrastinate_jobs WHERE queue_name = 'push' AND status = 'todo'"
        )
        connection.execute("DELETE FROM push_queue")  # else push.sweep drains them


@pytest.fixture
async def api(push_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=push_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture(scope="module")
def runtime_(push_app: FastAPI) -> Runtime:
    rt: Runtime = push_app.state.runtime
    return rt


class World:
    """A tenant with every provider's credentials set to the fakes' keys."""

    def __init__(self, api: httpx.AsyncClient, tenant: Tenant, fake: FakeProviders) -> None:
        self.api = api
        self.tenant = tenant
        self.fake = fake

    async def setup(self, runtime: Runtime) -> World:
        owner = await login(self.api, await add_staff(runtime, self.tenant, "OWNER"))
        self.owner = owner
        h = owner.auth()
        fcm = await self.api.put(
            "/admin/api/push/credentials/fcm",
            headers=h,
            json={"service_account": self.fake.service_account()},
        )
        assert fcm.status_code == 200, fcm.text
        apns = await self.api.put(
            "/admin/api/push/credentials/apns",
            headers=h,
            json={
                "key_p8": self.fake.p8(),
                "key_id": KEY_ID,
                "team_id": TEAM_ID,
                "bundle_id": BUNDLE_ID,
            },
        )
        assert apns.status_code == 200, apns.text
        vapid = await self.api.post(
            "/admin/api/push/credentials/webpush",
            headers=h,
            json={"subject": "mailto:ops@acme.example"},
        )
        assert vapid.status_code == 200, vapid.text
        self.fake.vapid_public_keys.add(vapid.json()["webpush"]["details"]["public_key"])
        return self

    async def rules(self, **changes: object) -> None:
        answer = await self.api.patch(
            "/admin/api/push/settings", headers=self.owner.auth(), json=changes
        )
        assert answer.status_code == 200, answer.text

    async def person(
        self,
        device: str,
        provider: str,
        token: str | None = None,
        *,
        timezone: str | None = None,
        email: str | None = None,
    ) -> str:
        """An identified person whose device has a push address; their conversation's id."""
        user_id = f"user-{uuid.uuid4().hex[:8]}"
        body: dict[str, Any] = {
            "user_id": user_id,
            "user_hash": self.tenant.user_hash(user_id),
            "platform": "web" if provider == "webpush" else "android",
            "name": "Ann",
        }
        if timezone:
            body["timezone"] = timezone
        if email:
            body["email"] = email
        sdk = self.tenant.sdk(device)
        assert (await self.api.post("/v1/identify", headers=sdk, json=body)).status_code == 200
        if provider == "webpush":
            registration = {"provider": "webpush", "subscription": token}
        else:
            registration = {"provider": provider, "token": token}
        answer = await self.api.post("/v1/push-token", headers=sdk, json=registration)
        assert answer.status_code == 200, answer.text
        started = await self.api.post(
            "/v1/conversations",
            headers=sdk,
            json={"first_message": {"body": "Hi, my order?", "client_msg_id": uuid.uuid4().hex}},
        )
        assert started.status_code == 201
        return str(started.json()["id"])

    async def reply(self, conversation_id: str, body: str = "It ships today.") -> int:
        answer = await self.api.post(
            f"/admin/api/conversations/{conversation_id}/messages",
            headers=secret(self.tenant),
            json={"body": body, "client_msg_id": uuid.uuid4().hex},
        )
        assert answer.status_code == 201, answer.text
        return int(answer.json()["seq"])

    async def end_user_of(self, conversation_id: str) -> str:
        answer = await self.api.get(
            f"/admin/api/conversations/{conversation_id}", headers=secret(self.tenant)
        )
        return str(answer.json()["user"]["id"])

    async def log(self, conversation_id: str) -> list[dict[str, Any]]:
        person = await self.end_user_of(conversation_id)
        answer = await self.api.get(
            f"/admin/api/users/{person}/push-log", headers=self.owner.auth()
        )
        assert answer.status_code == 200, answer.text
        return list(answer.json()["items"])

    async def decisions(
        self, conversation_id: str, *, until: str, timeout: float = 15
    ) -> list[str]:
        """The decisions about the conversation, oldest first, once `until` is among them."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            items = [
                i
                for i in await self.log(conversation_id)
                if i["parent_id"] is None and i["channel"] == "push"
            ]
            found = [i["decision"] for i in reversed(items)]
            if until in found:
                return found
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no {until!r} decision: {found}")
            await asyncio.sleep(0.1)

    async def deliveries(
        self, conversation_id: str, *, settled: int = 1, timeout: float = 15
    ) -> list[dict[str, Any]]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            rows = [
                i
                for i in await self.log(conversation_id)
                if i["parent_id"] is not None and i["status"] not in ("pending", "retrying")
            ]
            if len(rows) >= settled:
                return rows
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"deliveries not settled: {await self.log(conversation_id)}")
            await asyncio.sleep(0.1)


@pytest.fixture
async def world(
    api: httpx.AsyncClient, make_tenant: MakeTenant, providers: FakeProviders, runtime_: Runtime
) -> World:
    return await World(api, await make_tenant("Acme"), providers).setup(runtime_)


async def _push_token(runtime: Runtime, tenant: Tenant, device: str) -> str | None:
    async with runtime.db.tenant_session(tenant.id) as session:
        return await session.scalar(  # type: ignore[no-any-return]
            text("SELECT push_token FROM devices WHERE app_id = :a AND device_id = :d"),
            {"a": tenant.id, "d": device},
        )


# --- the three protocols ----------------------------------------------------------------------


async def test_an_offline_person_gets_an_fcm_push_with_a_deep_link(
    world: World, providers: FakeProviders
) -> None:
    token = f"fcm-{uuid.uuid4().hex}"
    conversation = await world.person("android-1", "fcm", token)
    await world.reply(conversation, "Your parcel left the warehouse.")
    (push,) = await providers.wait_for(token)
    message = push.payload
    assert message["notification"] == {
        "title": "API from Acme",  # the secret key's author name
        "body": "Your parcel left the warehouse.",
    }
    assert message["data"]["conversation_id"] == conversation
    assert message["android"]["priority"] == "normal"
    assert message["android"]["collapse_key"] == conversation.replace("-", "")
    (delivery,) = await world.deliveries(conversation)
    assert delivery["status"] == "sent" and delivery["provider"] == "fcm"
    assert delivery["provider_response"].startswith("HTTP 200 ")
    assert "projects/acme-project/messages/" in delivery["provider_response"]
    assert delivery["latency_ms"] is not None
    assert (await world.decisions(conversation, until="sent")) == ["sent"]


async def test_the_fcm_access_token_is_reused_until_it_expires(
    world: World, providers: FakeProviders
) -> None:
    await world.rules(collapse_seconds=0)
    token = f"fcm-{uuid.uuid4().hex}"
    conversation = await world.person("android-2", "fcm", token)
    before = providers.token_requests
    for n in range(3):
        await world.reply(conversation, f"update {n}")
        await providers.wait_for(token, n + 1)
    assert providers.token_requests - before <= 1  # one per app credentials, then cached


async def test_each_app_gets_access_tokens_with_its_own_service_account(
    world: World, providers: FakeProviders, make_tenant: MakeTenant, runtime_: Runtime
) -> None:
    """Two apps, two Firebase projects: each app's JWT is signed with its own key, and each
    push carries an access token of its own project (the fake refuses another's, as Google
    does). A cache of keys or tokens keyed by anything less than the app's credentials would
    sign with, or reuse, the other app's."""
    other = await World(world.api, await make_tenant("Globex"), providers).setup(runtime_)
    answer = await other.api.put(
        "/admin/api/push/credentials/fcm",
        headers=other.owner.auth(),
        json={"service_account": providers.service_account("globex-project")},
    )
    assert answer.status_code == 200, answer.text
    await world.rules(collapse_seconds=0)
    await other.rules(collapse_seconds=0)
    mine, theirs = f"fcm-{uuid.uuid4().hex}", f"fcm-{uuid.uuid4().hex}"
    acme = await world.person("android-acme", "fcm", mine)
    globex = await other.person("android-globex", "fcm", theirs)
    refused_before = len(providers.refused)
    for n in range(2):  # the second time from the token caches
        await world.reply(acme, f"acme {n}")
        await other.reply(globex, f"globex {n}")
        await providers.wait_for(mine, n + 1)
        await providers.wait_for(theirs, n + 1)
    assert providers.refused[refused_before:] == []
    for token, project in ((mine, "acme-project"), (theirs, "globex-project")):
        for push in providers.to(token):
            bearer = push.headers["authorization"].removeprefix("Bearer ")
            assert providers.access_tokens[bearer] == project
    (delivery, *_) = await other.deliveries(globex)
    assert "projects/globex-project/messages/" in delivery["provider_response"]


async def test_an_iphone_gets_an_apns_push_over_http2(
    world: World, providers: FakeProviders
) -> None:
    conversation = await world.person("iphone-1", "apns", APNS_TOKEN)
    await world.reply(conversation, "Refund approved.")
    (push,) = await providers.wait_for(APNS_TOKEN)
    assert push.http_version == "2"
    assert push.headers["apns-priority"] == "5"
    assert push.headers["apns-push-type"] == "alert"
    assert push.headers["apns-collapse-id"] == conversation.replace("-", "")
    assert push.payload["aps"]["alert"] == {"title": "API from Acme", "body": "Refund approved."}
    assert push.payload["aps"]["thread-id"] == conversation.replace("-", "")
    assert push.payload["conversation_id"] == conversation
    (delivery,) = await world.deliveries(conversation)
    assert delivery["provider_response"].startswith("HTTP 200 apns-id: ")


async def test_a_browser_gets_an_encrypted_web_push_signed_with_the_apps_vapid_key(
    world: World, providers: FakeProviders
) -> None:
    browser = providers.new_browser()
    conversation = await world.person("browser-1", "webpush", browser.subscription)  # type: ignore[arg-type]
    await world.reply(conversation, "We fixed it.")
    (push,) = await providers.wait_for(browser.endpoint)
    # The fake decrypted it with the browser's keys and checked the VAPID signature.
    assert push.payload["title"] == "API from Acme"
    assert push.payload["body"] == "We fixed it."
    assert push.payload["conversation_id"] == conversation
    assert push.headers["urgency"] == "normal"
    assert push.headers["topic"] == conversation.replace("-", "")


# --- provider errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "status", "body"),
    [
        (
            "fcm",
            404,
            {
                "error": {
                    "code": 404,
                    "status": "NOT_FOUND",
                    "details": [{"errorCode": "UNREGISTERED"}],
                }
            },
        ),
        ("apns", 410, {"reason": "Unregistered", "timestamp": 1700000000000}),
        ("apns", 400, {"reason": "BadDeviceToken"}),
        ("webpush", 410, None),
        ("webpush", 404, None),
    ],
)
async def test_a_token_the_provider_calls_invalid_is_removed(
    world: World,
    providers: FakeProviders,
    runtime_: Runtime,
    provider: str,
    status: int,
    body: Any,
) -> None:
    device = f"dev-{uuid.uuid4().hex[:6]}"
    if provider == "webpush":
        browser = providers.new_browser()
        token: Any = browser.subscription
        key = browser.endpoint
    else:
        key = token = (uuid.uuid4().hex * 2) if provider == "apns" else f"fcm-{uuid.uuid4().hex}"
    providers.script[key].append((status, body, {}))
    conversation = await world.person(device, provider, token)
    assert await _push_token(runtime_, world.tenant, device) is not None
    await world.reply(conversation)
    (delivery,) = await world.deliveries(conversation)
    assert delivery["status"] == "invalid"
    assert delivery["provider_status"] == status
    assert await _push_token(runtime_, world.tenant, device) is None


async def test_429_and_5xx_are_retried_after_the_providers_retry_after(
    world: World, providers: FakeProviders
) -> None:
    token = f"fcm-{uuid.uuid4().hex}"
    providers.script[token].append(
        (429, {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}, {"Retry-After": "2"})
    )
    providers.script[token].append((503, {"error": {"code": 503, "status": "UNAVAILABLE"}}, {}))
    conversation = await world.person("android-retry", "fcm", token)
    started = asyncio.get_running_loop().time()
    await world.reply(conversation)
    await providers.wait_for(token, timeout=20)
    assert asyncio.get_running_loop().time() - started >= 2.0  # waited as told
    (delivery,) = await world.deliveries(conversation)
    assert (delivery["status"], delivery["attempts"]) == ("sent", 3)


async def test_apns_5xx_is_retried(world: World, providers: FakeProviders) -> None:
    token = uuid.uuid4().hex * 2
    providers.script[token].append((503, {"reason": "ServiceUnavailable"}, {"Retry-After": "1"}))
    conversation = await world.person("iphone-retry", "apns", token)
    await world.reply(conversation)
    await providers.wait_for(token, timeout=20)
    (delivery,) = await world.deliveries(conversation)
    assert delivery["attempts"] == 2, await world.log(conversation)


# --- smart delivery ----------------------------------------------------------------------------


async def _online(
    server: SocketServer, tenant: Tenant, device: str, recorders: list[Recorder]
) -> Recorder:
    recorder = Recorder()
    recorders.append(recorder)
    await recorder.connect(
        server.url, {"app_id": str(tenant.id), "api_key": tenant.sdk_key, "device_id": device}
    )
    return recorder


async def test_no_push_while_the_person_is_online(
    world: World,
    providers: FakeProviders,
    socket_server: SocketServer,
    recorders: list[Recorder],
) -> None:
    token = f"fcm-{uuid.uuid4().hex}"
    conversation = await world.person("android-online", "fcm", token)
    await _online(socket_server, world.tenant, "android-online", recorders)
    await world.reply(conversation)
    assert await world.decisions(conversation, until="online") == ["held", "online"]
    assert providers.to(token) == []


async def test_no_push_for_a_reply_read_during_the_hold(
    world: World,
    providers: FakeProviders,
    socket_server: SocketServer,
    recorders: list[Recorder],
) -> None:
    token = f"fcm-{uuid.uuid4().hex}"
    conversation = await world.person("android-reader", "fcm", token)
    socket = await _online(socket_server, world.tenant, "android-reader", recorders)
    seq = await world.reply(conversation)
    await socket.wait_for("message:new")
    # Read once the worker has held the push (under load it may look only after a prompt read,
    # which is the other case: "read before a push was due").
    assert await world.decisions(conversation, until="held") == ["held"]
    ack = await socket.call("read", {"conversation_id": conversation, "seq": seq})
    assert ack["ok"], ack
    await socket.close()  # gone before the hold ends: only the read keeps the push away
    decisions = await world.decisions(conversation, until="read")
    assert decisions == ["held", "read"]
    log = await world.log(conversation)
    assert next(i for i in log if i["decision"] == "read")["reason"] == "read during the hold"
    assert providers.to(token) == []


async def test_quiet_hours_follow_each_persons_time_zone(
    world: World, providers: FakeProviders
) -> None:
    # Quiet for two hours around the present moment in Tokyo (UTC+9, no DST): 9 hours away
    # from the present in UTC, where the same window is not quiet.
    tokyo = dt.datetime.now(ZoneInfo("Asia/Tokyo"))
    start = (tokyo - dt.timedelta(hours=1)).strftime("%H:%M")
    end = (tokyo + dt.timedelta(hours=1)).strftime("%H:%M")
    await world.rules(quiet_hours_start=start, quiet_hours_end=end, collapse_seconds=0)
    sleeper, awake = f"fcm-{uuid.uuid4().hex}", f"fcm-{uuid.uuid4().hex}"
    in_tokyo = await world.person("tokyo", "fcm", sleeper, timezone="Asia/Tokyo")
    in_london = await world.person("utc", "fcm", awake, timezone="Etc/UTC")
    await world.reply(in_tokyo)
    await world.reply(in_london)
    await providers.wait_for(awake)
    assert await world.decisions(in_tokyo, until="quiet_hours") == ["quiet_hours"]
    reason = next(i for i in await world.log(in_tokyo) if i["decision"] == "quiet_hours")["reason"]
    assert "Asia/Tokyo" in reason
    assert providers.to(sleeper) == []


async def test_at_most_the_hourly_limit_of_pushes_per_person(
    world: World, providers: FakeProviders
) -> None:
    await world.rules(hourly_limit=2, collapse_seconds=0)
    token = f"fcm-{uuid.uuid4().hex}"
    conversation = await world.person("android-cap", "fcm", token)
    for n in range(2):
        await world.reply(conversation, f"reply {n}")
        await providers.wait_for(token, n + 1)
    await world.reply(conversation, "one too many")
    assert await world.decisions(conversation, until="rate_limited") == [
        "sent",
        "sent",
        "rate_limited",
    ]
    assert len(providers.to(token)) == 2


async def test_replies_in_quick_succession_collapse_into_one_notification(
    world: World, providers: FakeProviders
) -> None:
    await world.rules(collapse_seconds=2)
    token = f"fcm-{uuid.uuid4().hex}"
    conversation = await world.person("android-burst", "fcm", token)
    await world.reply(conversation, "Looking into it")
    await providers.wait_for(token)
    for body in ("Found it", "It was a typo", "Fixed now"):
        await world.reply(conversation, body)
    assert (await world.decisions(conversation, until="collapsed"))[0] == "sent"
    await asyncio.sleep(3)  # past the collapse window: nothing more is sent for the burst
    assert len(providers.to(token)) == 1  # 4 replies, 1 notification
    decisions = await world.decisions(conversation, until="collapsed")
    assert decisions[0] == "sent" and set(decisions[1:]) == {"collapsed"}, decisions
    # A reply after the window is pushed, and its notification (which replaces the one shown:
    # same collapse key) counts every unread reply.
    await world.reply(conversation, "Anything else?")
    pushes = await providers.wait_for(token, 2)
    assert pushes[1].payload["notification"] == {
        "title": "Acme",
        "body": "5 new messages from Acme",
    }
    assert pushes[1].payload["android"]["collapse_key"] == conversation.replace("-", "")


# --- the dashboard's test push ---------------------------------------------------------------


async def test_send_test_push_shows_the_providers_answer(
    world: World, providers: FakeProviders, runtime_: Runtime
) -> None:
    token = uuid.uuid4().hex * 2
    conversation = await world.person("iphone-test", "apns", token)
    providers.script[token].append((400, {"reason": "DeviceTokenNotForTopic"}, {}))
    person = await world.end_user_of(conversation)
    agent = await login(world.api, await add_staff(runtime_, world.tenant, "AGENT"))
    refused = await world.api.post(
        f"/admin/api/users/{person}/test-push", headers=agent.auth(), json={}
    )
    assert refused.status_code == 403
    answer = await world.api.post(
        f"/admin/api/users/{person}/test-push", headers=world.owner.auth(), json={}
    )
    assert answer.status_code == 202, answer.text
    deliveries = [d for d in answer.json()["deliveries"] if d["parent_id"]]
    assert [d["status"] for d in deliveries] == ["pending"]
    (delivery,) = await world.deliveries(conversation)
    assert delivery["channel"] == "test"
    assert delivery["provider_response"] == 'HTTP 400 {"reason":"DeviceTokenNotForTopic"}'


# --- e-mail fallback ---------------------------------------------------------------------------


def _time_passes(servers: Servers, end_user_id: str) -> int:
    """The person's waiting e-mail fallback is due now (as if its minutes had passed)."""
    with psycopg.connect(servers.database_url, autocommit=True) as connection:
        return connection.execute(
            "UPDATE procrastinate_jobs SET scheduled_at = now() "
            "WHERE task_name = 'push.email_fallback' AND status = 'todo' "
            "AND args->>'end_user_id' = %s",
            (end_user_id,),
        ).rowcount


async def test_unread_replies_are_emailed_once_in_one_batch(
    world: World, smtp: SmtpServer, servers: Servers
) -> None:
    address = f"ann-{uuid.uuid4().hex[:6]}@example.com"
    await world.rules(email_link="https://shop.example/support?c={conversation_id}")
    conversation = await world.person(
        "android-mail", "fcm", f"fcm-{uuid.uuid4().hex}", email=address
    )
    person = await world.end_user_of(conversation)
    await world.reply(conversation, "Which size do you need?")
    await world.reply(conversation, "We have M and L.")
    await world.decisions(conversation, until="sent")
    assert _time_passes(servers, person) == 1  # one e-mail waits for both replies
    (mail,) = await smtp.wait_for(address)
    assert mail["Subject"] == "2 new replies from Acme"
    body = text_of(mail)
    assert "Which size do you need?" in body and "We have M and L." in body
    assert f"https://shop.example/support?c={conversation}" in body
    # A reply later gets its own e-mail, without the ones already sent.
    await world.reply(conversation, "Shipping it now.")
    for _ in range(50):
        if _time_passes(servers, person):
            break
        await asyncio.sleep(0.1)
    mails = await smtp.wait_for(address, 2)
    later = text_of(mails[1])
    assert "Shipping it now." in later and "Which size" not in later
    emailed = [i for i in await world.log(conversation) if i["channel"] == "email"]
    assert [(i["decision"], i["message_count"]) for i in emailed] == [("sent", 1), ("sent", 2)]


async def test_no_email_for_replies_already_read(
    world: World, smtp: SmtpServer, servers: Servers
) -> None:
    address = f"bo-{uuid.uuid4().hex[:6]}@example.com"
    conversation = await world.person(
        "android-read", "fcm", f"fcm-{uuid.uuid4().hex}", email=address
    )
    person = await world.end_user_of(conversation)
    seq = await world.reply(conversation, "Done!")
    await world.decisions(conversation, until="sent")
    read = await world.api.post(
        f"/v1/conversations/{conversation}/read",
        headers=world.tenant.sdk("android-read"),
        json={"seq": seq},
    )
    assert read.status_code == 204
    assert _time_passes(servers, person) == 1
    await asyncio.sleep(1.5)  # the job ran (poll 0.2 s) and sent nothing
    assert smtp.to(address) == []
    with psycopg.connect(servers.database_url, autocommit=True) as connection:
        left = connection.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'push.email_fallback' "
            "AND args->>'end_user_id' = %s AND status IN ('todo', 'doing')",
            (person,),
        ).fetchone()
    assert left == (0,)


async def test_a_private_note_is_in_no_push_and_no_email(
    world: World, providers: FakeProviders, smtp: SmtpServer, servers: Servers
) -> None:
    """Issue 19: a note written among the replies reaches neither the person's device (push)
    nor their mailbox (the e-mail fallback); the replies around it do."""
    address = f"cy-{uuid.uuid4().hex[:6]}@example.com"
    token = f"fcm-{uuid.uuid4().hex}"
    conversation = await world.person("android-note", "fcm", token, email=address)
    person = await world.end_user_of(conversation)
    await world.reply(conversation, "Checking with the warehouse.")
    note = await world.api.post(
        f"/admin/api/conversations/{conversation}/notes",
        headers=world.owner.auth(),
        json={"body": "SECRET-NOTE: customer flagged for fraud", "client_msg_id": "note-1"},
    )
    assert note.status_code == 201, note.text
    await world.reply(conversation, "It left this morning.")
    await providers.wait_for(token)
    await world.decisions(conversation, until="sent")
    pushed = " ".join(str(p.payload) for p in providers.to(token))
    assert "Checking with the warehouse." in pushed or "It left this morning." in pushed
    for _ in range(50):
        if _time_passes(servers, person):
            break
        await asyncio.sleep(0.1)
    (mail,) = await smtp.wait_for(address)
    body = text_of(mail)
    assert "Checking with the warehouse." in body and "It left this morning." in body
    assert "SECRET-NOTE" not in body and "fraud" not in body
    pushed = " ".join(str(p.payload) for p in providers.to(token))
    assert "SECRET-NOTE" not in pushed and "fraud" not in pushed
