"""Namespace `/admin`: staff in the dashboard (access token), with the same permissions as HTTP."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from replyhq.accounts.permissions import StaffPrincipal
from replyhq.accounts.service import verify_access_token
from replyhq.accounts.tokens import decode_access_token
from replyhq.errors import AppError, ServiceUnavailable, Unauthorized
from replyhq.messaging import service as messaging
from replyhq.messaging.admin_routes import agent
from replyhq.onboarding.console import room_of_console
from replyhq.realtime.access import Grant
from replyhq.realtime.base import Ack, Namespace, Refused, parse, room_of_agents, signin_key
from replyhq.realtime.devices import page_ack
from replyhq.realtime.presence import LiveSession
from replyhq.realtime.protocol import (
    ConsoleSubscribeIn,
    ReadIn,
    SendIn,
    StaffAuth,
    SyncIn,
    TypingIn,
)


class StaffNamespace(Namespace):
    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            # handshake.admin_auth.json's model: anything else is no token.
            try:
                token = StaffAuth.model_validate(auth if isinstance(auth, dict) else {}).token
            except ValidationError:
                raise Unauthorized("An access token is required.", code="AUTH_REQUIRED") from None
            principal = await verify_access_token(self.runtime, token)
            principal.require("conversations:read")
            # The token's version is the member's access generation it was issued at.
            version = decode_access_token(self.runtime.settings, token).version
        except AppError as exc:
            raise Refused(exc) from None
        assert principal.staff_id is not None
        # The sign-in stands where a device id would, so that ending it ends its sockets.
        signin = signin_key(principal.session_id) if principal.session_id else None
        live = LiveSession(sid, principal.app_id, "staff", principal.staff_id, signin)
        grant = Grant(principal.app_id, version, principal.staff_id, principal.session_id)
        await self.save_session(sid, {"live": live, "grant": grant, "principal": principal})
        await self.enter_room(sid, room_of_agents(principal.app_id))
        await self.realtime.joined(live, grant, self.namespace)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        session = await self.get_session(sid)
        if "live" in session:
            await self.realtime.left(session["live"])
        console = self.realtime.console
        if console is not None and session.get("console"):
            await console.unsubscribe(sid, session["live"].app_id)

    async def on_console_subscribe(self, sid: str, data: Any = None) -> Ack:
        """Stream this app's SDK traffic to this socket (`console:entries`); OWNER and ADMIN."""

        async def work() -> Ack:
            parse(ConsoleSubscribeIn, data)
            me = await self._principal(sid, "settings:read")
            console = self.realtime.console
            if console is None:
                raise ServiceUnavailable("The test console is not available on this server.")
            session = await self.get_session(sid)
            if not session.get("console"):
                await self.enter_room(sid, room_of_console(me.app_id))
                await console.subscribe(sid, me.app_id)
                session["console"] = True
            return {}

        return await self.answer(work)

    async def on_console_unsubscribe(self, sid: str, data: Any = None) -> Ack:
        async def work() -> Ack:
            parse(ConsoleSubscribeIn, data)
            session = await self.get_session(sid)
            live: LiveSession = session["live"]
            console = self.realtime.console
            if console is not None and session.get("console"):
                await self.leave_room(sid, room_of_console(live.app_id))
                await console.unsubscribe(sid, live.app_id)
                session["console"] = False
            return {}

        return await self.answer(work)

    async def _principal(self, sid: str, permission: str) -> StaffPrincipal:
        principal: StaffPrincipal = (await self.get_session(sid))["principal"]
        principal.require(permission)
        return principal

    async def on_message_send(self, sid: str, data: Any = None) -> Ack:
        async def work() -> Ack:
            request = parse(SendIn, data)
            me = await self._principal(sid, "messages:write")
            out, created = await messaging.send_agent_message(
                self.runtime.db,
                me.app_id,
                request.conversation_id,
                agent(me),
                request.body,
                request.client_msg_id,
                request.attachment_ids,
            )
            return {"message": out.model_dump(mode="json"), "created": created}

        return await self.answer(work)

    async def on_typing(self, sid: str, data: Any = None) -> Ack:
        async def work() -> Ack:
            request = parse(TypingIn, data)
            me = await self._principal(sid, "messages:write")
            async with self.runtime.db.tenant_session(me.app_id) as session:
                conversation = await messaging.require_conversation(
                    session, me.app_id, request.conversation_id
                )
            await self.realtime.typing(
                me.app_id,
                request.conversation_id,
                agent(me),
                request.typing,
                end_user_id=conversation.end_user_id,
                skip_sid=sid,
            )
            return {}

        return await self.answer(work)

    async def on_read(self, sid: str, data: Any = None) -> Ack:
        async def work() -> Ack:
            request = parse(ReadIn, data)
            me = await self._principal(sid, "messages:read")
            async with self.runtime.db.tenant_session(me.app_id) as session:
                seq = await messaging.read_up_to(
                    session, me.app_id, request.conversation_id, agent(me), request.seq
                )
            return {"seq": seq}

        return await self.answer(work)

    async def on_sync(self, sid: str, data: Any = None) -> Ack:
        async def work() -> Ack:
            request = parse(SyncIn, data)
            me = await self._principal(sid, "messages:read")
            async with self.runtime.db.tenant_session(me.app_id) as session:
                await messaging.require_conversation(session, me.app_id, request.conversation_id)
                page = await messaging.list_messages(
                    session,
                    me.app_id,
                    request.conversation_id,
                    after_seq=request.after_seq,
                    limit=request.limit,
                )
            return page_ack(page)

        return await self.answer(work)
