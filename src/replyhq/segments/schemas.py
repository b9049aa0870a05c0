"""Segments as the admin API reads and writes them. A query is validated by replyhq.segments.dsl
(which points at the bad node), so it travels here as a plain JSON object."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from replyhq.users.schemas import EndUserOut

SAMPLE_SIZE = 20

Query = dict[str, Any]
QUERY_DOC = (
    "A segment query: {operator: AND|OR, conditions: [...]}, see docs/analytics.md. Validated "
    "node by node: a 400 INVALID_SEGMENT names the bad node's path."
)


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: Query = Field(description=QUERY_DOC)


class PreviewOut(BaseModel):
    count: int = Field(description="How many end users the query selects now.")
    sample: list[EndUserOut] = Field(description=f"Up to {SAMPLE_SIZE} of them, newest first.")


class SegmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    query: Query = Field(description=QUERY_DOC)


class SegmentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=100)
    query: Query | None = Field(None, description=QUERY_DOC)


class SegmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str
    query: Query
    created_at: datetime
    updated_at: datetime


class SegmentList(BaseModel):
    items: list[SegmentOut]


class UserPage(BaseModel):
    items: list[EndUserOut]
    next_cursor: str | None = Field(description="The next page's `cursor`; null at the end.")
