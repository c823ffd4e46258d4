"""The sidebar's words and months (core/context.py pure helpers): edges of days, weeks, months,
years, the future, and who made the last contact."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from core.context import ago_words, last_contact_words, timeline_months

NOW = dt.datetime(2026, 3, 15, 12, 0, tzinfo=dt.UTC)


def _at(**delta: float) -> dt.datetime:
    return NOW - dt.timedelta(**delta)


@pytest.mark.parametrize(
    ("at", "words"),
    [
        (NOW, "today"),
        (dt.datetime(2026, 3, 15, 0, 0, tzinfo=dt.UTC), "today"),  # early this morning
        (dt.datetime(2026, 3, 14, 23, 59, tzinfo=dt.UTC), "yesterday"),  # 12 hours, other day
        (_at(days=1), "yesterday"),
        (_at(days=2), "2 days ago"),
        (_at(days=6), "6 days ago"),
        (_at(days=7), "a week ago"),
        (_at(days=13), "a week ago"),
        (_at(days=14), "2 weeks ago"),
        (_at(days=21), "3 weeks ago"),
        (dt.datetime(2026, 2, 16, tzinfo=dt.UTC), "3 weeks ago"),  # 27 days: not yet a month
        (dt.datetime(2026, 2, 15, tzinfo=dt.UTC), "a month ago"),
        (dt.datetime(2025, 12, 20, tzinfo=dt.UTC), "2 months ago"),
        (dt.datetime(2025, 3, 16, tzinfo=dt.UTC), "11 months ago"),
        (dt.datetime(2025, 3, 15, tzinfo=dt.UTC), "a year ago"),
        (dt.datetime(2023, 1, 1, tzinfo=dt.UTC), "3 years ago"),
        (NOW + dt.timedelta(hours=3), "today"),
        (dt.datetime(2026, 3, 16, 9, tzinfo=dt.UTC), "tomorrow"),
        (NOW + dt.timedelta(days=3), "in 3 days"),
        (NOW + dt.timedelta(days=10), "in a week"),
        (dt.datetime(2026, 5, 20, tzinfo=dt.UTC), "in 2 months"),
        (dt.datetime(2028, 4, 1, tzinfo=dt.UTC), "in 2 years"),
    ],
)
def test_ago_words(at: dt.datetime, words: str) -> None:
    assert ago_words(at, now=NOW) == words


def test_days_are_calendar_days_in_the_zone_of_now() -> None:
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    now = dt.datetime(2026, 3, 15, 0, 30, tzinfo=berlin)  # 23:30 UTC the day before
    at = dt.datetime(2026, 3, 14, 23, 10, tzinfo=dt.UTC)  # 00:10 in Berlin: same day
    assert ago_words(at, now=now) == "today"
    assert ago_words(at, now=now.astimezone(dt.UTC)) == "today"
    assert ago_words(dt.datetime(2026, 3, 14, 22, 50, tzinfo=dt.UTC), now=now) == "yesterday"


def test_month_end_edges() -> None:
    now = dt.datetime(2026, 3, 31, tzinfo=dt.UTC)
    assert ago_words(dt.datetime(2026, 2, 28, tzinfo=dt.UTC), now=now) == "a month ago"
    assert ago_words(dt.datetime(2026, 3, 1, tzinfo=dt.UTC), now=now) == "4 weeks ago"
    leap = dt.datetime(2025, 2, 28, tzinfo=dt.UTC)
    assert ago_words(leap, now=dt.datetime(2028, 2, 29, tzinfo=dt.UTC)) == "3 years ago"


def _last(**kw: dt.datetime | None) -> str | None:
    values: dict[str, dt.datetime | None] = {
        "last_contact_at": None,
        "last_inbound_at": None,
        "last_outbound_at": None,
        "last_meeting_at": None,
    }
    values.update(kw)
    if values["last_contact_at"] is None:
        present = [v for v in values.values() if v is not None]
        values["last_contact_at"] = max(present) if present else None
    return last_contact_words(now=NOW, **values)  # type: ignore[arg-type]


def test_last_contact_says_who() -> None:
    assert _last(last_outbound_at=_at(days=21)) == "3 weeks ago, you wrote"
    assert _last(last_inbound_at=_at(days=1), last_outbound_at=_at(days=3)) == (
        "yesterday, they wrote"
    )
    assert _last(last_inbound_at=_at(days=40), last_meeting_at=_at(hours=2)) == "today, you met"


def test_last_contact_ties_and_absence() -> None:
    same = _at(days=2)
    assert _last(last_inbound_at=same, last_outbound_at=same) == "2 days ago, you wrote"
    assert _last(last_outbound_at=same, last_meeting_at=same) == "2 days ago, you met"
    assert _last() is None


def test_last_contact_in_the_future_reads_as_now() -> None:
    # Delivery times a little ahead of our clock (skew) must not read "tomorrow, they wrote".
    assert _last(last_inbound_at=NOW + dt.timedelta(days=1)) == "today, they wrote"


def test_timeline_months() -> None:
    assert timeline_months(NOW) == [
        "2025-04", "2025-05", "2025-06", "2025-07", "2025-08", "2025-09",
        "2025-10", "2025-11", "2025-12", "2026-01", "2026-02", "2026-03",
    ]  # fmt: skip
    january = timeline_months(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert (january[0], january[-1], len(january)) == ("2025-02", "2026-01", 12)
