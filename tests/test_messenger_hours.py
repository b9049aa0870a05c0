"""Office hours (replyhq.messenger.hours): in or away, since when, back when, in the app's zone."""

from __future__ import annotations

from datetime import UTC, datetime

from replyhq.messenger.hours import ALWAYS_AWAY_SINCE, Range, availability

WEEKDAYS = [Range(day, "09:00", "17:00") for day in range(5)]


def test_inside_hours_is_open_in_the_apps_zone() -> None:
    # Tuesday 2026-12-01 09:30 in Paris is 08:30 UTC.
    state = availability(WEEKDAYS, "Europe/Paris", datetime(2026, 12, 1, 8, 30, tzinfo=UTC))
    assert state.open
    state = availability(WEEKDAYS, "UTC", datetime(2026, 12, 1, 8, 30, tzinfo=UTC))
    assert not state.open


def test_friday_evening_is_away_until_monday_morning() -> None:
    friday_night = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)  # Friday 21:00 in Paris
    state = availability(WEEKDAYS, "Europe/Paris", friday_night)
    assert not state.open
    assert state.away_since == datetime(2026, 12, 4, 16, 0, tzinfo=UTC)  # Friday 17:00 Paris
    assert state.back_at == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # Monday 09:00 Paris
    # The whole weekend is one away period: the same start on Sunday.
    sunday = availability(WEEKDAYS, "Europe/Paris", datetime(2026, 12, 6, 12, 0, tzinfo=UTC))
    assert sunday.away_since == state.away_since


def test_local_hours_hold_across_a_daylight_saving_change() -> None:
    # Paris moves to summer time on Sunday 2027-03-28: 09:00 is 08:00 UTC before, 07:00 after.
    before = availability(WEEKDAYS, "Europe/Paris", datetime(2027, 3, 26, 20, 0, tzinfo=UTC))
    assert before.back_at == datetime(2027, 3, 29, 7, 0, tzinfo=UTC)
    assert before.away_since == datetime(2027, 3, 26, 16, 0, tzinfo=UTC)


def test_touching_ranges_are_one_stretch_and_no_hours_is_always_away() -> None:
    late = [Range(4, "18:00", "24:00"), Range(5, "00:00", "02:00")]
    state = availability(late, "UTC", datetime(2026, 12, 5, 1, 0, tzinfo=UTC))  # Saturday 01:00
    assert state.open
    after = availability(late, "UTC", datetime(2026, 12, 5, 3, 0, tzinfo=UTC))
    assert after.away_since == datetime(2026, 12, 5, 2, 0, tzinfo=UTC)
    never = availability([], "UTC", datetime(2026, 12, 5, 3, 0, tzinfo=UTC))
    assert not never.open
    assert never.away_since == ALWAYS_AWAY_SINCE
    assert never.back_at is None
