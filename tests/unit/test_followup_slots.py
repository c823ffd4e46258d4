"""Free slots in working hours, and due dates in working days (pure)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.followups.slots import WorkingTime, add_working_days, find_slot, hour_histogram

UTC = dt.UTC
MIN = dt.timedelta(minutes=1)
HALF_HOUR = dt.timedelta(minutes=30)
BERLIN = WorkingTime("Europe/Berlin")
EVERY_DAY = frozenset(range(7))


def at(zone: str, *fields: int) -> dt.datetime:
    """Return the UTC instant of a local wall-clock time (first occurrence if repeated)."""
    return dt.datetime(*fields, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def berlin(*fields: int) -> dt.datetime:
    return at("Europe/Berlin", *fields)


def wall(*fields: int) -> dt.datetime:
    """A naive local wall-clock reading."""
    return dt.datetime(*fields)  # noqa: DTZ001


def local(instant: dt.datetime, zone: str) -> dt.datetime:
    return instant.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def slot(
    now: dt.datetime,
    busy: list[tuple[dt.datetime, dt.datetime]] | None = None,
    working: WorkingTime = BERLIN,
    duration: dt.timedelta = HALF_HOUR,
    **kw: Any,
) -> tuple[dt.datetime, dt.datetime] | None:
    return find_slot(busy=busy or [], now=now, working=working, duration=duration, **kw)


def start_of(*args: Any, **kw: Any) -> dt.datetime:
    found = slot(*args, **kw)
    assert found is not None
    return found[0]


# 2026-11-23 is a Monday; 2026-11-27 a Friday.


def test_the_first_free_slot_is_now_plus_lead_on_the_grid() -> None:
    assert slot(berlin(2026, 11, 23, 10, 0)) == (
        berlin(2026, 11, 23, 10, 30),
        berlin(2026, 11, 23, 11),
    )
    # 10:07 + 30 min lead = 10:37: the next grid time is 10:45, not 10:37.
    assert start_of(berlin(2026, 11, 23, 10, 7)) == berlin(2026, 11, 23, 10, 45)


def test_results_are_utc() -> None:
    start, end = slot(berlin(2026, 11, 23, 10, 0))
    assert start.tzinfo is UTC
    assert end.tzinfo is UTC
    assert end - start == HALF_HOUR


def test_a_slot_never_overlaps_a_busy_span_but_may_touch_it() -> None:
    now = berlin(2026, 11, 23, 8)
    busy = [(berlin(2026, 11, 23, 9), berlin(2026, 11, 23, 10, 10))]
    assert start_of(now, busy) == berlin(2026, 11, 23, 10, 15)
    touching = [(berlin(2026, 11, 23, 9), berlin(2026, 11, 23, 10))]
    assert start_of(now, touching) == berlin(2026, 11, 23, 10)
    # A span that starts where the slot would end does not block it either.
    before = [(berlin(2026, 11, 23, 9, 30), berlin(2026, 11, 23, 12))]
    assert slot(now, before) == (berlin(2026, 11, 23, 9), berlin(2026, 11, 23, 9, 30))


def test_a_slot_needs_its_whole_duration_free() -> None:
    now = berlin(2026, 11, 23, 8)
    busy = [
        (berlin(2026, 11, 23, 9, 45), berlin(2026, 11, 23, 10)),
        (berlin(2026, 11, 23, 10, 30), berlin(2026, 11, 23, 11)),
    ]
    # 9:00-9:45 is free but one hour does not fit; 10:00-10:30 neither; 11:00 does.
    assert start_of(now, busy, duration=dt.timedelta(hours=1)) == berlin(2026, 11, 23, 11)


def test_busy_spans_may_be_unsorted_overlapping_and_cross_midnight() -> None:
    now = berlin(2026, 11, 23, 8)
    busy = [
        (berlin(2026, 11, 24, 9), berlin(2026, 11, 24, 11)),
        (berlin(2026, 11, 23, 8), berlin(2026, 11, 23, 15)),
        (berlin(2026, 11, 23, 14), berlin(2026, 11, 24, 9, 30)),  # overnight, overlaps both
        (berlin(2026, 11, 24, 10), berlin(2026, 11, 24, 10, 30)),  # inside another
    ]
    assert start_of(now, busy) == berlin(2026, 11, 24, 11)


def test_a_busy_span_past_the_horizon_blocks_it_all() -> None:
    now = berlin(2026, 11, 23, 8)
    assert slot(now, [(berlin(2026, 11, 23, 9), berlin(2027, 6, 1))]) is None


def test_a_zero_length_event_blocks_the_slots_that_contain_it() -> None:
    now = berlin(2026, 11, 23, 8)
    marker = berlin(2026, 11, 23, 9, 10)
    assert start_of(now, [(marker, marker)]) == berlin(2026, 11, 23, 9, 15)
    at_nine = berlin(2026, 11, 23, 9)
    assert start_of(now, [(at_nine, at_nine)]) == berlin(2026, 11, 23, 9, 15)
    # At the slot's end it is next to the slot, not in it.
    at_half_past = berlin(2026, 11, 23, 9, 30)
    assert start_of(now, [(at_half_past, at_half_past)]) == at_nine


def test_never_outside_working_hours() -> None:
    # Before hours: the day's first slot. After hours: the next working day's first.
    assert start_of(berlin(2026, 11, 23, 6)) == berlin(2026, 11, 23, 9)
    assert start_of(berlin(2026, 11, 23, 19)) == berlin(2026, 11, 24, 9)
    # The whole slot fits before the end of the day: 16:30-17:00 does, 16:30-17:15 does not.
    late = berlin(2026, 11, 23, 16)
    assert slot(late) == (berlin(2026, 11, 23, 16, 30), berlin(2026, 11, 23, 17))
    assert start_of(late, duration=dt.timedelta(minutes=45)) == berlin(2026, 11, 24, 9)


def test_a_slot_longer_than_the_working_day_is_never_found() -> None:
    assert slot(berlin(2026, 11, 23, 6), duration=dt.timedelta(hours=9)) is None
    assert slot(berlin(2026, 11, 23, 6), duration=dt.timedelta(hours=8)) == (
        berlin(2026, 11, 23, 9),
        berlin(2026, 11, 23, 17),
    )


def test_friday_late_goes_to_monday_and_weekends_are_skipped() -> None:
    assert start_of(berlin(2026, 11, 27, 16, 40)) == berlin(2026, 11, 30, 9)
    assert start_of(berlin(2026, 11, 28, 11)) == berlin(2026, 11, 30, 9)
    weekend_worker = WorkingTime("Europe/Berlin", days=frozenset({5, 6}))
    assert start_of(berlin(2026, 11, 23, 11), working=weekend_worker) == berlin(2026, 11, 28, 9)


def test_a_fully_booked_day_moves_to_the_next_working_day() -> None:
    friday = [(berlin(2026, 11, 27, 9), berlin(2026, 11, 27, 17))]
    assert start_of(berlin(2026, 11, 27, 7), friday) == berlin(2026, 11, 30, 9)


def test_custom_hours_anchor_the_grid() -> None:
    working = WorkingTime("Europe/Berlin", start=dt.time(8, 10), end=dt.time(12))
    assert start_of(berlin(2026, 11, 23, 8), working=working) == berlin(2026, 11, 23, 8, 40)
    hourly = slot(berlin(2026, 11, 23, 8), working=working, step=dt.timedelta(hours=1))
    assert hourly[0] == berlin(2026, 11, 23, 9, 10)


def test_lead_is_respected() -> None:
    now = berlin(2026, 11, 23, 10)
    assert start_of(now, lead=dt.timedelta(0)) == now
    assert start_of(now, lead=dt.timedelta(hours=2)) == berlin(2026, 11, 23, 12)


def test_not_before_is_respected_and_the_horizon_counts_from_it() -> None:
    now = berlin(2026, 11, 23, 10)
    assert start_of(now, not_before=berlin(2026, 11, 25)) == berlin(2026, 11, 25, 9)
    assert start_of(now, not_before=berlin(2026, 11, 25, 13, 7)) == berlin(2026, 11, 25, 13, 15)
    # A not_before in the past changes nothing: now + lead still rules.
    assert start_of(now, not_before=berlin(2026, 11, 1)) == berlin(2026, 11, 23, 10, 30)
    # Three weeks out is beyond a 14-day horizon from now, but the horizon starts there.
    far = berlin(2026, 12, 14, 9)
    assert start_of(now, not_before=far) == far


def test_the_horizon_is_counted_in_local_days() -> None:
    monday = berlin(2026, 11, 23, 10)
    booked = [(berlin(2026, 11, 23, 0), berlin(2026, 11, 24, 0))]
    assert slot(monday, booked, horizon_days=1) is None
    assert start_of(monday, booked, horizon_days=2) == berlin(2026, 11, 24, 9)
    # From a Friday evening a 3-day horizon is Friday-Sunday: nothing; 4 days reaches Monday.
    friday = berlin(2026, 11, 27, 18)
    assert slot(friday, horizon_days=3) is None
    assert start_of(friday, horizon_days=4) == berlin(2026, 11, 30, 9)


def test_preferred_hours_win_within_the_day() -> None:
    now = berlin(2026, 11, 23, 7)
    assert start_of(now, preferred_hours={14: 5, 10: 2}) == berlin(2026, 11, 23, 14)
    # The best free start in the preferred hour, not the hour's first grid time.
    busy = [(berlin(2026, 11, 23, 14), berlin(2026, 11, 23, 14, 20))]
    assert start_of(now, busy, preferred_hours={14: 5}) == berlin(2026, 11, 23, 14, 30)
    # Hour 14 fully booked: the next-best hour.
    busy = [(berlin(2026, 11, 23, 13, 50), berlin(2026, 11, 23, 15))]
    assert start_of(now, busy, preferred_hours={14: 5, 10: 2}) == berlin(2026, 11, 23, 10)
    # Hour 16 with 45 minutes: 16:00 and 16:15 fit, 16:30 would end after 17:00; earliest wins.
    assert slot(now, preferred_hours={16: 1}, duration=dt.timedelta(minutes=45)) == (
        berlin(2026, 11, 23, 16),
        berlin(2026, 11, 23, 16, 45),
    )


def test_preferred_hours_ties_and_unknown_hours_go_to_the_earliest() -> None:
    now = berlin(2026, 11, 23, 7)
    assert start_of(now, preferred_hours={15: 3, 11: 3}) == berlin(2026, 11, 23, 11)
    assert start_of(now, preferred_hours={3: 9}) == berlin(2026, 11, 23, 9)
    assert start_of(now, preferred_hours={}) == berlin(2026, 11, 23, 9)


def test_preferred_hours_never_beat_an_earlier_day() -> None:
    now = berlin(2026, 11, 23, 7)
    busy = [(berlin(2026, 11, 23, 9), berlin(2026, 11, 23, 16))]
    assert slot(now, busy, preferred_hours={10: 100}) == (
        berlin(2026, 11, 23, 16),
        berlin(2026, 11, 23, 16, 30),
    )


def test_preferred_hours_are_local_hours() -> None:
    # 14:00 in Los Angeles is 22:00 UTC in November.
    working = WorkingTime("America/Los_Angeles")
    now = at("America/Los_Angeles", 2026, 11, 23, 7)
    start, _ = slot(now, working=working, preferred_hours={14: 1, 22: 5})
    assert start == dt.datetime(2026, 11, 23, 22, tzinfo=UTC)


def test_spring_forward_skips_the_missing_hour() -> None:
    # Europe/Berlin, Sunday 2026-03-29: 02:00 CET jumps to 03:00 CEST.
    night = WorkingTime("Europe/Berlin", start=dt.time(1), end=dt.time(5), days=EVERY_DAY)
    now = dt.datetime(2026, 3, 28, 23, tzinfo=UTC)  # 00:00 CET
    busy = [(berlin(2026, 3, 29, 1), berlin(2026, 3, 29, 1, 50))]
    start, end = slot(now, busy, working=night)
    # 02:00-02:45 do not exist; the next grid time is 03:00 CEST = 01:00 UTC.
    assert (start, end) == (
        dt.datetime(2026, 3, 29, 1, tzinfo=UTC),
        dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
    )
    assert local(start, "Europe/Berlin") == wall(2026, 3, 29, 3)
    # A slot may span the jump: 01:45 CET + 30 min = 03:15 CEST.
    start, end = slot(berlin(2026, 3, 29, 1, 15), working=night)
    assert local(start, "Europe/Berlin") == wall(2026, 3, 29, 1, 45)
    assert local(end, "Europe/Berlin") == wall(2026, 3, 29, 3, 15)


def test_working_hours_ending_in_the_missing_hour_end_at_the_jump() -> None:
    # 02:30 does not exist on 2026-03-29 in Berlin: that working day ends at the jump (02:00 CET).
    night = WorkingTime("Europe/Berlin", start=dt.time(1), end=dt.time(2, 30), days=EVERY_DAY)
    now = berlin(2026, 3, 29, 0, 50)
    busy = [(berlin(2026, 3, 29, 1), berlin(2026, 3, 29, 1, 30))]
    assert slot(now, busy, working=night) == (berlin(2026, 3, 29, 1, 30), berlin(2026, 3, 29, 2))
    # 01:45 CET + 30 min ends at 03:15 CEST, after the working day: the next night instead.
    busy = [(berlin(2026, 3, 29, 1), berlin(2026, 3, 29, 1, 45))]
    assert start_of(now, busy, working=night) == berlin(2026, 3, 30, 1)


def test_office_hours_after_spring_forward_and_fall_back_are_local() -> None:
    ny = WorkingTime("America/New_York")
    # Friday before the US change (EST, UTC-5) -> Monday 9:00 EDT (UTC-4).
    assert start_of(at("America/New_York", 2026, 3, 6, 18), working=ny) == dt.datetime(
        2026, 3, 9, 13, tzinfo=UTC
    )
    # Friday before fall back (EDT) -> Monday 9:00 EST.
    assert start_of(at("America/New_York", 2026, 10, 30, 18), working=ny) == dt.datetime(
        2026, 11, 2, 14, tzinfo=UTC
    )


def test_fall_back_uses_the_first_occurrence_of_a_repeated_time() -> None:
    # America/New_York, Sunday 2026-11-01: 02:00 EDT falls back to 01:00 EST.
    night = WorkingTime("America/New_York", start=dt.time(0), end=dt.time(4), days=EVERY_DAY)
    now = at("America/New_York", 2026, 11, 1, 0)
    start, _ = slot(now, working=night)
    assert start == dt.datetime(2026, 11, 1, 4, 30, tzinfo=UTC)  # 00:30 EDT
    # 01:10 EDT busy -> 01:15 EDT (05:15 UTC), the first 01:15.
    busy = [(dt.datetime(2026, 11, 1, 4, tzinfo=UTC), dt.datetime(2026, 11, 1, 5, 10, tzinfo=UTC))]
    assert start_of(now, busy, working=night) == dt.datetime(2026, 11, 1, 5, 15, tzinfo=UTC)
    # The whole first 01:xx busy: the second 01:xx (EST) is not on the grid; 02:00 EST is.
    busy = [(dt.datetime(2026, 11, 1, 4, tzinfo=UTC), dt.datetime(2026, 11, 1, 6, tzinfo=UTC))]
    start, _ = slot(now, busy, working=night)
    assert start == dt.datetime(2026, 11, 1, 7, tzinfo=UTC)
    assert local(start, "America/New_York") == wall(2026, 11, 1, 2)


def test_half_hour_and_quarter_hour_zones_use_a_local_grid() -> None:
    kolkata = WorkingTime("Asia/Kolkata")  # UTC+5:30
    # 08:30 IST -> 09:00 IST = 03:30 UTC.
    assert start_of(dt.datetime(2026, 11, 23, 3, tzinfo=UTC), working=kolkata) == dt.datetime(
        2026, 11, 23, 3, 30, tzinfo=UTC
    )
    # 09:35 IST + 30 min = 10:05 -> 10:15 IST = 04:45 UTC.
    start, _ = slot(dt.datetime(2026, 11, 23, 4, 5, tzinfo=UTC), working=kolkata)
    assert local(start, "Asia/Kolkata") == wall(2026, 11, 23, 10, 15)
    kathmandu = WorkingTime("Asia/Kathmandu")  # UTC+5:45
    start, _ = slot(dt.datetime(2026, 11, 23, 0, tzinfo=UTC), working=kathmandu)
    assert start == dt.datetime(2026, 11, 23, 3, 15, tzinfo=UTC)
    assert local(start, "Asia/Kathmandu") == wall(2026, 11, 23, 9)


def test_zones_far_from_utc_use_the_local_day() -> None:
    auckland = WorkingTime("Pacific/Auckland")  # UTC+13 in November
    # Sunday 19:00 UTC is Monday 08:00 in Auckland: a working day there.
    start, _ = slot(dt.datetime(2026, 11, 22, 19, tzinfo=UTC), working=auckland)
    assert start == dt.datetime(2026, 11, 22, 20, tzinfo=UTC)
    assert local(start, "Pacific/Auckland") == wall(2026, 11, 23, 9)
    # Friday 16:00 in Los Angeles is Saturday 00:00 UTC: still Friday's working day.
    la = WorkingTime("America/Los_Angeles")
    assert slot(dt.datetime(2026, 11, 28, 0, tzinfo=UTC), working=la) == (
        dt.datetime(2026, 11, 28, 0, 30, tzinfo=UTC),
        dt.datetime(2026, 11, 28, 1, tzinfo=UTC),
    )


def test_auckland_spring_forward_week() -> None:
    # Pacific/Auckland moves to NZDT (UTC+13) on Sunday 2026-09-27: Monday 9:00 is 20:00 UTC.
    auckland = WorkingTime("Pacific/Auckland")
    friday = at("Pacific/Auckland", 2026, 9, 25, 17)
    assert start_of(friday, working=auckland) == dt.datetime(2026, 9, 27, 20, tzinfo=UTC)


def test_working_days_accept_any_set_and_stay_frozen() -> None:
    working = WorkingTime("UTC", days={0, 2})
    assert working.days == frozenset({0, 2})
    assert isinstance(working.days, frozenset)
    assert hash(working) == hash(WorkingTime("UTC", days=frozenset({2, 0})))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time_zone": "Mars/Olympus_Mons"}, "Mars/Olympus_Mons"),
        ({"time_zone": ""}, "unknown time zone"),
        ({"time_zone": "../etc/passwd"}, "unknown time zone"),
        ({"time_zone": "UTC", "start": dt.time(17), "end": dt.time(9)}, "start before"),
        ({"time_zone": "UTC", "start": dt.time(9), "end": dt.time(9)}, "start before"),
        ({"time_zone": "UTC", "days": frozenset()}, "at least one"),
        ({"time_zone": "UTC", "days": frozenset({7})}, "weekdays"),
        ({"time_zone": "UTC", "start": dt.time(9, tzinfo=UTC)}, "naive"),
    ],
)
def test_working_time_is_validated(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WorkingTime(**kwargs)


NAIVE = dt.datetime(2026, 11, 23, 10)  # noqa: DTZ001  (the point of the test)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"now": NAIVE}, "now must be a timezone-aware"),
        ({"not_before": NAIVE}, "not_before must be a timezone-aware"),
        ({"busy": [(NAIVE, berlin(2026, 11, 24))]}, "busy start must be a timezone-aware"),
        ({"busy": [(berlin(2026, 11, 23), NAIVE)]}, "busy end must be a timezone-aware"),
        ({"busy": [(berlin(2026, 11, 24), berlin(2026, 11, 23))]}, "ends before it starts"),
        ({"duration": dt.timedelta(0)}, "duration"),
        ({"step": dt.timedelta(0)}, "step"),
        ({"lead": -MIN}, "lead"),
        ({"horizon_days": 0}, "horizon_days"),
        ({"preferred_hours": {24: 1}}, "0-23"),
        ({"preferred_hours": {9: -1}}, "negative"),
    ],
)
def test_find_slot_rejects_bad_input(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "busy": [],
        "now": berlin(2026, 11, 23, 10),
        "working": BERLIN,
        "duration": HALF_HOUR,
    }
    with pytest.raises(ValueError, match=message):
        find_slot(**(args | kwargs))


def test_any_aware_timezone_is_accepted_as_an_instant() -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    now = dt.datetime(2026, 11, 23, 11, tzinfo=plus_two)  # 10:00 Berlin
    assert start_of(now) == berlin(2026, 11, 23, 10, 30)


# hour_histogram


def test_hour_histogram_counts_local_hours() -> None:
    times = [
        dt.datetime(2026, 1, 10, 8, 5, tzinfo=UTC),  # 09:05 CET
        dt.datetime(2026, 7, 10, 7, 59, tzinfo=UTC),  # 09:59 CEST
        dt.datetime(2026, 7, 10, 8, 0, tzinfo=UTC),  # 10:00 CEST
        dt.datetime(2026, 3, 1, 23, 30, tzinfo=UTC),  # 00:30 CET next day
    ]
    assert hour_histogram(times, "Europe/Berlin") == {0: 1, 9: 2, 10: 1}
    assert hour_histogram(times, "Asia/Kolkata") == {5: 1, 13: 3}
    assert hour_histogram([], "UTC") == {}


def test_hour_histogram_feeds_find_slot() -> None:
    replies = [berlin(2026, 11, d, 15, 20) for d in (2, 3, 4)] + [berlin(2026, 11, 5, 9, 5)]
    hours = hour_histogram(replies, "Europe/Berlin")
    assert hours == {9: 1, 15: 3}
    assert start_of(berlin(2026, 11, 23, 7), preferred_hours=hours) == berlin(2026, 11, 23, 15)


def test_hour_histogram_validates() -> None:
    with pytest.raises(ValueError, match="naive"):
        hour_histogram([NAIVE], "UTC")
    with pytest.raises(ValueError, match="Nowhere/Land"):
        hour_histogram([], "Nowhere/Land")


# add_working_days


def test_friday_plus_two_working_days_is_due_wednesday_midnight() -> None:
    friday = berlin(2026, 11, 27, 15)
    assert add_working_days(friday, 2, BERLIN) == berlin(2026, 12, 2, 0)
    assert add_working_days(friday, 1, BERLIN) == berlin(2026, 12, 1, 0)


@pytest.mark.parametrize(
    ("sent", "n", "due"),
    [
        (dt.date(2026, 11, 23), 1, dt.date(2026, 11, 25)),  # Monday; Tuesday passes
        (dt.date(2026, 11, 23), 5, dt.date(2026, 12, 1)),  # Tue..Fri, Mon pass
        (dt.date(2026, 11, 28), 1, dt.date(2026, 12, 1)),  # Saturday; Monday passes
        (dt.date(2026, 11, 29), 1, dt.date(2026, 12, 1)),  # Sunday; Monday passes
        (dt.date(2026, 11, 29), 5, dt.date(2026, 12, 5)),  # Sunday; Mon..Fri pass
        (dt.date(2026, 11, 23), 10, dt.date(2026, 12, 8)),  # two weeks
    ],
)
def test_working_days_skip_weekends(sent: dt.date, n: int, due: dt.date) -> None:
    message = berlin(sent.year, sent.month, sent.day, 12)
    assert add_working_days(message, n, BERLIN) == berlin(due.year, due.month, due.day)


def test_zero_working_days_is_the_moment_itself() -> None:
    moment = berlin(2026, 11, 28, 12, 34)
    assert add_working_days(moment, 0, BERLIN) == moment


def test_the_local_date_of_the_message_counts() -> None:
    # Thursday 23:30 UTC is Friday 00:30 in Berlin but Thursday 15:30 in Los Angeles.
    message = dt.datetime(2026, 11, 26, 23, 30, tzinfo=UTC)
    assert add_working_days(message, 2, BERLIN) == berlin(2026, 12, 2, 0)  # Mon, Tue pass
    la = WorkingTime("America/Los_Angeles")
    assert add_working_days(message, 2, la) == at("America/Los_Angeles", 2026, 12, 1, 0)  # Fri, Mon


def test_holidays_are_not_modelled() -> None:
    # 2026-12-25 is a Friday: it counts like any Friday.
    assert add_working_days(berlin(2026, 12, 24, 12), 1, BERLIN) == berlin(2026, 12, 26, 0)


def test_working_days_across_dst() -> None:
    # Berlin springs forward on Sunday 2026-03-29: Tuesday 00:00 is CEST (22:00 UTC Monday).
    assert add_working_days(berlin(2026, 3, 27, 12), 1, BERLIN) == dt.datetime(
        2026, 3, 30, 22, tzinfo=UTC
    )
    # ... and falls back on 2026-10-25: Tuesday 00:00 is CET (23:00 UTC Monday).
    assert add_working_days(berlin(2026, 10, 23, 12), 1, BERLIN) == dt.datetime(
        2026, 10, 26, 23, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("zone", "friday", "due"),
    [
        # Chile starts DST at 24:00 Saturday 2026-09-05: Sunday has no 00:00, it starts at 01:00.
        ("America/Santiago", dt.date(2026, 9, 4), dt.datetime(2026, 9, 6, 4, tzinfo=UTC)),
        # Cuba starts DST at 00:00 Sunday 2026-03-08, which becomes 01:00.
        ("America/Havana", dt.date(2026, 3, 6), dt.datetime(2026, 3, 8, 5, tzinfo=UTC)),
    ],
)
def test_a_missing_midnight_is_the_first_instant_of_the_day(
    zone: str, friday: dt.date, due: dt.datetime
) -> None:
    six_days = WorkingTime(zone, days=frozenset(range(6)))  # Saturday counts
    message = at(zone, friday.year, friday.month, friday.day, 12)
    result = add_working_days(message, 1, six_days)
    assert result == due
    assert local(result, zone) == dt.datetime.combine(friday + dt.timedelta(days=2), dt.time(1))
    assert local(result - dt.timedelta(seconds=1), zone).date() == friday + dt.timedelta(days=1)


def test_a_repeated_midnight_is_its_first_occurrence() -> None:
    # Chile ends DST at 24:00 Saturday 2026-04-04: Saturday 23:00-24:00 repeats, 00:00 once.
    six_days = WorkingTime("America/Santiago", days=frozenset(range(6)))
    result = add_working_days(at("America/Santiago", 2026, 4, 3, 12), 1, six_days)
    assert result == dt.datetime(2026, 4, 5, 4, tzinfo=UTC)


def test_add_working_days_validates() -> None:
    with pytest.raises(ValueError, match="naive"):
        add_working_days(NAIVE, 1, BERLIN)
    with pytest.raises(ValueError, match="negative"):
        add_working_days(berlin(2026, 11, 23), -1, BERLIN)


def _add_working_days_by_walking(at_: dt.datetime, n: int, working: WorkingTime) -> dt.datetime:
    if n == 0:
        return at_
    zone = ZoneInfo(working.time_zone)
    day = at_.astimezone(zone).date()
    while n:
        day += dt.timedelta(days=1)
        if day.weekday() in working.days:
            n -= 1
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), zone).astimezone(UTC)


@given(
    moment=st.datetimes(
        min_value=dt.datetime(2020, 1, 1),  # noqa: DTZ001  (hypothesis wants naive bounds)
        max_value=dt.datetime(2030, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    n=st.integers(0, 40),
    days=st.frozensets(st.integers(0, 6), min_size=1),
    zone=st.sampled_from(["Europe/Berlin", "Pacific/Auckland", "Asia/Kolkata", "UTC"]),
)
def test_add_working_days_matches_walking_day_by_day(
    moment: dt.datetime, n: int, days: frozenset[int], zone: str
) -> None:
    working = WorkingTime(zone, days=days)
    assert add_working_days(moment, n, working) == _add_working_days_by_walking(moment, n, working)


# find_slot against a brute-force oracle

ZONES = [
    "Europe/Berlin",
    "America/Los_Angeles",
    "America/New_York",
    "America/Santiago",
    "Pacific/Auckland",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "UTC",
]


def _max_wall(start: dt.datetime, last: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The latest local wall-clock reading over [start, last] (one DST change at most)."""
    if start.astimezone(zone).utcoffset() == last.astimezone(zone).utcoffset():
        return local(last, zone.key)
    low, high = start, last  # bisect for the change
    while high - low > dt.timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(zone).utcoffset() == start.astimezone(zone).utcoffset():
            low = mid
        else:
            high = mid
    before = local(high - dt.timedelta(microseconds=1), zone.key)
    return max(before, local(last, zone.key))


