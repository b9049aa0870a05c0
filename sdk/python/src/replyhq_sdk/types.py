"""The protocol's shapes (docs/protocol.md; JSON Schemas in src/replyhq/realtime/schemas/ of
the server), as the SDK hands them to the application."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

Sender = Literal["user", "agent", "system"]
ConnectionState = Literal["idle", "connecting", "connected", "reconnecting", "blocked", "closed"]
Platform = Literal[
    "ios", "android", "web", "react_native", "flutter", "macos", "windows", "linux", "other"
]


class Author(TypedDict):
    type: Sender
    id: str | None
    name: str | None


class Attachment(TypedDict):
    """A file or image (docs/attachments.md). `url` and `thumbnail_url` are signed paths on the
    server (file_url() makes them addresses) that work until `urls_expire_at`."""

    id: str
    conversation_id: str | None  # None for an upload made before its conversation, until sent
    message_id: str | None  # None until sent
    filename: str
    content_type: str  # as found in the file's bytes
    size: int
    kind: Literal["image", "file"]  # image: shown inline (its thumbnail); file: a download
    width: int | None
    height: int | None
    url: str
    thumbnail_url: str | None
    urls_expire_at: str
    created_at: str


class Message(TypedDict):
    id: str
    conversation_id: str
    seq: int
    client_msg_id: str
    sender: Sender
    author: Author
    body: str
    body_html: str
    created_at: str
    # Newer servers: "event" when the conversation was closed or reopened (`data` says which;
    # never counted unread), and the files a message carries.
    kind: NotRequired[Literal["message", "event"]]
    data: NotRequired[dict[str, Any] | None]
    attachments: NotRequired[list[Attachment]]


class Conversation(TypedDict):
    """An item of conversations(): with this person's unread count and the agent's read mark."""

    id: str
    subject: str | None
    status: Literal["open", "closed"]
    assignee_id: str | None
    last_seq: int
    unread_count: int
    peer_read_seq: int
    last_message: Message | None
    last_activity_at: str
    created_at: str


class ConversationState(TypedDict):
    """`conversation:updated`: closed, reopened, assigned, a new last_seq."""

    id: str
    end_user_id: str
    subject: str | None
    status: Literal["open", "closed"]
    assignee_id: str | None
    last_seq: int
    last_activity_at: str
    created_at: str


class EndUser(TypedDict):
    id: str
    user_id: str | None
    name: str | None
    email: str | None
    attributes: dict[str, Any]
    anonymous: bool
    verified: bool


class Person(TypedDict):
    type: Sender
    id: str


class Typist(Person):
    name: str | None


class TypingEvent(TypedDict):
    conversation_id: str
    who: Typist
    typing: bool


class ReadEvent(TypedDict):
    conversation_id: str
    who: Person
    seq: int


@dataclass(frozen=True)
class Feature:
    """The answer of an optional feature: `supported` is False when this server does not have
    its route (an older server), and then nothing was sent."""

    supported: bool
