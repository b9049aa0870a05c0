"""/admin: staff sign-in (login, refresh, logout, invitations) and /admin/api/team."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials
from starlette.types import Scope

from replyhq.accounts import mails, service, team
from replyhq.accounts.deps import RequirePermission, admin_principal, admin_router, bearer
from replyhq.accounts.permissions import StaffPrincipal, permissions_of
from replyhq.accounts.schemas import (
    AcceptInviteIn,
    InviteCreated,
    InviteIn,
    InviteOut,
    LoginIn,
    LogoutIn,
    MeOut,
    RefreshIn,
    RoleIn,
    StaffOut,
    TokenPairOut,
)
from replyhq.accounts.service import StaffChanges, TokenPair
from replyhq.accounts.throttle import LoginAttempt
from replyhq.accounts.tokens import invite_app
from replyhq.errors import BadRequest, Unauthorized
from replyhq.runtime import Runtime
from replyhq.web.deps import RuntimeDep, client_address
from replyhq.web.ratelimit import Check

router = APIRouter(prefix="/admin", tags=["admin sign-in"])
team_router = admin_router("/admin/api/team", ["team"])

Caller = Annotated[StaffPrincipal, Depends(admin_principal)]


def _pair_out(pair: TokenPair) -> TokenPairOut:
    return TokenPairOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        refresh_expires_in=pair.refresh_expires_in,
        staff=StaffOut.model_validate(pair.staff),
    )


# --- brute-force limits ---------------------------------------------------------------------------
# Sign-in failures: replyhq.accounts.throttle. Refresh and invitation tokens carry 256 random bits:
# their failures are limited per address only, each on its own (RATE_LIMIT_TOKEN_FAILURES), so
# neither locks anyone out of signing in.


def _token_check(runtime: Runtime, request: Request, kind: str) -> Check:
    return Check(
        runtime.limiter.tokens,
        (f"{kind}-failures", client_address(request)),
        refusal=f"Too many failed {kind} attempts from this address.",
    )


async def _refuse_if_limited(runtime: Runtime, check: Check) -> None:
    await runtime.limiter.enforce_all(replace(check, count=False))


async def _count_failure(runtime: Runtime, check: Check) -> None:
    await runtime.limiter.check(check)


async def count_refused_login(scope: Scope, body: bytes) -> None:
    """A sign-in refused before the route for its input (e.g. a NUL character) is a failed
    attempt like a wrong password: limited and counted the same, or it would be a free try."""
    request = Request(scope)
    runtime: Runtime = request.app.state.runtime
    try:
        sent = json.loads(body)
    except ValueError:
        sent = None
    email = sent.get("email") if isinstance(sent, dict) else None
    attempt = LoginAttempt.of(
        request, runtime.settings, email.replace("\x00", "") if isinstance(email, str) else ""
    )
    await attempt.refuse_if_limited(runtime)
    await attempt.count_failure(runtime)


# --- sign-in ----------------------------------------------------------------------------------


@router.post("/login")
async def login(
    body: LoginIn, request: Request, response: Response, runtime: RuntimeDep
) -> TokenPairOut:
    """Sign in with e-mail and password: an access token (15 minutes) and a refresh token
    (7 days, single use). A wrong address and a wrong password get the same 401. If the address
    belongs to several apps, 400 `APP_REQUIRED` lists the apps the password opens: send `app_id`.
    Failed attempts are limited per account and per address, except from a browser that has
    signed in to the account before, which is limited by its own failures only (it gets a
    device cookie): 429 `RATE_LIMITED` says how long to wait. See docs/admin-api.md."""
    attempt = LoginAttempt.of(request, runtime.settings, body.email)
    await attempt.refuse_if_limited(runtime)
    try:
        pair = await service.login(runtime, body.email, body.password, body.app_id)
    except Unauthorized:
        await attempt.count_failure(runtime)
        raise
    attempt.remember(request, response, runtime.settings)
    return _pair_out(pair)


@router.post("/refresh")
async def refresh(body: RefreshIn, request: Request, runtime: RuntimeDep) -> TokenPairOut:
    """Spend a refresh token for a new pair. A refresh token works once: presenting a spent
    one again ends the whole sign-in (401 `REFRESH_TOKEN_REUSED`); a sign-in older than
    `STAFF_SESSION_MAX_AGE_SECONDS` cannot be refreshed (401 `SIGN_IN_EXPIRED`). Failures are
    limited per address (`RATE_LIMIT_TOKEN_FAILURES`), apart from sign-in failures."""
    check = _token_check(runtime, request, "refresh")
    await _refuse_if_limited(runtime, check)
    try:
        pair = await service.refresh(runtime, body.refresh_token)
    except Unauthorized:
        await _count_failure(runtime, check)
        raise
    return _pair_out(pair)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    body: LogoutIn | None = None,
) -> None:
    """End this sign-in: its refresh token and every access token issued from it stop working.
    Send the access token (`Authorization: Bearer`), or `{refresh_token}` (e.g. once the access
    token has expired). Logging out twice is not an error."""
    await service.logout(
        runtime,
        access_token=credentials.credentials if credentials is not None else None,
        refresh_token=body.refresh_token if body is not None else None,
    )


@router.get("/me")
async def me(caller: Caller, runtime: RuntimeDep) -> MeOut:
    """Who the credentials speak for, with the role's permissions (for the dashboard's menus)."""
    staff = None
    if caller.staff_id is not None:
        async with runtime.db.tenant_session(caller.app_id) as session:
            member = await team.active_staff(session, caller.app_id, caller.staff_id)
            staff = StaffOut.model_validate(member) if member is not None else None
    return MeOut(
        kind=caller.kind,
        app_id=caller.app_id,
        role=caller.role,
        permissions=permissions_of(caller.role),
        staff=staff,
    )


@router.post("/invites/accept", status_code=status.HTTP_201_CREATED)
async def accept_invite(
    body: AcceptInviteIn, request: Request, response: Response, runtime: RuntimeDep
) -> TokenPairOut:
    """Join a team with an invitation token: sets your name and password and signs you in.
    The token works once and expires (`INVITE_TTL_SECONDS`)."""
    check = _token_check(runtime, request, "invite")
    await _refuse_if_limited(runtime, check)
    app_id = invite_app(body.token)
    if app_id is None:
        await _count_failure(runtime, check)
        raise team.invalid_invite()
    password_hash = await service.hash_password_async(body.password, runtime.settings.bcrypt_rounds)
    try:
        async with runtime.db.tenant_session(app_id) as session:
            staff = await team.accept_invite(
                session,
                app_id,
                body.token,
                password_hash=password_hash,
                name=body.name,
                changes=StaffChanges.of(runtime),
            )
            pair = await service.start_session(session, runtime.settings, staff)
    except BadRequest as exc:
        if exc.code == "INVITE_INVALID":
            await _count_failure(runtime, check)
        raise
    LoginAttempt.of(request, runtime.settings, staff.email).remember(
        request, response, runtime.settings
    )
    return _pair_out(pair)


# --- /admin/api/team ---------------------------------------------------------------------------


@team_router.get("")
async def list_team(
    caller: Annotated[StaffPrincipal, RequirePermission("team:read")], runtime: RuntimeDep
) -> list[StaffOut]:
    """Everyone on the app's team, deactivated members included (`active: false`)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        members = await team.list_team(session, caller.app_id)
        return [StaffOut.model_validate(m) for m in members]


