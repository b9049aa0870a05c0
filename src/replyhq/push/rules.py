"""Smart delivery's rules as plain functions of their inputs (the job gathers the inputs)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone(name: str | None, fallback: str) -> ZoneInfo:
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def quiet_until(
    now: dt.datetime, tz: ZoneInfo, start: dt.time | None, end: dt.time | None
) -> dt.datetime | None:
    """When the quiet hours around `now` (in the person's zone `tz`) end, as an aware UTC time;
    None when `now` is outside them or there are none. A window may cross midnight
    (22:00-08:00)."""
    if start is None or end is None or start == end:
        return None
    local = now.astimezone(tz)
    clock = local.time().replace(tzinfo=None)
    quiet = start <= clock < end if start < end else clock >= start or clock < end
    if not quiet:
        return None
    day = local.date() if clock < end else local.date() + dt.timedelta(days=1)
    # Wall-clock end in the person's zone, so that a DST change in between is respected.
    ends = dt.datetime.combine(day, end, tzinfo=tz)
    return ends.astimezone(dt.UTC)


def summary(app_name: str, messages: list[tuple[str | None, str]]) -> tuple[str, str]:
    """The notification's (title, body) for unread replies [(author, body), ...], oldest first:
    one reply shows itself ("Sam from Acme"); several collapse into "3 new messages from Acme"."""
    if len(messages) == 1:
        author, body = messages[0]
        text = " ".join(body.split())
        title = f"{author} from {app_name}" if author and author != app_name else app_name
        return title, (text if len(text) <= 180 else text[:179] + "…")
    return app_name, f"{len(messages)} new messages from {app_name}"
