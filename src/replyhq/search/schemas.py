"""Search answers: messages with highlighted snippets, end users."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class SearchUser(BaseModel):
    id: uuid.UUID
    user_id: str | None
    name: str | None
    email: str | None


class MessageHit(BaseModel):
    """A message that matches, with its conversation."""

    conversation_id: uuid.UUID
    message_id: uuid.UUID
    seq: int
    sender: Literal["user", "agent", "system"]
    author_name: str | None
    created_at: datetime
    rank: float = Field(description="Higher is a better match (ts_rank_cd).")
    snippet_html: str = Field(
        description="The matching passage, HTML-escaped, matched words in <mark>…</mark>."
    )
    status: Literal["open", "closed"]
    assignee_id: uuid.UUID | None
    user: SearchUser


class MessageHits(BaseModel):
    items: list[MessageHit]


class UserHits(BaseModel):
    items: list[SearchUser]