@team_router.get("/invites")
async def list_invites(
    caller: Annotated[StaffPrincipal, RequirePermission("team:read")], runtime: RuntimeDep
) -> list[InviteOut]:
    """Invitations not yet accepted, revoked or expired."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        pending = await team.list_invites(session, caller.app_id)
        return [InviteOut.model_validate(i) for i in pending]


@team_router.post("/invites", status_code=status.HTTP_201_CREATED)
async def invite(
    body: InviteIn,
    caller: Annotated[StaffPrincipal, RequirePermission("team:write")],
    runtime: RuntimeDep,
) -> InviteCreated:
    """Invite someone by e-mail: the invitation is mailed to them (after commit, by a job), and
    the response also carries the single-use token and the dashboard link (token in the URL
    fragment, never sent to a server) to pass on yourself. Inviting an OWNER needs
    `team:owners`."""
    settings = runtime.settings
    async with runtime.db.tenant_session(caller.app_id) as session:
        pending, token = await team.invite(
            session, caller, body.email, body.role, ttl_seconds=settings.invite_ttl_seconds
        )
        await mails.invitation(
            session,
            settings,
            caller,
            email=pending.email,
            role=pending.role,
            token=token,
            expires_at=pending.expires_at,
        )
        out = InviteOut.model_validate(pending)
    link = f"{settings.dashboard_url.rstrip('/')}/invite#token={token}"
    return InviteCreated(**out.model_dump(), token=token, invite_url=link)


@team_router.delete("/invites/{invite_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_invite(
    invite_id: uuid.UUID,
    caller: Annotated[StaffPrincipal, RequirePermission("team:write")],
    runtime: RuntimeDep,
) -> None:
    """Withdraw a pending invitation: its token stops working."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        await team.revoke_invite(session, caller.app_id, invite_id)


@team_router.patch("/{staff_id}")
async def change_role(
    staff_id: uuid.UUID,
    body: RoleIn,
    caller: Annotated[StaffPrincipal, RequirePermission("team:write")],
    runtime: RuntimeDep,
) -> StaffOut:
    """Change a member's role; it applies at once (their access tokens must be refreshed, live
    sockets are closed). Making or unmaking an OWNER needs `team:owners`; the last active OWNER
    cannot be demoted (409 `LAST_OWNER`)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        staff = await team.change_role(
            session, caller, staff_id, body.role, StaffChanges.of(runtime)
        )
        return StaffOut.model_validate(staff)


@team_router.post("/{staff_id}/reactivate")
async def reactivate(
    staff_id: uuid.UUID,
    caller: Annotated[StaffPrincipal, RequirePermission("team:write")],
    runtime: RuntimeDep,
) -> StaffOut:
    """Bring a deactivated member back, with their role and password: they can sign in again
    (sign-ins ended by the deactivation stay ended). Idempotent. An OWNER needs `team:owners`."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        return StaffOut.model_validate(await team.reactivate(session, caller, staff_id))


@team_router.delete("/{staff_id}", status_code=status.HTTP_204_NO_CONTENT)
async def deactivate(
    staff_id: uuid.UUID,
    caller: Annotated[StaffPrincipal, RequirePermission("team:write")],
    runtime: RuntimeDep,
) -> None:
    """Deactivate a member: their sign-ins end and their tokens stop at once. Their messages
    and assignments stay. Removing an OWNER needs `team:owners`; never the last one."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        await team.deactivate(session, caller, staff_id, StaffChanges.of(runtime))
