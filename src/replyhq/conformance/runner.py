"""Drives a client implementation through a scripted conversation with faults and reports, per
rule of docs/protocol.md, whether it held.

The client under test runs as a subprocess (an *adapter* around the SDK) that reads commands and
writes reports as JSON lines (docs/conformance.md). It talks to the server through a FaultProxy;
the runner plays the agent over the server's HTTP API directly, and checks the server's stored
history against what the client reported."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from replyhq.conformance.proxy import FaultProxy
from replyhq.realtime import protocol

# How long a rule waits for the client (reconnects back off up to a few seconds); --wait.
WAIT = 30.0


@dataclass
class Result:
    rule: str
    passed: bool
    detail: str = ""


@dataclass
class Credentials:
    app_id: str
    sdk_key: str
    secret_key: str
    identity_secret: str


class Adapter:
    """The client under test: commands on its stdin, replies and reports on its stdout."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.process: asyncio.subprocess.Process | None = None
        self.messages: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next = 0
        self._changed = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._stderr: list[str] = []

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._drain())]

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while line := await self.process.stdout.readline():
            try:
                report = json.loads(line)
            except ValueError:
                continue  # the SDK's own logging
            if "reply" in report:
                future = self._replies.pop(int(report["reply"]), None)
                if future is not None and not future.done():
                    future.set_result(report)
            elif report.get("event") == "message":
                async with self._changed:
                    self.messages.append(report["message"])
                    self._changed.notify_all()
            elif report.get("event") == "error":
                self.errors.append(str(report.get("code")))
        for future in self._replies.values():
            if not future.done():
                future.set_exception(RuntimeError(f"adapter exited: {self.stderr_tail()}"))

    async def _drain(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self._stderr = [*self._stderr[-40:], line.decode(errors="replace")]

    def stderr_tail(self) -> str:
        return "".join(self._stderr[-10:])

    async def request(self, cmd: str, wait: float | None = None, **data: Any) -> dict[str, Any]:
        assert self.process is not None and self.process.stdin is not None
        self._next += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[self._next] = future
        line = json.dumps({"id": self._next, "cmd": cmd, **data}) + "\n"
        self.process.stdin.write(line.encode())
        await self.process.stdin.drain()
        reply = await asyncio.wait_for(future, wait or WAIT)
        if not reply.get("ok", False):
            raise AssertionError(f"{cmd} failed in the client: {reply.get('error')}")
        return reply

    async def wait_for(self, what: str, predicate: Callable[[], bool], wait: float = WAIT) -> None:
        async def ready() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        try:
            await asyncio.wait_for(ready(), wait or WAIT)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None

    def bodies(self, conversation_id: str) -> list[str]:
        return [m["body"] for m in self.messages if m["conversation_id"] == conversation_id]

    async def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(Exception):
            await self.request("close", wait=5)
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        await self.process.wait()
        for task in self._tasks:
            task.cancel()


class ManagedServer:
    """`replyhq serve` started (and restarted, for real) by the runner, with this process'
    environment (DATABASE_URL, REDIS_URL, ...) and a master key of its own."""

    def __init__(self, extra_args: list[str], log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.master_key = "conformance-" + secrets.token_hex(16)
        self.extra_args = extra_args
        self.log = log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {**os.environ, "MASTER_API_KEY": self.master_key}
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "replyhq.cli",
                "serve",
                "--port",
                str(self.port),
                *self.extra_args,
                env=env,
                stdout=log,
                stderr=log,
            )
        await _until_healthy(self.url, self.process)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    async def restart(self) -> None:
        await self.stop()
        await self.start()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _until_healthy(url: str, process: asyncio.subprocess.Process | None) -> None:
    deadline = time.monotonic() + 90
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process is not None and process.returncode is not None:
                raise RuntimeError(f"the server exited ({process.returncode})")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(url + "/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not become healthy")


@dataclass
class Run:
    url: str
    credentials: Credentials
    adapter: Adapter
    proxy: FaultProxy
    server: ManagedServer | None
    http: aiohttp.ClientSession
    user_id: str = field(default_factory=lambda: f"conformance-{uuid.uuid4().hex[:8]}")
    conversation_id: str = ""

    def user_hash(self, user_id: str) -> str:
        secret = self.credentials.identity_secret.encode()
        return hmac.new(secret, user_id.encode(), hashlib.sha256).hexdigest()

    async def handshake_as(self, user_id: str, since: int) -> dict[str, Any]:
        """The first handshake after `since` that names `user_id`."""
        deadline = time.monotonic() + WAIT
        while True:
            for auth in self.proxy.handshakes[since:]:
                if auth.get("user_id") == user_id:
                    return auth
            assert time.monotonic() < deadline, f"the client never connected as {user_id}"
            await asyncio.sleep(0.05)

    def admin(self) -> dict[str, str]:
        return {"X-App-Id": self.credentials.app_id, "X-Api-Key": self.credentials.secret_key}

    async def agent_says(self, body: str) -> dict[str, Any]:
        """An agent's reply over the admin API (retried while the server restarts)."""
        path = f"/admin/api/conversations/{self.conversation_id}/messages"
        payload = {"body": body, "client_msg_id": f"agent-{uuid.uuid4().hex}"}
        deadline = time.monotonic() + WAIT
        while True:
            try:
                async with self.http.post(
                    self.url + path, json=payload, headers=self.admin()
                ) as response:
                    if response.status in (200, 201):
                        message: dict[str, Any] = await response.json()
                        return message
                    text = await response.text()
                    if response.status < 500:
                        raise AssertionError(f"agent send: {response.status} {text}")
            except (aiohttp.ClientError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the server did not take the agent's message")
            await asyncio.sleep(0.3)

    async def history(self) -> list[dict[str, Any]]:
        path = f"/admin/api/conversations/{self.conversation_id}/messages?after_seq=0&limit=200"
        async with self.http.get(self.url + path, headers=self.admin()) as response:
            assert response.status == 200, await response.text()
            page: dict[str, Any] = await response.json()
            items: list[dict[str, Any]] = page["items"]
            return items

    async def stored_once(self, body: str) -> None:
        """The server ends up with exactly one message with this body."""
        deadline = time.monotonic() + WAIT
        while True:
            count = sum(1 for m in await self.history() if m["body"] == body)
            assert count <= 1, f"{body!r} stored {count} times"
            if count == 1:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{body!r} never reached the server")
            await asyncio.sleep(0.2)

    async def delivered(self, *bodies: str) -> None:
        """The client reported each of these (its own or the agent's) exactly once."""
        conversation_id = self.conversation_id
        await self.adapter.wait_for(
            f"delivery of {list(bodies)}",
            lambda: all(b in self.adapter.bodies(conversation_id) for b in bodies),
        )
        await asyncio.sleep(0.5)  # room for a duplicate to show up
        seen = self.adapter.bodies(conversation_id)
        for body in bodies:
            assert seen.count(body) == 1, f"{body!r} delivered {seen.count(body)} times"
        order = [seen.index(body) for body in bodies]
        assert order == sorted(order), f"delivered out of order: {seen}"


Rule = Callable[[Run], Awaitable[str]]


async def identify_and_connect(run: Run) -> str:
    user_hash = run.user_hash(run.user_id)
    await run.adapter.request(
        "identify",
        url=f"http://127.0.0.1:{run.proxy.port}",
        app_id=run.credentials.app_id,
        sdk_key=run.credentials.sdk_key,
        user_id=run.user_id,
        user_hash=user_hash,
    )
    deadline = time.monotonic() + WAIT
    while run.proxy.websockets == 0:
        assert time.monotonic() < deadline, "no websocket connection was opened"
        await asyncio.sleep(0.05)
    return "identified; websocket open"


async def start_conversation(run: Run) -> str:
    reply = await run.adapter.request("start", body="Hello from the conformance suite")
    run.conversation_id = str(reply["conversation_id"])
    await run.delivered("Hello from the conformance suite")
    return f"conversation {run.conversation_id}"


async def live_in_order(run: Run) -> str:
    for i in range(1, 4):
        await run.agent_says(f"live {i}")
    await run.delivered("live 1", "live 2", "live 3")
    return "3 agent messages, once each, in order"


async def own_send(run: Run) -> str:
    await run.adapter.request("send", conversation_id=run.conversation_id, body="mine 1")
    await run.stored_once("mine 1")
    await run.delivered("mine 1")
    return "stored once, reported once"


async def duplicate_delivery(run: Run) -> str:
    run.proxy.duplicate_next_message = True
    await run.agent_says("twice on the wire")
    await run.delivered("twice on the wire")
    return "a message:new frame delivered twice is shown once"


async def reordered_delivery(run: Run) -> str:
    run.proxy.hold_next_message = True
    await run.agent_says("first")
    await run.agent_says("second")
    await run.delivered("first", "second")
    return "seq n+1 arrived before seq n; shown in order, once each"


async def dropped_socket(run: Run) -> str:
    run.proxy.refuse(1.5)
    await run.agent_says("while cut 1")
    await run.agent_says("while cut 2")
    await run.delivered("while cut 1", "while cut 2")
    return "messages sent while the socket was down arrive after reconnect (sync)"


async def duplicate_send(run: Run) -> str:
    run.proxy.drop_next_send_ack = True
    await run.adapter.request("send", conversation_id=run.conversation_id, body="ack lost")
    try:
        await asyncio.wait_for(run.proxy.dropped_ack.wait(), WAIT)
    except TimeoutError:
        raise AssertionError("the client never sent message:send") from None
    run.proxy.cut()  # the client never saw its ack: it must send again, with the same id
    await run.stored_once("ack lost")
    await run.delivered("ack lost")
    history = [m for m in await run.history() if m["body"] == "ack lost"]
    return f"ack dropped, socket cut: stored once (client_msg_id {history[0]['client_msg_id']})"


async def offline_queue(run: Run) -> str:
    run.proxy.refuse(3)
    await asyncio.sleep(0.2)
    for body in ("offline 1", "offline 2"):
        await run.adapter.request("send", conversation_id=run.conversation_id, body=body)
    await run.stored_once("offline 1")
    await run.stored_once("offline 2")
    bodies = [m["body"] for m in await run.history()]
    assert bodies.index("offline 1") < bodies.index("offline 2"), "queued sends reordered"
    await run.delivered("offline 1", "offline 2")
    return "written offline, sent once each after reconnecting, in order"


async def server_restart(run: Run) -> str:
    if run.server is None:
        run.proxy.refuse(3)
        how = "simulated (connections cut and refused for 3 s; pass --serve for a real restart)"
    else:
        await run.server.restart()
        how = "the server process was stopped and started again"
    await run.adapter.request("send", conversation_id=run.conversation_id, body="after restart")
    await run.agent_says("agent after restart")
    await run.stored_once("after restart")
    await run.delivered("after restart")
    await run.delivered("agent after restart")
    return how


async def exactly_once_in_order(run: Run) -> str:
    history = await run.history()
    reported = [m for m in run.adapter.messages if m["conversation_id"] == run.conversation_id]
    seqs = [m["seq"] for m in reported]
    assert seqs == [m["seq"] for m in history], f"client {seqs} vs server {len(history)}"
    assert [m["body"] for m in reported] == [m["body"] for m in history]
    return f"{len(seqs)} messages: the client's list equals the server's, seq 1..{len(seqs)}"


async def identity_switch(run: Run) -> str:
    previous = run.proxy.handshakes[-1] if run.proxy.handshakes else {}
    old_conversation, since, reported = (
        run.conversation_id,
        len(run.proxy.handshakes),
        len(run.adapter.messages),
    )
    run.user_id = f"{run.user_id}-next"
    await run.adapter.request("switch", user_id=run.user_id, user_hash=run.user_hash(run.user_id))
    handshake = await run.handshake_as(run.user_id, since)
    assert handshake.get("device_id") != previous.get("device_id"), (
        "the next person connected with the previous person's device id"
    )
    await run.agent_says("for the previous person only")
    reply = await run.adapter.request("start", body="hello from the next person")
    run.conversation_id = str(reply["conversation_id"])
    assert run.conversation_id != old_conversation
    await run.delivered("hello from the next person")
    await asyncio.sleep(1)  # room for the previous person's message to leak
    leaked = [
        m["body"]
        for m in run.adapter.messages[reported:]
        if m["conversation_id"] == old_conversation
    ]
    assert not leaked, f"the previous person's messages reached the next one: {leaked}"
    return "a new device id for the next person; nothing of the previous one delivered"


async def logout(run: Run) -> str:
    since, reported = len(run.proxy.handshakes), len(run.adapter.messages)
    run.proxy.refuse(3)
    await asyncio.sleep(0.2)
    body = "queued, then the person logged out"
    await run.adapter.request("send", conversation_id=run.conversation_id, body=body)
    await run.adapter.request("logout")
    await asyncio.sleep(4)  # past the outage: a client still holding the send sends it now
    await run.agent_says("after the logout")
    await asyncio.sleep(1.5)
    assert body not in [m["body"] for m in await run.history()], (
        "a send queued before the logout was sent for the logged-out person"
    )
    again = [a for a in run.proxy.handshakes[since:] if a.get("user_id") == run.user_id]
    assert not again, "the client connected again as the person who logged out"
    leaked = [m["body"] for m in run.adapter.messages[reported:]]
    assert not leaked, f"delivered after the logout: {leaked}"
    return "queued send dropped, no reconnect as that person, nothing delivered after"


async def server_events_match_schemas(run: Run) -> str:
    import jsonschema  # type: ignore[import-untyped]  # the CLI only, not the server

    checked = 0
    for name, data in run.proxy.events:
        path = protocol.SCHEMAS / f"server.{name.replace(':', '.')}.json"
        assert path.is_file(), f"an event the protocol does not describe: {name}"
        jsonschema.validate(data, json.loads(path.read_text()))
        checked += 1
    return f"{checked} server events valid against realtime/schemas"


RULES: list[tuple[str, Rule]] = [
    ("identify_and_connect", identify_and_connect),
    ("start_conversation", start_conversation),
    ("live_in_order", live_in_order),
    ("own_send_once", own_send),
    ("duplicate_delivery", duplicate_delivery),
    ("reordered_delivery", reordered_delivery),
    ("dropped_socket", dropped_socket),
    ("duplicate_send", duplicate_send),
    ("offline_queue", offline_queue),
    ("server_restart", server_restart),
    ("exactly_once_in_order", exactly_once_in_order),
    ("identity_switch", identity_switch),
    ("logout", logout),
    ("server_events_match_schemas", server_events_match_schemas),
]


async def create_app(http: aiohttp.ClientSession, url: str, master_key: str) -> Credentials:
    async with http.post(
        url + "/setup/apps",
        json={"name": f"conformance {uuid.uuid4().hex[:6]}"},
        headers={"X-Master-Key": master_key},
    ) as response:
        if response.status != 201:
            raise RuntimeError(f"creating an app: {response.status} {await response.text()}")
        app = await response.json()
    return Credentials(app["id"], app["sdk_key"], app["secret_key"], app["identity_secret"])


async def run_suite(
    adapter_command: list[str],
    *,
    url: str | None,
    master_key: str | None,
    serve_args: list[str] | None,
    log: Path,
    wait: float = WAIT,
) -> list[Result]:
    global WAIT  # one suite per process: the CLI's --wait
    WAIT = wait
    server = ManagedServer(serve_args, log) if serve_args is not None else None
    results: list[Result] = []
    adapter = Adapter(adapter_command)
    proxy: FaultProxy | None = None
    try:
        if server is not None:
            await server.start()
            url, master_key = server.url, server.master_key
        assert url is not None and master_key is not None
        target = urlsplit(url)
        proxy = FaultProxy(target.hostname or "127.0.0.1", target.port or 80)
        await proxy.start()
        async with aiohttp.ClientSession() as http:
            credentials = await create_app(http, url, master_key)
            await adapter.start()
            run = Run(url, credentials, adapter, proxy, server, http)
            for name, rule in RULES:
                if results and not results[0].passed:
                    results.append(Result(name, False, "skipped: the client never connected"))
                    continue
                try:
                    detail = await asyncio.wait_for(rule(run), WAIT * 3)
                    results.append(Result(name, True, detail))
                except Exception as exc:
                    detail = str(exc) or type(exc).__name__
                    results.append(Result(name, False, detail))
    finally:
        await adapter.stop()
        if proxy is not None:
            await proxy.stop()
        if server is not None:
            await server.stop()
    return results


def report(results: list[Result]) -> str:
    width = max(len(r.rule) for r in results)
    lines = [f"{'rule'.ljust(width)}  result  detail"]
    for result in results:
        verdict = "pass" if result.passed else "FAIL"
        lines.append(f"{result.rule.ljust(width)}  {verdict:6}  {result.detail}")
    passed = sum(r.passed for r in results)
    lines.append(f"{passed} passed, {len(results) - passed} failed")
    return "\n".join(lines)
