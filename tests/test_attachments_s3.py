"""Attachments on S3-compatible object storage: the real boto3 client against moto's S3 server
(a local fake speaking the S3 protocol over HTTP). Uploads land in the bucket (a thumbnail
beside each image), downloads stream back through the signed route, and a refused upload leaves
no object behind; a deleted app's objects leave the bucket."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from moto.server import ThreadedMotoServer
from sqlalchemy import text

from tests.attachment_support import image_size, pdf, png
from tests.conftest import (
    MakeTenant,
    Servers,
    free_port,
    identify,
    make_settings,
    start_conversation,
)
from tests.conftest import Tenant as _Tenant
from tests.staff import secret

BUCKET = "replyhq-attachments"
MB = 1024 * 1024
CREDENTIALS = {"aws_access_key_id": "test-key", "aws_secret_access_key": "test-secret"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **CREDENTIALS).create_bucket(
        Bucket=BUCKET
    )
    yield endpoint
    server.stop()


def _bucket(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **CREDENTIALS)


def _keys(endpoint: str) -> list[str]:
    listed = _bucket(endpoint).list_objects_v2(Bucket=BUCKET)
    return sorted(o["Key"] for o in listed.get("Contents", []))


@pytest.fixture(scope="module")
async def s3_app(servers: Servers, s3_endpoint: str) -> AsyncIterator[FastAPI]:
    from replyhq.app import create_app

    settings = make_settings(
        servers,
        attachment_storage="s3",
        attachment_s3_bucket=BUCKET,
        attachment_s3_endpoint_url=s3_endpoint,
        attachment_s3_region="us-east-1",
        attachment_s3_access_key_id=CREDENTIALS["aws_access_key_id"],
        attachment_s3_secret_access_key=CREDENTIALS["aws_secret_access_key"],
    )
    app = create_app(settings)
    async with LifespanManager(app):
        yield app


@pytest.fixture(scope="module")
async def s3_client(s3_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=s3_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_uploads_and_downloads_go_through_s3(
    s3_client: httpx.AsyncClient, s3_endpoint: str, tenant: _Tenant
) -> None:
    client = s3_client
    await identify(client, tenant, "ann")
    cid = (await start_conversation(client, tenant, "ann"))["id"]
    before = _keys(s3_endpoint)

    picture = png(1200, 900)
    up = await client.post(
        f"/v1/conversations/{cid}/attachments",
        params={"filename": "photo.png"},
        headers=tenant.sdk("ann"),
        content=picture,
    )
    assert up.status_code == 201, up.text
    attachment = up.json()
    prefix = f"{tenant.id}/{attachment['id']}"
    assert sorted(set(_keys(s3_endpoint)) - set(before)) == [
        f"{prefix}/original",
        f"{prefix}/thumbnail",
    ]
    stored = _bucket(s3_endpoint).get_object(Bucket=BUCKET, Key=f"{prefix}/original")
    assert stored["ContentType"] == "image/png" and stored["Body"].read() == picture

    # A 9 MB file goes up in parts and comes back whole.
    document = pdf(9 * MB)
    agent_up = await client.post(
        f"/admin/api/conversations/{cid}/attachments",
        params={"filename": "manual.pdf"},
        headers=secret(tenant),
        content=document,
    )
    assert agent_up.status_code == 201, agent_up.text
    sent = await client.post(
        f"/admin/api/conversations/{cid}/messages",
        headers=secret(tenant),
        json={"body": "manual", "client_msg_id": "m", "attachment_ids": [agent_up.json()["id"]]},
    )
    assert sent.status_code == 201, sent.text
    (file,) = sent.json()["attachments"]
    download = await client.get(file["url"])
    assert download.status_code == 200 and download.content == document
    assert download.headers["content-length"] == str(len(document))
    thumb = await client.get(attachment["thumbnail_url"])
    assert thumb.status_code == 200 and image_size(thumb.content) == (320, 240)

    # Refused uploads leave nothing in the bucket.
    keys = _keys(s3_endpoint)
    bad = await client.post(
        f"/v1/conversations/{cid}/attachments",
        headers=tenant.sdk("ann"),
        content=b"MZ" + b"\x00" * 9000,
    )
    assert bad.status_code == 400 and bad.json()["code"] == "UNSUPPORTED_ATTACHMENT_TYPE"

    async def too_big() -> AsyncIterator[bytes]:
        yield b"%PDF-1.4\n"
        for _ in range(11):
            yield b"0" * MB

    large = await client.post(
        f"/v1/conversations/{cid}/attachments", headers=tenant.sdk("ann"), content=too_big()
    )
    assert large.status_code == 413
    assert _keys(s3_endpoint) == keys


async def test_a_deleted_apps_objects_leave_the_bucket(
    s3_app: FastAPI, s3_client: httpx.AsyncClient, s3_endpoint: str, make_tenant: MakeTenant
) -> None:
    from replyhq.attachments.tasks import purge_deleted
    from replyhq.jobs.registry import JobRun

    runtime = s3_app.state.runtime
    tenant, other = await make_tenant("Leaving"), await make_tenant("Staying")
    for app in (tenant, other):
        await identify(s3_client, app, "ann")
        cid = (await start_conversation(s3_client, app, "ann"))["id"]
        for data in (png(60, 40), pdf()):
            up = await s3_client.post(
                f"/v1/conversations/{cid}/attachments",
                headers=app.sdk("ann"),
                content=data,
            )
            assert up.status_code == 201, up.text
    run = JobRun(1, "attachments.purge", 1, runtime)
    await purge_deleted.func(run)  # whatever earlier tests queued

    def of(app: _Tenant) -> list[str]:
        return [k for k in _keys(s3_endpoint) if k.startswith(f"{app.id}/")]

    assert len(of(tenant)) == len(of(other)) == 3  # two originals and a thumbnail each
    async with runtime.db.system_session() as session:
        await session.execute(text("DELETE FROM apps WHERE id = :id"), {"id": tenant.id})
    assert len(of(tenant)) == 3  # not in the deleting transaction: by the job
    await purge_deleted.func(run)
    assert of(tenant) == [] and len(of(other)) == 3
