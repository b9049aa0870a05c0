"""Errors reach Sentry (here: a local server speaking Sentry's envelope protocol) with environment,
release and the app they concern, and without any secret of the failing request."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sentry_sdk
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from replyhq import __version__
from replyhq.app import create_app
from replyhq.jobs import enqueue
from replyhq.jobs.worker import JobWorker
from replyhq.runtime import Runtime
from replyhq.web.deps import SDKApp
from tests import job_tasks
from tests.conftest import Servers, Tenant, make_settings
from tests.jobs_support import lines, wait_for
from tests.sentry_support import SentryServer

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzdGFmZiJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


@pytest.fixture
async def reporting_app(servers: Servers, sentry_server: SentryServer) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        servers,
        sentry_dsn=sentry_server.dsn,
        sentry_environment="staging-test",
        sentry_traces_sample_rate=0.0,
    )
    app = create_app(settings)

    @app.post("/test-only/explode")
    async def explode(caller: SDKApp, payload: dict[str, Any]) -> None:
        api_key = payload["api_key"]  # a local variable Sentry would capture with the frame
        raise RuntimeError(f"upstream refused key {api_key} for device {caller.device_id}")

    async with LifespanManager(app):
        yield app


async def test_an_error_reaches_sentry_without_secrets(
    reporting_app: FastAPI,
    sentry_server: SentryServer,
    make_tenant: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tenant: Tenant = await make_tenant("Sentry tenant")
    transport = httpx.ASGITransport(app=reporting_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        identified = await client.post(
            "/v1/identify", headers=tenant.sdk("dev-1"), json={"platform": "ios"}
        )
        assert identified.status_code == 200
        response = await client.post(
            "/test-only/explode",
            headers={
                **tenant.sdk("dev-1"),
                "Authorization": f"Bearer {JWT}",
                "Cookie": "rhq_session=cookie-secret-value",
                "X-Request-Id": "req-sentry-1",
            },
            json={"api_key": tenant.secret_key, "password": "hunter2-password"},
        )
    assert response.status_code == 500
    assert response.json() == {
        "error": "Something went wrong on our side.",
        "code": "INTERNAL_ERROR",
    }
    sentry_sdk.flush(timeout=5)

    events = sentry_server.events()
    assert events, "no event reached the Sentry server"
    errors = [
        e
        for e in events
        if any(x["type"] == "RuntimeError" for x in e.get("exception", {}).get("values", []))
    ]
    assert len(errors) == 1, errors  # one fault, one event
    assert len(events) == 1, events  # and no second, message-only event from its log line
    event = errors[0]
    assert event["environment"] == "staging-test"
    assert event["release"] == f"replyhq@{__version__}"
    assert event["tags"]["app_id"] == str(tenant.id)
    assert event["tags"]["request_id"] == "req-sentry-1"
    message = event["exception"]["values"][-1]["value"]
    assert message == "upstream refused key [REDACTED] for device dev-1"

    everything = b"\n".join(sentry_server.bodies).decode()
    for secret in (
        tenant.sdk_key,
        tenant.secret_key,
        JWT,
        "cookie-secret-value",
        "hunter2-password",
    ):
        assert secret not in everything, secret
    assert uuid.UUID(event["event_id"])

    # And the one log line about it carries the request and the app, and no secret either.
    output = capsys.readouterr().out
    faults = [json.loads(line) for line in output.splitlines() if '"unhandled_error"' in line]
    assert len(faults) == 1
    assert faults[0]["request_id"] == "req-sentry-1"
    assert faults[0]["app_id"] == str(tenant.id)
    assert tenant.secret_key not in output


async def test_a_failing_job_reaches_sentry_tagged_and_redacted(
    reporting_app: FastAPI,
    sentry_server: SentryServer,
    runtime: Runtime,
    job_worker: JobWorker,
    job_queue: str,
    tmp_path: Path,
) -> None:
    key = "rhq_sk_" + "j" * 32
    path = tmp_path / "attempts"
    async with runtime.db.system_session() as session:
        job_id = await enqueue(
            session,
            job_tasks.flaky,
            path=str(path),
            fixed=str(tmp_path / "never"),
            api_key=key,
            queue=job_queue,
        )
    await wait_for(lambda: len(lines(path)) == 3)
    await asyncio.sleep(0.3)
    sentry_sdk.flush(timeout=5)
    events = [e for e in sentry_server.events() if e.get("tags", {}).get("job_id") == str(job_id)]
    assert len(events) == 3  # each failed run
    assert {e["tags"]["attempt"] for e in events} == {"1", "2", "3"}
    assert all(e["tags"]["task"] == "test.flaky" for e in events)
    assert events[0]["exception"]["values"][-1]["value"].endswith(
        "failed calling out with [REDACTED]"
    )
    assert key not in b"\n".join(sentry_server.bodies).decode()
