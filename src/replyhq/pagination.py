"""Opaque keyset cursors: (last_activity_at, id) of the last item of a page."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

from replyhq.errors import BadRequest


def encode_cursor(at: datetime, item_id: uuid.UUID) -> str:
    raw = json.dumps([at.isoformat(), str(item_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, item_id = json.loads(raw)
        return datetime.fromisoformat(at), uuid.UUID(item_id)
    except (ValueError, TypeError, binascii.Error):
        raise BadRequest("The cursor is not valid.", code="INVALID_CURSOR") from None
