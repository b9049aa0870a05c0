"""/v1: the messenger's side (SDK key): its look and hours, visitor context, ratings."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, status

from replyhq.messaging.service import require_conversation
from replyhq.messenger import context, ratings, service
from replyhq.messenger.schemas import (
    MessengerConfig,
    RatingIn,
    RatingOut,
    RatingState,
    VisitorContextIn,
    VisitorContextOut,
)
from replyhq.users.service import device_user
from replyhq.web.deps import RuntimeDep, SDKApp, client_address, verify_app_key
from replyhq.web.ratelimit import Check

router = APIRouter(prefix="/v1", tags=["sdk"])


async def require_sdk_key(
    request: Request,
    runtime: RuntimeDep,
    x_app_id: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> uuid.UUID:
    """The app of a valid SDK key, no device needed (the messenger's look loads before it has
    identified); limited per address like every /v1 call."""
    address = client_address(request)
    await runtime.limiter.enforce_all(Check(runtime.limiter.v1_ip, ("v1-ip", address)))
    return await verify_app_key(runtime, address, x_app_id, x_api_key, "sdk")


SDKKeyApp = Annotated[uuid.UUID, Depends(require_sdk_key)]


@router.get("/messenger")
async def messenger_config(app_id: SDKKeyApp, runtime: RuntimeDep) -> MessengerConfig:
    """The app's messenger settings, whether the team is in (office hours) and its usual reply
    time. The web messenger loads this at start: a change in the dashboard needs no new code."""
    return await service.messenger_config(runtime.db, app_id)


@router.post("/context")
async def visitor_context(
    body: VisitorContextIn,
    caller: SDKApp,
    runtime: RuntimeDep,
    user_agent: Annotated[str | None, Header(max_length=1000)] = None,
) -> VisitorContextOut:
    """Where this device's end user is: page URL, title and referrer; browser and OS are read
    from the User-Agent header. Shown to agents beside the device's conversations."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        return await context.record_context(
            session, caller.app_id, caller.device_id, body, user_agent
        )


@router.get("/conversations/{conversation_id}/rating")
async def rating_state(
    conversation_id: uuid.UUID, caller: SDKApp, runtime: RuntimeDep
) -> RatingState:
    """Whether the conversation's current closing may be rated (closed and not rated yet)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        end_user_id, _ = await device_user(session, caller.app_id, caller.device_id)
        await require_conversation(session, caller.app_id, conversation_id, end_user_id=end_user_id)
        return await ratings.rating_state(session, caller.app_id, conversation_id)


@router.post("/conversations/{conversation_id}/rating", status_code=status.HTTP_201_CREATED)
async def rate(
    conversation_id: uuid.UUID, body: RatingIn, caller: SDKApp, runtime: RuntimeDep
) -> RatingOut:
    """Rate the conversation's latest closing, 1-5 with an optional comment: once per closing
    (409 ALREADY_RATED after; 409 CONVERSATION_OPEN while it is open)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        end_user_id, _ = await device_user(session, caller.app_id, caller.device_id)
        await require_conversation(session, caller.app_id, conversation_id, end_user_id=end_user_id)
        return await ratings.rate(session, caller.app_id, conversation_id, end_user_id, body)
