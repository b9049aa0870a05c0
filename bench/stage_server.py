"""`replyhq serve` with timestamps at each stage of POST /v1/events (bench/ingest_stages.py).

`python -m bench.stage_server serve ...` (as `python -m replyhq.cli`): before the server starts,
wraps the functions a tracked batch passes through, from outside, so that each request tagged
X-Bench-Seq gets time.perf_counter() (CLOCK_MONOTONIC, as the Node generator's clock) at:

  asgi_in       the outermost ASGI app is called (uvicorn has parsed the request's head)
  hot_in        the hot-route middleware is reached (after the other middleware)
  auth_in       the body read and validated (sdk_caller called)
  auth_out      the key checked and the rate limits' Redis round trip answered
  enqueued      EventWriter.write called (the rows made)
  flush_in      its flush starts (after the flush delay, and any flush ahead of it)
  stmt_in       the statement sent (parameters built)
  stmt_out      its rows read: the transaction committed
  written       EventWriter.write returns in the request's task
  reply         the answer's body handed to uvicorn
  asgi_out      the outermost app returns

plus, per request, its flush's number and size, and the process' garbage collections (start,
generation, duration). GET /__stages answers them (and forgets them).
Nothing of replyhq is changed; the wrappers cost a few microseconds a request.
"""

from __future__ import annotations

import contextvars
import gc
import json
import time
from typing import Any

from replyhq import app as app_module
from replyhq.analytics import ingest
from replyhq.web import hot

RECORDS: dict[int, dict[str, Any]] = {}
CURRENT: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "stage_record", default=None
)
FLUSHES = iter(range(1 << 62))
COLLECTIONS: list[tuple[float, int, float]] = []  # start, generation, seconds
_gc_started = 0.0


def _collected(phase: str, info: dict[str, Any]) -> None:
    global _gc_started
    if phase == "start":
        _gc_started = time.perf_counter()
    else:
        COLLECTIONS.append((_gc_started, info["generation"], time.perf_counter() - _gc_started))


def _mark(stage: str) -> None:
    record = CURRENT.get()
    if record is not None:
        record[stage] = time.perf_counter()


def _install() -> None:
    gc.callbacks.append(_collected)
    create_asgi = app_module.create_asgi

    def create_asgi_probed(settings: Any = None) -> Any:
        inner = create_asgi(settings)

        async def probed(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] == "/__stages":
                body = json.dumps({"requests": RECORDS, "gc": COLLECTIONS}).encode()
                RECORDS.clear()
                COLLECTIONS.clear()
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": body})
                return
            seq = None
            if scope["type"] == "http":
                for name, value in scope["headers"]:
                    if name == b"x-bench-seq":
                        seq = int(value)
            if seq is None:
                await inner(scope, receive, send)
                return
            record: dict[str, Any] = {"asgi_in": time.perf_counter()}
            RECORDS[seq] = record
            CURRENT.set(record)
            await inner(scope, receive, send)
            record["asgi_out"] = time.perf_counter()

        return probed

    app_module.create_asgi = create_asgi_probed  # type: ignore[assignment]

    call = hot.HotRoutes.__call__

    async def hot_call(self: Any, scope: Any, receive: Any, send: Any) -> None:
        _mark("hot_in")

        async def send_probed(message: Any) -> None:
            if message["type"] == "http.response.body":
                _mark("reply")
            await send(message)

        await call(self, scope, receive, send_probed)

    hot.HotRoutes.__call__ = hot_call  # type: ignore[method-assign]

    sdk_caller = hot.sdk_caller

    async def sdk_caller_probed(*args: Any) -> Any:
        _mark("auth_in")
        out = await sdk_caller(*args)
        _mark("auth_out")
        return out

    hot.sdk_caller = sdk_caller_probed  # type: ignore[assignment]

    class Request(ingest._Request):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.record = CURRENT.get()

    ingest._Request = Request  # type: ignore[misc]

    write = ingest.EventWriter.write

    async def write_probed(self: Any, *args: Any) -> None:
        _mark("enqueued")
        await write(self, *args)
        _mark("written")

    ingest.EventWriter.write = write_probed  # type: ignore[method-assign]

    flush = ingest.EventWriter._flush
    batch_of: contextvars.ContextVar[list[Any]] = contextvars.ContextVar("stage_batch")

    def mark_batch(stage: str) -> None:
        t = time.perf_counter()
        for request in batch_of.get([]):
            record = getattr(request, "record", None)
            if record is not None:
                record[stage] = t

    async def flush_probed(self: Any, app_id: Any, batch: list[Any]) -> None:
        number = next(FLUSHES)
        size = sum(len(r.rows) for r in batch)
        batch_of.set(batch)
        mark_batch("flush_in")
        for request in batch:
            record = getattr(request, "record", None)
            if record is not None:
                record.update(flush=number, flush_events=size, flush_requests=len(batch))
        await flush(self, app_id, batch)

    ingest.EventWriter._flush = flush_probed  # type: ignore[method-assign]

    statement = ingest.Database.tenant_statement

    async def statement_probed(self: Any, app_id: Any, sql: str, params: Any) -> Any:
        probed = sql is ingest._FLUSH or "INSERT INTO events" in sql
        if probed:
            mark_batch("stmt_in")
        rows = await statement(self, app_id, sql, params)
        if probed:
            mark_batch("stmt_out")
        return rows

    ingest.Database.tenant_statement = statement_probed  # type: ignore[method-assign]


if __name__ == "__main__":
    _install()
    from replyhq.cli import main

    main()
