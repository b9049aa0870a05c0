from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

MAX_PER_MESSAGE = 10


class AttachmentOut(BaseModel):
    """A file or image in a conversation. `url` and `thumbnail_url` are signed and work until
    `urls_expire_at` (ATTACHMENT_URL_TTL_SECONDS); they are relative to the server's base URL.
    Fresh ones: GET /v1/attachments/{id} (end user) or /admin/api/attachments/{id} (staff)."""

    id: uuid.UUID
    conversation_id: uuid.UUID | None = Field(
        description="None for an upload made before its conversation (POST /v1/attachments), "
        "until it is sent."
    )
    message_id: uuid.UUID | None = Field(description="The message carrying it; None until sent.")
    filename: str
    content_type: str = Field(description="As found in the file's bytes, not its name.")
    size: int = Field(description="In bytes.")
    kind: Literal["image", "file"] = Field(
        description="image: shown inline (with its thumbnail); file: a download link."
    )
    width: int | None = Field(None, description="An image's width in pixels.")
    height: int | None = Field(None, description="An image's height in pixels.")
    url: str = Field(description="Signed download URL of the file.")
    thumbnail_url: str | None = Field(None, description="Signed URL of an image's thumbnail.")
    urls_expire_at: datetime
    created_at: datetime
