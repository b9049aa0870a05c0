from __future__ import annotations

import uuid
from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

Grouping = Literal["day", "week"]


class Durations(BaseModel):
    """Seconds: the median and 90th percentile (interpolated), over `count` conversations."""

    count: int
    median: float | None
    p90: float | None


class Csat(BaseModel):
    """Ratings given in the period: how many, their average (1-5), and the share rated 4 or 5
    (the CSAT score, in percent)."""

    count: int
    average: float | None
    satisfied_percent: float | None


class Period(BaseModel):
    period: date = Field(description="The day, or the Monday of the week, in the app's time zone")
    new_conversations: int
    messages: int = Field(description="Messages written in the period (not timeline events)")
    closed: int = Field(description="Conversations whose latest closing falls in the period")
    first_response: Durations = Field(
        description="First agent reply minus start, for conversations started in the period"
    )
    resolution: Durations = Field(
        description="Latest closing minus start, for conversations closed in the period"
    )
    csat: Csat


class HourCount(BaseModel):
    weekday: int = Field(ge=0, le=6, description="0 = Monday, in the app's time zone")
    hour: int = Field(ge=0, le=23)
    conversations: int


class AgentRow(BaseModel):
    staff_id: uuid.UUID
    name: str | None
    email: str | None
    first_responses: int
    first_response: Durations
    closed: int
    resolution: Durations
    csat: Csat


class Report(BaseModel):
    start: date
    end: date = Field(description="Inclusive")
    group: Grouping
    timezone: str = Field(description="The app's time zone (its messenger settings)")
    totals: Period
    series: list[Period]
    busiest_hours: list[HourCount] = Field(description="New conversations by weekday and hour")
    agents: list[AgentRow]
