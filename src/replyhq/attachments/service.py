"""Attachments: an upload streamed to a spool file (its size limit and type checked while it
arrives), checked and thumbnailed, moved to the storage backend, then recorded; a message carries
it once sent (`attach`); downloads go through signed URLs (signing.py) checked against the row.

Nothing is kept of a refused upload: no row, no stored object, no spool file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import unicodedata
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import filetype
import structlog
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.attachments import signing
from replyhq.attachments.models import Attachment, AttachmentDeletion
from replyhq.attachments.schemas import AttachmentOut
from replyhq.attachments.storage import Storage
from replyhq.db import Database
from replyhq.errors import AppError, BadRequest, NotFound, PayloadTooLarge
from replyhq.settings import Settings

log = structlog.get_logger(__name__)

SNIFF_BYTES = 8192  # enough for every signature `filetype` knows, zip-based documents included
MAX_PIXELS = 50_000_000  # an image's pixels decoded for its thumbnail; past this it is refused
THUMBNAIL_FORMAT = "WEBP"  # small, with transparency; every browser shows it
THUMBNAIL_FORMAT_TYPE = "image/webp"
# Pillow's format for each image type we take (anything else is stored as a plain file).
IMAGE_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}
# Images are decoded two at a time per process: a decoded 10 MB PNG can take far more memory
# than its file.
_DECODING = asyncio.Semaphore(2)


class AttachmentTooLarge(PayloadTooLarge):
    code = "ATTACHMENT_TOO_LARGE"


class UnsupportedType(BadRequest):
    code = "UNSUPPORTED_ATTACHMENT_TYPE"


@dataclass(frozen=True)
class Uploader:
    kind: Literal["user", "agent"]
    id: uuid.UUID


def allowed_types(settings: Settings) -> set[str]:
    return {t.strip().lower() for t in settings.attachment_types.split(",") if t.strip()}


def clean_filename(name: str | None) -> str:
    """A display name: no folders, no control characters, at most 255 characters."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip(" .")
    return name[:255] or "file"


def sniff(head: bytes, complete: bool) -> str | None:
    """The type of a file from its first bytes (`complete`: they are the whole file)."""
    found = filetype.guess(head)
    if found is not None:
        return str(found.mime)
    if head and b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as error:  # a character cut at the end of the head is fine
            if complete or error.start < len(head) - 3:
                return None
        return "text/plain"
    return None


def out(row: Attachment, expires: int | None = None) -> AttachmentOut:
    """The attachment with fresh signed URLs (or ones that stop at `expires`)."""
    expires = expires or signing.expiry()
    thumbnail = signing.url(row.app_id, row.id, "thumbnail", expires) if row.has_thumbnail else None
    return AttachmentOut(
        id=row.id,
        conversation_id=row.conversation_id,
        message_id=row.message_id,
        filename=row.filename,
        content_type=row.content_type,
        size=row.size,
        kind=row.kind,
        width=row.width,
        height=row.height,
        url=signing.url(row.app_id, row.id, "original", expires),
        thumbnail_url=thumbnail,
        urls_expire_at=signing.expiry_time(expires),
        created_at=row.created_at,
    )


# --- upload ---------------------------------------------------------------------------------


def _too_large(settings: Settings) -> AttachmentTooLarge:
    limit = settings.attachment_max_bytes
    return AttachmentTooLarge(f"An attachment may be at most {limit} bytes.", limit=limit)


def check_declared_size(settings: Settings, content_length: str | None) -> None:
    """413 before reading anything when the declared size is already over the limit."""
    if (
        content_length is not None
        and content_length.isdigit()
        and int(content_length) > settings.attachment_max_bytes
    ):
        raise _too_large(settings)


def _unsupported(settings: Settings, found: str | None) -> UnsupportedType:
    what = f"a {found} file" if found else "a file of an unknown type"
    return UnsupportedType(
        f"This is {what}; attachments may be {', '.join(sorted(allowed_types(settings)))}.",
        details=[{"field": "file", "reason": f"type {found or 'unknown'} is not allowed"}],
    )


async def _spool(chunks: AsyncIterator[bytes], path: Path, settings: Settings) -> tuple[int, str]:
    """Write the upload to `path` chunk by chunk; (size, type). Refuses as soon as it is too
    large or its first bytes show a type that is not allowed."""
    allowed = allowed_types(settings)
    size = 0
    head = b""
    content_type: str | None = None
    with path.open("wb") as spool:
        async for chunk in chunks:
            if not chunk:
                continue
            size += len(chunk)
            if size > settings.attachment_max_bytes:
                raise _too_large(settings)
            if content_type is None:
                head += chunk[: SNIFF_BYTES - len(head)]
                if len(head) >= SNIFF_BYTES:
                    content_type = sniff(head, complete=False)
                    if content_type not in allowed:
                        raise _unsupported(settings, content_type)
            spool.write(chunk)
    if size == 0:
        raise BadRequest(
            "The attachment is empty.",
            code="EMPTY_ATTACHMENT",
            details=[{"field": "file", "reason": "no bytes"}],
        )
    if content_type is None:
        content_type = sniff(head, complete=True)
        if content_type not in allowed:
            raise _unsupported(settings, content_type)
    assert content_type is not None
    return size, content_type


