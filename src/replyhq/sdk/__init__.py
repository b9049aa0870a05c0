"""The Python SDK for end users' devices (used by our tests and benchmarks too)."""

from replyhq.sdk.client import ReplyHQClient, ReplyHQError

__all__ = ["ReplyHQClient", "ReplyHQError"]
