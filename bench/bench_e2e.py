"""A message end to end, side by side with the roadmap's Node stack (issue 21).

The same open-loop load (bench/node/loadgen.cjs: end users POST messages at a fixed rate, each
has a listening device on `/`, and agents listen on `/admin`: 3 deliveries a message) is offered
in turn to each system under test, in alternating rounds of the same run (A B C A B C ...), since
this machine is shared and absolute figures drift from minute to minute. Systems:

- `node`: bench/node/ref_server.cjs, the roadmap's stack in miniature (one Node process);
- `rhq`: `replyhq serve` of this tree (rate limits on, raised; JSON access log to a file);
- more ReplyHQ variants from BENCH_E2E_VARIANTS, e.g.
  `rhq-old-pool:DB_POOL_SIZE=20,DB_MAX_OVERFLOW=10` (settings) or
  `before:PYTHONPATH=/tmp/before/src` (another source tree: a `git archive` of an older commit),
  `rhq-2:WORKERS=2` (`serve --workers 2`, beside one process in the same run),
  `no-rollups:SQL=ALTER TABLE messages DISABLE TRIGGER report_messages_inserted` (a statement
  run on that variant's database, as its owner, once migrated; `{database}` is its name).

Per system and offered rate: achieved msg/s, e2e p50/p99 (send to receive), lost, duplicated,
HTTP errors, server CPU per message (read from /proc between the generator's "sending" and
"sent" marks), and from pg_stat_database the database's active time per message (and its
backends' CPU, from /proc) and the connections opened per second (pool churn), and what its
backends were doing (pg_stat_activity sampled every 100 ms: on CPU, or waiting for a lock or
the WAL). The ceiling is the
achieved rate at an offered rate above it (1,000 msg/s); latency is read at 200 msg/s.

Knobs: BENCH_E2E_ROUNDS (3), BENCH_E2E_SECONDS (8), BENCH_E2E_RATES ("1000,200"),
BENCH_E2E_WORKERS (1), BENCH_E2E_VARIANTS (";"-separated `name:KEY=V,KEY=V`), BENCH_E2E_NODE=0
(no Node reference), BENCH_E2E_PROFILE=<system> (py-spy samples that system's server at the first
rate and splits its CPU per message by part: bench/profile_parts.py; BENCH_E2E_PROFILE_KEEP=<dir>
keeps the raw stacks, for a flame graph), BENCH_E2E_WAL_DETAIL=1 (the first round's WAL at the
first rate by relation and record type, per message, read with pg_walinspect). Every run reports
the cluster's WAL per message (bytes, records, full-page images, flushes: pg_stat_wal and the WAL
position), which is the system's own while it runs alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from bench import common, profile_parts

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = Path(__file__).resolve().parent / "node"
USERS, LISTENERS, AGENTS = 50, 1, 2
MASTER = "bench-master-key"
OWNER_EMAIL, OWNER_PASSWORD = "owner@bench.example", "bench-owner-password-1"
ORIGIN = "http://allowed.example"  # the generator's Origin


def _log(message: str) -> None:
    print(f"[e2e] {message}", file=sys.stderr, flush=True)


@dataclass
class System:
    name: str
    url: str
    owner_url: str  # its database (for the database's CPU)
    pids: Any  # () -> list of the server's process ids
    stop: Any
    app_file: Path | None = None  # ReplyHQ: the app the generator uses (login as its owner)
    runs: list[dict[str, Any]] = field(default_factory=list)
    workers: int = 1

    def cpu_seconds(self) -> float:
        return sum(common._cpu_seconds(pid) for pid in self.pids())


@contextlib.contextmanager
def _database(label: str, *, migrate: bool) -> Iterator[str]:
    if migrate:
        with common.throwaway_database(label) as url:
            yield url
        return
    base = common.services().postgres_url
    name = f"replyhq_bench_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = make_url(base).set(database=name).render_as_string(hide_password=False)
        with common.autovacuum_stand_in(url):  # the Node reference's tables, as ours
            yield url
    finally:
        with psycopg.connect(base, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@dataclass(frozen=True)
class DatabaseStats:
    """What the database had done at a moment: its backends' active milliseconds, sessions
    opened and connections now (pg_stat_database, this system's database), and the cluster's
    WAL: position (bytes, exact), records, full-page images and flushes (pg_stat_wal). The
    WAL is the whole cluster's, so a run measures its own only when it runs alone (the bench's
    CPU lock; the other systems are idle between their runs)."""

    active_ms: float
    sessions: int
    connections: int
    wal_lsn: str
    wal_bytes: int
    wal_records: int
    wal_fpi: int
    wal_syncs: int
    backend_cpu: dict[int, float]  # this database's backends: process id -> CPU seconds


def _backend_cpu_ms(before: DatabaseStats, after: DatabaseStats) -> float:
    """The CPU milliseconds this database's backends used between two moments (one opened
    meanwhile counts whole: a fixed pool opens none)."""
    return 1000 * sum(
        seconds - before.backend_cpu.get(pid, 0.0) for pid, seconds in after.backend_cpu.items()
    )


def _database_stats(owner_url: str) -> DatabaseStats:
    """This system's database and the cluster's WAL now. pg_stat_database and pg_stat_wal are
    flushed by backends about once a second; the WAL position is exact."""
    name = make_url(owner_url).database
    with psycopg.connect(common.services().postgres_url, autocommit=True) as connection:
        connection.execute("SELECT pg_stat_clear_snapshot()")
        row = connection.execute(
            "SELECT d.active_time, d.sessions, d.numbackends, pg_current_wal_lsn()::text,"
            " pg_current_wal_lsn() - '0/0'::pg_lsn, w.wal_records, w.wal_fpi, w.wal_sync"
            " FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = %s",
            (name,),
        ).fetchone()
        pids = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    assert row is not None
    cpu = {pid: common._cpu_seconds(pid) for (pid,) in pids}
    return DatabaseStats(
        float(row[0]), int(row[1]), int(row[2]), row[3], int(row[4]), *map(int, row[5:]), cpu
    )


def wal_detail(owner_url: str, start: str, end: str, sent: int) -> list[tuple[Any, ...]]:
    """The WAL written between two positions, by relation (the record's first block; none for a
    commit) and record type, per message sent: (relation, resource manager, record type,
    records/msg, bytes/msg, of them full-page images/msg). Reads the WAL with pg_walinspect,
    created in the system's own database (a superuser's), whose names it resolves."""
    with psycopg.connect(common.plain(owner_url), autocommit=True) as connection:
        connection.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        rows = connection.execute(
            """
            SELECT COALESCE(pg_filenode_relation(0, w.node)::text, w.node::text, '-') AS relation,
                   w.resource_manager, w.record_type, count(*)::float / %(n)s,
                   sum(w.record_length)::float / %(n)s, sum(w.fpi_length)::float / %(n)s
            FROM (SELECT substring(block_ref FROM 'rel [0-9]+/[0-9]+/([0-9]+)')::oid AS node, *
                  FROM pg_get_wal_records_info(%(start)s::pg_lsn, %(end)s::pg_lsn)) w
            GROUP BY 1, 2, 3 ORDER BY 5 DESC
            """,
            {"start": start, "end": end, "n": sent},
        ).fetchall()
    return [tuple(r) for r in rows]


def _print_wal_detail(name: str, rate: int, rows: list[tuple[Any, ...]]) -> None:
    total = sum(r[4] for r in rows)
    _log(f"WAL of {name} @{rate} by relation and record, per message ({total:,.0f} bytes):")
    for relation, manager, kind, count, size, fpi in rows:
        if size >= 0.005 * total:
            _log(
                f"  {relation:<45} {manager}/{kind:<20} {count:6.2f} rec {size:8.1f} B"
                f"  (FPI {fpi:7.1f} B)"
            )


@contextlib.contextmanager
def node_reference(tmp: Path) -> Iterator[System]:
    with _database("e2enode", migrate=False) as url:
        port = common.free_port()
        env = {**os.environ, "DATABASE_URL": common.plain(url), "PORT": str(port)}
        env["MASTER_API_KEY"] = MASTER
        log = (tmp / "node.log").open("wb")
        process = subprocess.Popen(
            ["node", str(NODE_DIR / "ref_server.cjs")], env=env, stdout=log, stderr=log, cwd=ROOT
        )
        base = f"http://{common.HOST}:{port}"
        _wait(base + "/healthz", process, tmp / "node.log", any_answer=True)
        try:
            yield System("node", base, url, lambda: [process.pid], process.terminate)
        finally:
            process.terminate()
            process.wait(timeout=10)


def _wait(url: str, process: subprocess.Popen[bytes], log: Path, *, any_answer: bool) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            answer = httpx.get(url, timeout=2)
            if any_answer or answer.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


def _cli(owner_url: str, redis_url: str, prefix: str, *args: str, pythonpath: str = "") -> str:
    env = common.server_env(owner_url, redis_url, prefix)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    done = subprocess.run(
        [sys.executable, "-m", "replyhq.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


@contextlib.contextmanager
def replyhq(
    name: str,
    tmp: Path,
    workers: int,
    extra: dict[str, str],
    database_env: Callable[[str], dict[str, str]] | None = None,
) -> Iterator[System]:
    """`replyhq serve` on a fresh database; `database_env`: settings made from that database's
    owner URL (how bench_pgbouncer points the server at its PgBouncer)."""
    services = common.services()
    with _database("e2e", migrate=True) as url:
        prefix = common.redis_prefix("e2e")
        pythonpath = extra.get("PYTHONPATH", "")
        created = json.loads(
            _cli(
                url,
                services.redis_url,
                prefix,
                "apps",
                "create",
                "Bench",
                "--json",
                pythonpath=pythonpath,
            )
        )
        app = {k: created[k] for k in ("id", "sdk_key", "secret_key", "identity_secret")}
        _cli(
            url,
            services.redis_url,
            prefix,
            "admins",
            "create",
            "--app",
            app["id"],
            "--email",
            OWNER_EMAIL,
            "--role",
            "OWNER",
            "--password",
            OWNER_PASSWORD,
            pythonpath=pythonpath,
        )
        app_file = tmp / f"{name}-app.json"
        app_file.write_text(json.dumps(app))
        # A variant's change to its database, as the owner; `{database}` stands for its name.
        # SQL_FILE: statements in a file (a function's text has commas, which SQL cannot hold).
        statement = extra.pop("SQL", "") or (
            Path(extra.pop("SQL_FILE")).read_text() if "SQL_FILE" in extra else ""
        )
        statement = statement.replace("{database}", f'"{make_url(url).database}"')
        if statement:
            with psycopg.connect(common.plain(url), autocommit=True) as connection:
                connection.execute(statement.encode())
        if database_env is not None:
            extra = {**extra, **database_env(url)}
        server = common.start_server(
            url,
            services.redis_url,
            prefix,
            workers=workers,
            ALLOWED_ORIGINS=ORIGIN,
            MASTER_API_KEY=MASTER,
            **extra,
        )
        try:
            pids = lambda: common._tree(server.process.pid)  # noqa: E731
            yield System(
                name, server.url, url, pids, server.stop, app_file=app_file, workers=workers
            )
        finally:
            server.stop()
            if server.problems:
                _log(f"{name} logged: {server.problems}")


class WaitSampler:
    """What the system's database backends are doing, sampled from pg_stat_activity every
    100 ms over the timed part: "CPU" (active, no wait event), a wait event (`Lock:tuple`,
    `IO:WALSync`, ...) or idle states are not counted. Tells lock queues from CPU."""

    def __init__(self, owner_url: str) -> None:
        self.name = make_url(owner_url).database
        self.counts: Counter[str] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        with psycopg.connect(common.services().postgres_url, autocommit=True) as connection:
            while not self._stop.wait(0.1):
                rows = connection.execute(
                    "SELECT wait_event_type, wait_event FROM pg_stat_activity "
                    "WHERE datname = %s AND state = 'active' AND pid <> pg_backend_pid()",
                    (self.name,),
                ).fetchall()
                self.samples += 1
                for kind, event in rows:
                    self.counts["CPU" if kind is None else f"{kind}:{event}"] += 1

    def summary(self) -> str:
        """Backends active on average, by what they were doing (top 4)."""
        n = max(1, self.samples)
        top = ", ".join(f"{k} {v / n:.2f}" for k, v in self.counts.most_common(4))
        return f"{sum(self.counts.values()) / n:.2f} active ({top})"


def offer(
    system: System, rate: int, seconds: int, profile: Path | None = None, *, wal: bool = False
) -> dict[str, Any]:
    """One run of the generator against `system`; its JSON line, with the server's CPU.
    `profile`: where py-spy writes the server's stacks over the timed part (one process);
    `wal`: print the run's WAL by relation and record type (wal_detail)."""
    command = ["node", str(NODE_DIR / "loadgen.cjs"), system.url, MASTER, str(USERS)]
    command += [str(LISTENERS), str(AGENTS), str(rate), str(seconds)]
    env = dict(os.environ)
    if system.app_file is not None:
        command += ["login", OWNER_EMAIL, OWNER_PASSWORD]
        env["LOADGEN_APP"] = str(system.app_file)
    else:
        command += ["secret"]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert process.stderr is not None and process.stdout is not None
    marks: dict[str, tuple[float, DatabaseStats]] = {}
    sampler = WaitSampler(system.owner_url)
    spy: subprocess.Popen[bytes] | None = None
    other: list[str] = []
    for text_line in process.stderr:  # "sending" and "sent" bound the timed part
        mark = text_line.strip()
        if mark in ("sending", "sent"):
            marks[mark] = (system.cpu_seconds(), _database_stats(system.owner_url))
            if mark == "sending":
                sampler.start()
            else:
                sampler.stop()
            if mark == "sending" and profile is not None:
                spy = profile_parts.start(system.pids()[0], seconds + 1, profile)
        else:
            other.append(text_line)
    out = process.stdout.read()
    process.wait(timeout=60)
    if spy is not None:
        spy.wait(timeout=60)
    line = (out.strip().splitlines() or ["{}"])[-1]
    result: dict[str, Any] = json.loads(line)
    if "error" in result or process.returncode or len(marks) < 2:
        raise RuntimeError(f"{system.name}: {line} {''.join(other)[-2000:]}")
    (cpu0, db0), (cpu1, db1) = marks["sending"], marks["sent"]
    sent = max(1, result["sent"] - result["http_errors"])
    result["server_cpu_ms"] = (cpu1 - cpu0) * 1000 / sent
    result["db_active_ms"] = (db1.active_ms - db0.active_ms) / sent
    result["db_cpu_ms"] = _backend_cpu_ms(db0, db1) / sent
    result["db_sessions_per_s"] = (db1.sessions - db0.sessions) / max(
        1e-9, sent / result["achieved_rate"]
    )
    result["db_connections"] = db1.connections
    result["db_backends"] = sampler.summary()
    result["wal_bytes"] = (db1.wal_bytes - db0.wal_bytes) / sent
    result["wal_records"] = (db1.wal_records - db0.wal_records) / sent
    result["wal_fpi"] = (db1.wal_fpi - db0.wal_fpi) / sent
    result["wal_syncs"] = (db1.wal_syncs - db0.wal_syncs) / sent
    if wal:
        _print_wal_detail(
            system.name, rate, wal_detail(system.owner_url, db0.wal_lsn, db1.wal_lsn, sent)
        )
    return result


