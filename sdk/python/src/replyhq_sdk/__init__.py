"""ReplyHQ's Python SDK for end users' devices: asyncio (`ReplyHQClient`) and a small blocking
wrapper (`ReplyHQSyncClient`). docs/sdk.md; the protocol is docs/protocol.md."""

from replyhq_sdk.client import ReplyHQClient, ReplyHQError
from replyhq_sdk.sync import ReplyHQSyncClient

__all__ = ["ReplyHQClient", "ReplyHQError", "ReplyHQSyncClient"]
__version__ = "0.1.0"
