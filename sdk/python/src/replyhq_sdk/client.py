"""A Python client for end users' devices: what the mobile SDKs do, in Python, with the surface
of the JavaScript SDK (`@replyhq/sdk`). docs/protocol.md is the contract; each rule below has a
section there.

Delivery is exactly once and in order per conversation: every message carries `seq`; the client
hands a message to the application only when it is the next one, keeps what arrives early, drops
what it has already seen, and fills any gap (after a reconnect, a missed event, or the server's
`resync` hint) with `sync`.
Sends are queued with a `client_msg_id` (in `storage`, so they survive a restart) and retried
until the server acknowledges; the server stores each `client_msg_id` once, so retries never
duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast
from urllib.parse import urlencode

import aiohttp
import socketio

from replyhq_sdk.errors import IDENTITY_REFUSALS, REIDENTIFY, TRANSIENT, ReplyHQError
from replyhq_sdk.storage import MemoryStorage, Storage
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

__all__ = ["KEEP", "Event", "Listener", "OnMessage", "ReplyHQClient", "ReplyHQError"]

OnMessage = Callable[[Message], Awaitable[None] | None]
Listener = Callable[..., Awaitable[None] | None]
Event = Literal["message", "conversation", "typing", "read", "unread", "state", "failed", "error"]
SYNC_LIMIT = 200
# The optional routes (protocol section 7), feature-detected: a 404/405 means an older server.
ROUTES = {"push": "/v1/push-token", "track": "/v1/events"}


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()  # identify(user_id=KEEP): the identity the client already has


def _is_open(sio: socketio.AsyncClient) -> bool:
    """Whether events can be sent: python-socketio runs the connect handler (which starts the
    catch-up) before it sets `connected`, but after the namespace is joined."""
    return "/" in sio.namespaces


def _new_device_id() -> str:
    return f"sdk-{uuid.uuid4().hex}"


@dataclass
class _Cursor:
    last_seq: int = 0
    early: dict[int, Message] = field(default_factory=dict)
    syncing: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Messages up to this seq were already counted in the server's unread_count.
    counted: int = 0


@dataclass
class _Outgoing:
    conversation_id: str
    body: str
    client_msg_id: str
    attachment_ids: list[str] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "conversation_id": self.conversation_id,
            "body": self.body,
            "client_msg_id": self.client_msg_id,
        }
        if self.attachment_ids:  # only then: older servers know no such field
            payload["attachment_ids"] = self.attachment_ids
        return payload


class ReplyHQClient:
    """asyncio client. `device_id`: this install's id (default: generated once and kept in
    `storage`; a new one after logout or an identity switch). `user_id` and `user_hash` (hex
    HMAC-SHA256(identity secret, user_id), computed by your backend) may also be given to
    identify(). `storage`: MemoryStorage() by default, FileStorage(path) to survive restarts."""

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
        on_message: OnMessage | None = None,
        storage: Storage | None = None,
        ack_timeout: float = 10,
        reconnection_delay: float = 0.2,
        reconnection_delay_max: float = 2,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self.user_id = user_id
        self.user_hash = user_hash
        self.platform = platform
        self.ack_timeout = ack_timeout
        self.reconnection_delay = reconnection_delay
        self.reconnection_delay_max = reconnection_delay_max
        self.state: ConnectionState = "idle"
        self.user: EndUser | None = None
        self.connected = asyncio.Event()
        self.connections = 0  # how many times the socket has (re)connected
        self.typing_events: asyncio.Queue[TypingEvent] = asyncio.Queue()
        self._sdk_key = sdk_key
        self._storage: Storage = storage if storage is not None else MemoryStorage()
        self._listeners: dict[str, list[Listener]] = {}
        self._http: aiohttp.ClientSession | None = None
        self._generation = 0  # bumped on every identity change: late answers are dropped
        self._cursors: dict[str, _Cursor] = {}
        self._outbox: list[_Outgoing] = []
        self._waiters: dict[str, asyncio.Future[Message]] = {}
        self._flushing = asyncio.Lock()
        self._caught_up = False
        self._unread: dict[str, int] = {}
        self._last_unread = -1
        self._pending_reads: dict[str, int] = {}
        self._iterators: set[asyncio.Queue[Message | None]] = set()
        self._missing: set[str] = set()  # optional routes this server does not have
        self._identified_user: str | None = None
        self._refusal: dict[str, Any] | None = None
        self._refusals = 0
        self._save_scheduled = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wanted = False  # the application asked for a connection (connect() until close)
        if on_message is not None:
            self.on("message", on_message)

        stored_device = self._stored("device")
        self.device_id: str = device_id or (
            stored_device if isinstance(stored_device, str) else _new_device_id()
        )
        self._store("device", self.device_id)
        self._saved_user: str | None = None
        self._load()
        self.sio = self._new_socket()

    # --- events --------------------------------------------------------------------------------

    def on(self, event: Event, listener: Listener) -> Callable[[], None]:
        """Call `listener` on each `event` (a coroutine function is awaited); returns a function
        that removes it. `message` (Message): each message once, in order per conversation,
        yours included. `unread` (int), `typing` (TypingEvent), `read` (ReadEvent: the agent's
        "Seen"), `conversation` (ConversationState), `state` (ConnectionState), `failed`
        (payload dict, ReplyHQError: a refused send), `error` (ReplyHQError: e.g. a handshake
        refused for identity reasons)."""
        self._listeners.setdefault(event, []).append(listener)
        return lambda: self.off(event, listener)

    def off(self, event: Event, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.get(event, []).remove(listener)

    async def _emit(self, event: Event, *args: Any) -> None:
        for listener in list(self._listeners.get(event, [])):
            try:
                result = listener(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # noqa: S112  # a listener's bug must not stop delivery, nor the SDK
                continue

    def _spawn(self, work: Awaitable[Any]) -> None:
        async def run() -> None:
            with contextlib.suppress(Exception):
                await work

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- storage -------------------------------------------------------------------------------

    def _key(self, what: str) -> str:
        return f"replyhq:{self.app_id}:{what}"

    def _stored(self, what: str) -> Any:
        try:
            raw = self._storage.get(self._key(what))
            return json.loads(raw) if raw else None
        except (ValueError, OSError):
            return None

    def _store(self, what: str, value: Any) -> None:
        with contextlib.suppress(OSError, TypeError, ValueError):
            if value is None:
                self._storage.remove(self._key(what))
            else:
                self._storage.set(self._key(what), json.dumps(value))

    def _load(self) -> None:
        state = self._stored(f"{self.device_id}:state") or {}
        self._saved_user = state.get("user_id")
        for conversation_id, last_seq in (state.get("cursors") or {}).items():
            self._cursors[conversation_id] = _Cursor(last_seq, counted=last_seq)
        for item in self._stored(f"{self.device_id}:outbox") or []:
            with contextlib.suppress(TypeError):
                self._outbox.append(_Outgoing(**item))

    def _save_state(self) -> None:
        cursors = {cid: cursor.last_seq for cid, cursor in self._cursors.items()}
        self._store(f"{self.device_id}:state", {"user_id": self._saved_user, "cursors": cursors})

    def _save_state_soon(self) -> None:
        """Read positions are written once per turn of the event loop (a batch of messages
        costs one write)."""
        if self._save_scheduled:
            return
        self._save_scheduled = True
        generation = self._generation

        def save() -> None:
            self._save_scheduled = False
            if generation == self._generation:
                self._save_state()

        asyncio.get_running_loop().call_soon(save)

    def _save_outbox(self) -> None:
        items = [item.__dict__ for item in self._outbox]
        self._store(f"{self.device_id}:outbox", items or None)

    # --- HTTP ----------------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        json: Any = None,
        retried: bool = False,
        *,
        data: bytes | BinaryIO | None = None,
    ) -> Any:
        """A call to the device API; `data`: a body sent as it is (an upload), not JSON."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        generation = self._generation
        headers = {
            "X-App-Id": self.app_id,
            "X-Api-Key": self._sdk_key,
            "X-Device-Id": self.device_id,
        }
        if data is not None:
            # The server reads an upload's type from its bytes, never from this header.
            headers["Content-Type"] = "application/octet-stream"
            if not isinstance(data, bytes):
                data.seek(0)  # a retry sends the whole file again
        try:
            async with self._http.request(
                method, self.base_url + path, json=json, data=data, headers=headers
            ) as response:
                is_json = response.content_type == "application/json"
                body = await response.json() if is_json else {}
                status, retry_after = response.status, response.headers.get("Retry-After")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ReplyHQError("NETWORK_ERROR", str(exc) or type(exc).__name__) from exc
        if status < 400:
            return body
        wait = float(retry_after) if retry_after and retry_after.isdigit() else None
        error = ReplyHQError.from_body(body, status, wait)
        # The device's identity lapsed (protocol section 2): identify again, once.
        if error.code in REIDENTIFY and not retried and generation == self._generation:
            await self._post_identify({})
            result: Any = await self._request(method, path, json, retried=True, data=data)
            return result
        raise error

    # --- identity ------------------------------------------------------------------------------

    async def identify(
        self,
        *,
        user_id: str | None = KEEP,
        user_hash: str | None = KEEP,
        name: str | None = None,
        email: str | None = None,
        attributes: dict[str, Any] | None = None,
        locale: str | None = None,
        timezone: str | None = None,
        app_version: str | None = None,
        push_token: str | None = None,
    ) -> EndUser:
        """Tell the server who uses this device (anonymous without a user_id). Another person
        than before (`user_id` given and different): everything of the previous one is
        forgotten first and this install gets a new device id; an open connection is reopened
        for the new person."""
        new_user = self.user_id if user_id is KEEP else user_id
        previous = self._identified_user or self._saved_user
        reconnect = False
        if previous is not None and previous != new_user:
            reconnect = self._wanted
            await self._forget()
        self.user_id = new_user
        if user_hash is not KEEP:
            self.user_hash = user_hash
        profile = {
            "name": name,
            "email": email,
            "attributes": attributes,
            "locale": locale,
            "timezone": timezone,
            "app_version": app_version,
            "push_token": push_token,
        }
        user = await self._post_identify({k: v for k, v in profile.items() if v is not None})
        self._identified_user = new_user
        if self._saved_user != new_user:
            self._saved_user = new_user
            self._save_state()
        if reconnect:
            await self.connect()
        return user

    async def _post_identify(self, profile: dict[str, Any]) -> EndUser:
        body: dict[str, Any] = {"platform": self.platform, **profile}
        if self.user_id is not None:
            body["user_id"] = self.user_id
        if self.user_hash is not None:
            body["user_hash"] = self.user_hash
        generation = self._generation
        answer = await self._request("POST", "/v1/identify", body, retried=True)
        user = cast(EndUser, answer["user"])
        if generation == self._generation:
            self.user = user
        return user

    async def logout(self) -> None:
        """Forget the current person (memory and storage), withdraw this device's push token,
        and disconnect; call identify() for the next one. This install gets a new device id,
        so nothing of theirs can follow."""
        await self._forget()
        self.user_id = self.user_hash = None
        self._identified_user = None
        await self._set_state("idle")

    async def _forget(self) -> None:
        if self.user is not None or self._identified_user or self._saved_user:
            # The next person's phone must not get the previous person's notifications:
            # withdraw this device's push address (best effort; an older server has no route).
            with contextlib.suppress(ReplyHQError):
                await self._request("DELETE", ROUTES["push"], retried=True)
        self._generation += 1
        self._wanted = False
        await self._close_socket()
        gone = ReplyHQError("LOGGED_OUT", "the person changed before this message was sent")
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(gone)
        self._waiters.clear()
        self._store(f"{self.device_id}:outbox", None)
        self._store(f"{self.device_id}:state", None)
        self._outbox.clear()
        self._cursors.clear()
        self._unread.clear()
        self._pending_reads.clear()
        self.user = None
        self._saved_user = None
        self.device_id = _new_device_id()
        self._store("device", self.device_id)
        self.sio = self._new_socket()
        await self._set_state("idle")
        await self._emit_unread()

    # --- conversations -------------------------------------------------------------------------

    async def start_conversation(
        self,
        subject: str | None = None,
        body: str | None = None,
        *,
        attachment_ids: Sequence[str] = (),
    ) -> str:
        """A new conversation's id; with `body` or `attachment_ids` (uploads made by upload()
        without a conversation), its first message (idempotent by its client_msg_id: a retry
        creates nothing)."""
        payload: dict[str, Any] = {"subject": subject}
        if body is not None or attachment_ids:
            first: dict[str, Any] = {"body": body or "", "client_msg_id": uuid.uuid4().hex}
            if attachment_ids:
                first["attachment_ids"] = list(attachment_ids)
            payload["first_message"] = first
        conversation = await self._request("POST", "/v1/conversations", payload)
        conversation_id: str = conversation["id"]
        self._cursor(conversation_id)
        self._unread[conversation_id] = 0
        if conversation.get("last_message"):
            await self._accept(conversation["last_message"])
        return conversation_id

    async def conversations(self) -> list[Conversation]:
        """The person's conversations, newest activity first; also sets the unread count.
        Conversations new to this client are delivered from their first message on the next
        catch-up (read them yourself with history() to start from the latest instead)."""
        generation = self._generation
        page = await self._request("GET", "/v1/conversations?limit=100")
        items = cast(list[Conversation], page["items"])
        if generation != self._generation:
            return items
        for item in items:
            cursor = self._cursor(item["id"])
            cursor.counted = max(cursor.counted, item["last_seq"])
            self._unread[item["id"]] = item["unread_count"]
            if cursor.last_seq < item["last_seq"] and self._caught_up:
                self._spawn(self.sync(item["id"]))
        await self._emit_unread()
        return items

    async def history(
        self, conversation_id: str, *, before_seq: int | None = None, limit: int = 50
    ) -> list[Message]:
        """Earlier messages (scroll-back): the `limit` just before `before_seq` (default: the
        latest), oldest first. Not delivered as `message` events."""
        before = before_seq if before_seq is not None else 2**31 - 1
        page = await self._request(
            "GET",
            f"/v1/conversations/{conversation_id}/messages?before_seq={before}&limit={limit}",
        )
        return cast(list[Message], page["items"])

    # --- attachments (docs/attachments.md) -----------------------------------------------------

    async def upload(
        self,
        file: bytes | BinaryIO | Path,
        *,
        filename: str | None = None,
        conversation_id: str | None = None,
    ) -> Attachment:
        """Upload a file or image (bytes, a binary file object, or a path: a file is streamed,
        never read into memory whole) to one of the person's conversations, or with no
        `conversation_id` for a conversation not started yet. At most the server's
        ATTACHMENT_MAX_BYTES (10 MB by default), of an allowed type as found in its bytes:
        refusals raise ReplyHQError (ATTACHMENT_TOO_LARGE, UNSUPPORTED_ATTACHMENT_TYPE, ...).
        Then send it: send(conversation_id, body, attachment_ids=[attachment["id"]]), or
        start_conversation(attachment_ids=[...])."""
        path = (
            f"/v1/conversations/{conversation_id}/attachments"
            if conversation_id
            else "/v1/attachments"
        )
        if isinstance(file, Path):
            with file.open("rb") as opened:
                return await self.upload(
                    opened, filename=filename or file.name, conversation_id=conversation_id
                )
        name = filename or Path(str(getattr(file, "name", "") or "")).name or None
        query = "" if name is None else "?" + urlencode({"filename": name})
        attachment: Attachment = await self._request("POST", path + query, data=file)
        return attachment

    async def attachment(self, attachment_id: str) -> Attachment:
        """An attachment of the person's, with fresh signed URLs (a message's expire after
        minutes)."""
        found: Attachment = await self._request("GET", f"/v1/attachments/{attachment_id}")
        return found

    def file_url(self, path: str) -> str:
        """An attachment's `url` or `thumbnail_url` (a path on the server) as a full address."""
        return self.base_url + path if path.startswith("/") else path

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

    @property
    def unread_count(self) -> int:
        """Messages from agents not yet read, over every conversation (`unread` event)."""
        return sum(self._unread.values())

    async def _emit_unread(self) -> None:
        total = self.unread_count
        if total != self._last_unread:
            self._last_unread = total
            await self._emit("unread", total)

    # --- the socket ----------------------------------------------------------------------------

    def _auth(self) -> dict[str, str]:
        auth = {"app_id": self.app_id, "api_key": self._sdk_key, "device_id": self.device_id}
        if self.user_id is not None:
            auth["user_id"] = self.user_id
        if self.user_hash is not None:
            auth["user_hash"] = self.user_hash
        return auth

    def _new_socket(self) -> socketio.AsyncClient:
        sio = socketio.AsyncClient(
            reconnection=True,
            reconnection_delay=self.reconnection_delay,
            reconnection_delay_max=self.reconnection_delay_max,
        )

        def mine(handler: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
            async def guarded(*args: Any) -> None:
                if sio is self.sio:  # a socket of an earlier identity says nothing
                    await handler(*args)

            return guarded

        sio.on("connect", mine(self._on_connect))
        sio.on("disconnect", mine(self._on_disconnect))
        sio.on("connect_error", mine(self._on_connect_error))
        sio.on("message:new", mine(self._on_message_new))
        sio.on("resync", mine(self._on_resync))
        sio.on("conversation:updated", mine(self._on_conversation))
        sio.on("typing", mine(self._on_typing))
        sio.on("read", mine(self._on_read))
        return sio

    async def _set_state(self, state: ConnectionState) -> None:
        if state != self.state:
            self.state = state
            await self._emit("state", state)

    async def connect(self) -> None:
        """Open the real-time connection; it reconnects by itself and catches up (sync, then
        the queued sends) after every reconnect. Raises ReplyHQError with the handshake's
        refusal code (protocol section 2) or NETWORK_ERROR."""
        if self.sio.connected:
            return
        self._wanted = True
        await self._set_state("connecting")
        for attempt in range(3):
            self._refusal = None
            try:
                await self.sio.connect(
                    self.base_url, auth=self._auth, transports=["websocket"], wait_timeout=10
                )
                break
            except socketio.exceptions.ConnectionError as exc:
                refusal: dict[str, Any] = self._refusal or {}
                code = refusal.get("code")
                if code in REIDENTIFY and attempt < 2:
                    await self._post_identify({})
                    continue
                await self._set_state("blocked" if code in IDENTITY_REFUSALS else "idle")
                if code is None:
                    raise ReplyHQError("NETWORK_ERROR", str(exc)) from None
                raise ReplyHQError.from_body(refusal, None) from None
        await asyncio.wait_for(self.connected.wait(), 10)

    async def _on_connect(self) -> None:
        # Also after every automatic reconnect: catch up on each conversation, then resend.
        self.connections += 1
        self._refusals = 0
        self.connected.set()
        await self._set_state("connected")
        self._spawn(self._catch_up(self.sio))

    async def _on_disconnect(self, reason: Any = None) -> None:
        self.connected.clear()
        self._caught_up = False
        if self.state in ("closed", "idle", "blocked"):
            return
        await self._set_state("reconnecting")
        # Closed by the server (access changed): the next handshake says whether we are
        # welcome. python-socketio does not reconnect by itself after this one.
        if reason == socketio.AsyncClient.reason.SERVER_DISCONNECT and self._wanted:
            self._spawn(self._reconnect_after_server_disconnect(self.sio))

    async def _reconnect_after_server_disconnect(self, sio: socketio.AsyncClient) -> None:
        attempt = 0
        while sio is self.sio and self._wanted and not sio.connected:
            await asyncio.sleep(1 if attempt == 0 else self._backoff(attempt))
            attempt += 1
            if sio is not self.sio or not self._wanted or self.state == "blocked":
                return
            with contextlib.suppress(ReplyHQError):
                await self.connect()

    async def _on_connect_error(self, data: Any = None) -> None:
        """A refused handshake during python-socketio's own reconnection (connect() reads
        `_refusal` for its first attempt)."""
        # Socket.IO v5's CONNECT_ERROR: {message, data: {code, error, details?}}.
        inner = data.get("data") if isinstance(data, dict) else None
        self._refusal = inner if isinstance(inner, dict) else None
        code = self._refusal.get("code") if self._refusal else None
        if code is None or self.state == "connecting":
            return  # the transport failed (python-socketio retries), or connect() handles it
        error = ReplyHQError.from_body(self._refusal, None)
        if code in REIDENTIFY and self._refusals < 3:
            self._refusals += 1
            with contextlib.suppress(ReplyHQError):
                await self._post_identify({})  # the next attempt may pass
            return
        if code in IDENTITY_REFUSALS or code in REIDENTIFY:
            # No retry can help until the app identifies again.
            await self._set_state("blocked")
            self._spawn(self.sio.shutdown())
            await self._emit("error", error)

    async def _close_socket(self) -> None:
        self.connected.clear()
        self._caught_up = False
        sio = self.sio
        with contextlib.suppress(Exception):
            await sio.shutdown()

    def _backoff(self, attempt: int) -> float:
        """Exponential with jitter: about 0.5 s doubling to 30 s, times 0.5-1.5."""
        return float(min(30.0, 0.5 * 2 ** min(attempt, 10)) * (0.5 + random.random()))  # noqa: S311

    async def _call(self, event: str, payload: Any) -> dict[str, Any]:
        """The event's acknowledgement, or a transient `{ok: false}` when it could not come."""
        if not _is_open(self.sio):
            return {"ok": False, "code": "TIMEOUT", "error": "not connected"}
        try:
            ack = await self.sio.call(event, payload, timeout=self.ack_timeout)
        except socketio.exceptions.TimeoutError:
            return {"ok": False, "code": "TIMEOUT", "error": "no acknowledgement"}
        except (socketio.exceptions.SocketIOError, OSError) as exc:
            return {"ok": False, "code": "NETWORK_ERROR", "error": str(exc)}
        if not isinstance(ack, dict):
            return {"ok": False, "code": "INTERNAL_ERROR", "error": "a malformed acknowledgement"}
        return ack

    async def _catch_up(self, sio: socketio.AsyncClient) -> None:
        """After every (re)connect and on resync: what happened meanwhile, then queued sends."""
        generation = self._generation
        ids = set(self._cursors) | {item.conversation_id for item in self._outbox}
        for conversation_id in ids:
            with contextlib.suppress(ReplyHQError):
                await self.sync(conversation_id)
        if generation != self._generation or sio is not self.sio or not _is_open(sio):
            return
        self._caught_up = True
        reads, self._pending_reads = self._pending_reads, {}
        for conversation_id, seq in reads.items():
            with contextlib.suppress(ReplyHQError):
                await self.read(conversation_id, seq)
        await self._flush()

    async def _on_resync(self, *_: Any) -> None:
        # The server may have missed events meant for us (its Redis came back): catch up.
        self._spawn(self._catch_up(self.sio))

    async def _on_message_new(self, data: dict[str, Any]) -> None:
        await self._accept(cast(Message, data["message"]))

    async def _on_conversation(self, data: dict[str, Any]) -> None:
        conversation = cast(ConversationState, data["conversation"])
        cursor = self._cursor(conversation["id"])
        if (
            conversation["last_seq"] > cursor.last_seq
            and conversation["last_seq"] not in cursor.early
        ):
            self._spawn(self.sync(conversation["id"]))
        await self._emit("conversation", conversation)

    async def _on_typing(self, data: dict[str, Any]) -> None:
        event = cast(TypingEvent, data)
        self.typing_events.put_nowait(event)
        await self._emit("typing", event)

    async def _on_read(self, data: dict[str, Any]) -> None:
        await self._emit("read", cast(ReadEvent, data))

    # --- receiving: exactly once, in order -----------------------------------------------------

    def _cursor(self, conversation_id: str) -> _Cursor:
        cursor = self._cursors.get(conversation_id)
        if cursor is None:
            cursor = self._cursors[conversation_id] = _Cursor()
        return cursor

    async def _accept(self, message: Message) -> None:
        """Protocol section 5: duplicates dropped, early ones kept aside until sync fills the
        gap."""
        cursor = self._cursor(message["conversation_id"])
        seq = message["seq"]
        if seq <= cursor.last_seq or seq in cursor.early:
            return
        cursor.early[seq] = message
        while cursor.last_seq + 1 in cursor.early:
            ready = cursor.early.pop(cursor.last_seq + 1)
            cursor.last_seq = ready["seq"]
            await self._deliver(ready, cursor)
        self._save_state_soon()
        if cursor.early:  # a gap: something was missed
            self._spawn(self.sync(message["conversation_id"]))

    async def _deliver(self, message: Message, cursor: _Cursor) -> None:
        counts = message["sender"] != "user" and message.get("kind", "message") != "event"
        if counts and message["seq"] > cursor.counted:
            conversation_id = message["conversation_id"]
            self._unread[conversation_id] = self._unread.get(conversation_id, 0) + 1
        await self._emit("message", message)
        for queue in self._iterators:
            queue.put_nowait(message)
        await self._emit_unread()

    def messages(self) -> AsyncIterator[Message]:
        """Every message delivered from now on, in order, until close() (or the loop ends):
        `async for message in client.messages(): ...`."""
        queue: asyncio.Queue[Message | None] = asyncio.Queue()
        self._iterators.add(queue)

        async def iterate() -> AsyncIterator[Message]:
            try:
                while (message := await queue.get()) is not None:
                    yield message
            finally:
                self._iterators.discard(queue)

        return iterate()

    async def sync(self, conversation_id: str) -> None:
        """Fetch and deliver everything after the last delivered seq (one sync at a time per
        conversation). Raises ReplyHQError when the server refuses it."""
        cursor = self._cursor(conversation_id)
        generation = self._generation
        async with cursor.syncing:
            while generation == self._generation:
                ack = await self._call(
                    "sync",
                    {
                        "conversation_id": conversation_id,
                        "after_seq": cursor.last_seq,
                        "limit": SYNC_LIMIT,
                    },
                )
                if generation != self._generation:
                    return
                if not ack.get("ok"):
                    error = ReplyHQError.from_body(ack, None)
                    if not error.transient:
                        await self._emit("error", error)
                    raise error
                for message in ack["messages"]:
                    await self._accept(message)
                if not ack["has_more"] or not ack["messages"]:
                    return

    # --- sending -------------------------------------------------------------------------------

    async def send(
        self, conversation_id: str, body: str, *, attachment_ids: Sequence[str] = ()
    ) -> Message:
        """Queue a message (kept in storage while offline); returns the stored message once
        the server has it, exactly once whatever the retries. Raises ReplyHQError when the
        server refuses it (e.g. VALIDATION_ERROR, CONVERSATION_NOT_FOUND, INVALID_ATTACHMENT).
        With `attachment_ids` (uploads, see upload()) the body may be empty."""
        outgoing = _Outgoing(conversation_id, body, uuid.uuid4().hex, list(attachment_ids))
        done: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiters[outgoing.client_msg_id] = done
        self._cursor(conversation_id)
        self._outbox.append(outgoing)
        self._save_outbox()
        self._spawn(self._flush())
        return await done

    @property
    def pending(self) -> int:
        """Messages queued but not yet acknowledged by the server."""
        return len(self._outbox)

    async def _flush(self) -> None:
        generation = self._generation
        async with self._flushing:
            attempt = 0
            while self._outbox and self._caught_up and generation == self._generation:
                outgoing = self._outbox[0]
                ack = await self._call("message:send", outgoing.payload())
                if generation != self._generation:
                    return
                if not ack.get("ok") and ack.get("code") in TRANSIENT:
                    # Lost or refused for now: the same client_msg_id again, never a duplicate.
                    attempt += 1
                    retry_after = ack.get("retry_after")
                    await asyncio.sleep(
                        float(retry_after) if retry_after else self._backoff(attempt)
                    )
                    continue
                attempt = 0
                if self._outbox and self._outbox[0] is outgoing:
                    self._outbox.pop(0)
                self._save_outbox()
                waiter = self._waiters.pop(outgoing.client_msg_id, None)
                if ack.get("ok"):
                    message = cast(Message, ack["message"])
                    await self._accept(message)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(message)
                else:
                    error = ReplyHQError.from_body(ack, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_exception(error)
                    await self._emit("failed", outgoing.payload(), error)

    # --- typing, read --------------------------------------------------------------------------

    async def typing(self, conversation_id: str, typing: bool = True) -> bool:
        """Tell the agent the user is typing (True) or stopped (False). Not queued: False when
        it could not be said now."""
        ack = await self._call("typing", {"conversation_id": conversation_id, "typing": typing})
        return bool(ack.get("ok"))

    async def read(self, conversation_id: str, seq: int | None = None) -> None:
        """The user has seen the conversation up to `seq` (default: the last delivered
        message). Offline, it is sent after the next connect. Resets its unread count."""
        up_to = seq if seq is not None else self._cursor(conversation_id).last_seq
        self._unread[conversation_id] = 0
        await self._emit_unread()
        if up_to <= 0:
            return
        if not self._caught_up:
            self._pending_reads[conversation_id] = max(
                up_to, self._pending_reads.get(conversation_id, 0)
            )
            return
        ack = await self._call("read", {"conversation_id": conversation_id, "seq": up_to})
        if not ack.get("ok"):
            error = ReplyHQError.from_body(ack, None)
            if not error.transient:
                raise error
            self._pending_reads[conversation_id] = up_to

    # --- optional features (feature-detected) --------------------------------------------------

    async def _optional(self, feature: str, body: Any) -> Feature:
        if feature in self._missing:
            return Feature(supported=False)
        try:
            await self._request("POST", ROUTES[feature], body)
        except ReplyHQError as exc:
            if exc.status in (404, 405):
                self._missing.add(feature)  # an older server: do not ask again
                return Feature(supported=False)
            raise
        return Feature(supported=True)

    async def register_push_token(
        self,
        provider: Literal["fcm", "apns", "webpush"],
        token: str | None = None,
        *,
        subscription: dict[str, Any] | None = None,
    ) -> Feature:
        """Where this device can be pushed to (POST /v1/push-token: an FCM or APNs token, or a
        Web Push subscription), when the server has it. logout() and an identity switch
        withdraw it."""
        body: dict[str, Any] = {"provider": provider}
        if token is not None:
            body["token"] = token
        if subscription is not None:
            body["subscription"] = subscription
        return await self._optional("push", body)

    async def track(self, name: str, properties: dict[str, Any] | None = None) -> Feature:
        """Record something the user did (POST /v1/events), when the server has it; answered
        once stored."""
        event: dict[str, Any] = {"name": name, "timestamp": datetime.now(UTC).isoformat()}
        if properties is not None:
            event["properties"] = properties
        return await self._optional("track", {"events": [event]})

    # --- the end -------------------------------------------------------------------------------

    async def close(self) -> None:
        """Disconnect and end the message iterators; the queue and read positions stay in
        storage for next time."""
        self._wanted = False
        self._save_state()
        await self._set_state("closed")
        await self._close_socket()
        for queue in self._iterators:
            queue.put_nowait(None)
        closed = ReplyHQError("CLOSED", "the client was closed; the message stays queued")
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(closed)
        self._waiters.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._http is not None:
            await self._http.close()
            self._http = None
