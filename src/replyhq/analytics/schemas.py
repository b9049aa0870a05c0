"""What the SDK sends to /v1/events and the socket's `track`, and what the dashboard reads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from replyhq.analytics.models import MAX_EVENT_NAME
from replyhq.users.schemas import Attributes

MAX_EVENTS_PER_BATCH = 100
MAX_BATCH_BYTES = 64 * 1024
# How far an event's own timestamp may be from the server's clock.
MAX_PAST_DAYS = 30
MAX_FUTURE_DAYS = 1

EventName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_EVENT_NAME, pattern=r"^[^\x00-\x1f\x7f]+$"),
]


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: EventName
    properties: Attributes | None = None
    timestamp: AwareDatetime | None = Field(
        None, description="When it happened (ISO 8601 with an offset); default: when received."
    )


class EventBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS_PER_BATCH)


class EventBatchOut(BaseModel):
    accepted: int = Field(description="Events stored: every event of the batch.")


class EventNameOut(BaseModel):
    name: str
    count: int
    last_at: datetime


class AttributeKeyOut(BaseModel):
    key: str
    users: int


class CatalogOut(BaseModel):
    events: list[EventNameOut]
    attributes: list[AttributeKeyOut]
