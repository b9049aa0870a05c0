"""The Socket.IO protocol, described once: a pydantic model for every event's payload and
acknowledgement. The server parses client events with these models; the JSON Schemas in
realtime/schemas/ (what native SDKs and the conformance suite read) are generated from them by
`python -m replyhq.realtime.protocol --write`, and a test fails when the files and the models
differ. docs/protocol.md explains the rules around them."""

from __future__ import annotations

import argparse
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from replyhq.analytics.schemas import EventBatchIn
from replyhq.messaging.schemas import (
    BODY_OR_ATTACHMENTS,
    MAX_BODY_CHARS,
    AttachmentIds,
    ClientMsgId,
    MessageOut,
    Sender,
    body_or_attachments,
)
from replyhq.messenger.schemas import ConversationRated, MessengerSettingsChanged
from replyhq.web.bounds import INT4_MAX
from replyhq.workspace.schemas import (
    AgentAvailability,
    ConversationLabels,
    NoteMention,
    TimelineItemEvent,
)

SYNC_LIMIT = 200
SCHEMAS = Path(__file__).with_name("schemas")
SCHEMA_BASE = "https://replyhq.dev/protocol/"

# --- handshake ------------------------------------------------------------------------------


class DeviceAuth(BaseModel):
    """The `auth` object of a device's handshake on namespace `/`. The server validates it with
    this schema: a field that breaks it refuses the handshake (docs/protocol.md section 2)."""

    app_id: str = Field(description="The app's id (a UUID).")
    api_key: str = Field(description="The app's SDK key (rhq_sdk_...).")
    device_id: str = Field(min_length=1, max_length=128)
    user_id: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="The identified user (after POST /v1/identify); absent or null: anonymous.",
    )
    user_hash: str | None = Field(
        None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="Hex HMAC-SHA256(identity secret, user_id), computed by your backend.",
    )


# The connect_error code of a handshake whose `auth` breaks handshake.auth.json, by the first
# failing field (any other field: VALIDATION_ERROR). Bad credentials stay INVALID_CREDENTIALS,
# checked first, as before the schema was enforced.
AUTH_FIELD_CODES = {
    "app_id": "INVALID_CREDENTIALS",
    "api_key": "INVALID_CREDENTIALS",
    "device_id": "DEVICE_ID_REQUIRED",
    "user_hash": "INVALID_USER_HASH",
}


class ErrorDetail(BaseModel):
    field: str
    reason: str


class StaffAuth(BaseModel):
    """The `auth` object of a staff member's handshake on namespace `/admin`."""

    token: str = Field(min_length=1, description="A dashboard access token.")


class ConnectErrorData(BaseModel):
    """The `data` of a refused handshake's `connect_error`."""

    code: str = Field(description="What to do depends on it: docs/protocol.md section 2.")
    error: str = Field(description="A sentence for developers; never parse it.")
    details: list[ErrorDetail] | None = Field(
        None, description="Which `auth` fields broke handshake.auth.json, and why."
    )


# --- client -> server -----------------------------------------------------------------------


class SendIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=BODY_OR_ATTACHMENTS)
    conversation_id: uuid.UUID
    attachment_ids: AttachmentIds = []
    body: str = Field("", max_length=MAX_BODY_CHARS, validate_default=True)
    client_msg_id: ClientMsgId

    _body = field_validator("body")(body_or_attachments)


class TypingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conversation_id: uuid.UUID
    typing: bool


class ReadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conversation_id: uuid.UUID
    seq: int = Field(ge=0, le=INT4_MAX)


class SyncIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conversation_id: uuid.UUID
    after_seq: int = Field(0, ge=0, le=INT4_MAX)
    limit: int = Field(SYNC_LIMIT, ge=1, le=SYNC_LIMIT)


