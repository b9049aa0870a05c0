"""A blocking wrapper for scripts and programs without asyncio: the asyncio client runs on an
event loop in a thread of its own, and each call waits for its result there (at most `timeout`
seconds, then TimeoutError)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypeVar

from replyhq_sdk.client import KEEP, Event, ReplyHQClient
from replyhq_sdk.storage import Storage
from replyhq_sdk.types import Attachment, Conversation, EndUser, Feature, Message

T = TypeVar("T")


class ReplyHQSyncClient:
    """The same arguments as ReplyHQClient; `on_message` and the listeners of on() are called
    on the client's thread."""

    def __init__(
        self,
        base_url: str,
        app_id: str,
        sdk_key: str,
        device_id: str | None = None,
        *,
        user_id: str | None = None,
        user_hash: str | None = None,
        platform: str = "other",
        on_message: Callable[[Message], None] | None = None,
        storage: Storage | None = None,
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
                storage=storage,
            )

        self.client = self._run(build())

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(self._timeout)

    @property
    def device_id(self) -> str:
        return self.client.device_id

    @property
    def user(self) -> EndUser | None:
        return self.client.user

    def on(self, event: Event, listener: Callable[..., None]) -> Callable[[], None]:
        return self.client.on(event, listener)

    def identify(
        self, *, user_id: str | None = KEEP, user_hash: str | None = KEEP, **profile: Any
    ) -> EndUser:
        """As ReplyHQClient.identify: another user_id switches identity (new device id)."""
        return self._run(self.client.identify(user_id=user_id, user_hash=user_hash, **profile))

    def logout(self) -> None:
        self._run(self.client.logout())

    def start_conversation(
        self,
        subject: str | None = None,
        body: str | None = None,
        *,
        attachment_ids: Sequence[str] = (),
    ) -> str:
        return self._run(
            self.client.start_conversation(subject, body, attachment_ids=attachment_ids)
        )

    def upload(
        self,
        file: bytes | BinaryIO | Path,
        *,
        filename: str | None = None,
        conversation_id: str | None = None,
    ) -> Attachment:
        return self._run(
            self.client.upload(file, filename=filename, conversation_id=conversation_id)
        )

    def attachment(self, attachment_id: str) -> Attachment:
        return self._run(self.client.attachment(attachment_id))

    def file_url(self, path: str) -> str:
        return self.client.file_url(path)

    def conversations(self) -> list[Conversation]:
        return self._run(self.client.conversations())

    def history(
        self, conversation_id: str, *, before_seq: int | None = None, limit: int = 50
    ) -> list[Message]:
        return self._run(self.client.history(conversation_id, before_seq=before_seq, limit=limit))

    def connect(self) -> None:
        self._run(self.client.connect())

    def send(
        self, conversation_id: str, body: str, *, attachment_ids: Sequence[str] = ()
    ) -> Message:
        """Waits until the server has stored the message (queued and retried meanwhile)."""
        return self._run(self.client.send(conversation_id, body, attachment_ids=attachment_ids))

    def messages(self) -> Iterator[Message]:
        """Every message delivered from now on, in order; each wait is at most `timeout`."""

        async def start() -> Any:
            return self.client.messages()

        iterator = self._run(start())
        while True:
            try:
                yield self._run(anext(iterator))
            except StopAsyncIteration:
                return

    def typing(self, conversation_id: str, typing: bool = True) -> bool:
        return self._run(self.client.typing(conversation_id, typing))

    def read(self, conversation_id: str, seq: int | None = None) -> None:
        self._run(self.client.read(conversation_id, seq))

    @property
    def unread_count(self) -> int:
        return self.client.unread_count

    def register_push_token(
        self,
        provider: Literal["fcm", "apns", "webpush"],
        token: str | None = None,
        *,
        subscription: dict[str, Any] | None = None,
    ) -> Feature:
        return self._run(
            self.client.register_push_token(provider, token, subscription=subscription)
        )

    def track(self, name: str, properties: dict[str, Any] | None = None) -> Feature:
        return self._run(self.client.track(name, properties))

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
