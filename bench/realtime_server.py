"""`python -m bench.realtime_server serve ...`: `replyhq serve ...` with bench-only switches, so
that one run of bench/bench_realtime.py measures variants side by side.

    BENCH_SOCKETIO_MANAGER=stock   python-socketio's AsyncRedisManager, with its default pool
    BENCH_SOCKETIO_MANAGER=routed  replyhq.realtime.manager.RoutedRedisManager (as shipped)
    (unset: as shipped)

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


def _choose_manager(choice: str) -> None:
    from replyhq.realtime import delivery, server
    from replyhq.realtime.manager import RoutedRedisManager

    chosen = {"stock": StockManager, "routed": RoutedRedisManager}[choice]
    server.RoutedRedisManager = chosen  # type: ignore[misc]
    delivery.RoutedRedisManager = chosen  # type: ignore[misc]


def main() -> None:
    choice = os.environ.get("BENCH_SOCKETIO_MANAGER")
    if choice:
        _choose_manager(choice)
    from replyhq.cli import main as cli

    cli(sys.argv[1:])


if __name__ == "__main__":
    main()
