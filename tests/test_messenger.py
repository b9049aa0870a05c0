"""The messenger's settings (ADMIN/OWNER), what the SDK reads of them, office hours' away reply
(once per conversation per away period), the expected reply time and visitor context."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import text

from replyhq.runtime import Runtime
from tests.conftest import MakeTenant, SocketServer, Tenant, identify, start_conversation
from tests.realtime_clients import Recorder
from tests.staff import secret, signed_in
from tests.test_protocol import check
from tests.test_realtime_staff import agent_socket, device_socket

CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


async def _config(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, object]:
    headers = {"X-App-Id": str(tenant.id), "X-Api-Key": tenant.sdk_key}  # no device needed
    response = await client.get("/v1/messenger", headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


async def test_admins_change_the_look_and_the_sdk_reads_it(
    client: httpx.AsyncClient, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant, other = await make_tenant(), await make_tenant()
    admin = await signed_in(runtime, client, tenant, "ADMIN")
    defaults = (await client.get("/admin/api/messenger", headers=admin.auth())).json()
    assert defaults["color"] == "#3454d1"
    assert defaults["updated_at"] is None

    change = {"color": "#E4007C", "greeting": "Bonjour !", "language": "fr", "team_name": "Acme"}
    response = await client.patch("/admin/api/messenger", headers=admin.auth(), json=change)
    assert response.status_code == 200, response.text
    config = await _config(client, tenant)
    settings = config["settings"]
    assert isinstance(settings, dict)
    assert {k: settings[k] for k in change} == change
    assert settings["launcher_position"] == "right"  # untouched fields keep their values
    assert config["availability"] == {"open": True, "away_since": None, "back_at": None}
    # Another app still has the defaults.
    other_settings = (await _config(client, other))["settings"]
    assert isinstance(other_settings, dict)
    assert other_settings["color"] == "#3454d1"


async def test_bad_settings_are_400_and_change_nothing(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    admin = await signed_in(runtime, client, tenant, "OWNER")
    await client.patch("/admin/api/messenger", headers=admin.auth(), json={"color": "#112233"})
    for bad in (
        {"color": "red"},
        {"timezone": "Mars/Olympus"},
        {"language": "xx"},
        {"office_hours": [{"day": 7, "open": "09:00", "close": "17:00"}]},
        {"office_hours": [{"day": 1, "open": "17:00", "close": "09:00"}]},
        {"avatar_url": "javascript:alert(1)"},
        {"launcher_position": "top"},
        {"unknown": 1},
    ):
        response = await client.patch("/admin/api/messenger", headers=admin.auth(), json=bad)
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["code"] == "VALIDATION_ERROR"
    after = (await client.get("/admin/api/messenger", headers=admin.auth())).json()
    assert after["color"] == "#112233"
    assert after["timezone"] == "UTC"


async def test_agents_may_not_change_the_messenger(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    agent = await signed_in(runtime, client, tenant, "AGENT")
    response = await client.patch("/admin/api/messenger", headers=agent.auth(), json={})
    assert response.status_code == 403
    assert response.json()["required"] == "settings:write"
    assert (await client.get("/admin/api/messenger", headers=agent.auth())).status_code == 403


async def _away(client: httpx.AsyncClient, tenant: Tenant, **extra: object) -> None:
    # No ranges at all: always away (one away period).
    body = {
        "office_hours_enabled": True,
        "office_hours": [],
        "away_message": "Gone fishing.",
        **extra,
    }
    response = await client.patch("/admin/api/messenger", headers=secret(tenant), json=body)
    assert response.status_code == 200, response.text


async def _messages(
    client: httpx.AsyncClient, tenant: Tenant, cid: object
) -> list[dict[str, object]]:
    response = await client.get(f"/v1/conversations/{cid}/messages", headers=tenant.sdk())
    items: list[dict[str, object]] = response.json()["items"]
    return items


async def test_away_reply_comes_once_per_conversation(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await _away(client, tenant, language="fr")
    config = await _config(client, tenant)
    assert config["availability"]["open"] is False  # type: ignore[index]
    await identify(client, tenant)
    conversation = await start_conversation(client, tenant, body="Anyone there?")
    cid = conversation["id"]
    for body in ("Hello?", "Still there?"):
        response = await client.post(
            f"/v1/conversations/{cid}/messages",
            headers=tenant.sdk(),
            json={"body": body, "client_msg_id": uuid.uuid4().hex},
        )
        assert response.status_code == 201
    messages = await _messages(client, tenant, cid)
    assert [m["sender"] for m in messages] == ["user", "system", "user", "user"]
    reply = messages[1]
    assert reply["body"].startswith("Gone fishing.")  # type: ignore[union-attr]
    assert "Nous vous répondrons" in reply["body"]  # type: ignore[operator]
    assert reply["author"]["name"] == "Support"  # type: ignore[index]
    # A second conversation gets its own, once.
    second = await start_conversation(client, tenant, body="Other question")
    assert [m["sender"] for m in await _messages(client, tenant, second["id"])] == [
        "user",
        "system",
    ]


async def test_no_away_reply_within_hours_or_when_turned_off(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await _away(client, tenant, auto_reply=False)
    await identify(client, tenant)
    conversation = await start_conversation(client, tenant)
    assert [m["sender"] for m in await _messages(client, tenant, conversation["id"])] == ["user"]
    every_day = [{"day": d, "open": "00:00", "close": "24:00"} for d in range(7)]
    await _away(client, tenant, auto_reply=True, office_hours=every_day)
    assert (await _config(client, tenant))["availability"]["open"] is True  # type: ignore[index]
    conversation = await start_conversation(client, tenant)
    assert [m["sender"] for m in await _messages(client, tenant, conversation["id"])] == ["user"]


async def test_expected_reply_time_is_the_median_first_response_of_the_last_week(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    assert (await _config(client, tenant))["expected_reply_seconds"] is None
    await identify(client, tenant)
    delays = {60: 0, 120: 1, 600: 2, 3600: 10}  # first response after N s, started N' days ago
    for seconds, days_ago in delays.items():
        cid = (await start_conversation(client, tenant))["id"]
        await client.post(
            f"/admin/api/conversations/{cid}/messages",
            headers=secret(tenant),
            json={"body": "Hi!", "client_msg_id": uuid.uuid4().hex},
        )
        async with runtime.db.system_session() as session:
            await session.execute(
                text(
                    "UPDATE conversation_metrics SET created_at = now() - :ago, "
                    "first_response_at = now() - :ago + :delay WHERE conversation_id = :id"
                ),
                {"ago": timedelta(days=days_ago), "delay": timedelta(seconds=seconds), "id": cid},
            )
    from replyhq.messenger import service

    service._CACHES.clear()  # the 5-minute cache of the figure
    # 3600 s is 10 days old: the median of 60, 120 and 600.
    assert (await _config(client, tenant))["expected_reply_seconds"] == 120


async def test_visitor_context_is_shown_to_agents(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant, make_tenant: MakeTenant
) -> None:
    unknown = await client.post(
        "/v1/context", headers=tenant.sdk("new-device"), json={"page_url": "https://a.example/"}
    )
    assert unknown.status_code == 401
    await identify(client, tenant)
    cid = (await start_conversation(client, tenant))["id"]
    agent = await signed_in(runtime, client, tenant, "AGENT")
    empty = await client.get(f"/admin/api/conversations/{cid}/context", headers=agent.auth())
    assert empty.status_code == 200
    assert empty.json() is None
    body = {
        "page_url": "https://shop.example/pricing?plan=pro",
        "page_title": "Pricing",
        "referrer": "https://search.example/?q=acme",
    }
    headers = {**tenant.sdk(), "User-Agent": CHROME_MAC}
    response = await client.post("/v1/context", headers=headers, json=body)
    assert response.status_code == 200, response.text
    seen = (
        await client.get(f"/admin/api/conversations/{cid}/context", headers=agent.auth())
    ).json()
    assert {k: seen[k] for k in body} == body
    assert seen["browser"] == "Chrome 131"
    assert seen["os"] == "Mac OS X 10"
    bad = await client.post("/v1/context", headers=headers, json={"page_url": "javascript:x"})
    assert bad.status_code == 400
    # Another app's agent cannot read it.
    stranger = await signed_in(runtime, client, await make_tenant(), "ADMIN")
    hidden = await client.get(f"/admin/api/conversations/{cid}/context", headers=stranger.auth())
    assert hidden.status_code == 404


async def test_open_messengers_hear_a_settings_change_live(
    socket_server: SocketServer,
    make_tenant: MakeTenant,
    http: httpx.AsyncClient,
    recorders: list[Recorder],
) -> None:
    """Every device socket of the app (identified or not, with or without a conversation) gets
    `messenger:settings` once the change is saved: what GET /v1/messenger answers from then on.
    Another app's devices and the agents' sockets do not."""
    acme, other = await make_tenant("Acme"), await make_tenant("Other")
    admin = await signed_in(socket_server.runtime, http, acme, "ADMIN")
    await identify(http, acme, "anonymous")
    await identify(http, acme, "known", user_id="u1", user_hash=acme.user_hash("u1"))
    await identify(http, other, "theirs")
    devices = [
        await device_socket(socket_server, acme, "anonymous", recorders),
        await device_socket(socket_server, acme, "known", recorders),
    ]
    spy = await device_socket(socket_server, other, "theirs", recorders)
    agent = await agent_socket(socket_server, admin, recorders)
    change = {"color": "#e4007c", "greeting": "Bonjour !", "language": "fr"}
    saved = await http.patch("/admin/api/messenger", headers=admin.auth(), json=change)
    assert saved.status_code == 200, saved.text
    served = (await http.get("/v1/messenger", headers=acme.sdk("anonymous"))).json()
    for socket in devices:
        (live,) = await socket.wait_for("messenger:settings")
        check("server", "messenger:settings", live)
        assert live["settings"] == served["settings"]
        assert live["availability"]["open"] is True
    assert spy.events["messenger:settings"] == []
    assert agent.events["messenger:settings"] == []
