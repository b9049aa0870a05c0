"""/admin/signup, the verification of a signed-up owner's address, and /admin/api/onboarding."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from limits import RateLimitItem, parse

from replyhq.accounts.deps import RequirePermission, admin_router, staff_token
from replyhq.accounts.permissions import StaffPrincipal
from replyhq.accounts.schemas import MailQueuedOut, StaffOut
from replyhq.accounts.service import normalize_email
from replyhq.accounts.throttle import LoginAttempt
from replyhq.accounts.tokens import VERIFY_PREFIX, link_token_app
from replyhq.apps.schemas import AppOut
from replyhq.errors import BadRequest
from replyhq.onboarding import service, signup
from replyhq.onboarding.quickstarts import for_app as quickstarts_for
from replyhq.onboarding.schemas import (
    OnboardingOut,
    QuickstartOut,
    QuickstartStepOut,
    SignupAppOut,
    SignupIn,
    SignupOut,
    SurveyIn,
    VerifiedOut,
    VerifyEmailIn,
)
from replyhq.runtime import Runtime
from replyhq.web.deps import RuntimeDep, client_address
from replyhq.web.ratelimit import Check, refusal

router = APIRouter(prefix="/admin", tags=["sign-up"])
api_router = admin_router("/admin/api/onboarding", ["onboarding"])

# Bad verification tokens count with the other link tokens' failures, per client address.
FAILURES = "reset-failures"


@lru_cache(maxsize=8)
def _limit(raw: str) -> RateLimitItem:
    return parse(raw)


def _email_check(runtime: Runtime, email: str) -> Check:
    digest = hashlib.sha256(normalize_email(email).encode()).hexdigest()  # never the address
    return Check(
        _limit(runtime.settings.rate_limit_signup),
        ("signup-email", digest),
        refusal="Too many sign-up attempts for this e-mail address.",
    )


@router.post("/signup", status_code=status.HTTP_201_CREATED)
async def create_account(
    body: SignupIn, request: Request, response: Response, runtime: RuntimeDep
) -> SignupOut:
    """Create an app and its OWNER, signed in at once (the token pair of `/admin/login`, and the
    app's keys, shown this once). A verification e-mail goes to the address; the product works
    before it is followed. 400 `WEAK_PASSWORD` (zxcvbn score under
    `SIGNUP_MIN_PASSWORD_SCORE`), 409 `EMAIL_IN_USE` (any team has the address), 429 past
    `RATE_LIMIT_SIGNUP` (per address) or `RATE_LIMIT_SIGNUP_IP` (per client), 403
    `SIGNUP_DISABLED` when `SIGNUP_ENABLED=false`. See docs/onboarding.md."""
    settings = runtime.settings
    if not settings.signup_enabled:
        raise signup.SignupDisabled()
    await runtime.limiter.enforce_all(
        Check(
            _limit(settings.rate_limit_signup_ip),
            ("signup-ip", client_address(request)),
            refusal="Too many sign-ups from this address.",
        ),
        _email_check(runtime, body.email),
    )
    pair, app, keys = await signup.signup(
        runtime, email=body.email, password=body.password, name=body.name, app_name=body.app_name
    )
    LoginAttempt.of(request, settings, pair.staff.email).remember(request, response, settings)
    return SignupOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        refresh_expires_in=pair.refresh_expires_in,
        staff=StaffOut.model_validate(pair.staff),
        app=SignupAppOut(
            **AppOut.model_validate(app).model_dump(include={"id", "name"}),
            sdk_key=keys.sdk_key,
            secret_key=keys.secret_key,
            identity_secret=keys.identity_secret,
        ),
    )


@router.post("/verify-email")
async def verify_email(body: VerifyEmailIn, request: Request, runtime: RuntimeDep) -> VerifiedOut:
    """Follow the link of the verification e-mail: the address is verified (once). An invalid,
    spent or expired token is 400 `VERIFY_TOKEN_INVALID`, counted as a failed link token per
    client address (`RATE_LIMIT_TOKEN_FAILURES`)."""
    limiter, address = runtime.limiter, client_address(request)
    blocked = await limiter.blocked(limiter.tokens, FAILURES, address)
    if blocked is not None:
        raise refusal("Too many failed attempts with e-mailed links.", blocked)
    app_id = link_token_app(VERIFY_PREFIX, body.token)
    try:
        if app_id is None:
            raise signup.invalid_verification()
        async with runtime.db.tenant_session(app_id) as session:
            staff = await signup.verify_email(session, app_id, body.token)
    except BadRequest:
        await limiter.hit(limiter.tokens, FAILURES, address)
        raise
    assert staff.email_verified_at is not None
    return VerifiedOut(email=staff.email, email_verified_at=staff.email_verified_at)


@router.post("/me/verification", status_code=status.HTTP_202_ACCEPTED)
async def resend_verification(
    caller: Annotated[StaffPrincipal, Depends(staff_token)], runtime: RuntimeDep
) -> MailQueuedOut:
    """Send the verification e-mail again (the earlier link stops working). 409
    `EMAIL_ALREADY_VERIFIED` once verified; limited like sign-ups per address (429)."""
    assert caller.staff_id is not None
    if caller.email:
        await runtime.limiter.enforce_all(_email_check(runtime, caller.email))
    async with runtime.db.tenant_session(caller.app_id) as session:
        staff = await signup.resend_verification(
            session, runtime.settings, caller.app_id, caller.staff_id
        )
    return MailQueuedOut(message=f"A verification link is on its way to {staff.email}.")


# --- /admin/api/onboarding -------------------------------------------------------------------


@api_router.get("")
async def get_onboarding(
    caller: Annotated[StaffPrincipal, RequirePermission("conversations:read")],
    runtime: RuntimeDep,
) -> OnboardingOut:
    """The survey's answers and the checklist: `steps` in order (`sdk_installed`,
    `first_message`, `identity_verified`, `teammate_invited`, `first_reply`), each done by a
    real event, never by a call. Changes arrive live as `onboarding:step` on /admin."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        return service.out(await service.state(session, caller.app_id))