def _thumbnail(source: Path, target: Path, image_format: str, px: int) -> tuple[int, int]:
    """Check that `source` is a whole image of `image_format` and write its thumbnail to
    `target`; its (width, height) as shown (EXIF orientation applied)."""
    from PIL import Image, ImageOps

    with Image.open(source, formats=[image_format]) as image:
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise BadRequest(
                f"An image may have at most {MAX_PIXELS} pixels.", code="IMAGE_TOO_LARGE"
            )
        orientation = image.getexif().get(0x0112, 1)
        image.draft("RGB", (px, px))  # JPEG: decoded at a fraction of its size
        image.thumbnail((px, px))
        small = ImageOps.exif_transpose(image)
        if small.mode not in ("RGB", "RGBA"):
            small = small.convert("RGBA" if "transparency" in small.info else "RGB")
        small.save(target, THUMBNAIL_FORMAT, quality=80)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return width, height


async def _check_image(
    source: Path, target: Path, content_type: str, settings: Settings
) -> tuple[int, int]:
    async with _DECODING:
        try:
            return await asyncio.to_thread(
                _thumbnail,
                source,
                target,
                IMAGE_FORMATS[content_type],
                settings.attachment_thumbnail_px,
            )
        except AppError:
            raise
        except Exception as error:  # whatever Pillow finds wrong with it
            log.info("attachment_image_refused", error=type(error).__name__)
            raise BadRequest(
                "The image could not be read.",
                code="INVALID_IMAGE",
                details=[{"field": "file", "reason": "not a readable image"}],
            ) from None


async def upload(
    db: Database,
    storage: Storage,
    settings: Settings,
    app_id: uuid.UUID,
    conversation_id: uuid.UUID | None,
    uploader: Uploader,
    filename: str | None,
    chunks: AsyncIterator[bytes],
) -> AttachmentOut:
    """Store an upload for the conversation (whose access the caller has checked), or for the
    uploader's next one (None). No database connection is held while the bytes arrive."""
    attachment_id = uuid.uuid4()
    key = f"{app_id}/{attachment_id}"
    spool = storage.spool_dir / f"{attachment_id}.part"
    thumb = storage.spool_dir / f"{attachment_id}.thumb"
    stored: list[str] = []
    try:
        size, content_type = await _spool(chunks, spool, settings)
        width = height = None
        image = content_type in IMAGE_FORMATS
        if image:
            width, height = await _check_image(spool, thumb, content_type, settings)
            await storage.put(f"{key}/thumbnail", thumb, THUMBNAIL_FORMAT_TYPE)
            stored.append(f"{key}/thumbnail")
        await storage.put(key + "/original", spool, content_type)
        stored.append(key + "/original")
        async with db.tenant_session(app_id) as session:
            row = Attachment(
                id=attachment_id,
                app_id=app_id,
                conversation_id=conversation_id,
                uploader_type=uploader.kind,
                uploader_id=uploader.id,
                filename=clean_filename(filename),
                content_type=content_type,
                size=size,
                kind="image" if image else "file",
                width=width,
                height=height,
                has_thumbnail=image,
                storage_key=key,
            )
            session.add(row)
            await session.flush()
            await session.refresh(row)
            result = out(row)
    except BaseException:
        if stored:
            with contextlib.suppress(Exception):
                await asyncio.shield(storage.delete(stored))
        raise
    finally:
        for path in (spool, thumb):
            with contextlib.suppress(OSError):
                os.unlink(path)
    log.info("attachment_uploaded", attachment_id=str(attachment_id), size=size)
    return result


# --- messages -------------------------------------------------------------------------------


async def attach(
    session: AsyncSession,
    app_id: uuid.UUID,
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    attachment_ids: Sequence[uuid.UUID],
    uploader: Uploader,
) -> list[AttachmentOut]:
    """Give the uploads `attachment_ids` to a new message, in the given order. 400 (and the
    caller's transaction rolls back) unless each is an unsent upload of this uploader to this
    conversation or to none yet (which it then joins)."""
    wanted = list(dict.fromkeys(attachment_ids))
    rows = list(
        await session.scalars(
            update(Attachment)
            .where(
                Attachment.app_id == app_id,
                or_(
                    Attachment.conversation_id == conversation_id,
                    Attachment.conversation_id.is_(None),
                ),
                Attachment.id.in_(wanted),
                Attachment.message_id.is_(None),
                Attachment.uploader_type == uploader.kind,
                Attachment.uploader_id == uploader.id,
            )
            .values(message_id=message_id, conversation_id=conversation_id)
            .returning(Attachment)
        )
    )
    if len(rows) != len(wanted):
        found = {r.id for r in rows}
        missing = [str(i) for i in wanted if i not in found]
        raise BadRequest(
            "Each attachment must be your own upload to this conversation, not yet sent.",
            code="INVALID_ATTACHMENT",
            details=[
                {"field": "attachment_ids", "reason": f"unknown or not sendable: {i}"}
                for i in missing
            ],
        )
    order = {attachment_id: n for n, attachment_id in enumerate(wanted)}
    expires = signing.expiry()
    return [out(r, expires) for r in sorted(rows, key=lambda r: order[r.id])]