class ErrorAck(BaseModel):
    """Every refused event's acknowledgement."""

    ok: Literal[False]
    code: str = Field(description="A stable code, e.g. VALIDATION_ERROR, NOT_FOUND, RATE_LIMITED.")
    error: str = Field(description="A sentence for developers; never parse it.")
    details: list[ErrorDetail] | None = None
    retry_after: float | None = Field(None, description="Seconds to wait (RATE_LIMITED).")


class SendAck(BaseModel):
    ok: Literal[True]
    message: MessageOut
    created: bool = Field(description="False when this client_msg_id was already stored.")


class EmptyAck(BaseModel):
    ok: Literal[True]


class ReadAck(BaseModel):
    ok: Literal[True]
    seq: int = Field(description="The reader's marker; it never moves back.")


class SyncAck(BaseModel):
    ok: Literal[True]
    messages: list[MessageOut]
    has_more: bool


class TrackAck(BaseModel):
    ok: Literal[True]
    accepted: int = Field(description="Events stored (committed): every event of the batch.")


# --- server -> client -----------------------------------------------------------------------


class MessageNew(BaseModel):
    message: MessageOut


class ConversationState(BaseModel):
    """What every reader of a conversation shares (no per-reader counts)."""

    id: uuid.UUID
    end_user_id: uuid.UUID
    subject: str | None
    status: Literal["open", "closed"]
    assignee_id: uuid.UUID | None
    last_seq: int
    last_activity_at: str = Field(description="ISO 8601 date-time.")
    created_at: str = Field(description="ISO 8601 date-time.")


class ConversationUpdated(BaseModel):
    conversation: ConversationState


class Typist(BaseModel):
    type: Sender
    id: uuid.UUID
    name: str | None


class TypingOut(BaseModel):
    conversation_id: uuid.UUID
    who: Typist
    typing: bool


class Reader(BaseModel):
    type: Sender
    id: uuid.UUID


class ReadOut(BaseModel):
    conversation_id: uuid.UUID
    who: Reader
    seq: int


class PresenceOut(BaseModel):
    """To agents: an end user (`user_id`) or an agent (`agent_id`) came online or went."""

    user_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    online: bool


class ResyncOut(BaseModel):
    """Run `sync` for every conversation you hold: live events may have been missed."""


class ConsoleSubscribeIn(BaseModel):
    """Staff (OWNER, ADMIN): stream the app's SDK traffic to this socket (`console:entries`), or
    stop (`console:unsubscribe`). Nothing to send."""

    model_config = ConfigDict(extra="forbid")


class ConsoleEntryOut(BaseModel):
    """To the staff who subscribed: one piece of the app's SDK traffic, secrets redacted."""

    id: str
    at: datetime
    type: Literal[
        "connect",
        "connect_refused",
        "disconnect",
        "identify",
        "message",
        "typing",
        "event",
        "refused",
    ]
    device_id: str | None
    user_id: str | None
    data: dict[str, Any]


class ConsoleEntriesOut(BaseModel):
    """To the staff who subscribed: the app's latest SDK traffic, oldest first (sent at most
    every 0.1 s)."""

    entries: list[ConsoleEntryOut]


class OnboardingStepOut(BaseModel):
    """To the app's staff: a step of the onboarding checklist happened for the first time."""

    key: Literal[
        "sdk_installed", "first_message", "identity_verified", "teammate_invited", "first_reply"
    ]
    done: bool
    done_at: datetime


# --- the catalogue --------------------------------------------------------------------------


@dataclass(frozen=True)
class EventSpec:
    name: str
    direction: Literal["client", "server", "handshake"]
    namespaces: tuple[str, ...]
    payload: type[BaseModel]
    ack: type[BaseModel] | None = None

    @property
    def file(self) -> str:
        return f"{self.direction}.{self.name.replace(':', '.')}.json"


