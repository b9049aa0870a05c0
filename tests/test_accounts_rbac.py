"""RBAC: every /admin/api route declares its permission, and each role (and the app's secret key)
gets exactly what the role table grants, against every admin route."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from replyhq.accounts.deps import required_permissions
from replyhq.accounts.permissions import (
    INTEGRATION_ROLE,
    PERMISSIONS,
    ROLE_PERMISSIONS,
    Role,
    allowed,
)
from replyhq.onboarding import service as onboarding_service
from replyhq.onboarding.models import STEPS
from replyhq.runtime import Runtime
from tests.attachment_support import png
from tests.conftest import MakeTenant, Tenant, identify, start_conversation
from tests.staff import Staff, add_staff, secret, signed_in
from tests.test_push_tokens import push_cases
from tests.test_segments_api import segment_cases


def _admin_routes(app: FastAPI) -> list[APIRoute]:
    """Every mounted route under /admin/api (routers included into the app are expanded)."""
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and (context.path or "").startswith("/admin/api"):
            assert context.path == route.path  # mounted without an extra prefix
            found.append(route)
    return found


def test_every_admin_api_route_requires_a_permission(app: FastAPI) -> None:
    routes = _admin_routes(app)
    assert len(routes) >= 15
    missing = [f"{sorted(r.methods)} {r.path}" for r in routes if not required_permissions(r)]
    assert missing == []
    for route in routes:
        assert set(required_permissions(route)) <= PERMISSIONS


def test_openapi_states_each_admin_routes_permission(app: FastAPI) -> None:
    schema = app.openapi()
    for route in _admin_routes(app):
        for method in route.methods:
            operation = schema["paths"][route.path][method.lower()]
            (permission,) = required_permissions(route)
            assert operation["x-required-permission"] == [permission]
            assert f"`{permission}`" in operation["description"]
            # Both ways in are documented: bearer token and secret key headers.
            schemes = {name for requirement in operation["security"] for name in requirement}
            assert schemes >= {"StaffToken", "AppId", "SecretKey"}, schemes


def test_the_role_table_matches_the_roadmap() -> None:
    assert ROLE_PERMISSIONS[Role.OWNER] == {"*"}
    # Issue 13 widened the roadmap's AGENT row: agents close, reopen and assign conversations and
    # read the end user's profile (this asserted the read-and-reply-only row before).
    assert ROLE_PERMISSIONS[Role.AGENT] == {
        "conversations:read",
        "conversations:write",
        "messages:read",
        "messages:write",
        "users:read",
    }
    assert {
        "conversations:read",
        "conversations:write",
        "messages:read",
        "messages:write",
        "users:read",
        "settings:read",
        "settings:write",
    } <= ROLE_PERMISSIONS[Role.ADMIN]
    for owner_only in ("keys:rotate", "team:owners", "billing:write"):
        assert [r for r in Role if allowed(r, owner_only)] == [Role.OWNER]
    assert [r for r in Role if allowed(r, "billing:read")] == [Role.OWNER, Role.ADMIN]
    for management in ("team:read", "team:write", "settings:read", "settings:write"):
        assert not allowed(Role.AGENT, management)


# --- the full matrix ----------------------------------------------------------------------------


@dataclass
class World:
    """One app per caller, so destructive cases (key rotation, removals) never interfere."""

    tenant: Tenant
    owner: Staff
    headers: dict[str, str]
    conversation_id: str
    end_user_id: str
    runtime: Runtime


Case = Callable[[World], Awaitable[tuple[str, str, dict[str, object] | bytes | None]]]


async def _fresh_member(world: World) -> str:
    return str((await add_staff(world.runtime, world.tenant, "AGENT")).id)


async def _pending_invite(world: World, client: httpx.AsyncClient) -> str:
    response = await client.post(
        "/admin/api/team/invites",
        headers=world.owner.auth(),
        json={"email": f"{uuid.uuid4().hex[:8]}@example.com"},
    )
    return str(response.json()["id"])


async def _label(world: World, client: httpx.AsyncClient) -> str:
    name = uuid.uuid4().hex[:8]
    response = await client.post(
        "/admin/api/labels", headers=world.owner.auth(), json={"name": name}
    )
    return str(response.json()["id"])


async def _saved_reply(world: World, client: httpx.AsyncClient) -> str:
    body = {"name": "Hi", "shortcut": uuid.uuid4().hex[:8], "body": "Hi {{user.name}}"}
    response = await client.post("/admin/api/saved-replies", headers=world.owner.auth(), json=body)
    return str(response.json()["id"])


def triggered_cases(client: httpx.AsyncClient) -> dict[tuple[str, str], Case]:
    """Event-triggered messages (issue 16)."""
    base = "/admin/api/triggered-messages"

    def body(w: World) -> dict[str, object]:
        return {
            "name": "Welcome",
            "event_name": "signed_up",
            "sender_id": str(w.owner.id),
            "body": "Hi",
        }

    async def _made(w: World) -> str:
        response = await client.post(base, headers=w.owner.auth(), json=body(w))
        return str(response.json()["id"])

    async def listed(w: World) -> tuple[str, str, None]:
        return "GET", base, None

    async def create(w: World) -> tuple[str, str, dict[str, object]]:
        return "POST", base, body(w)

    async def one(w: World) -> tuple[str, str, None]:
        return "GET", f"{base}/{await _made(w)}", None

    async def stop(w: World) -> tuple[str, str, None]:
        return "POST", f"{base}/{await _made(w)}/stop", None

    return {
        ("GET", base): listed,
        ("POST", base): create,
        ("GET", base + "/{triggered_message_id}"): one,
        ("POST", base + "/{triggered_message_id}/stop"): stop,
    }


def attachment_cases(client: httpx.AsyncClient) -> dict[tuple[str, str], Case]:
    """Attachments (issue 19): upload to a conversation, read one sent in a reply."""
    base = "/admin/api/conversations"

    async def _sent(w: World) -> str:
        owner = w.owner.auth()
        uploaded = await client.post(
            f"{base}/{w.conversation_id}/attachments?filename=a.png", headers=owner, content=png()
        )
        attachment_id = str(uploaded.json()["id"])
        reply = {"body": "", "client_msg_id": uuid.uuid4().hex, "attachment_ids": [attachment_id]}
        sent = await client.post(f"{base}/{w.conversation_id}/messages", headers=owner, json=reply)
        assert sent.status_code < 300, sent.text
        return attachment_id

    async def upload(w: World) -> tuple[str, str, bytes]:
        return "POST", f"{base}/{w.conversation_id}/attachments?filename=a.png", png()

    async def read(w: World) -> tuple[str, str, None]:
        return "GET", f"/admin/api/attachments/{await _sent(w)}", None

    return {
        ("POST", base + "/{conversation_id}/attachments"): upload,
        ("GET", "/admin/api/attachments/{attachment_id}"): read,
    }


# Routes about the caller's own staff user: the secret key may call them and gets a 400.
STAFF_ONLY = {("PUT", "/admin/api/assignment/availability")}


def workspace_cases(client: httpx.AsyncClient) -> dict[tuple[str, str], Case]:
    """The agents' workspace (issue 19): notes, labels, saved replies."""
    base = "/admin/api/conversations"
    labels = "/admin/api/labels"
    replies = "/admin/api/saved-replies"

    async def note(w: World) -> tuple[str, str, dict[str, object]]:
        body = {"body": "internal", "client_msg_id": uuid.uuid4().hex}
        return "POST", f"{base}/{w.conversation_id}/notes", body

    async def items(w: World) -> tuple[str, str, None]:
        return "GET", f"{base}/{w.conversation_id}/items", None

    async def list_labels(w: World) -> tuple[str, str, None]:
        return "GET", labels, None

    async def create_label(w: World) -> tuple[str, str, dict[str, object]]:
        return "POST", labels, {"name": uuid.uuid4().hex[:8]}

    async def update_label(w: World) -> tuple[str, str, dict[str, object]]:
        return "PATCH", f"{labels}/{await _label(w, client)}", {"color": "#123456"}

    async def delete_label(w: World) -> tuple[str, str, None]:
        return "DELETE", f"{labels}/{await _label(w, client)}", None

    async def conversation_labels(w: World) -> tuple[str, str, None]:
        return "GET", f"{base}/{w.conversation_id}/labels", None

    async def add_label(w: World) -> tuple[str, str, None]:
        return "PUT", f"{base}/{w.conversation_id}/labels/{await _label(w, client)}", None

    async def remove_label(w: World) -> tuple[str, str, None]:
        return "DELETE", f"{base}/{w.conversation_id}/labels/{await _label(w, client)}", None

    async def list_replies(w: World) -> tuple[str, str, None]:
        return "GET", replies, None

    async def create_reply(w: World) -> tuple[str, str, dict[str, object]]:
        return "POST", replies, {"name": "x", "shortcut": uuid.uuid4().hex[:8], "body": "x"}

    async def update_reply(w: World) -> tuple[str, str, dict[str, object]]:
        return "PATCH", f"{replies}/{await _saved_reply(w, client)}", {"body": "y"}

    async def delete_reply(w: World) -> tuple[str, str, None]:
        return "DELETE", f"{replies}/{await _saved_reply(w, client)}", None

    async def render_reply(w: World) -> tuple[str, str, dict[str, object]]:
        target = f"{replies}/{await _saved_reply(w, client)}/render"
        return "POST", target, {"conversation_id": w.conversation_id}

    async def profile(w: World) -> tuple[str, str, None]:
        return "GET", f"/admin/api/users/{w.end_user_id}/profile", None

    async def get_assignment(w: World) -> tuple[str, str, None]:
        return "GET", "/admin/api/assignment", None

    async def put_assignment(w: World) -> tuple[str, str, dict[str, object]]:
        return "PUT", "/admin/api/assignment", {"mode": "off"}

    async def agent_loads(w: World) -> tuple[str, str, None]:
        return "GET", "/admin/api/assignment/agents", None

    async def availability(w: World) -> tuple[str, str, dict[str, object]]:
        # the secret key has no availability of its own: it may ask (permission) but gets a 400
        return "PUT", "/admin/api/assignment/availability", {"available": True}

    async def search_messages(w: World) -> tuple[str, str, None]:
        return "GET", "/admin/api/search/messages?q=hello", None

    async def search_users(w: World) -> tuple[str, str, None]:
        return "GET", "/admin/api/search/users?q=ann", None

    return {
        ("POST", base + "/{conversation_id}/notes"): note,
        ("GET", base + "/{conversation_id}/items"): items,
        ("GET", labels): list_labels,
        ("POST", labels): create_label,
        ("PATCH", labels + "/{label_id}"): update_label,
        ("DELETE", labels + "/{label_id}"): delete_label,
        ("GET", base + "/{conversation_id}/labels"): conversation_labels,
        ("PUT", base + "/{conversation_id}/labels/{label_id}"): add_label,
        ("DELETE", base + "/{conversation_id}/labels/{label_id}"): remove_label,
        ("GET", replies): list_replies,
        ("POST", replies): create_reply,
        ("PATCH", replies + "/{reply_id}"): update_reply,
        ("DELETE", replies + "/{reply_id}"): delete_reply,
        ("POST", replies + "/{reply_id}/render"): render_reply,
        ("GET", "/admin/api/search/messages"): search_messages,
        ("GET", "/admin/api/search/users"): search_users,
        ("GET", "/admin/api/users/{end_user_id}/profile"): profile,
        ("GET", "/admin/api/assignment"): get_assignment,
        ("PUT", "/admin/api/assignment"): put_assignment,
        ("GET", "/admin/api/assignment/agents"): agent_loads,
        ("PUT", "/admin/api/assignment/availability"): availability,
    }


