"""Namespace `/`: end users' devices (SDK key + device id, as the HTTP API)."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError

from replyhq.analytics import service as analytics
from replyhq.analytics.schemas import EventBatchIn
from replyhq.errors import AppError, Unauthorized
from replyhq.messaging import service as messaging
from replyhq.messaging.schemas import MessagePage
from replyhq.messaging.service import Participant
from replyhq.realtime.access import Grant
from replyhq.realtime.base import (
    Ack,
    Namespace,
    Refused,
    address_of,
    parse,
    room_of_devices,
    room_of_user,
)
from replyhq.realtime.presence import LiveSession
from replyhq.realtime.protocol import (
    AUTH_FIELD_CODES,
    DeviceAuth,
    ReadIn,
    SendIn,
    SyncIn,
    TypingIn,
)
from replyhq.users.service import socket_user
from replyhq.web.deps import verify_app_key


class DeviceNamespace(Namespace):
    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        auth = auth if isinstance(auth, dict) else {}
        runtime = self.runtime
        try:
            # The app's access generation before its key is checked: a rotation in between
            # leaves this socket at the older generation, which gets it cut.
            generation = await self._generation_of(_text(auth.get("app_id")))
            app_id = await verify_app_key(
                runtime,
                address_of(environ),
                _text(auth.get("app_id")),
                _text(auth.get("api_key")),
                "sdk",
            )
            handshake = parse_auth(auth)
            device_id = handshake.device_id
            await runtime.limiter.enforce(runtime.limiter.v1, "v1", str(app_id), device_id)
            async with runtime.db.tenant_session(app_id) as session:
                end_user_id, name, proven = await socket_user(
                    session, app_id, device_id, handshake.user_id, handshake.user_hash
                )
        except AppError as exc:
            raise Refused(exc) from None
        live = LiveSession(sid, app_id, "user", end_user_id, device_id, proven)
        grant = Grant(app_id, generation, unproven=not proven)
        state = {"live": live, "grant": grant, "name": name, "conversations": set()}
        await self.save_session(sid, state)
        await self.enter_room(sid, room_of_user(app_id, end_user_id))
        await self.enter_room(sid, room_of_devices(app_id))
        await self.realtime.joined(live, grant, self.namespace)

    async def _generation_of(self, raw_app_id: str | None) -> int:
        """The app's current access generation (0 for an app that does not exist: the key check
        refuses it next)."""
        try:
            app_id = uuid.UUID(raw_app_id or "")
        except ValueError:
            return 0
        return await self.realtime.access.current((app_id, None, None, False)) or 0

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        session = await self.get_session(sid)
        if "live" in session:
            await self.realtime.left(session["live"])

    async def _participant(self, sid: str) -> tuple[LiveSession, Participant]:
        session = await self.get_session(sid)
        live: LiveSession = session["live"]
        return live, Participant("user", live.person_id, session["name"])

    async def on_message_send(self, sid: str, data: Any = None) -> Ack:
        async def work() -> Ack:
            request = parse(SendIn, data)
            live = await self.live(sid)
            runtime = self.runtime
            device_id = live.device_id or ""
            await runtime.limiter.enforce(runtime.limiter.v1, "v1", str(live.app_id), device_id)
            # The SDK POST's path: the device's user, the conversation (theirs, or 404) and the
            # send in one statement that is its own transaction, events emitted once committed.
            out, created = await messaging.send_device_message(
                runtime.db,
                live.app_id,
                request.conversation_id,
                device_id,
                request.body,
                request.client_msg_id,
                request.attachment_ids,
            )
            return {"message": out.model_dump(mode="json"), "created": created}

        return await self.answer(work)

    async def _own_conversation(self, sid: str, conversation_id: uuid.UUID) -> LiveSession:
        """404 unless the conversation is this end user's; remembered for the socket's life."""
        session = await self.get_session(sid)
        live: LiveSession = session["live"]
        if conversation_id not in session["conversations"]:
            async with self.runtime.db.tenant_session(live.app_id) as db:
                await messaging.require_conversation(
                    db, live.app_id, conversation_id, end_user_id=live.person_id
                )
            session["conversations"].add(conversation_id)
        return live

    async def on_typing(self, sid: str, data: Any = None) -> Ack:
        async def work() -> Ack:
            request = parse(TypingIn, data)
            live = await self._own_conversation(sid, request.conversation_id)
            _, me = await self._participant(sid)
            await self.realtime.typing(
                live.app_id,
                request.conversation_id,
                me,
                request.typing,
                end_user_id=live.person_id,
                skip_sid=sid,
            )
            return {}

        return await self.answer(work)

    async def on_read(self, sid: str, data: Any = None) -> Ack:
        async def work() -> Ack:
            request = parse(ReadIn, data)
            live, me = await self._participant(sid)
            async with self.runtime.db.tenant_session(live.app_id) as session:
                seq = await messaging.read_up_to(
                    session,
                    live.app_id,
                    request.conversation_id,
                    me,
                    request.seq,
                    end_user_id=me.id,
                )
            return {"seq": seq}

        return await self.answer(work)

    async def on_track(self, sid: str, data: Any = None) -> Ack:
        """POST /v1/events over the socket: acknowledged once the events are committed."""

        async def work() -> Ack:
            request = parse(EventBatchIn, data)
            live = await self.live(sid)
            runtime = self.runtime
            accepted = await analytics.track(
                runtime.events,
                live.app_id,
                live.device_id or "",
                request,
                runtime.settings.event_retention_days,
                transport="socket",
            )
            return {"accepted": accepted}

        return await self.answer(work)

    async def on_sync(self, sid: str, data: Any = None) -> Ack:
        async def work() -> Ack:
            request = parse(SyncIn, data)
            live = await self._own_conversation(sid, request.conversation_id)
            async with self.runtime.db.tenant_session(live.app_id) as session:
                page = await messaging.list_messages(
                    session,
                    live.app_id,
                    request.conversation_id,
                    after_seq=request.after_seq,
                    limit=request.limit,
                )
            return page_ack(page)

        return await self.answer(work)


def page_ack(page: MessagePage) -> Ack:
    return {
        "messages": [m.model_dump(mode="json") for m in page.items],
        "has_more": page.has_more,
    }


def parse_auth(auth: dict[str, Any]) -> DeviceAuth:
    """The handshake's `auth`, validated by handshake.auth.json's model (the schema native SDKs
    read); refused with the code of its first bad field, and every bad field in `details`."""
    try:
        return DeviceAuth.model_validate(auth)
    except ValidationError as exc:
        errors = exc.errors()
        details = [
            {"field": ".".join(str(p) for p in e["loc"]) or "auth", "reason": e["msg"]}
            for e in errors
        ]
        first = str(errors[0]["loc"][0]) if errors and errors[0]["loc"] else ""
        code = AUTH_FIELD_CODES.get(first, "VALIDATION_ERROR")
        message = (
            "device_id is required (1 to 128 characters)."
            if code == "DEVICE_ID_REQUIRED"
            else "The handshake's auth breaks handshake.auth.json: see details."
        )
        raise Unauthorized(message, code=code, details=details) from None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
