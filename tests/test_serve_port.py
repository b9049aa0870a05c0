"""`make dev` on a port already taken: one line saying so, before any key is printed or any
embedded server is started."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.test_embedded import _services_of, data_dir
from tests.test_embedded_shared import replyhq

__all__ = ["data_dir"]


def test_serve_on_a_taken_port_says_so_before_printing_keys_or_starting_servers(
    tmp_path: Path, data_dir: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = replyhq(data_dir, tmp_path, "serve", "--demo", "--port", str(port))

    assert result.returncode != 0
    assert result.stdout == ""  # no banner, no keys
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"replyhq: cannot listen on 127.0.0.1:{port}: in use (stop what runs there, or pass --port)"
    ]
    assert not (data_dir / "postgres").exists(), "PostgreSQL was started"
    assert _services_of(data_dir) == []
