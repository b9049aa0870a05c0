"""Campaigns as the admin API reads and writes them."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from replyhq.messaging.schemas import Body


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    segment_id: uuid.UUID = Field(description="The saved segment whose members receive it.")
    sender_id: uuid.UUID = Field(description="The active team member it is sent as.")
    body: Body


class Outcomes(BaseModel):
    """What became of a message sent to people: campaigns and event-triggered messages alike."""

    sent: int = Field(description="People it was sent to (once each).")
    opened: int = Field(description="Of them, those who read it.")
    replied: int = Field(description="Of them, those who wrote back after it.")


class CampaignOut(Outcomes):
    id: uuid.UUID
    name: str
    segment_id: uuid.UUID | None
    sender_id: uuid.UUID
    sender_name: str | None
    body: str
    status: str = Field(description="sending, stopped or done.")
    created_at: datetime
    finished_at: datetime | None


class CampaignList(BaseModel):
    items: list[CampaignOut]
