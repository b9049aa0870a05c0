"""Every failure the SDK reports is a `ReplyHQError`: the server's error code (or the SDK's own
for the network), the HTTP status when there was one, and whether retrying can help
(docs/protocol.md sections 2 and 3)."""

from __future__ import annotations

from typing import Any

# Codes worth retrying with the same request (sends are idempotent by client_msg_id).
TRANSIENT = frozenset(
    {
        "NETWORK_ERROR",
        "TIMEOUT",
        "RATE_LIMITED",
        "SERVICE_UNAVAILABLE",
        "DATABASE_UNAVAILABLE",
        "INTERNAL_ERROR",
        "SESSION_REVOKED",
    }
)

# Handshake refusals no retry can change until the app identifies again.
IDENTITY_REFUSALS = frozenset(
    {
        "INVALID_CREDENTIALS",
        "DEVICE_ID_REQUIRED",
        "IDENTITY_REQUIRED",
        "INVALID_USER_HASH",
        "USER_HASH_REQUIRED",
        "VALIDATION_ERROR",
    }
)

# The device's identity lapsed: identify again, then retry (protocol section 2).
REIDENTIFY = frozenset({"DEVICE_UNKNOWN", "DEVICE_UNVERIFIED"})


class ReplyHQError(Exception):
    """`code` is the API's stable code (VALIDATION_ERROR, CONVERSATION_NOT_FOUND, RATE_LIMITED,
    ...; NETWORK_ERROR and TIMEOUT are the SDK's own); `error` the server's sentence for
    developers (never parse it); `status` the HTTP status, None for socket events."""

    def __init__(
        self,
        code: str,
        error: str = "",
        *,
        status: int | None = None,
        details: list[dict[str, str]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.code = code
        self.error = error
        self.status = status
        self.details = details
        self.retry_after = retry_after
        where = f"{status} " if status is not None else ""
        super().__init__(f"{where}{code}: {error}")

    @property
    def transient(self) -> bool:
        """A failure that may pass later (network, timeout, rate limit, a busy server)."""
        return self.code in TRANSIENT or (self.status is not None and self.status >= 500)

    @classmethod
    def from_body(
        cls, body: Any, status: int | None, retry_after: float | None = None
    ) -> ReplyHQError:
        """From an error response's body or a refused acknowledgement (`{ok: false, ...}`)."""
        data: dict[str, Any] = body if isinstance(body, dict) else {}
        code = data.get("code")
        if not isinstance(code, str):
            code = "NETWORK_ERROR" if status is None else f"HTTP_{status}"
        error = data.get("error")
        details = data.get("details")
        given = data.get("retry_after")
        return cls(
            code,
            error if isinstance(error, str) else "request failed",
            status=status,
            details=details if isinstance(details, list) else None,
            retry_after=float(given) if isinstance(given, int | float) else retry_after,
        )
