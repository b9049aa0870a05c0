"""ReplyHQ's Python SDK for end users' devices: asyncio (`ReplyHQClient`) and a small blocking
wrapper (`ReplyHQSyncClient`), with the surface of the JavaScript SDK. The guide is
docs/sdk.md; the protocol, docs/protocol.md."""

from replyhq_sdk.client import KEEP, ReplyHQClient
from replyhq_sdk.errors import ReplyHQError
from replyhq_sdk.storage import FileStorage, MemoryStorage, Storage
from replyhq_sdk.sync import ReplyHQSyncClient
from replyhq_sdk.types import (
    Attachment,
    ConnectionState,
    Conversation,
    ConversationState,
    EndUser,
    Feature,
    Message,
    ReadEvent,
    TypingEvent,
)

__all__ = [
    "KEEP",
    "Attachment",
    "ConnectionState",
    "Conversation",
    "ConversationState",
    "EndUser",
    "Feature",
    "FileStorage",
    "MemoryStorage",
    "Message",
    "ReadEvent",
    "ReplyHQClient",
    "ReplyHQError",
    "ReplyHQSyncClient",
    "Storage",
    "TypingEvent",
]
__version__ = "0.2.0"
