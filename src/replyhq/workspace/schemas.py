"""Requests and answers of the agents' workspace: notes and staff-only events, labels, saved
replies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from replyhq.messaging.schemas import MAX_BODY_CHARS, Body, ClientMsgId

MAX_MENTIONS = 20


class NoteIn(BaseModel):
    """A private note: staff of the app see it, the end user never does."""

    model_config = ConfigDict(extra="forbid")
    body: Body
    client_msg_id: ClientMsgId
    mentions: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=MAX_MENTIONS,
        description="Teammates to notify (staff ids); `@handle` in the body (an e-mail address "
        "or its local part) mentions too.",
    )


class TimelineItemOut(BaseModel):
    """A note, or an event only staff see (assigned, unassigned, label_added, label_removed)."""

    id: uuid.UUID
    conversation_id: uuid.UUID
    after_seq: int = Field(
        description="Its place: after the message of this seq (0: before the first), then by "
        "created_at."
    )
    kind: Literal["note", "event"]
    client_msg_id: str
    author_id: uuid.UUID | None = Field(description="The staff user (or app id for the API).")
    author_name: str | None
    body: str
    body_html: str
    data: dict[str, Any] = Field(
        description="A note's `mentions` (staff ids); an event's `type` and details."
    )
    created_at: datetime


class ItemPage(BaseModel):
    items: list[TimelineItemOut]
    has_more: bool


# --- labels -------------------------------------------------------------------------------------

LabelName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Color = Annotated[
    str,
    StringConstraints(to_lower=True, pattern=r"^#[0-9a-fA-F]{6}$"),
    Field(description="#rrggbb", examples=["#3b82f6"]),
]


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: LabelName
    color: Color = "#64748b"


class LabelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: LabelName | None = None
    color: Color | None = None


class LabelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str
    color: str


class ConversationLabels(BaseModel):
    conversation_id: uuid.UUID
    labels: list[LabelOut]


# --- saved replies ------------------------------------------------------------------------------

Shortcut = Annotated[
    str,
    StringConstraints(to_lower=True, pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,31}$"),
    Field(description="Typed as `/shortcut` in the composer: letters, digits, _ and -."),
]
ReplyName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
ReplyBody = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_BODY_CHARS),
    Field(description="Placeholders: {{user.name}}, {{user.email}}, {{agent.name}}."),
]


class SavedReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: ReplyName
    shortcut: Shortcut
    body: ReplyBody


class SavedReplyPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: ReplyName | None = None
    shortcut: Shortcut | None = None
    body: ReplyBody | None = None


class SavedReplyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str
    shortcut: str
    body: str
    updated_at: datetime


class RenderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conversation_id: uuid.UUID


class Rendered(BaseModel):
    body: str = Field(description="The saved reply's body, its placeholders filled.")


# --- live events (/admin only; in realtime/protocol.py's catalogue) -----------------------------


class TimelineItemEvent(BaseModel):
    """A note or a staff-only event was added to a conversation's timeline."""

    item: TimelineItemOut


class NoteMention(BaseModel):
    """A note mentions the agent `staff_id` (every agent of the app receives it)."""

    staff_id: uuid.UUID
    conversation_id: uuid.UUID
    note: TimelineItemOut


# --- auto-assignment ----------------------------------------------------------------------------


class AssignmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["off", "round_robin", "least_busy"]
    capacity: int = Field(
        10, ge=1, le=1000, description="Open conversations an agent may hold before being skipped."
    )


class AssignmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    mode: Literal["off", "round_robin", "least_busy"]
    capacity: int


class AvailabilityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    available: bool


class AgentAvailability(BaseModel):
    """A member of the app's staff became available for auto-assignment, or away."""

    staff_id: uuid.UUID
    available: bool


class AgentLoad(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str | None
    email: str
    available: bool
    open_count: int = Field(description="Open conversations assigned to them.")


# --- the end user's profile ---------------------------------------------------------------------


class ProfileConversation(BaseModel):
    id: uuid.UUID
    subject: str | None
    status: Literal["open", "closed"]
    assignee_id: uuid.UUID | None
    last_seq: int
    last_activity_at: datetime


class ProfileDevice(BaseModel):
    platform: str
    app_version: str | None
    locale: str | None
    timezone: str | None
    created_at: datetime
    last_seen_at: datetime


class ProfileEvent(BaseModel):
    name: str
    properties: dict[str, Any]
    occurred_at: datetime
    platform: str | None


class ProfileOut(BaseModel):
    """Newest first, at most 50 of each. The web messenger's browser and page are on
    /admin/api/conversations/{id}/context."""

    conversations: list[ProfileConversation]
    devices: list[ProfileDevice]
    events: list[ProfileEvent]
