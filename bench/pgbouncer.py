"""A PgBouncer of one's own in transaction pooling mode, in front of a PostgreSQL (the machine's
shared one, which is never restarted), on a free port: for tests/test_pgbouncer.py and
bench/bench_pgbouncer.py. Debian's /usr/sbin/pgbouncer; it refuses to run as root, so it
switches to `nobody` when started by root."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import psycopg
from sqlalchemy.engine import make_url

BINARY = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PgBouncer:
    def __init__(self, postgres_url: str, users: list[str], *, pool_size: int = 4) -> None:
        """`postgres_url`: any URL of the PostgreSQL to pool (host and port are taken); `users`:
        the roles that will connect (trusted, as PostgreSQL trusts them here). Its files are in
        a directory of its own under /tmp, which `nobody` can reach (a pytest tmp_path is not)."""
        self.directory = Path(tempfile.mkdtemp(prefix="replyhq-pgbouncer-"))
        self.port = _free_port()
        parsed = make_url(postgres_url)
        self.upstream = (parsed.host or "127.0.0.1", parsed.port or 5432)
        self.users = users
        self.pool_size = pool_size
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, url: str) -> str:
        """`url` with its host and port replaced by this PgBouncer's."""
        return make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(False)

    def start(self) -> PgBouncer:
        host, port = self.upstream
        (self.directory / "users.txt").write_text(
            "".join(f'"{user}" ""\n' for user in [*self.users, "pgbouncer"])
        )
        config = self.directory / "pgbouncer.ini"
        config.write_text(
            f"""[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.directory / "users.txt"}
admin_users = pgbouncer
stats_users = pgbouncer
pool_mode = transaction
default_pool_size = {self.pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 2000
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
logfile = {self.directory / "pgbouncer.log"}
pidfile = {self.directory / "pgbouncer.pid"}
"""
        )
        command = [BINARY, str(config)]
        if os.geteuid() == 0:
            command[1:1] = ["-u", "nobody"]
            os.chmod(self.directory, 0o777)  # noqa: S103 (its own throwaway directory)
            for path in self.directory.iterdir():
                os.chmod(path, 0o666)  # noqa: S103
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"pgbouncer did not start: {self.log()[-2000:]}") from None
                time.sleep(0.05)

    def log(self) -> str:
        try:
            return (self.directory / "pgbouncer.log").read_text(errors="replace")
        except OSError:
            return ""

    def server_connections(self, database: str) -> int:
        """Connections this PgBouncer holds to PostgreSQL for `database` (SHOW POOLS)."""
        admin = f"postgresql://pgbouncer@127.0.0.1:{self.port}/pgbouncer"
        with psycopg.connect(admin, autocommit=True, prepare_threshold=None) as connection:
            cursor = connection.execute("SHOW POOLS")
            names = [c.name for c in cursor.description or []]
            total = 0
            for row in cursor.fetchall():
                pool = dict(zip(names, row, strict=True))
                if pool["database"] == database:
                    total += sum(
                        int(pool[k]) for k in ("sv_active", "sv_idle", "sv_used", "sv_tested")
                    )
                    total += int(pool.get("sv_login", 0))
            return total

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PgBouncer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
