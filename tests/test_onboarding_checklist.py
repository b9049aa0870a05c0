"""The survey and the checklist: each step done by the real event (never by a call), recorded
once, and heard live on the /admin socket by the app's staff only."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import delete

from replyhq.onboarding.models import STEPS, OnboardingState
from tests.conftest import SocketServer
from tests.newcomers import Newcomer, sign_up
from tests.realtime_clients import Recorder


async def staff_socket(server: SocketServer, token: str, recorders: list[Recorder]) -> Recorder:
    recorder = Recorder()
    await recorder.connect(server.url, {"token": token}, namespace="/admin")
    recorders.append(recorder)
    return recorder


async def checklist(http: httpx.AsyncClient, who: Newcomer) -> dict[str, dict[str, object]]:
    response = await http.get("/admin/api/onboarding", headers=who.auth())
    assert response.status_code == 200, response.text
    return {step["key"]: step for step in response.json()["steps"]}


async def test_each_step_is_done_by_its_real_event_and_heard_live_once(
    socket_server: SocketServer, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    owner = await sign_up(http)
    stranger = await sign_up(http, "Elsewhere")
    live = await staff_socket(socket_server, owner.access, recorders)
    elsewhere = await staff_socket(socket_server, stranger.access, recorders)
    steps = await checklist(http, owner)
    assert list(steps) == list(STEPS)
    assert not any(step["done"] for step in steps.values())
    app = owner.tenant

    # A device identifies: the SDK is installed.
    identified = await http.post("/v1/identify", headers=app.sdk("d1"), json={"platform": "web"})
    assert identified.status_code == 200
    [heard] = await live.wait_for("onboarding:step")
    assert heard["key"] == "sdk_installed" and heard["done"] is True
    assert (await checklist(http, owner))["sdk_installed"]["done_at"] == heard["done_at"]

    # The end user writes: the first message.
    started = await http.post(
        "/v1/conversations",
        headers=app.sdk("d1"),
        json={"first_message": {"body": "Hello?", "client_msg_id": uuid.uuid4().hex}},
    )
    assert started.status_code == 201, started.text
    await live.wait_for("onboarding:step", 2)

    # A verified identify.
    verified = await http.post(
        "/v1/identify",
        headers=app.sdk("d2"),
        json={"platform": "ios", "user_id": "u1", "user_hash": owner.user_hash("u1")},
    )
    assert verified.status_code == 200
    await live.wait_for("onboarding:step", 3)

    # A teammate invited, and an agent's answer.
    invited = await http.post(
        "/admin/api/team/invites",
        headers=owner.auth(),
        json={"email": f"mate-{uuid.uuid4().hex[:6]}@example.test", "role": "AGENT"},
    )
    assert invited.status_code == 201
    await live.wait_for("onboarding:step", 4)
    conversation_id = started.json()["id"]
    replied = await http.post(
        f"/admin/api/conversations/{conversation_id}/messages",
        headers=owner.auth(),
        json={"body": "Hi! How can I help?", "client_msg_id": uuid.uuid4().hex},
    )
    assert replied.status_code == 201
    heard_all = await live.wait_for("onboarding:step", 5)
    assert [h["key"] for h in heard_all] == [
        "sdk_installed",
        "first_message",
        "identity_verified",
        "teammate_invited",
        "first_reply",
    ]

    # Doing it all again flips nothing and says nothing.
    await http.post(
        f"/v1/conversations/{conversation_id}/messages",
        headers=app.sdk("d1"),
        json={"body": "Thanks", "client_msg_id": uuid.uuid4().hex},
    )
    await http.post("/v1/identify", headers=app.sdk("d3"), json={"platform": "web"})
    await live.wait_for("message:new", 3)
    await asyncio.sleep(0.3)
    assert len(live.events["onboarding:step"]) == 5
    state = (await http.get("/admin/api/onboarding", headers=owner.auth())).json()
    assert state["complete"] is True
    assert all(step["done"] for step in state["steps"])
    # Another app's owner heard nothing of it, and their checklist is untouched.
    assert elsewhere.events["onboarding:step"] == []
    assert not any(s["done"] for s in (await checklist(http, stranger)).values())

    dismissed = await http.post("/admin/api/onboarding/dismiss", headers=owner.auth())
    assert dismissed.status_code == 200
    assert dismissed.json()["dismissed_at"] is not None


async def test_a_checklist_is_not_dismissed_before_it_is_complete(
    http: httpx.AsyncClient,
) -> None:
    owner = await sign_up(http)
    refused = await http.post("/admin/api/onboarding/dismiss", headers=owner.auth())
    assert refused.status_code == 409
    assert refused.json()["code"] == "ONBOARDING_INCOMPLETE"
    assert (await http.get("/admin/api/onboarding", headers=owner.auth())).json()[
        "dismissed_at"
    ] is None


async def test_steps_nothing_recorded_are_found_in_the_data(
    socket_server: SocketServer, http: httpx.AsyncClient
) -> None:
    owner = await sign_up(http)
    app = owner.tenant
    await http.post("/v1/identify", headers=app.sdk("d1"), json={"platform": "web"})
    await http.post(
        "/v1/conversations",
        headers=app.sdk("d1"),
        json={"first_message": {"body": "Hello?", "client_msg_id": uuid.uuid4().hex}},
    )
    # As if the process had stopped before its reactions ran (or the app predates sign-up).
    async with socket_server.runtime.db.tenant_session(app.id) as session:
        await session.execute(delete(OnboardingState).where(OnboardingState.app_id == app.id))
    steps = await checklist(http, owner)
    assert steps["sdk_installed"]["done"] and steps["first_message"]["done"]
    assert not steps["first_reply"]["done"] and not steps["teammate_invited"]["done"]


async def test_the_survey_is_stored_changeable_and_skippable(http: httpx.AsyncClient) -> None:
    owner = await sign_up(http)
    fresh = (await http.get("/admin/api/onboarding", headers=owner.auth())).json()["survey"]
    assert fresh == {"platform": None, "use_case": None, "answered_at": None, "skipped_at": None}

    skipped = await http.patch(
        "/admin/api/onboarding/survey", headers=owner.auth(), json={"skipped": True}
    )
    assert skipped.status_code == 200
    assert skipped.json()["survey"]["skipped_at"] is not None
    assert skipped.json()["survey"]["platform"] is None

    answered = await http.patch(
        "/admin/api/onboarding/survey",
        headers=owner.auth(),
        json={"platform": "flutter", "use_case": "support"},
    )
    assert answered.json()["survey"]["platform"] == "flutter"
    changed = await http.patch(
        "/admin/api/onboarding/survey", headers=owner.auth(), json={"platform": "python"}
    )
    assert changed.json()["survey"] | {"answered_at": None, "skipped_at": None} == {
        "platform": "python",
        "use_case": "support",
        "answered_at": None,
        "skipped_at": None,
    }
    for bad in ({"platform": "cobol"}, {"use_case": "x" * 40}, {"platform": "web", "x": 1}):
        refused = await http.patch("/admin/api/onboarding/survey", headers=owner.auth(), json=bad)
        assert refused.status_code == 400, bad
        assert refused.json()["code"] == "VALIDATION_ERROR"
    still = (await http.get("/admin/api/onboarding", headers=owner.auth())).json()["survey"]
    assert still["platform"] == "python"