def _oracle_candidates(
    day: dt.date, working: WorkingTime, duration: dt.timedelta, step: dt.timedelta
) -> list[dt.datetime]:
    """Every grid start on `day` whose slot lies inside working hours, by wall-clock reading."""
    zone = ZoneInfo(working.time_zone)
    found = []
    wall = dt.datetime.combine(day, working.start)
    while wall < dt.datetime.combine(day, working.end):
        start = wall.replace(tzinfo=zone).astimezone(UTC)
        last = start + duration - dt.timedelta(microseconds=1)
        if (
            local(start, zone.key) == wall
            and local(last, zone.key).date() == day
            and _max_wall(start, last, zone) < dt.datetime.combine(day, working.end)
        ):
            found.append(start)
        wall += step
    return found


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    zone = draw(st.sampled_from(ZONES))
    # Office hours half the time, anything in the day otherwise.
    start_minute = draw(st.sampled_from([9 * 60, 8 * 60 + 30]) | st.integers(0, 22 * 60)) // 5 * 5
    end_minute = draw(st.just(17 * 60) | st.integers(start_minute + 5, 24 * 60 - 1))
    end_minute = max(end_minute, start_minute + 5)
    working = WorkingTime(
        zone,
        start=dt.time(*divmod(start_minute, 60)),
        end=dt.time(*divmod(end_minute, 60)),
        days=draw(st.just(frozenset(range(5))) | st.frozensets(st.integers(0, 6), min_size=1)),
    )
    # Around the 2026 DST changes half the time, anywhere in 2026 otherwise.
    anchor = draw(
        st.sampled_from(
            [
                dt.datetime(2026, 3, 7, tzinfo=UTC),
                dt.datetime(2026, 3, 28, tzinfo=UTC),
                dt.datetime(2026, 4, 4, tzinfo=UTC),
                dt.datetime(2026, 9, 5, tzinfo=UTC),
                dt.datetime(2026, 9, 26, tzinfo=UTC),
                dt.datetime(2026, 10, 24, tzinfo=UTC),
                dt.datetime(2026, 10, 31, tzinfo=UTC),
                dt.datetime(2026, 1, 1, tzinfo=UTC),
            ]
        )
    )
    now = anchor + draw(st.integers(0, 365 * 24 * 60 if anchor.month == 1 else 3 * 24 * 60)) * MIN
    # Busy spans on a 5-minute grid (as calendars have them), so that they often touch slots.
    base, five = anchor + (now - anchor) // (5 * MIN) * 5 * MIN, 5 * MIN
    short, long = st.integers(0, 4 * 12), st.integers(0, 24 * 12)
    busy = [
        (base + s * five, base + (s + length) * five)
        for s, length in draw(
            st.lists(
                st.tuples(st.integers(-24 * 12, 8 * 24 * 12), short | short | long), max_size=15
            )
        )
    ]
    return {
        "busy": busy,
        "now": now,
        "working": working,
        "duration": draw(st.sampled_from([5, 15, 30, 45, 60, 90, 240])) * MIN,
        "preferred_hours": draw(
            st.none() | st.dictionaries(st.integers(0, 23), st.integers(0, 5), max_size=6)
        ),
        "horizon_days": draw(st.just(14) | st.integers(1, 9)),
        "step": draw(st.sampled_from([5, 10, 15, 30, 60])) * MIN,
        "lead": draw(st.sampled_from([0, 30, 90])) * MIN,
        "not_before": draw(st.none() | st.just(now + draw(st.integers(-600, 3000)) * MIN)),
    }