def cases(client: httpx.AsyncClient) -> dict[tuple[str, str], Case]:
    base = "/admin/api/conversations"

    async def inbox(w: World) -> tuple[str, str, None]:
        return "GET", base, None

    async def detail(w: World) -> tuple[str, str, None]:
        return "GET", f"{base}/{w.conversation_id}", None

    async def patch(w: World) -> tuple[str, str, dict[str, object]]:
        return "PATCH", f"{base}/{w.conversation_id}", {"status": "closed"}

    async def messages(w: World) -> tuple[str, str, None]:
        return "GET", f"{base}/{w.conversation_id}/messages", None

    async def reply(w: World) -> tuple[str, str, dict[str, object]]:
        body = {"body": "On it!", "client_msg_id": uuid.uuid4().hex}
        return "POST", f"{base}/{w.conversation_id}/messages", body

    async def read(w: World) -> tuple[str, str, dict[str, object]]:
        return "POST", f"{base}/{w.conversation_id}/read", {"seq": 1}

    async def team(w: World) -> tuple[str, str, None]:
        return "GET", "/admin/api/team", None

    async def invites(w: World) -> tuple[str, str, None]:
        return "GET", "/admin/api/team/invites", None

    async def invite(w: World) -> tuple[str, str, dict[str, object]]:
        email = f"{uuid.uuid4().hex[:8]}@example.com"
        return "POST", "/admin/api/team/invites", {"email": email, "role": "AGENT"}

    async def revoke_invite(w: World) -> tuple[str, str, None]:
        return "DELETE", f"/admin/api/team/invites/{await _pending_invite(w, client)}", None

    async def change_role(w: World) -> tuple[str, str, dict[str, object]]:
        return "PATCH", f"/admin/api/team/{await _fresh_member(w)}", {"role": "ADMIN"}

    async def deactivate(w: World) -> tuple[str, str, None]:
        return "DELETE", f"/admin/api/team/{await _fresh_member(w)}", None

    async def reactivate(w: World) -> tuple[str, str, None]:
        return "POST", f"/admin/api/team/{await _fresh_member(w)}/reactivate", None

    async def assignees(w: World) -> tuple[str, str, None]:
        return "GET", f"{base}/assignees", None

    async def app_get(w: World) -> tuple[str, str, None]:
        return "GET", "/admin/api/app", None

    async def app_patch(w: World) -> tuple[str, str, dict[str, object]]:
        return "PATCH", "/admin/api/app", {"name": "Renamed"}

    async def rotate(w: World) -> tuple[str, str, None]:
        return "POST", "/admin/api/app/rotate-keys", None

    async def end_user(w: World) -> tuple[str, str, None]:
        return "GET", f"/admin/api/users/{w.end_user_id}", None

    async def presence(w: World) -> tuple[str, str, None]:
        return "GET", f"/admin/api/presence?user_id={w.end_user_id}", None

    async def onboarding(w: World) -> tuple[str, str, None]:
        return "GET", "/admin/api/onboarding", None

    async def survey(w: World) -> tuple[str, str, dict[str, object]]:
        return "PATCH", "/admin/api/onboarding/survey", {"platform": "web"}

    async def dismiss(w: World) -> tuple[str, str, None]:
        async with w.runtime.db.tenant_session(w.tenant.id) as session:
            for step in STEPS:  # only a complete checklist can be dismissed
                await onboarding_service.reach(session, w.tenant.id, step)
        return "POST", "/admin/api/onboarding/dismiss", None

    async def messenger_get(w: World) -> tuple[str, str, None]:
        return "GET", "/admin/api/messenger", None

    async def messenger_patch(w: World) -> tuple[str, str, dict[str, object]]:
        return "PATCH", "/admin/api/messenger", {"color": "#112233"}

    async def context(w: World) -> tuple[str, str, None]:
        return "GET", f"{base}/{w.conversation_id}/context", None

    async def ratings(w: World) -> tuple[str, str, None]:
        return "GET", f"{base}/{w.conversation_id}/ratings", None

    async def report(w: World) -> tuple[str, str, None]:
        return "GET", "/admin/api/reports?start=2026-11-02&end=2026-11-08", None

    async def report_csv(w: World) -> tuple[str, str, None]:
        return "GET", "/admin/api/reports/export.csv?start=2026-11-02&end=2026-11-08", None

    async def billing(w: World) -> tuple[str, str, None]:
        return "GET", "/admin/api/billing", None

    async def checkout(w: World) -> tuple[str, str, dict[str, object]]:
        return "POST", "/admin/api/billing/checkout", {"plan": "growth"}

    async def portal(w: World) -> tuple[str, str, None]:
        return "POST", "/admin/api/billing/portal", None

    async def preview(w: World) -> tuple[str, str, None]:
        return "GET", "/admin/api/billing/preview?plan=growth", None

    async def quickstarts(w: World) -> tuple[str, str, None]:
        return "GET", "/admin/api/onboarding/quickstarts", None

    return {
        ("GET", base): inbox,
        ("GET", base + "/assignees"): assignees,
        ("GET", base + "/{conversation_id}"): detail,
        ("PATCH", base + "/{conversation_id}"): patch,
        ("GET", base + "/{conversation_id}/messages"): messages,
        ("POST", base + "/{conversation_id}/messages"): reply,
        ("POST", base + "/{conversation_id}/read"): read,
        ("GET", "/admin/api/team"): team,
        ("GET", "/admin/api/team/invites"): invites,
        ("POST", "/admin/api/team/invites"): invite,
        ("DELETE", "/admin/api/team/invites/{invite_id}"): revoke_invite,
        ("PATCH", "/admin/api/team/{staff_id}"): change_role,
        ("DELETE", "/admin/api/team/{staff_id}"): deactivate,
        ("POST", "/admin/api/team/{staff_id}/reactivate"): reactivate,
        ("GET", "/admin/api/app"): app_get,
        ("PATCH", "/admin/api/app"): app_patch,
        ("POST", "/admin/api/app/rotate-keys"): rotate,
        ("GET", "/admin/api/users/{end_user_id}"): end_user,
        ("GET", "/admin/api/presence"): presence,
        ("GET", "/admin/api/onboarding"): onboarding,
        ("PATCH", "/admin/api/onboarding/survey"): survey,
        ("POST", "/admin/api/onboarding/dismiss"): dismiss,
        ("GET", "/admin/api/onboarding/quickstarts"): quickstarts,
        ("GET", "/admin/api/billing"): billing,
        ("POST", "/admin/api/billing/checkout"): checkout,
        ("POST", "/admin/api/billing/portal"): portal,
        ("GET", "/admin/api/billing/preview"): preview,
        **workspace_cases(client),
        **push_cases(client),
        **segment_cases(client),
        **triggered_cases(client),
        **attachment_cases(client),
        ("GET", "/admin/api/messenger"): messenger_get,
        ("PATCH", "/admin/api/messenger"): messenger_patch,
        ("GET", base + "/{conversation_id}/context"): context,
        ("GET", base + "/{conversation_id}/ratings"): ratings,
        ("GET", "/admin/api/reports"): report,
        ("GET", "/admin/api/reports/export.csv"): report_csv,
    }


