"""`python -m bench.realtime_server serve ...`: `replyhq serve ...` with bench-only switches, so
that one run of bench/bench_realtime.py measures variants side by side.

    BENCH_SOCKETIO_MANAGER=stock   python-socketio's AsyncRedisManager
    BENCH_SOCKETIO_MANAGER=routed  replyhq.realtime.manager.RoutedRedisManager
    (unset: whatever src/replyhq/realtime/server.py wires, as shipped)
"""

from __future__ import annotations

import os
import sys

import socketio


def _choose_manager(choice: str) -> None:
    from replyhq.realtime import server
    from replyhq.realtime.manager import RoutedRedisManager

    chosen = {"stock": socketio.AsyncRedisManager, "routed": RoutedRedisManager}[choice]
    # server.py builds its manager as `socketio.AsyncRedisManager(...)` or, once wired, as
    # `RoutedRedisManager(...)`: replace whichever name it looks up.
    socketio.AsyncRedisManager = chosen  # type: ignore[misc]
    if hasattr(server, "RoutedRedisManager"):
        server.RoutedRedisManager = chosen  # type: ignore[attr-defined]


def main() -> None:
    choice = os.environ.get("BENCH_SOCKETIO_MANAGER")
    if choice:
        _choose_manager(choice)
    from replyhq.cli import main as cli

    cli(sys.argv[1:])


if __name__ == "__main__":
    main()