def _variants() -> list[tuple[str, dict[str, str]]]:
    raw = os.environ.get("BENCH_E2E_VARIANTS", "")
    variants: list[tuple[str, dict[str, str]]] = [("rhq", {})]
    for spec in filter(None, (s.strip() for s in raw.split(";"))):
        name, _, pairs = spec.partition(":")
        env = dict(p.split("=", 1) for p in pairs.split(",") if p)
        variants.append((name, env))
    return variants


def _summary(system: System, rate: int) -> dict[str, float]:
    runs = [r for r in system.runs if r["offered_rate"] == rate]
    return {
        "achieved": common.median([r["achieved_rate"] for r in runs]),
        "p50": common.median([r["e2e_ms"]["p50"] or float("nan") for r in runs]),
        "p99": common.median([r["e2e_ms"]["p99"] or float("nan") for r in runs]),
        "cpu": common.median([r["server_cpu_ms"] for r in runs]),
        "db": common.median([r["db_active_ms"] for r in runs]),
        "dbcpu": common.median([r["db_cpu_ms"] for r in runs]),
        "opened": common.median([r["db_sessions_per_s"] for r in runs]),
        "wal": common.median([r["wal_bytes"] for r in runs]),
        "syncs": common.median([r["wal_syncs"] for r in runs]),
        "bad": sum(r["lost"] + r["duplicates"] + r["http_errors"] for r in runs),
    }


