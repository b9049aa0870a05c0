"""An accepted event is never lost: a server killed (SIGKILL) while requests are in flight has
stored every event it answered 202 for, and each batch wholly or not at all."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import psycopg

from replyhq.runtime import Runtime
from tests.conftest import MakeTenant, Servers, start_server

SENDERS = 8


async def test_a_killed_server_loses_no_accepted_event(
    servers: Servers, tmp_path: Path, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("Durable")
    # A longer flush delay: more requests are waiting in the buffer when the kill lands.
    server = start_server(servers, tmp_path, EVENT_FLUSH_DELAY_MS="20")
    accepted: list[str] = []
    sent: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            for i in range(SENDERS):
                identified = await client.post(
                    "/v1/identify", headers=tenant.sdk(f"d{i}"), json={"platform": "web"}
                )
                assert identified.status_code == 200

            async def sender(i: int) -> None:
                n = 0
                while True:
                    batch = f"{i}-{n}"
                    n += 1
                    events = [
                        {"name": "tick", "properties": {"batch": batch, "k": k}} for k in range(5)
                    ]
                    sent.append(batch)
                    try:
                        response = await client.post(
                            "/v1/events", headers=tenant.sdk(f"d{i}"), json={"events": events}
                        )
                    except httpx.HTTPError:
                        return  # the server is gone: this batch got no answer
                    assert response.status_code == 202, response.text
                    accepted.append(batch)

            tasks = [asyncio.create_task(sender(i)) for i in range(SENDERS)]
            while len(accepted) < 200:
                await asyncio.sleep(0.01)
            server.process.send_signal(signal.SIGKILL)
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
    finally:
        server.stop()

    with psycopg.connect(servers.database_url) as owner:
        rows = owner.execute(
            "SELECT properties->>'batch', count(*) FROM events WHERE app_id = %s GROUP BY 1",
            (tenant.id,),
        ).fetchall()
    stored = dict(rows)
    missing = [b for b in accepted if stored.get(b) != 5]
    assert missing == []
    assert all(count == 5 for count in stored.values())  # no batch half stored
    assert set(stored) <= set(sent)
    assert len(sent) > len(accepted)  # some were in flight when the process died
