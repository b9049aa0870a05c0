"""Office hours: whether the team is in now, since when it is away, and when it is back.

A schedule is weekly ranges of local time in the app's time zone ({day: 0 = Monday, open, close},
close "24:00" for midnight). Each date is placed in the zone on its own, so a week that crosses a
daylight-saving change keeps its local hours. Ranges that touch or overlap merge, so Friday
until 24:00 and Saturday from 00:00 is one stretch, not two away periods.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# Far enough to reach a range of any weekly schedule from any instant, both ways.
_REACH_DAYS = 8
# The start of the away period of a schedule with no hours at all (always away): one period.
ALWAYS_AWAY_SINCE = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Range:
    day: int  # 0 = Monday
    open: str  # "HH:MM"
    close: str  # "HH:MM", or "24:00"


@dataclass(frozen=True)
class Availability:
    open: bool
    # While away: when the away period began (the last close) and when the team is next in.
    away_since: datetime | None
    back_at: datetime | None


def _clock(value: str) -> timedelta:
    hours, minutes = value.split(":")
    return timedelta(hours=int(hours), minutes=int(minutes))


def _local(day: date, offset: timedelta, zone: ZoneInfo) -> datetime:
    """The instant of `offset` after local midnight of `day` in `zone` (a gap hour is pushed
    forward by its length, as clocks do)."""
    naive = datetime.combine(day, time()) + offset
    return naive.replace(tzinfo=zone).astimezone(UTC)


def intervals(
    ranges: Iterable[Range], zone_name: str, around: datetime
) -> list[tuple[datetime, datetime]]:
    """The schedule's open stretches (UTC) within _REACH_DAYS of `around`, merged, in order."""
    zone = ZoneInfo(zone_name)
    today = around.astimezone(zone).date()
    by_day: dict[int, list[Range]] = {}
    for r in ranges:
        by_day.setdefault(r.day, []).append(r)
    spans: list[tuple[datetime, datetime]] = []
    for delta in range(-_REACH_DAYS, _REACH_DAYS + 1):
        day = today + timedelta(days=delta)
        for r in by_day.get(day.weekday(), []):
            start, end = _local(day, _clock(r.open), zone), _local(day, _clock(r.close), zone)
            if end > start:
                spans.append((start, end))
    spans.sort()
    merged: list[tuple[datetime, datetime]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def availability(ranges: Sequence[Range], zone_name: str, now: datetime) -> Availability:
    spans = intervals(ranges, zone_name, now)
    if not spans:
        return Availability(open=False, away_since=ALWAYS_AWAY_SINCE, back_at=None)
    for start, end in spans:
        if start <= now < end:
            return Availability(open=True, away_since=None, back_at=None)
    ended = [end for _, end in spans if end <= now]
    upcoming = [start for start, _ in spans if start > now]
    return Availability(
        open=False,
        away_since=max(ended) if ended else ALWAYS_AWAY_SINCE,
        back_at=min(upcoming) if upcoming else None,
    )