async def adopt_uploads(
    session: AsyncSession, app_id: uuid.UUID, *, from_user: uuid.UUID, to_user: uuid.UUID
) -> None:
    """A visitor who signs in keeps the uploads they had not sent yet (theirs to send now)."""
    await session.execute(
        update(Attachment)
        .where(
            Attachment.app_id == app_id,
            Attachment.message_id.is_(None),
            Attachment.uploader_type == "user",
            Attachment.uploader_id == from_user,
        )
        .values(uploader_id=to_user)
    )


async def of_messages(
    session: AsyncSession, app_id: uuid.UUID, message_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[AttachmentOut]]:
    """The attachments of these messages (one query), by message."""
    found: dict[uuid.UUID, list[AttachmentOut]] = {}
    if not message_ids:
        return found
    rows = await session.scalars(
        select(Attachment)
        .where(Attachment.app_id == app_id, Attachment.message_id.in_(list(message_ids)))
        .order_by(Attachment.created_at, Attachment.id)
    )
    expires = signing.expiry()
    for row in rows:
        assert row.message_id is not None
        found.setdefault(row.message_id, []).append(out(row, expires))
    return found


# --- reading --------------------------------------------------------------------------------


async def get(
    session: AsyncSession,
    app_id: uuid.UUID,
    attachment_id: uuid.UUID,
    *,
    end_user_id: uuid.UUID | None = None,
    uploader: Uploader | None = None,
) -> Attachment:
    """The attachment if the caller may see it, else 404. For an end user (`end_user_id`): one
    in their own conversation, sent, or their own upload (in no conversation yet, perhaps)."""
    from replyhq.messaging.models import Conversation

    stmt = select(Attachment).where(Attachment.app_id == app_id, Attachment.id == attachment_id)
    if end_user_id is not None:
        stmt = stmt.outerjoin(
            Conversation,
            (Conversation.id == Attachment.conversation_id)
            & (Conversation.app_id == Attachment.app_id),
        ).where(or_(Conversation.end_user_id == end_user_id, Attachment.conversation_id.is_(None)))
    row = await session.scalar(stmt)
    if row is None or (
        row.message_id is None
        and uploader is not None
        and (row.uploader_type, row.uploader_id) != (uploader.kind, uploader.id)
    ):
        raise NotFound("No such attachment.", code="ATTACHMENT_NOT_FOUND")
    return row


async def for_download(
    session: AsyncSession, app_id: uuid.UUID, attachment_id: uuid.UUID
) -> Attachment:
    row = await session.scalar(
        select(Attachment).where(Attachment.app_id == app_id, Attachment.id == attachment_id)
    )
    if row is None:
        raise NotFound("No such attachment.", code="ATTACHMENT_NOT_FOUND")
    return row


async def delete_unsent(db: Database, settings: Settings) -> int:
    """Delete uploads never sent in a message, older than ATTACHMENT_PENDING_HOURS (all apps:
    a housekeeping job's system session); their objects are queued for `purge_deleted`."""
    before = datetime.now(UTC) - timedelta(hours=settings.attachment_pending_hours)
    async with db.system_session() as session:
        deleted = await session.execute(
            delete(Attachment).where(
                Attachment.message_id.is_(None), Attachment.created_at < before
            )
        )
    return int(deleted.rowcount or 0)  # type: ignore[attr-defined]


PURGE_BATCH = 1000  # S3's DeleteObjects takes at most 1,000 keys


async def purge_deleted(db: Database, storage: Storage) -> int:
    """Remove from storage the objects of deleted attachments (queued by the table's delete
    trigger, migration 0130), a batch per transaction; how many. A batch the storage fails to
    delete stays queued (the transaction rolls back) for the job's next run."""
    purged = 0
    while True:
        async with db.system_session() as session:
            queued = (
                select(AttachmentDeletion.id)
                .order_by(AttachmentDeletion.id)
                .limit(PURGE_BATCH)
                .with_for_update(skip_locked=True)
            )
            keys = list(
                await session.scalars(
                    delete(AttachmentDeletion)
                    .where(AttachmentDeletion.id.in_(queued.scalar_subquery()))
                    .returning(AttachmentDeletion.key)
                )
            )
            await storage.delete(keys)
        purged += len(keys)
        if len(keys) < PURGE_BATCH:
            return purged
