"""A Python client for end users' devices: what the mobile SDKs do, in Python.

Delivery is exactly once and in order per conversation: every message carries `seq`; the client
hands a message to the application only when it is the next one, buffers what arrives early, drops
what it has already seen, and fills any gap (after a reconnect, a missed event, or the server's
`resync` hint) with `sync`.
Sends are queued with a `client_msg_id` while offline and retried until the server acknowledges;
the server stores each `client_msg_id` once, so retries never duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio

Message = dict[str, Any]
OnMessage = Callable[[Message], Awaitable[None] | None]


class ReplyHQError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.code = str(body.get("code", "ERROR"))
        super().__init__(f"{status} {self.code}: {body.get('error', '')}")


@dataclass
class _Conversation:
    last_seq: int = 0
    early: dict[int, Message] = field(default_factory=dict)
    syncing: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class _Outgoing:
    conversation_id: str
    body: str
    client_msg_id: str
    done: asyncio.Future[Message]


class ReplyHQClient:
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
        on_message: OnMessage | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self.device_id = device_id
        self.user_id = user_id
        self.user_hash = user_hash
        self.platform = platform
        self.on_message = on_message
        self._headers = {"X-App-Id": app_id, "X-Api-Key": sdk_key, "X-Device-Id": device_id}
        self._sdk_key = sdk_key
        self._http: aiohttp.ClientSession | None = None
        self._conversations: dict[str, _Conversation] = {}
        self._outbox: list[_Outgoing] = []
        self._flushing = asyncio.Lock()
        self.sio = socketio.AsyncClient(
            reconnection=True, reconnection_delay=0.2, reconnection_delay_max=2
        )
        self.sio.on("connect", self._on_connect)
        self.sio.on("message:new", self._on_message_new)
        self.sio.on("resync", self._on_resync)
        self.typing_events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sio.on("typing", self.typing_events.put)
        self.connected = asyncio.Event()
        self.connections = 0  # how many times the socket has (re)connected
        self.sio.on("disconnect", self._on_disconnect)

    # --- HTTP -------------------------------------------------------------------------------

    async def _request(self, method: str, path: str, json: Any = None) -> Any:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        async with self._http.request(
            method, self.base_url + path, json=json, headers=self._headers
        ) as response:
            body = await response.json() if response.content_type == "application/json" else {}
            if response.status >= 400:
                raise ReplyHQError(response.status, body)
            return body

    async def identify(self, **profile: Any) -> dict[str, Any]:
        """Tell the server who uses this device (anonymous without a user_id)."""
        body: dict[str, Any] = {"platform": self.platform, **profile}
        if self.user_id is not None:
            body["user_id"] = self.user_id
        if self.user_hash is not None:
            body["user_hash"] = self.user_hash
        result: dict[str, Any] = await self._request("POST", "/v1/identify", body)
        return result

    async def start_conversation(self, subject: str | None = None) -> str:
        conversation = await self._request("POST", "/v1/conversations", {"subject": subject})
        conversation_id: str = conversation["id"]
        self._conversations.setdefault(conversation_id, _Conversation())
        return conversation_id

    async def conversations(self) -> list[dict[str, Any]]:
        page = await self._request("GET", "/v1/conversations?limit=100")
        items: list[dict[str, Any]] = page["items"]
        for item in items:
            self._conversations.setdefault(item["id"], _Conversation())
        return items

    async def rating(self, conversation_id: str) -> dict[str, Any]:
        """`{closing, can_rate, rating}`: whether the latest closing may be rated."""
        state: dict[str, Any] = await self._request(
            "GET", f"/v1/conversations/{conversation_id}/rating"
        )
        return state

    async def rate(
        self, conversation_id: str, score: int, comment: str | None = None
    ) -> dict[str, Any]:
        """Rate the conversation's latest closing, 1-5 (once per closing)."""
        body = {"score": score, "comment": comment}
        rating: dict[str, Any] = await self._request(
            "POST", f"/v1/conversations/{conversation_id}/rating", body
        )
        return rating

    # --- socket -----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the real-time connection; it reconnects by itself and catches up on reconnect."""
        auth = {"app_id": self.app_id, "api_key": self._sdk_key, "device_id": self.device_id}
        if self.user_id is not None:
            auth["user_id"] = self.user_id
        if self.user_hash is not None:
            auth["user_hash"] = self.user_hash
        await self.sio.connect(self.base_url, auth=auth, transports=["websocket"], wait_timeout=10)
        await asyncio.wait_for(self.connected.wait(), 10)

    async def close(self) -> None:
        await self.sio.disconnect()
        if self._http is not None:
            await self._http.close()

    async def _on_connect(self) -> None:
        # Also after every automatic reconnect: catch up on each conversation, then resend.
        self.connections += 1
        self.connected.set()
        asyncio.get_running_loop().create_task(self._catch_up())

    async def _on_disconnect(self, *_: Any) -> None:
        self.connected.clear()

    async def _on_resync(self, *_: Any) -> None:
        # The server may have missed events meant for us (its Redis came back): catch up.
        asyncio.get_running_loop().create_task(self._catch_up())

    async def _catch_up(self) -> None:
        with contextlib.suppress(Exception):
            for conversation_id in list(self._conversations):
                await self.sync(conversation_id)
            await self._flush()

    async def _on_message_new(self, data: dict[str, Any]) -> None:
        await self._accept(data["message"])

    async def _accept(self, message: Message) -> None:
        conversation_id = message["conversation_id"]
        state = self._conversations.setdefault(conversation_id, _Conversation())
        seq = message["seq"]
        if seq <= state.last_seq:
            return  # already delivered
        state.early[seq] = message
        await self._deliver_ready(state)
        if state.early:  # a gap: something was missed
            asyncio.get_running_loop().create_task(self.sync(conversation_id))

    async def _deliver_ready(self, state: _Conversation) -> None:
        while state.last_seq + 1 in state.early:
            message = state.early.pop(state.last_seq + 1)
            state.last_seq = message["seq"]
            if self.on_message is not None:
                result = self.on_message(message)
                if asyncio.iscoroutine(result):
                    await result

    async def sync(self, conversation_id: str) -> None:
        """Fetch and deliver everything after the last delivered seq."""
        state = self._conversations.setdefault(conversation_id, _Conversation())
        async with state.syncing:
            while True:
                ack = await self.sio.call(
                    "sync",
                    {"conversation_id": conversation_id, "after_seq": state.last_seq},
                    timeout=10,
                )
                if not ack.get("ok"):
                    raise ReplyHQError(400, ack)
                for message in ack["messages"]:
                    await self._accept(message)
                if not ack["has_more"]:
                    return

    # --- sending ----------------------------------------------------------------------------

    async def send(self, conversation_id: str, body: str) -> Message:
        """Queue a message; resolves with the stored message once the server has it."""
        outgoing = _Outgoing(
            conversation_id, body, uuid.uuid4().hex, asyncio.get_running_loop().create_future()
        )
        self._conversations.setdefault(conversation_id, _Conversation())
        self._outbox.append(outgoing)
        await self._flush()
        return await outgoing.done

    async def _flush(self) -> None:
        async with self._flushing:
            for outgoing in list(self._outbox):
                if not self.sio.connected:
                    return
                try:
                    ack = await self.sio.call(
                        "message:send",
                        {
                            "conversation_id": outgoing.conversation_id,
                            "body": outgoing.body,
                            "client_msg_id": outgoing.client_msg_id,
                        },
                        timeout=10,
                    )
                except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError):
                    return  # still queued; the next connect retries it
                self._outbox.remove(outgoing)
                if ack.get("ok"):
                    outgoing.done.set_result(ack["message"])
                    await self._accept(ack["message"])
                else:
                    outgoing.done.set_exception(ReplyHQError(400, ack))

    @property
    def pending(self) -> int:
        """Messages queued but not yet acknowledged by the server."""
        return len(self._outbox)

    async def typing(self, conversation_id: str, typing: bool = True) -> None:
        await self.sio.call("typing", {"conversation_id": conversation_id, "typing": typing})

    async def read(self, conversation_id: str, seq: int) -> None:
        ack = await self.sio.call("read", {"conversation_id": conversation_id, "seq": seq})
        if not ack.get("ok"):
            raise ReplyHQError(400, ack)
