"""A blocking wrapper for scripts and programs without asyncio: the asyncio client runs on an
event loop in a thread of its own, and each call waits for its result there."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from replyhq_sdk.client import Message, ReplyHQClient

T = TypeVar("T")


class ReplyHQSyncClient:
    """The same arguments as ReplyHQClient; `on_message` is called on the client's thread."""

    def __init__(
        self,
        base_url: str,
        app_id: str,
        sdk_key: str,
        device_id: str,
        *,
        user_id: str | None = None,
        user_hash: str | None = None,
        platform: str = "other",
        on_message: Callable[[Message], None] | None = None,
        timeout: float = 30,
    ) -> None:
        self._timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

        async def build() -> ReplyHQClient:
            return ReplyHQClient(
                base_url,
                app_id,
                sdk_key,
                device_id,
                user_id=user_id,
                user_hash=user_hash,
                platform=platform,
                on_message=on_message,
            )

        self.client = self._run(build())

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(self._timeout)

    def identify(self, **profile: Any) -> dict[str, Any]:
        return self._run(self.client.identify(**profile))

    def start_conversation(self, subject: str | None = None) -> str:
        return self._run(self.client.start_conversation(subject))

    def conversations(self) -> list[dict[str, Any]]:
        return self._run(self.client.conversations())

    def connect(self) -> None:
        self._run(self.client.connect())

    def send(self, conversation_id: str, body: str) -> Message:
        """Waits until the server has stored the message (queued and retried meanwhile)."""
        return self._run(self.client.send(conversation_id, body))

    def typing(self, conversation_id: str, typing: bool = True) -> None:
        self._run(self.client.typing(conversation_id, typing))

    def read(self, conversation_id: str, seq: int) -> None:
        self._run(self.client.read(conversation_id, seq))

    @property
    def pending(self) -> int:
        return self.client.pending

    def close(self) -> None:
        try:
            self._run(self.client.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()