@api_router.patch("/survey")
async def answer_survey(
    body: SurveyIn,
    caller: Annotated[StaffPrincipal, RequirePermission("settings:write")],
    runtime: RuntimeDep,
) -> OnboardingOut:
    """Answer (or change) the survey: `platform` chooses the quickstart shown first; or
    `{"skipped": true}` to put it off."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        return service.out(await service.answer_survey(session, caller.app_id, body))


@api_router.post("/dismiss")
async def dismiss(
    caller: Annotated[StaffPrincipal, RequirePermission("settings:write")],
    runtime: RuntimeDep,
) -> OnboardingOut:
    """Hide the checklist once every step is done (409 `ONBOARDING_INCOMPLETE` before)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        return service.out(await service.dismiss(session, caller.app_id))


@api_router.get("/quickstarts")
async def quickstarts(
    request: Request,
    caller: Annotated[StaffPrincipal, RequirePermission("conversations:read")],
    runtime: RuntimeDep,
) -> list[QuickstartOut]:
    """One quickstart per platform, filled in with the app's id and this server's address, the
    survey's platform first. `YOUR_SDK_KEY` stands for the SDK key (stored hashed: the
    dashboard fills in the key it was shown at sign-up or rotation)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        row = await service.state(session, caller.app_id)
    url = runtime.settings.public_url or str(request.base_url)
    return [
        QuickstartOut(
            platform=q.platform,
            title=q.title,
            executed=q.executed,
            docs=q.docs,
            steps=[QuickstartStepOut.model_validate(s, from_attributes=True) for s in q.steps],
        )
        for q in quickstarts_for(str(caller.app_id), url, row.platform)
    ]
