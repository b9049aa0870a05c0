from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from replyhq.messenger.i18n import Language

_CLOCK = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$")
_ZONES = frozenset(available_timezones())


def _zone(value: str) -> str:
    if value not in _ZONES:
        raise ValueError("is not an IANA time zone (e.g. Europe/Paris)")
    return value


def _https_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError("must be an http(s) URL")
    return value


TimeZone = Annotated[str, Field(max_length=64), AfterValidator(_zone)]
Clock = Annotated[str, Field(pattern=_CLOCK.pattern, examples=["09:00"])]


class OfficeHoursRange(BaseModel):
    """A weekly stretch of local time: day 0 is Monday; close may be "24:00" (midnight)."""

    model_config = ConfigDict(extra="forbid")
    day: int = Field(ge=0, le=6)
    open: Clock
    close: Clock

    @model_validator(mode="after")
    def _ordered(self) -> OfficeHoursRange:
        if self.close <= self.open:
            raise ValueError("close must be after open (split a range that passes midnight)")
        return self


class MessengerSettingsBase(BaseModel):
    color: str = Field(pattern=r"^#[0-9a-fA-F]{6}$", description="Brand colour, #rrggbb")
    launcher_position: Literal["left", "right"]
    team_name: str = Field(min_length=1, max_length=80)
    avatar_url: Annotated[str, Field(max_length=1000), AfterValidator(_https_url)] | None
    greeting: str = Field(min_length=1, max_length=200)
    intro: str = Field(max_length=1000)
    language: Language
    timezone: TimeZone
    office_hours_enabled: bool
    office_hours: list[OfficeHoursRange] = Field(max_length=28)
    away_message: str = Field(max_length=1000)
    auto_reply: bool


class MessengerSettingsPatch(BaseModel):
    """Any subset of the settings; the others keep their values."""

    model_config = ConfigDict(extra="forbid")
    color: str | None = Field(None, pattern=r"^#[0-9a-fA-F]{6}$")
    launcher_position: Literal["left", "right"] | None = None
    team_name: str | None = Field(None, min_length=1, max_length=80)
    avatar_url: Annotated[str, Field(max_length=1000), AfterValidator(_https_url)] | None = None
    greeting: str | None = Field(None, min_length=1, max_length=200)
    intro: str | None = Field(None, max_length=1000)
    language: Language | None = None
    timezone: TimeZone | None = None
    office_hours_enabled: bool | None = None
    office_hours: list[OfficeHoursRange] | None = Field(None, max_length=28)
    away_message: str | None = Field(None, max_length=1000)
    auto_reply: bool | None = None


class MessengerSettingsOut(MessengerSettingsBase):
    updated_at: datetime | None = Field(description="None: never saved (the defaults)")


class AvailabilityOut(BaseModel):
    open: bool = Field(description="Within office hours now (always true when they are off)")
    away_since: datetime | None
    back_at: datetime | None = Field(description="When the team is next in, while away")


class MessengerConfig(BaseModel):
    """What the messenger shows: the app's settings, whether the team is in, and how fast it
    usually answers (median first response of the last 7 days; None without data)."""

    settings: MessengerSettingsOut
    availability: AvailabilityOut
    expected_reply_seconds: int | None


class MessengerSettingsChanged(MessengerConfig):
    """To every device of the app: the team saved the messenger's settings. The payload is what
    GET /v1/messenger answers from now on, so an open messenger follows without a reload."""


class VisitorContextIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    page_url: Annotated[str, Field(max_length=2000), AfterValidator(_https_url)] | None = None
    page_title: str | None = Field(None, max_length=300)
    referrer: Annotated[str, Field(max_length=2000), AfterValidator(_https_url)] | None = None


class VisitorContextOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    device_id: str
    page_url: str | None
    page_title: str | None
    referrer: str | None
    browser: str | None
    os: str | None
    updated_at: datetime


class RatingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    score: int = Field(ge=1, le=5)
    comment: str | None = Field(None, max_length=2000)


class RatingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    conversation_id: uuid.UUID
    closing: int = Field(description="Which closing of the conversation was rated (1, 2, ...)")
    score: int
    comment: str | None
    assignee_id: uuid.UUID | None
    created_at: datetime


class RatingState(BaseModel):
    """Whether the end user may rate now: the conversation is closed and this closing is not
    rated yet. `rating`: the current closing's rating, if any."""

    closing: int
    can_rate: bool
    rating: RatingOut | None


class ConversationRated(BaseModel):
    """To the end user's devices and the app's agents: a closing of a conversation was rated."""

    rating: RatingOut
