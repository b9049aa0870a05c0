from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from replyhq.attachments.schemas import MAX_PER_MESSAGE, AttachmentOut
from replyhq.web.bounds import INT4_MAX

MAX_BODY_CHARS = 8000

Sender = Literal["user", "agent", "system"]
ClientMsgId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")
]
Body = Annotated[str, StringConstraints(min_length=1, max_length=MAX_BODY_CHARS)]


AttachmentIds = Annotated[
    list[uuid.UUID],
    Field(
        max_length=MAX_PER_MESSAGE,
        description="Uploaded attachments (POST .../attachments) this message carries; with "
        "them the body may be empty.",
    ),
]


# The same rule for JSON Schema readers (the protocol's schemas, OpenAPI).
BODY_OR_ATTACHMENTS: dict[str, Any] = {
    "anyOf": [
        {"properties": {"body": {"minLength": 1}}},
        {"required": ["attachment_ids"], "properties": {"attachment_ids": {"minItems": 1}}},
    ]
}


def body_or_attachments(body: str, info: ValidationInfo) -> str:
    """A message needs a body, unless it carries attachments."""
    if not body and not info.data.get("attachment_ids"):
        raise ValueError("a message needs a body or attachment_ids")
    return body


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=BODY_OR_ATTACHMENTS)
    # attachment_ids first: the body's check reads it.
    attachment_ids: AttachmentIds = []
    body: str = Field("", max_length=MAX_BODY_CHARS, validate_default=True)
    client_msg_id: ClientMsgId

    _body = field_validator("body")(body_or_attachments)


class ConversationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: str | None = Field(None, max_length=255)
    first_message: MessageIn | None = None


class ReadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seq: int = Field(ge=0, le=INT4_MAX)


class Author(BaseModel):
    type: Sender
    id: uuid.UUID | None
    name: str | None


class MessageOut(BaseModel):
    id: uuid.UUID
    conversation_id: uuid.UUID
    seq: int
    client_msg_id: str
    sender: Sender
    author: Author
    body: str
    body_html: str
    created_at: datetime
    kind: Literal["message", "event"] = Field(
        "message", description="message, or event: the conversation was closed or reopened."
    )
    data: dict[str, Any] | None = Field(
        None, description="An event's `type` (closed, reopened) and details."
    )
    attachments: list[AttachmentOut] = Field(
        default_factory=list, description="Files and images it carries."
    )


class ConversationOut(BaseModel):
    id: uuid.UUID
    subject: str | None
    status: Literal["open", "closed"]
    assignee_id: uuid.UUID | None
    last_seq: int
    unread_count: int
    peer_read_seq: int = Field(
        description="How far the other side has read (the app's agents for the end user, the end "
        "user for agents): messages up to this seq have been seen."
    )
    last_message: MessageOut | None
    last_activity_at: datetime
    created_at: datetime


class ConversationPage(BaseModel):
    items: list[ConversationOut]
    next_cursor: str | None


class ConversationUser(BaseModel):
    """The end user of a conversation, as agents see them in the inbox."""

    id: uuid.UUID
    user_id: str | None = Field(description="The customer's id for this person; None: anonymous.")
    name: str | None
    email: str | None
    anonymous: bool
    verified: bool


class InboxConversation(ConversationOut):
    end_user_id: uuid.UUID
    user: ConversationUser
    label_ids: list[uuid.UUID] = Field(description="Its labels (/admin/api/labels).")


class InboxPage(BaseModel):
    items: list[InboxConversation]
    next_cursor: str | None


class Assignee(BaseModel):
    """An active team member, as someone a conversation can be assigned to."""

    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str | None
    email: str
    role: str


class ConversationPatch(BaseModel):
    """Close or reopen, assign or unassign (`assignee_id: null`). At least one field."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["open", "closed"] | None = None
    assignee_id: uuid.UUID | None = None


class MessagePage(BaseModel):
    items: list[MessageOut]
    has_more: bool
