"""Smart delivery's rules as plain functions of their inputs (the job, delivery.py, gathers the
inputs): `decide` takes a conversation's pending replies to one decision, in the order that
delivery.py's docstring lists."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Device:
    device_id: str
    provider: str | None
    token: str | None
    keys: dict[str, str] | None
    timezone: str | None


@dataclass(frozen=True)
class Rules:
    quiet_hours_start: dt.time | None = None
    quiet_hours_end: dt.time | None = None
    default_timezone: str = "UTC"
    hourly_limit: int = 10
    collapse_seconds: int = 60
    email_fallback_minutes: int = 5
    email_link: str | None = None


@dataclass(frozen=True)
class Reply:
    seq: int
    author: str | None
    body: str
    at: dt.datetime  # committed


@dataclass(frozen=True)
class Pending:
    """A conversation taken from the queue, with what its decision needs."""

    conversation_id: uuid.UUID
    person: uuid.UUID
    email: str | None
    read_seq: int
    handled_seq: int
    replies: list[Reply]  # oldest first
    recheck: bool  # decided again after a hold


@dataclass(frozen=True)
class Decision:
    decision: str
    reason: str
    unread: list[Reply]
    last_seq: int
    wait: float | None = None  # seconds until decided again (held, quiet_hours)


@dataclass
class History:
    """Pushes sent to one person lately: how many in the past hour, and when each of their
    conversations was last pushed."""

    last_hour: int = 0
    last_sent: dict[uuid.UUID, dt.datetime] = field(default_factory=dict)


def decide(
    pending: Pending,
    *,
    rules_: Rules,
    devices: list[Device],
    online: bool,
    history: History,
    hold: float,
    now: dt.datetime,
) -> Decision | None:
    """The decision about a conversation's undecided replies (see the module's docstring);
    None when there is none to make (decided already: a repeated run)."""
    replies = pending.replies
    if not any(r.seq > pending.handled_seq for r in replies):
        return None
    unread = [r for r in replies if r.seq > pending.read_seq]
    last_seq = replies[-1].seq
    if not unread:
        reason = "read during the hold" if pending.recheck else "read before a push was due"
        return Decision("read", reason, unread, last_seq)
    if not any(d.token for d in devices):
        return Decision("no_device", "no device of theirs has a push token", unread, last_seq)
    if online:
        if not pending.recheck:
            return Decision("held", f"online: decided again in {hold:g} s", unread, last_seq, hold)
        return Decision(
            "online", "still online after the hold: they see replies live", unread, last_seq
        )
    tz_name = next((d.timezone for d in devices if d.timezone), None)
    tz = zone(tz_name, rules_.default_timezone)
    ends = quiet_until(now, tz, rules_.quiet_hours_start, rules_.quiet_hours_end)
    if ends is not None:
        local = now.astimezone(tz).strftime("%H:%M")
        return Decision(
            "quiet_hours",
            f"{local} in {tz.key} is within quiet hours; sent at their end if still unread",
            unread,
            last_seq,
            max(0.0, (ends - now).total_seconds()),
        )
    if history.last_hour >= rules_.hourly_limit:
        return Decision(
            "rate_limited",
            f"{history.last_hour} pushes in the last hour (limit {rules_.hourly_limit})",
            unread,
            last_seq,
        )
    last_sent = history.last_sent.get(pending.conversation_id)
    if last_sent is not None and last_sent + dt.timedelta(seconds=rules_.collapse_seconds) > now:
        return Decision(
            "collapsed",
            f"pushed {(now - last_sent).total_seconds():.0f} s ago: the notification showing "
            f"leads to this conversation; its next push counts these replies too",
            unread,
            last_seq,
        )
    reason = f"offline{' after the hold' if pending.recheck else ''}"
    return Decision("sent", reason, unread, last_seq)
