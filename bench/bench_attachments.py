"""Attachments: upload throughput, and the server's memory while 10 end users each upload a
10 MB file at once (issue 19: a 10 MB upload must never be read into memory whole).

A real `replyhq serve` process (local storage under its DATA_DIR) takes the uploads over HTTP from
this process, whose client streams each body in 64 KB chunks. The server's resident memory (VmRSS
of its process tree) is sampled every 10 ms; the table gives its peak above the idle level
measured just before, beside what reading the bodies whole would add (10 x 10 MB). Rounds: one
upload at a time, 10 files at once, and 10 images of about 10 MB at once (each decoded for its
thumbnail, two at a time). The load average is printed with every figure: the machine is shared.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from bench import common

MB = 1024 * 1024
SIZE = 10 * MB
CONCURRENT = 10
SINGLE_ROUNDS = 5
CHUNK = 64 * 1024


def _pdf_body(size: int) -> bytes:
    head = b"%PDF-1.4\n"
    return head + os.urandom(size - len(head) - 6) + b"%%EOF\n"


def _png_body(target: int) -> bytes:
    """A PNG of random pixels (incompressible), just under `target` bytes."""
    import io

    from PIL import Image

    side = int((target / 3) ** 0.5) - 8
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


def _rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/status"):  # noqa: SIM115
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


class RssSampler:
    """The peak VmRSS of a process tree, sampled every 10 ms in a thread."""

    def __init__(self, root: int) -> None:
        self.pids = common._tree(root)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes(self.pids))
            time.sleep(0.01)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()


async def _stream(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), CHUNK):
        yield body[start : start + CHUNK]


async def _upload(
    client: httpx.AsyncClient, headers: dict[str, str], cid: str, body: bytes, name: str
) -> float:
    started = time.perf_counter()
    response = await client.post(
        f"/v1/conversations/{cid}/attachments",
        params={"filename": name},
        headers={
            **headers,
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(body)),
        },
        content=_stream(body),
    )
    if response.status_code != 201:
        raise RuntimeError(f"upload refused: {response.status_code} {response.text}")
    return time.perf_counter() - started


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}/{fifteen:.1f}"


async def _measure(server: common.Server, tenant: common.Tenant) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    files = [_pdf_body(SIZE) for _ in range(CONCURRENT)]
    images = [_png_body(SIZE) for _ in range(CONCURRENT)]
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
        people: list[tuple[dict[str, str], str]] = []
        for n in range(CONCURRENT):
            headers = tenant.headers(f"bench-{n}-{uuid.uuid4().hex[:6]}")
            identified = await client.post(
                "/v1/identify", headers=headers, json={"platform": "web", "name": f"U{n}"}
            )
            identified.raise_for_status()
            started = await client.post("/v1/conversations", headers=headers, json={})
            started.raise_for_status()
            people.append((headers, started.json()["id"]))
        # Warm-up: the first upload and the first thumbnail load what they need once.
        await _upload(client, *people[0], files[0], "warm.pdf")
        await _upload(client, *people[0], _png_body(MB), "warm.png")
        await asyncio.sleep(0.5)

        singles = [
            await _upload(client, *people[0], files[0], "one.pdf") for _ in range(SINGLE_ROUNDS)
        ]
        single = SIZE / MB / common.median(singles)
        rows.append(
            common.row(
                "attachments",
                "upload, one at a time",
                single,
                "MB/s",
                note=f"10 MB files, median of {SINGLE_ROUNDS}; {_load()}",
            )
        )

        for label, bodies, name in (("files", files, "f.pdf"), ("images", images, "i.png")):
            await asyncio.sleep(1.0)
            idle = _rss_bytes(common._tree(server.process.pid))
            started = time.perf_counter()
            with RssSampler(server.process.pid) as sampler:
                await asyncio.gather(
                    *(
                        _upload(client, headers, cid, body, name)
                        for (headers, cid), body in zip(people, bodies, strict=True)
                    )
                )
            elapsed = time.perf_counter() - started
            total = sum(len(b) for b in bodies) / MB
            growth = (sampler.peak - idle) / MB
            rows.append(
                common.row(
                    "attachments",
                    f"upload, {CONCURRENT} {label} at once",
                    total / elapsed,
                    "MB/s",
                    note=f"{total:.0f} MB in {elapsed:.2f} s; {_load()}",
                )
            )
            rows.append(
                common.row(
                    "attachments",
                    f"server peak RSS growth, {CONCURRENT} {label} of 10 MB at once",
                    growth,
                    "MB",
                    baseline=total,
                    ratio=growth / total,
                    goal="well under the bodies' total (not read whole)",
                    ok=growth < total / 2,
                    note=f"idle {idle / MB:.0f} MB, peak {sampler.peak / MB:.0f} MB; {_load()}",
                )
            )
    return rows


def run() -> list[dict[str, Any]]:
    services = common.services()
    with common.throwaway_database("attachments") as owner_url:
        server = common.start_server(
            owner_url, services.redis_url, common.redis_prefix("attachments")
        )
        try:
            db = common.database(owner_url)

            async def go() -> list[dict[str, Any]]:
                try:
                    tenant = await common.create_tenant(db, rounds=4)
                    return await _measure(server, tenant)
                finally:
                    await db.dispose()

            return list(common.run_async(go()))
        finally:
            server.stop()