@settings(max_examples=150, deadline=None)
@given(case=scenarios())
def test_find_slot_agrees_with_a_brute_force_oracle(case: dict[str, object]) -> None:
    result = find_slot(**case)

    working: WorkingTime = case["working"]
    zone = ZoneInfo(working.time_zone)
    duration: dt.timedelta = case["duration"]
    busy: list[tuple[dt.datetime, dt.datetime]] = case["busy"]
    hours: dict[int, int] = case["preferred_hours"] or {}
    earliest: dt.datetime = case["now"] + case["lead"]
    if case["not_before"] is not None:
        earliest = max(earliest, case["not_before"])

    def is_free(start: dt.datetime) -> bool:
        end = start + duration
        return not any(
            start <= b0 < end if b0 == b1 else b0 < end and start < b1 for b0, b1 in busy
        )

    first_day = earliest.astimezone(zone).date()
    per_day = {}
    for offset in range(case["horizon_days"]):
        day = first_day + dt.timedelta(days=offset)
        if day.weekday() in working.days:
            free = [
                s
                for s in _oracle_candidates(day, working, duration, case["step"])
                if s >= earliest and is_free(s)
            ]
            if free:
                per_day[day] = free

    if result is None:
        assert per_day == {}
        return
    start, end = result
    assert end - start == duration
    assert start.tzinfo is UTC
    # Free, not too early, on a working day, on the grid, inside working hours.
    assert is_free(start)
    assert start >= earliest
    local_start = local(start, zone.key)
    day = local_start.date()
    assert day.weekday() in working.days
    assert (local_start - dt.datetime.combine(day, working.start)) % case["step"] == dt.timedelta(0)
    assert local_start.time() >= working.start
    last = local(end - dt.timedelta(microseconds=1), zone.key)
    assert last.date() == day
    assert last.time() < working.end
    # No earlier day had a free candidate; within the day, no better or equal-and-earlier one.
    assert min(per_day) == day
    best = max(per_day[day], key=lambda s: (hours.get(local(s, zone.key).hour, 0), -s.timestamp()))
    assert start == best
