"""The conformance adapter of the Python SDK (`replyhq.sdk`): JSON-line commands on stdin,
replies and every delivered message on stdout (docs/conformance.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
from typing import Any

from replyhq.sdk import ReplyHQClient, ReplyHQError


def say(report: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()


def report_failure(task: asyncio.Task[Any]) -> None:
    """A send the SDK gave up on (refused, or dropped by a logout), as the JS adapter does."""
    if not task.cancelled() and isinstance(task.exception(), ReplyHQError):
        error = task.exception()
        assert isinstance(error, ReplyHQError)
        say({"event": "error", "code": error.code})


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    client: ReplyHQClient | None = None
    sends: set[asyncio.Task[Any]] = set()
    while line := await reader.readline():
        command = json.loads(line)
        reply: dict[str, Any] = {"reply": command["id"], "ok": True}
        try:
            if command["cmd"] == "identify":
                client = ReplyHQClient(
                    command["url"],
                    command["app_id"],
                    command["sdk_key"],
                    device_id=f"py-{uuid.uuid4().hex}",
                    user_id=command["user_id"],
                    user_hash=command["user_hash"],
                    on_message=lambda message: say({"event": "message", "message": message}),
                )
                await client.identify()
                await client.connect()
            elif command["cmd"] == "start":
                assert client is not None
                conversation_id = await client.start_conversation()
                reply["conversation_id"] = conversation_id
                task = asyncio.create_task(client.send(conversation_id, command["body"]))
                sends.add(task)
                task.add_done_callback(sends.discard)
            elif command["cmd"] == "send":
                assert client is not None
                task = asyncio.create_task(client.send(command["conversation_id"], command["body"]))
                sends.add(task)
                task.add_done_callback(sends.discard)
                task.add_done_callback(report_failure)
            elif command["cmd"] == "switch":
                assert client is not None
                await client.identify(user_id=command["user_id"], user_hash=command["user_hash"])
            elif command["cmd"] == "logout":
                assert client is not None
                await client.logout()
            elif command["cmd"] == "close":
                say(reply)
                break
        except Exception as exc:
            reply = {"reply": command["id"], "ok": False, "error": repr(exc)}
        say(reply)
    if client is not None:
        with contextlib.suppress(Exception):
            await client.close()


if __name__ == "__main__":
    asyncio.run(main())
