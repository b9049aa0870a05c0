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
    """A message or a private note that matches, with its conversation."""

    kind: Literal["message", "note"] = Field(
        description="A message, or a private note (staff only: GET /conversations/{id}/items)."
    )
    conversation_id: uuid.UUID
    message_id: uuid.UUID = Field(description="The message's id, or the note's.")
    seq: int = Field(description="The message's seq; for a note, the seq it follows (after_seq).")
    sender: Literal["user", "agent", "system"] = Field(description="A note's is 'agent'.")
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