def run() -> list[dict[str, Any]]:
    rounds = int(os.environ.get("BENCH_E2E_ROUNDS", "3"))
    seconds = int(os.environ.get("BENCH_E2E_SECONDS", "8"))
    rates = [int(r) for r in os.environ.get("BENCH_E2E_RATES", "1000,200").split(",")]
    workers = int(os.environ.get("BENCH_E2E_WORKERS", "1"))
    common.raise_open_files()
    tmp = Path(tempfile.mkdtemp(prefix="replyhq-bench-e2e-"))
    systems: list[System] = []
    profiled = os.environ.get("BENCH_E2E_PROFILE", "")
    wal_detail_wanted = os.environ.get("BENCH_E2E_WAL_DETAIL", "0") != "0"
    samples: Counter[str] = Counter()
    cpu_per_message: list[float] = []
    with contextlib.ExitStack() as stack:
        if os.environ.get("BENCH_E2E_NODE", "1") != "0":
            systems.append(stack.enter_context(node_reference(tmp)))
        for name, extra in _variants():
            count = int(extra.pop("WORKERS", workers))
            systems.append(stack.enter_context(replyhq(name, tmp, count, extra)))
        # A first run each, not counted: pools fill (a new Redis connection costs redis-py a
        # package-metadata lookup), caches and the JIT (Node) warm up.
        for system in systems:
            offer(system, rates[0], 2)
        for number in range(rounds):
            # Alternate, and rotate who goes first so that no system always follows the same one.
            order = systems[number % len(systems) :] + systems[: number % len(systems)]
            for rate in rates:
                for system in order:
                    spied = system.name == profiled and rate == rates[0]
                    stacks = tmp / f"{system.name}-{number}-{rate}.txt" if spied else None
                    detail = wal_detail_wanted and number == 0 and rate == rates[0]
                    result = offer(system, rate, seconds, stacks, wal=detail)
                    if stacks is not None and stacks.exists():
                        samples.update(profile_parts.parts(stacks.read_text()))
                        keep = os.environ.get("BENCH_E2E_PROFILE_KEEP")  # a directory
                        if keep:
                            Path(keep).mkdir(parents=True, exist_ok=True)
                            shutil.copy(stacks, Path(keep) / stacks.name)
                        cpu_per_message.append(result["server_cpu_ms"])
                    result["round"] = number
                    system.runs.append(result)
                    _log(
                        f"round {number} {system.name} @{rate}: {result['achieved_rate']} msg/s, "
                        f"e2e p99 {result['e2e_ms']['p99']} ms, lost {result['lost']}, "
                        f"dup {result['duplicates']}, errors {result['http_errors']}, "
                        f"cpu {result['server_cpu_ms']:.2f} ms/msg, db active "
                        f"{result['db_active_ms']:.2f} ms/msg (CPU {result['db_cpu_ms']:.2f}), "
                        "connections opened "
                        f"{result['db_sessions_per_s']:.1f}/s, held {result['db_connections']}, "
                        f"WAL {result['wal_bytes']:,.0f} B/msg ({result['wal_records']:.1f} "
                        f"records, {result['wal_fpi']:.2f} FPI, {result['wal_syncs']:.2f} "
                        f"flushes), "
                        f"backends {result['db_backends']}, "
                        f"load {os.getloadavg()[0]:.1f}"
                    )
    shutil.rmtree(tmp, ignore_errors=True)
    return _rows(systems, rates) + _profile_rows(profiled, rates[0], samples, cpu_per_message)


