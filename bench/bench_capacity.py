"""The database's side of the capacity model (issue 21): sends per second one PostgreSQL does with
the server's real send statement, driven by pgbench instead of Python, so that the server's CPU
is out of the picture.

Each pgbench transaction is what a message POST sends: the tenant binding and the send statement
(`messaging.statements.send`, the SDK's form) pipelined up to one Sync, one implicit transaction
(pgbench's \\startpipeline ... \\endpipeline), as the runtime role, so row-level security applies.
Before it, one small lookup (\\gset) picks a random one of 50 devices and their conversations, as
the e2e generator's 50 end users; it is a round trip the server does not make, so the figure is
slightly under what PostgreSQL would do for the server.

Knobs: BENCH_CAPACITY_CLIENTS ("4,8"), BENCH_CAPACITY_SECONDS (5).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg

from bench import common
from bench.bench_http import _prepare, pgbench_binary
from replyhq.db.session import runtime_url
from replyhq.messaging import statements
from replyhq.settings import Settings

USERS = 50
BODY = "load test"

_PARAMETERS = {
    "app_id": ":app",
    "device_id": ":dev",
    "conversation_id": ":conv",
    "client_msg_id": "('c' || :r::text)",
    "message_id": "gen_random_uuid()",
    "kind": "'user'",
    "body": f"'{BODY}'",
    "body_html": f"'<p>{BODY}</p>'",
    "writable": "true",
}


def script() -> str:
    """The pgbench script of one send, from the server's own statement text."""
    sql = statements.send(from_device=True, owner="sender")
    for name, value in _PARAMETERS.items():
        sql = sql.replace(f"%({name})s", value)
    assert "%(" not in sql, "a parameter of the send statement has no pgbench value"
    body = " ".join(line.split("--")[0].strip() for line in sql.splitlines())
    return (
        f"\\set n random(1, {USERS})\n"
        "\\set r random(1, 9000000000000000)\n"
        "SELECT app_id::text AS app, device_id AS dev, conversation_id::text AS conv "
        "FROM bench_targets WHERE n = :n \\gset\n"
        "\\startpipeline\n"
        "SELECT set_config('app.current_tenant', :app, true);\n"
        f"{body};\n"
        "\\endpipeline\n"
    )


def run() -> list[dict[str, Any]]:
    binary = pgbench_binary()
    if binary is None:
        return [common.row("capacity", "pgbench", float("nan"), "", note="pgbench not found")]
    clients_list = [int(c) for c in os.environ.get("BENCH_CAPACITY_CLIENTS", "4,8").split(",") if c]
    seconds = int(os.environ.get("BENCH_CAPACITY_SECONDS", "5"))
    rows = []
    with common.throwaway_database("capacity") as owner_url:
        tenant, devices = _prepare(owner_url, USERS)
        plain = common.plain(owner_url)
        settings = Settings()
        with psycopg.connect(plain, autocommit=True) as connection:
            connection.execute(
                "CREATE TABLE bench_targets (n int PRIMARY KEY, app_id uuid, device_id text,"
                " conversation_id uuid)"
            )
            with connection.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO bench_targets VALUES (%s, %s, %s, %s)",
                    [
                        (n + 1, tenant.id, d.device_id, d.conversation_id)
                        for n, d in enumerate(devices)
                    ],
                )
            connection.execute(f'GRANT SELECT ON bench_targets TO "{settings.database_app_role}"')
        runtime = common.plain(runtime_url(settings, owner_url))
        work = Path(tempfile.mkdtemp(prefix="replyhq-pgbench-send-"))
        try:
            (work / "send.sql").write_text(script())
            for clients in clients_list:
                threads = max(1, min(clients, os.cpu_count() or 1))
                command = [binary, "-n", "-M", "extended", "-c", str(clients), "-j"]
                command += [str(threads), "-T", str(seconds), "-f", str(work / "send.sql")]
                command.append(runtime)
                done = subprocess.run(command, capture_output=True, text=True, cwd=work)
                output = done.stdout + done.stderr
                if done.returncode != 0:
                    raise RuntimeError(f"pgbench failed: {output[-2000:]}")
                tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", output)
                latency = re.search(r"latency average = ([\d.]+) ms", output)
                rows.append(
                    common.row(
                        "capacity",
                        f"sends/s by pgbench, real statement, {clients} clients",
                        float(tps.group(1)) if tps else float("nan"),
                        "tx/s",
                        note=f"latency average {latency.group(1) if latency else '?'} ms, "
                        f"load {os.getloadavg()[0]:.1f}",
                    )
                )
            with psycopg.connect(plain) as connection:
                connection.execute(
                    "SELECT set_config('app.current_tenant', %s, true)", (str(tenant.id),)
                )
                stored, last = connection.execute(
                    "SELECT count(*), (SELECT sum(last_seq) FROM conversations) FROM messages"
                ).fetchone() or (0, 0)
            rows.append(
                common.row(
                    "capacity",
                    "messages stored = sum of conversations' last_seq",
                    float(stored),
                    "msgs",
                    ok=stored == last,
                )
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    from bench.__main__ import table

    print(table(run()))
