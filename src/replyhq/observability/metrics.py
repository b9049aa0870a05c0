"""Prometheus metrics: what we count, and how a scrape renders them (one process or many).

With `serve --workers N` every worker process writes its samples to files under
PROMETHEUS_MULTIPROC_DIR (set by the CLI before any worker starts) and whichever process answers
a scrape merges them all: counters and histograms add up, gauges of connections add up over live
processes, and per-process facts (memory, CPU) carry a `pid` label.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import REGISTRY, Collector

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
MESSAGES_SENT = Counter(
    "messages_sent", "Messages stored (once per client_msg_id), by sender.", ["sender"]
)
SOCKETIO_CONNECTIONS = Gauge(
    "socketio_connections",
    "Open Socket.IO connections, by namespace.",
    ["namespace"],
    multiprocess_mode="livesum",
)
JOBS_ENQUEUED = Counter(
    "jobs_enqueued", "Jobs enqueued (counted when their transaction commits), by task.", ["task"]
)
JOB_RUNS = Counter("job_runs", "Job runs, by task (each retry is a run).", ["task"])
JOB_FAILURES = Counter("job_failures", "Job runs that raised, by task.", ["task"])
JOB_DURATION = Histogram(
    "job_duration_seconds",
    "Time a job run took, by task.",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
DB_POOL_IN_USE = Gauge(
    "db_pool_connections_in_use",
    "Database connections checked out of the pool.",
    multiprocess_mode="livesum",
)
DB_POOL_WAITING = Gauge(
    "db_pool_waiting",
    "Callers waiting for a database connection (the pool is exhausted).",
    multiprocess_mode="livesum",
)
REDIS_ERRORS = Counter(
    "redis_errors", "Redis operations that failed to connect or timed out, by client.", ["client"]
)
RATE_LIMIT_REFUSALS = Counter(
    "rate_limit_refusals", "Requests refused by a rate limit, by limit.", ["limit"]
)
EVENTS_STORED = Counter("events_stored", "Tracked events committed (replyhq.analytics).")
EVENT_FLUSH_SIZE = Histogram(
    "event_flush_events",
    "Events written by one flush of an app's event buffer (one INSERT statement).",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000),
)
_FLUSH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
EVENT_FLUSH_SECONDS = Histogram(
    "event_flush_seconds",
    "One flush's statement: from sending it to its commit (one round trip).",
    buckets=_FLUSH_BUCKETS,
)
EVENT_QUEUE_SECONDS = Histogram(
    "event_queue_seconds",
    "How long a request's events waited in the app's buffer before their flush was sent "
    "(EVENT_FLUSH_DELAY_MS, and the flushes ahead of it).",
    buckets=_FLUSH_BUCKETS,
)

# Series that exist from the start, so dashboards show 0 rather than "no data".
for _sender in ("user", "agent", "system"):
    MESSAGES_SENT.labels(_sender)
for _namespace in ("/", "/admin"):
    SOCKETIO_CONNECTIONS.labels(_namespace)
for _client in ("app", "ratelimit"):
    REDIS_ERRORS.labels(_client)
for _limit in (
    "auth-failures",
    "login-account",
    "login-address",
    "login-device",
    "refresh-failures",
    "invite-failures",
    "reset-failures",
    "setup",
    "v1",
    "v1-ip",
):
    RATE_LIMIT_REFUSALS.labels(_limit)

# Computed from the database at scrape time (the same value whichever process answers).
JOBS_QUEUE_DEPTH = "jobs_queue_depth"


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get(
        "prometheus_multiproc_dir"  # noqa: SIM112 (the lower-case name prometheus_client accepts)
    )


# --- per-process facts in multi-process mode ----------------------------------------------------

_process_gauges: dict[str, Gauge] = {}


def refresh_process_metrics() -> None:
    """Copy this process' memory, CPU and file-descriptor figures into multi-process gauges
    (labelled by pid). Without a multi-process directory, the default collectors do it."""
    if multiprocess_dir() is None:
        return
    for family in ProcessCollector(registry=None).collect():
        for sample in family.samples:
            gauge = _process_gauges.get(sample.name)
            if gauge is None:
                gauge = Gauge(
                    sample.name,
                    family.documentation,
                    registry=None,
                    multiprocess_mode="livemax" if "start_time" in sample.name else "liveall",
                )
                _process_gauges[sample.name] = gauge
            gauge.set(sample.value)


async def keep_process_metrics(every: float = 5.0) -> None:
    """Background task of each server process; marks the process gone when cancelled."""
    try:
        while True:
            refresh_process_metrics()
            await asyncio.sleep(every)
    finally:
        if multiprocess_dir() is not None:
            with contextlib.suppress(Exception):
                mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


# --- rendering -----------------------------------------------------------------------------------


class QueueDepth(Collector):
    """`jobs_queue_depth{queue,status}` from figures read just before the scrape."""

    def __init__(self, depth: Iterable[tuple[str, str, int]]) -> None:
        self.depth = list(depth)

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            JOBS_QUEUE_DEPTH,
            "Jobs in the queue, by queue and status (todo, doing, failed = dead).",
            labels=["queue", "status"],
        )
        for queue, status, count in self.depth:
            family.add_metric([queue, status], count)
        yield family


def render(*extra: Collector) -> bytes:
    """The Prometheus text exposition of this process, or of all processes sharing the dir."""
    if multiprocess_dir() is not None:
        refresh_process_metrics()
        registry: CollectorRegistry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        PlatformCollector(registry=registry)
        output = generate_latest(registry)
    else:
        output = generate_latest(REGISTRY)
    if extra:
        more = CollectorRegistry(auto_describe=False)
        for collector in extra:
            more.register(collector)
        output += generate_latest(more)
    return output


def serve_metrics(host: str, port: int) -> None:
    """/metrics of a process that serves no HTTP of its own (`replyhq worker`), in a thread."""
    from prometheus_client import start_http_server

    if multiprocess_dir() is not None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        start_http_server(port, host, registry=registry)
    else:
        start_http_server(port, host)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    label = method if method in HTTP_METHODS else "OTHER"
    HTTP_REQUEST_DURATION.labels(label, route, str(status)).observe(seconds)


def count_message_sent(session: AsyncSession, sender: str) -> None:
    """Count a stored message once its transaction commits (never for a rolled-back one)."""
    from replyhq.db.session import on_commit

    async def count() -> None:
        MESSAGES_SENT.labels(sender).inc()

    on_commit(session, count)
