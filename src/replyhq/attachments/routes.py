"""Attachments over HTTP: uploads for end users (SDK key + device) and staff, fresh signed URLs,
and the signed download route itself.

An upload's body is the file's bytes (any Content-Type: the type is read from the bytes), with
the name in `?filename=`; it is streamed to storage, never read into memory whole.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, status
from starlette.responses import Response

from replyhq.accounts.deps import RequirePermission, admin_router
from replyhq.accounts.permissions import StaffPrincipal
from replyhq.attachments import service, signing
from replyhq.attachments.schemas import AttachmentOut
from replyhq.attachments.storage import storage_of
from replyhq.errors import Forbidden, NotFound
from replyhq.messaging import service as messaging
from replyhq.runtime import Runtime
from replyhq.users.service import device_user
from replyhq.web.deps import RuntimeDep, SDKApp

# Upload paths: the body limit middleware gives them ATTACHMENT_MAX_BYTES and the NUL check
# leaves their (binary) bodies alone (app.py).
UPLOAD_PATH = re.compile(
    r"^/(?:v1/(?:conversations/[^/]+/)?|admin/api/conversations/[^/]+/)attachments$"
)

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The file's bytes (its type is read from them, not from Content-Type).",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
Filename = Annotated[str | None, Query(max_length=255, description="The file's name, shown.")]

sdk_router = APIRouter(tags=["sdk"])
staff_router = admin_router("/admin/api", ["attachments"])
files_router = APIRouter(tags=["attachments"])

Uploader = Annotated[StaffPrincipal, RequirePermission("messages:write")]
Reader = Annotated[StaffPrincipal, RequirePermission("messages:read")]


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        yield chunk


async def _upload(
    runtime: Runtime,
    request: Request,
    app_id: uuid.UUID,
    conversation_id: uuid.UUID | None,
    uploader: service.Uploader,
    filename: str | None,
) -> AttachmentOut:
    settings = runtime.settings
    service.check_declared_size(settings, request.headers.get("content-length"))
    storage = storage_of(runtime.resources, settings)
    return await service.upload(
        runtime.db,
        storage,
        settings,
        app_id,
        conversation_id,
        uploader,
        filename,
        _body(request),
    )


@sdk_router.post(
    "/v1/conversations/{conversation_id}/attachments",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_UPLOAD_BODY,
)
async def upload_as_user(
    conversation_id: uuid.UUID,
    request: Request,
    caller: SDKApp,
    runtime: RuntimeDep,
    filename: Filename = None,
) -> AttachmentOut:
    """Upload a file or image to one of the caller's conversations (404 otherwise), then send
    it with a message's `attachment_ids`. At most ATTACHMENT_MAX_BYTES (413), of a type in
    ATTACHMENT_TYPES as found in its bytes (400 UNSUPPORTED_ATTACHMENT_TYPE)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        end_user_id, _ = await device_user(session, caller.app_id, caller.device_id)
        await messaging.require_conversation(
            session, caller.app_id, conversation_id, end_user_id=end_user_id
        )
    uploader = service.Uploader("user", end_user_id)
    return await _upload(runtime, request, caller.app_id, conversation_id, uploader, filename)


@sdk_router.post("/v1/attachments", status_code=status.HTTP_201_CREATED, openapi_extra=_UPLOAD_BODY)
async def upload_before_a_conversation(
    request: Request, caller: SDKApp, runtime: RuntimeDep, filename: Filename = None
) -> AttachmentOut:
    """Upload a file or image before there is a conversation to put it in: send it as a new
    conversation's first message (POST /v1/conversations {first_message: {attachment_ids}}),
    or in any of the caller's conversations. Same limits as an upload to a conversation."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        end_user_id, _ = await device_user(session, caller.app_id, caller.device_id)
    uploader = service.Uploader("user", end_user_id)
    return await _upload(runtime, request, caller.app_id, None, uploader, filename)


@sdk_router.get("/v1/attachments/{attachment_id}")
async def get_as_user(
    attachment_id: uuid.UUID, caller: SDKApp, runtime: RuntimeDep
) -> AttachmentOut:
    """An attachment of the caller's own conversations (or their own upload), with fresh
    signed URLs; 404 for anything else."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        end_user_id, _ = await device_user(session, caller.app_id, caller.device_id)
        row = await service.get(
            session,
            caller.app_id,
            attachment_id,
            end_user_id=end_user_id,
            uploader=service.Uploader("user", end_user_id),
        )
        return service.out(row)


def _staff_uploader(caller: StaffPrincipal) -> service.Uploader:
    # The secret key has no staff user behind it: it uploads as the app, as it writes.
    return service.Uploader("agent", caller.staff_id or caller.app_id)


@staff_router.post(
    "/conversations/{conversation_id}/attachments",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_UPLOAD_BODY,
)
async def upload_as_staff(
    conversation_id: uuid.UUID,
    request: Request,
    caller: Uploader,
    runtime: RuntimeDep,
    filename: Filename = None,
) -> AttachmentOut:
    """Upload a file or image to a conversation of the app, then send it with a reply's
    `attachment_ids`. Same limits as the end user's upload."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        await messaging.require_conversation(session, caller.app_id, conversation_id)
    uploader = _staff_uploader(caller)
    return await _upload(runtime, request, caller.app_id, conversation_id, uploader, filename)


@staff_router.get("/attachments/{attachment_id}")
async def get_as_staff(
    attachment_id: uuid.UUID, caller: Reader, runtime: RuntimeDep
) -> AttachmentOut:
    """An attachment of the app's conversations, with fresh signed URLs (another member's
    upload not yet sent is not found)."""
    async with runtime.db.tenant_session(caller.app_id) as session:
        row = await service.get(
            session, caller.app_id, attachment_id, uploader=_staff_uploader(caller)
        )
        return service.out(row)


@files_router.get(
    "/files/{app_id}/{attachment_id}/{variant}",
    response_class=Response,
    responses={
        200: {"description": "The file's bytes.", "content": {"application/octet-stream": {}}}
    },
)
async def download(
    app_id: uuid.UUID,
    attachment_id: uuid.UUID,
    variant: Literal["original", "thumbnail"],
    runtime: RuntimeDep,
    expires: Annotated[int, Query(ge=0, le=2**40)],
    signature: Annotated[str, Query(max_length=64)],
) -> Response:
    """A signed download URL (from a message, an upload or GET .../attachments/{id}): 403 when
    its signature does not match or it has expired, 404 when the attachment is gone."""
    verdict = signing.verify(app_id, attachment_id, variant, expires, signature)
    if verdict == "invalid":
        raise Forbidden("This download link is not valid.", code="INVALID_SIGNATURE")
    if verdict == "expired":
        raise Forbidden("This download link has expired; ask for a fresh one.", code="URL_EXPIRED")
    async with runtime.db.tenant_session(app_id) as session:
        row = await service.for_download(session, app_id, attachment_id)
    if variant == "thumbnail" and not row.has_thumbnail:
        raise NotFound("This attachment has no thumbnail.", code="ATTACHMENT_NOT_FOUND")
    thumbnail = variant == "thumbnail"
    content_type = service.THUMBNAIL_FORMAT_TYPE if thumbnail else row.content_type
    disposition = "inline" if row.kind == "image" else "attachment"
    headers = {
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(row.filename)}",
        "Cache-Control": f"private, max-age={max(0, expires - int(time.time()))}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    key = f"{row.storage_key}/{variant}"
    storage = storage_of(runtime.resources, runtime.settings)
    return await storage.response(key, content_type, headers)
