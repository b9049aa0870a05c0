"""/admin: forgotten passwords and e-mail address changes (links sent by e-mail)."""

from __future__ import annotations

import asyncio
import hashlib
from functools import lru_cache
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from limits import RateLimitItem, parse

from replyhq.accounts import recovery, service
from replyhq.accounts.deps import staff_token
from replyhq.accounts.models import StaffUser
from replyhq.accounts.permissions import StaffPrincipal
from replyhq.accounts.schemas import (
    EmailChangeConfirmIn,
    EmailChangeIn,
    EmailChangeRequestedOut,
    MailQueuedOut,
    PasswordResetIn,
    PasswordResetRequestIn,
    StaffOut,
)
from replyhq.accounts.service import StaffChanges
from replyhq.accounts.tasks import send_password_reset
from replyhq.accounts.tokens import EMAIL_CHANGE_PREFIX, RESET_PREFIX, link_token_app
from replyhq.errors import BadRequest, Unauthorized
from replyhq.jobs.defer import enqueue
from replyhq.runtime import Runtime
from replyhq.web.deps import RuntimeDep, client_address
from replyhq.web.ratelimit import Check, refusal

router = APIRouter(prefix="/admin", tags=["admin sign-in"])

SENT = "If an account uses this address, a link to reset its password is on its way."
# Bad reset and e-mail-change tokens, per client address: counted apart from sign-in and API-key
# failures (RATE_LIMIT_TOKEN_FAILURES), like refresh and invitation tokens.
FAILURES = "reset-failures"


class WrongPassword(BadRequest):
    code = "WRONG_PASSWORD"
    message = "Your current password is wrong."


@lru_cache(maxsize=8)
def _limit(raw: str) -> RateLimitItem:
    return parse(raw)


def _digest(email: str) -> str:
    return hashlib.sha256(service.normalize_email(email).encode()).hexdigest()


async def _refuse_if_failing(runtime: Runtime, address: str) -> None:
    limiter = runtime.limiter
    blocked = await limiter.blocked(limiter.tokens, FAILURES, address)
    if blocked is not None:
        raise refusal("Too many failed attempts with reset or confirmation links.", blocked)


async def _count_failure(runtime: Runtime, address: str) -> None:
    await runtime.limiter.hit(runtime.limiter.tokens, FAILURES, address)


@router.post("/password-reset", status_code=status.HTTP_202_ACCEPTED)
async def request_password_reset(
    body: PasswordResetRequestIn, request: Request, runtime: RuntimeDep
) -> MailQueuedOut:
    """Forgot password: mails a single-use link (valid `PASSWORD_RESET_TTL_SECONDS`) to each
    active account with this address. The answer is the same whether or not one exists, and the
    lookup happens in a job, so neither the answer nor its timing tells. Limited per address
    (`RATE_LIMIT_PASSWORD_RESET`) and per client (`RATE_LIMIT_PASSWORD_RESET_IP`): 429."""
    settings = runtime.settings
    await runtime.limiter.enforce_all(
        Check(
            _limit(settings.rate_limit_password_reset_ip),
            ("password-reset-ip", client_address(request)),
            refusal="Too many password-reset requests from this address.",
        ),
        Check(
            _limit(settings.rate_limit_password_reset),
            ("password-reset", _digest(body.email)),
            refusal="Too many password-reset requests for this e-mail.",
        ),
    )
    async with runtime.db.system_session() as session:  # no app yet: only the queue is touched
        await enqueue(session, send_password_reset, email=service.normalize_email(body.email))
    return MailQueuedOut(message=SENT)


@router.post("/password-reset/confirm", status_code=status.HTTP_204_NO_CONTENT)
async def reset_password(body: PasswordResetIn, request: Request, runtime: RuntimeDep) -> None:
    """Set a new password with the token from the e-mailed link. The token works once; every
    sign-in of the member ends (refresh and access tokens, live sockets): sign in again.
    An invalid or expired token is 400 `RESET_TOKEN_INVALID` and counts as a failed token
    per client address (`RATE_LIMIT_TOKEN_FAILURES`)."""
    address = client_address(request)
    await _refuse_if_failing(runtime, address)
    app_id = link_token_app(RESET_PREFIX, body.token)
    if app_id is None:
        await _count_failure(runtime, address)
        raise recovery.invalid_reset()
    password_hash = await service.hash_password_async(body.password, runtime.settings.bcrypt_rounds)
    try:
        async with runtime.db.tenant_session(app_id) as session:
            await recovery.reset_password(
                session, app_id, body.token, password_hash, StaffChanges.of(runtime)
            )
    except BadRequest:
        await _count_failure(runtime, address)
        raise


@router.post("/me/email", status_code=status.HTTP_202_ACCEPTED)
async def change_email(
    body: EmailChangeIn,
    request: Request,
    caller: Annotated[StaffPrincipal, Depends(staff_token)],
    runtime: RuntimeDep,
) -> EmailChangeRequestedOut:
    """Ask to sign in with another address: a confirmation link goes to the new address, and
    nothing changes until it is followed (`POST /admin/email-change/confirm`); the old address
    is then told. Needs your current password (400 `WRONG_PASSWORD`, counted as a failed
    authentication). 409 `STAFF_EXISTS` when the address is already on the team."""
    address = client_address(request)
    await _refuse_if_failing(runtime, address)
    settings = runtime.settings
    assert caller.staff_id is not None  # staff_token: a signed-in member, never a key
    try:
        async with runtime.db.tenant_session(caller.app_id) as session:
            staff = await session.get(StaffUser, caller.staff_id, with_for_update=True)
            if staff is None or not staff.active:
                raise Unauthorized("This sign-in has ended; log in again.", code="TOKEN_REVOKED")
            if not await asyncio.to_thread(
                service.check_password, body.password, staff.password_hash, settings.bcrypt_rounds
            ):
                raise WrongPassword()
            email = await recovery.request_email_change(session, settings, staff, body.email)
    except WrongPassword:
        await _count_failure(runtime, address)
        raise
    return EmailChangeRequestedOut(email=email, expires_in=settings.email_change_ttl_seconds)


@router.post("/email-change/confirm")
async def confirm_email_change(
    body: EmailChangeConfirmIn, request: Request, runtime: RuntimeDep
) -> StaffOut:
    """Follow the link sent to the new address: the member now signs in with it. The token works
    once (400 `EMAIL_CHANGE_TOKEN_INVALID`, counted as a failed authentication)."""
    address = client_address(request)
    await _refuse_if_failing(runtime, address)
    app_id = link_token_app(EMAIL_CHANGE_PREFIX, body.token)
    if app_id is None:
        await _count_failure(runtime, address)
        raise recovery.invalid_email_change()
    try:
        async with runtime.db.tenant_session(app_id) as session:
            staff = await recovery.confirm_email_change(
                session, app_id, body.token, StaffChanges.of(runtime)
            )
            return StaffOut.model_validate(staff)
    except BadRequest:
        await _count_failure(runtime, address)
        raise
