"""Per-socket rates of the events that cost work on every call and are not otherwise limited:
`typing` (fanned out to the other side), `read` and `sync` (a database round trip each), `track`
(a share of a batched write).

Kept in the process, in the socket's session: a socket lives on one process, and the hot path
must not pay a Redis round trip. Each event name has a token bucket holding at most the limit's
amount, refilled evenly over its period (RATE_LIMIT_SOCKET_*, in the `limits` notation of the
other rate limits): a burst of that many, then that rate.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from limits import parse

from replyhq.errors import RateLimited
from replyhq.settings import Settings


@dataclass(frozen=True)
class Rule:
    capacity: float
    per_second: float

    @classmethod
    def of(cls, text: str) -> Rule:
        item = parse(text)
        return cls(float(item.amount), item.amount / item.get_expiry())


class Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float) -> None:
        self.tokens = tokens
        self.updated = time.monotonic()


class SocketLimits:
    def __init__(self, settings: Settings) -> None:
        self.rules: dict[str, Rule] = {}
        if settings.rate_limit_enabled:
            self.rules = {
                "typing": Rule.of(settings.rate_limit_socket_typing),
                "read": Rule.of(settings.rate_limit_socket_read),
                "sync": Rule.of(settings.rate_limit_socket_sync),
                "track": Rule.of(settings.rate_limit_socket_track),
            }

    def refusal(self, state: dict[str, Any], event: str) -> dict[str, Any] | None:
        """None when the socket (whose session is `state`) may send `event` now (counted);
        otherwise the acknowledgement refusing it."""
        rule = self.rules.get(event)
        if rule is None:
            return None
        buckets: dict[str, Bucket] = state.setdefault("buckets", {})
        bucket = buckets.get(event)
        if bucket is None:
            bucket = buckets[event] = Bucket(rule.capacity)
        now = time.monotonic()
        bucket.tokens = min(rule.capacity, bucket.tokens + (now - bucket.updated) * rule.per_second)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        wait = math.ceil((1 - bucket.tokens) / rule.per_second)
        error = RateLimited(f"Too many `{event}` events; try again in {wait} s.", retry_after=wait)
        return {"ok": False, **error.body()}
