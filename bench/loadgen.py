"""A small HTTP load generator, run in its own process: `python -m bench.loadgen < spec.json`.

The spec (JSON on stdin):

    {"base_url": "http://127.0.0.1:8000", "duration": 10, "warmup": 2,
     "interval": null,            # seconds between one client's requests; null: back to back
     "expect": 201,
     "clients": [{"method": "POST", "path": "/v1/...", "headers": {...},
                  "json": {...}, "fresh_client_msg_id": true}, ...]}

Every client is one coroutine with its own keep-alive connection, sending its request again as
soon as the answer arrives (closed loop) or every `interval` seconds (paced; then latency counts
from the moment the request was due, so a slow server cannot hide its queue: no coordinated
omission). Answers other than `expect`, and transport errors, are errors. Counted are the
answers that arrive between the end of the warm-up and the end of the run, so that throughput is
the server's rate even when a request waits longer than the run lasts; requests still unanswered
`grace` seconds after the end are abandoned and counted as unfinished. Prints one JSON object with
the figures on stdout.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import resource
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)

    def error(self, what: str) -> None:
        self.errors += 1
        self.statuses[what] = self.statuses.get(what, 0) + 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what)


async def client(
    session: aiohttp.ClientSession,
    spec: dict[str, Any],
    target: dict[str, Any],
    tally: Tally,
    counting_from: float,
    stop_at: float,
) -> None:
    url = spec["base_url"] + target["path"]
    interval: float | None = spec.get("interval")
    due = time.perf_counter()
    if interval:
        due += random.uniform(0, interval)  # spread the clients over one interval
    while True:
        if interval:
            if due >= stop_at:
                return
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        started = due if interval else time.perf_counter()
        if started >= stop_at:
            return
        body = target.get("json")
        if body is not None and target.get("fresh_client_msg_id"):
            body = {**body, "client_msg_id": uuid.uuid4().hex}
        try:
            async with session.request(
                target.get("method", "GET"), url, headers=target.get("headers"), json=body
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            status = None
            failure = f"{type(exc).__name__}: {exc}"[:200]
        finished = time.perf_counter()
        if counting_from <= finished < stop_at:
            if status == spec["expect"]:
                tally.latencies.append(finished - started)
                key = str(status)
                tally.statuses[key] = tally.statuses.get(key, 0) + 1
            else:
                tally.error(str(status) if status is not None else failure)
        if interval:
            due += interval


def percentile(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(len(ordered) * q / 100) - 1))]


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    clients = spec["clients"]
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=spec.get("timeout", 30))
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        began = time.perf_counter()
        counting_from = began + spec["warmup"]
        stop_at = counting_from + spec["duration"]
        tasks = [
            asyncio.create_task(client(session, spec, t, tally, counting_from, stop_at))
            for t in clients
        ]
        # Requests still unanswered a little after the end are abandoned, not waited for: the
        # run stays bounded whatever the server does (they are counted as unfinished).
        grace = spec.get("grace", 2.0)
        _, pending = await asyncio.wait(tasks, timeout=stop_at + grace - time.perf_counter())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        ended = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage.ru_utime - usage_before.ru_utime) + (usage.ru_stime - usage_before.ru_stime)
    window = spec["duration"]
    return {
        "clients": len(clients),
        "requests": len(tally.latencies),
        "errors": tally.errors,
        "unfinished": len(pending),
        "statuses": tally.statuses,
        "error_samples": tally.error_samples,
        "throughput": len(tally.latencies) / window,
        "p50": percentile(tally.latencies, 50),
        "p90": percentile(tally.latencies, 90),
        "p99": percentile(tally.latencies, 99),
        "max": max(tally.latencies, default=None),
        "wall_seconds": ended - began,
        "cpu_seconds": cpu,
    }


if __name__ == "__main__":
    specification = json.load(sys.stdin)
    try:
        import uvloop

        result = uvloop.run(main(specification))
    except ImportError:
        result = asyncio.run(main(specification))
    json.dump(result, sys.stdout)
