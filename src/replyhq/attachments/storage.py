"""Where attachments' bytes live: a local directory (the default, under DATA_DIR) or an
S3-compatible object storage (boto3). Both take a finished upload from a spool file on disk, so
neither ever holds a whole file in memory, and both stream a download in chunks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from starlette.responses import FileResponse, Response, StreamingResponse

from replyhq.errors import NotFound
from replyhq.settings import Settings

CHUNK = 64 * 1024
RESOURCE = "attachments.storage"  # its key in Runtime.resources


def _missing() -> NotFound:
    return NotFound("No such attachment.", code="ATTACHMENT_NOT_FOUND")


class Storage(Protocol):
    spool_dir: Path

    async def put(self, key: str, path: Path, content_type: str) -> None:
        """Store the file at `path` under `key` (the spool file is consumed)."""

    async def response(
        self, key: str, content_type: str, headers: Mapping[str, str]
    ) -> Response: ...

    async def delete(self, keys: list[str]) -> None: ...

    async def aclose(self) -> None: ...


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.spool_dir = self.root / ".uploads"  # same file system: a put is a rename
        self.spool_dir.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise ValueError(f"bad storage key {key!r}")
        return path

    async def put(self, key: str, path: Path, content_type: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)

    async def response(self, key: str, content_type: str, headers: Mapping[str, str]) -> Response:
        path = self._path(key)
        if not path.is_file():
            raise _missing()
        return FileResponse(path, media_type=content_type, headers=dict(headers))

    async def delete(self, keys: list[str]) -> None:
        for key in keys:
            path = self._path(key)
            path.unlink(missing_ok=True)
            # The attachment's folder, then the app's, once empty (an app deleted leaves none).
            for folder in (path.parent, path.parent.parent):
                if folder == self.root:
                    break
                with contextlib.suppress(OSError):
                    folder.rmdir()

    async def aclose(self) -> None:
        return None


class S3Storage:
    """boto3's client is blocking (and thread-safe): each call runs in a worker thread."""

    def __init__(self, settings: Settings) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        if not settings.attachment_s3_bucket:
            raise RuntimeError("ATTACHMENT_STORAGE=s3 needs ATTACHMENT_S3_BUCKET")
        self.bucket = settings.attachment_s3_bucket
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=settings.attachment_s3_endpoint_url,
            region_name=settings.attachment_s3_region,
            aws_access_key_id=settings.attachment_s3_access_key_id,
            aws_secret_access_key=settings.attachment_s3_secret_access_key,
            config=Config(
                signature_version="s3v4",
                retries={"max_attempts": 3, "mode": "standard"},
                # An S3-compatible endpoint (MinIO, a local fake) serves buckets by path.
                s3={"addressing_style": "path" if settings.attachment_s3_endpoint_url else "auto"},
            ),
        )
        # Parts of 8 MB read from the spool file, two at a time: bounded memory per upload.
        self.transfer = TransferConfig(
            multipart_threshold=8 * 1024 * 1024,
            multipart_chunksize=8 * 1024 * 1024,
            max_concurrency=2,
        )
        self.spool_dir = Path(tempfile.gettempdir()) / "replyhq-uploads"
        self.spool_dir.mkdir(parents=True, exist_ok=True)

    async def put(self, key: str, path: Path, content_type: str) -> None:
        try:
            await asyncio.to_thread(
                self.client.upload_file,
                str(path),
                self.bucket,
                key,
                ExtraArgs={"ContentType": content_type},
                Config=self.transfer,
            )
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)

    async def response(self, key: str, content_type: str, headers: Mapping[str, str]) -> Response:
        from botocore.exceptions import ClientError

        try:
            found = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise _missing() from None
            raise
        body = found["Body"]

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while chunk := await asyncio.to_thread(body.read, CHUNK):
                    yield chunk
            finally:
                body.close()

        sized = {**headers, "Content-Length": str(found["ContentLength"])}
        return StreamingResponse(chunks(), media_type=content_type, headers=sized)

    async def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects' most per request
            objects = {"Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True}
            done = await asyncio.to_thread(
                self.client.delete_objects, Bucket=self.bucket, Delete=objects
            )
            if done.get("Errors"):  # a missing key is no error: these are real failures
                first = done["Errors"][0]
                raise RuntimeError(f"S3 kept {len(done['Errors'])} objects: {first}")

    async def aclose(self) -> None:
        self.client.close()


def local_root(settings: Settings) -> Path:
    return settings.attachment_dir or settings.data_dir / "attachments"


def build(settings: Settings) -> Storage:
    if settings.attachment_storage == "s3":
        return S3Storage(settings)
    return LocalStorage(local_root(settings))


def storage_of(resources: dict[str, Any], settings: Settings) -> Storage:
    """The process' storage, built on first use and closed with the runtime."""
    storage: Storage | None = resources.get(RESOURCE)
    if storage is None:
        storage = resources[RESOURCE] = build(settings)
    return storage


def remove_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