def test_the_matrix_covers_every_admin_route(app: FastAPI) -> None:
    declared = {(m, r.path) for r in _admin_routes(app) for m in r.methods}
    assert declared == set(cases(httpx.AsyncClient()))


@pytest.mark.parametrize("caller", ["OWNER", "ADMIN", "AGENT", "secret key"])
async def test_each_caller_against_each_admin_route(
    app: FastAPI,
    client: httpx.AsyncClient,
    runtime: Runtime,
    make_tenant: MakeTenant,
    caller: str,
) -> None:
    tenant = await make_tenant(f"Matrix {caller}")
    owner = await signed_in(runtime, client, tenant, "OWNER")
    identified = await identify(client, tenant)
    conversation = await start_conversation(client, tenant)
    end_user_id = str(identified["user"]["id"])  # type: ignore[index]
    if caller == "secret key":
        headers, role = secret(tenant), INTEGRATION_ROLE
    else:
        headers, role = (await signed_in(runtime, client, tenant, caller)).auth(), Role(caller)
    world = World(tenant, owner, headers, str(conversation["id"]), end_user_id, runtime)
    routes = {(m, r.path): r for r in _admin_routes(app) for m in r.methods}
    # Key rotation last: it ends the secret key this very test may be using.
    ordered = sorted(cases(client).items(), key=lambda item: item[0][1].endswith("rotate-keys"))
    for (method, path), make in ordered:
        (permission,) = required_permissions(routes[(method, path)])
        verb, url, body = await make(world)
        # A file upload's body is the file's bytes; every other body is JSON.
        payload = {"content": body} if isinstance(body, bytes) else {"json": body}
        response = await client.request(verb, url, headers=headers, **payload)
        if allowed(role, permission):
            # This server has no Stripe key: billing's actions say so once the caller may ask
            # (tests/test_billing.py runs them with billing on).
            off = path.startswith("/admin/api/billing/") and response.status_code == 404
            if caller == "secret key" and (method, path) in STAFF_ONLY:
                # Permitted, but about the caller's own staff user, which the key has not.
                assert response.json()["code"] == "STAFF_ONLY", response.text
                continue
            assert response.status_code < 400 or off, (caller, method, path, response.text)
            if off:
                assert response.json()["code"] == "BILLING_DISABLED"
        else:
            assert response.status_code == 403, (caller, method, path, response.text)
            assert response.json()["code"] == "PERMISSION_DENIED"
            assert response.json()["required"] == permission
            assert response.json()["role"] == role.value


async def test_no_credentials_is_a_401_on_every_admin_route(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    for route in _admin_routes(app):
        url = re.sub(r"\{[a-z_]+\}", str(uuid.uuid4()), route.path)
        for method in route.methods:
            response = await client.request(method, url)
            assert response.status_code == 401, (method, url)
            assert response.json()["code"] == "AUTH_REQUIRED"
