"""Event-triggered messages as the admin API reads and writes them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from replyhq.analytics.schemas import EventName
from replyhq.campaigns.schemas import Outcomes
from replyhq.messaging.schemas import Body
from replyhq.segments.schemas import QUERY_DOC


class TriggeredMessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    event_name: EventName = Field(description="The tracked event that sends it.")
    condition: dict[str, Any] | None = Field(
        None,
        description="Optional: only people this segment query selects when the event arrives. "
        + QUERY_DOC,
    )
    sender_id: uuid.UUID = Field(description="The active team member it is sent as.")
    body: Body


class TriggeredMessageOut(Outcomes):
    id: uuid.UUID
    name: str
    event_name: str
    condition: dict[str, Any] | None
    sender_id: uuid.UUID
    sender_name: str | None
    body: str
    status: str = Field(description="active or stopped.")
    created_at: datetime
    stopped_at: datetime | None


class TriggeredMessageList(BaseModel):
    items: list[TriggeredMessageOut]