BOTH = ("/", "/admin")
EVENTS: tuple[EventSpec, ...] = (
    EventSpec("auth", "handshake", ("/",), DeviceAuth),
    EventSpec("admin_auth", "handshake", ("/admin",), StaffAuth),
    EventSpec("connect_error", "handshake", BOTH, ConnectErrorData),
    EventSpec("message:send", "client", BOTH, SendIn, SendAck),
    EventSpec("typing", "client", BOTH, TypingIn, EmptyAck),
    EventSpec("read", "client", BOTH, ReadIn, ReadAck),
    EventSpec("sync", "client", BOTH, SyncIn, SyncAck),
    EventSpec("track", "client", ("/",), EventBatchIn, TrackAck),
    EventSpec("message:new", "server", BOTH, MessageNew),
    EventSpec("conversation:updated", "server", BOTH, ConversationUpdated),
    EventSpec("typing", "server", BOTH, TypingOut),
    EventSpec("read", "server", BOTH, ReadOut),
    EventSpec("presence", "server", ("/admin",), PresenceOut),
    EventSpec("resync", "server", BOTH, ResyncOut),
    EventSpec("onboarding:step", "server", ("/admin",), OnboardingStepOut),
    # The agents' workspace (replyhq.workspace): staff sockets only.
    EventSpec("timeline:item", "server", ("/admin",), TimelineItemEvent),
    EventSpec("note:mention", "server", ("/admin",), NoteMention),
    EventSpec("conversation:labels", "server", ("/admin",), ConversationLabels),
    EventSpec("agent:availability", "server", ("/admin",), AgentAvailability),
    EventSpec("console:subscribe", "client", ("/admin",), ConsoleSubscribeIn, EmptyAck),
    EventSpec("console:unsubscribe", "client", ("/admin",), ConsoleSubscribeIn, EmptyAck),
    EventSpec("console:entries", "server", ("/admin",), ConsoleEntriesOut),
    # The messenger's ratings (replyhq.messenger).
    EventSpec("conversation:rated", "server", BOTH, ConversationRated),
    EventSpec("messenger:settings", "server", ("/",), MessengerSettingsChanged),
)


def event_schema(spec: EventSpec) -> dict[str, Any]:
    """One file's content: the payload's schema at the root and, for a client event, its
    acknowledgement as `$defs/ack` (the success shape or the common error shape). Validate an
    acknowledgement with `{"$defs": file["$defs"], "$ref": "#/$defs/ack"}`."""
    schema: dict[str, Any] = spec.payload.model_json_schema(mode="validation")
    defs: dict[str, Any] = schema.pop("$defs", {})
    if spec.ack is not None:
        ack = spec.ack.model_json_schema(mode="serialization")
        error = ErrorAck.model_json_schema(mode="serialization")
        defs.update(ack.pop("$defs", {}))
        defs.update(error.pop("$defs", {}))
        defs["ack"] = {"oneOf": [ack, error]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_BASE + spec.file,
        **schema,
        "title": f"{spec.direction} {spec.name}",
        "description": (spec.payload.__doc__ or "").strip() or f"The `{spec.name}` payload.",
        "x-event": spec.name,
        "x-direction": spec.direction,
        "x-namespaces": list(spec.namespaces),
        **({"$defs": defs} if defs else {}),
    }


def generated() -> dict[str, str]:
    """File name -> exact file text, as committed."""
    return {
        spec.file: json.dumps(event_schema(spec), indent=2, sort_keys=True) + "\n"
        for spec in EVENTS
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write or check the protocol's JSON Schemas.")
    parser.add_argument("--write", action="store_true", help="rewrite realtime/schemas/*.json")
    args = parser.parse_args(argv)
    files = generated()
    if args.write:
        SCHEMAS.mkdir(exist_ok=True)
        for stale in SCHEMAS.glob("*.json"):
            if stale.name not in files:
                stale.unlink()
        for name, text in files.items():
            (SCHEMAS / name).write_text(text)
        return 0
    different = [
        n for n, t in files.items() if not (SCHEMAS / n).is_file() or (SCHEMAS / n).read_text() != t
    ]
    for name in different:
        print(f"out of date: {SCHEMAS / name}")
    return 1 if different else 0


if __name__ == "__main__":
    raise SystemExit(main())