def _profile_rows(
    name: str, rate: int, samples: Counter[str], cpu: list[float]
) -> list[dict[str, Any]]:
    """Each part's share of the profiled server's samples, and of its CPU per message."""
    total = sum(samples.values())
    if not total:
        return []
    per_message = common.median(cpu)
    return [
        common.row(
            f"e2e {name} CPU by part @{rate}",
            part,
            samples[part] / total * per_message,
            "ms/msg",
            note=f"{samples[part] / total:.1%} of {total} samples",
        )
        for part in (*profile_parts.PARTS, profile_parts.OTHER)
    ]


def _rows(systems: list[System], rates: list[int]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    node = next((s for s in systems if s.name == "node"), None)
    for system in systems:
        for rate in rates:
            mine = _summary(system, rate)
            ref = _summary(node, rate) if node is not None and system is not node else None
            name = f"e2e {system.name}" + (f" x{system.workers}" if system.name != "node" else "")
            metrics = [
                ("achieved", f"msg/s offered {rate}", "msg/s"),
                ("p99", f"e2e p99 @{rate}", "ms"),
                ("cpu", f"server CPU/msg @{rate}", "ms"),
                ("db", f"database active/msg @{rate}", "ms"),
                ("dbcpu", f"database backends' CPU/msg @{rate}", "ms"),
                ("opened", f"DB connections opened @{rate}", "/s"),
                ("wal", f"WAL bytes/msg @{rate}", "B"),
                ("syncs", f"WAL flushes/msg @{rate}", ""),
            ]
            for key, metric, unit in metrics:
                base = ref[key] if ref else None
                rows.append(
                    common.row(
                        name,
                        metric,
                        mine[key],
                        unit,
                        baseline=base,
                        ratio=(mine[key] / base) if base else None,
                        note=f"lost+dup+errors {mine['bad']}" if key == "achieved" else None,
                    )
                )
    return rows


if __name__ == "__main__":
    from bench.__main__ import table

    print(table(run()))
