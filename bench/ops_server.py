"""`python -m bench.ops_server --port P [--bare]`: the real server (`replyhq serve`'s app, one
process), or with `--bare` the same app with our logging and metrics taken out, for measuring
what they cost per request.

Bare means: no access-log middleware (so no log line and no latency histogram per request), no
message counter, no database-pool or Redis instrumentation, no process-metrics task, and only
warnings logged. Everything else (authentication, rate limits, the message's transaction, the
real-time emit after commit) is the same code.
"""

from __future__ import annotations

import argparse
import os
from typing import Any


def strip_observability() -> None:
    """Replace our instrumentation by no-ops before the app's modules import it."""
    from redis.asyncio.retry import Retry
    from sqlalchemy.pool import AsyncAdaptedQueuePool
    from starlette.types import ASGIApp, Receive, Scope, Send

    import replyhq.background as background
    from replyhq.observability import http, instruments, metrics

    class Passthrough:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            await self.app(scope, receive, send)

    async def idle(*_: Any, **__: Any) -> None:
        return None

    def nothing(*_: Any, **__: Any) -> None:
        return None

    http.AccessLogMiddleware = Passthrough  # type: ignore[misc,assignment]
    metrics.count_message_sent = nothing
    metrics.keep_process_metrics = idle
    background.keep_process_metrics = idle  # type: ignore[attr-defined]
    instruments.InstrumentedPool._do_get = AsyncAdaptedQueuePool._do_get  # type: ignore[method-assign]
    instruments.InstrumentedPool._do_return_conn = AsyncAdaptedQueuePool._do_return_conn  # type: ignore[method-assign]
    instruments.CountingRetry.call_with_retry = Retry.call_with_retry  # type: ignore[method-assign]
    os.environ["LOG_LEVEL"] = "WARNING"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bare", action="store_true")
    args = parser.parse_args()
    if args.bare:
        strip_observability()
    import uvicorn

    from replyhq.observability.logging import configure_logging
    from replyhq.realtime.websocket import WEBSOCKET_OPTIONS
    from replyhq.settings import get_settings

    configure_logging(get_settings().log_level)
    uvicorn.run(
        "replyhq.app:create_asgi",
        factory=True,
        host=args.host,
        port=args.port,
        access_log=False,
        log_config=None,
        log_level=get_settings().log_level.lower(),
        **WEBSOCKET_OPTIONS,
    )


if __name__ == "__main__":
    main()
