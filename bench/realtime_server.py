"""`python -m bench.realtime_server serve ...`: `replyhq serve ...` with bench-only switches, so
that one run of bench/bench_realtime.py measures variants side by side.

    BENCH_SOCKETIO_MANAGER=stock   python-socketio's AsyncRedisManager, with its default pool
    BENCH_SOCKETIO_MANAGER=routed  replyhq.realtime.manager.RoutedRedisManager (as shipped)
    (unset: as shipped)
    BENCH_SOCKET_SEND=orm          the devices' `message:send` through the ORM session, as before
                                   it shared the SDK POST's one statement (the end-to-end
                                   part's baseline)

The switch replaces the manager of the server and of the process' write-only publisher alike:
a stock server cannot read the routed manager's messages, so every process on the channel must
use the same kind (the bench's own publisher does too).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import socketio


class StockManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """python-socketio's manager as it comes: the bounded blocking pool ReplyHQ asks of its own
    manager is dropped (the stock one has redis-py's default pool)."""

    def __init__(
        self, *args: Any, max_connections: Any = None, pool_timeout: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)

    async def emit_all(self, emits: Any) -> None:
        """replyhq.realtime.delivery's batch of emits, one stock emit (and publish) each."""
        for e in emits:
            await self.emit(
                e.event, e.data, namespace=e.namespace, room=e.room, skip_sid=e.skip_sid
            )


def _choose_manager(choice: str) -> None:
    from replyhq.realtime import delivery, server
    from replyhq.realtime.manager import RoutedRedisManager

    chosen = {"stock": StockManager, "routed": RoutedRedisManager}[choice]
    server.RoutedRedisManager = chosen  # type: ignore[misc]
    delivery.RoutedRedisManager = chosen  # type: ignore[misc]


def _orm_socket_send() -> None:
    """The devices' `message:send` as it was until 2026-11-27: a tenant_session, the device's
    person and name kept from the handshake, messaging.send_message in the ORM session (its one
    statement through SQLAlchemy, after BEGIN and the tenant binding), COMMIT, then the events."""
    from replyhq.messaging import service as messaging
    from replyhq.realtime.base import Ack, parse
    from replyhq.realtime.devices import DeviceNamespace, SendIn

    async def on_message_send(self: DeviceNamespace, sid: str, data: Any = None) -> Ack:
        async def work() -> Ack:
            request = parse(SendIn, data)
            live, me = await self._participant(sid)
            runtime = self.runtime
            await runtime.limiter.enforce(
                runtime.limiter.v1, "v1", str(live.app_id), live.device_id or ""
            )
            async with runtime.db.tenant_session(live.app_id) as session:
                message, created = await messaging.send_message(
                    session,
                    live.app_id,
                    request.conversation_id,
                    me,
                    request.body,
                    request.client_msg_id,
                    end_user_id=me.id,
                )
                out = messaging.message_out(message)
            return {"message": out.model_dump(mode="json"), "created": created}

        return await self.answer(work)

    DeviceNamespace.on_message_send = on_message_send  # type: ignore[method-assign]


def main() -> None:
    choice = os.environ.get("BENCH_SOCKETIO_MANAGER")
    if choice:
        _choose_manager(choice)
    if os.environ.get("BENCH_SOCKET_SEND") == "orm":
        _orm_socket_send()
    from replyhq.cli import main as cli

    cli(sys.argv[1:])


if __name__ == "__main__":
    main()
