"""Strength 0-100, reasons in words, decay when quiet (pure)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from core.derive.history import MailItem, MeetingItem, summarise
from core.derive.strength import _duration, score

NOW = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)
EARLIEST = dt.datetime(1971, 1, 1)  # noqa: DTZ001  (hypothesis wants naive bounds)
LATEST = dt.datetime(2099, 1, 1)  # noqa: DTZ001


def busy(now: dt.datetime) -> list[MailItem]:
    mail = []
    for day in range(0, 60, 3):
        t = now - dt.timedelta(days=day + 1)
        mail.append(MailItem(t, "in", f"t{day}"))
        mail.append(MailItem(t + dt.timedelta(hours=2), "out", f"t{day}"))
    return mail


def test_an_active_two_way_relationship_scores_high_with_reasons() -> None:
    meetings = [MeetingItem(NOW - dt.timedelta(days=d), NOW - dt.timedelta(days=d, hours=-1))
                for d in (5, 20, 40)]  # fmt: skip
    value, reasons = score(summarise(busy(NOW), meetings, now=NOW), now=NOW)
    assert value >= 75
    assert "40 emails both ways in 90 days" in reasons
    assert "3 meetings in the last 6 months" in reasons
    assert "you reply within 2 hours" in reasons


def test_strength_decays_when_the_relationship_goes_quiet() -> None:
    def at(days: int) -> tuple[int, list[str]]:
        later = NOW + dt.timedelta(days=days)
        return score(summarise(busy(NOW), [], now=later), now=later)

    values = [at(d)[0] for d in (0, 30, 120, 400)]
    assert values == sorted(values, reverse=True)
    assert values[-1] <= 2
    assert any(r.startswith("quiet for") for r in at(120)[1])


def test_one_sided_mail_is_weak() -> None:
    one_sided = [MailItem(NOW - dt.timedelta(days=d), "in", "t") for d in range(1, 20)]
    two_way = busy(NOW)[:19]
    assert (
        score(summarise(one_sided, [], now=NOW), now=NOW)[0]
        < score(summarise(two_way, [], now=NOW), now=NOW)[0]
    )


def test_no_interaction_scores_zero() -> None:
    assert score(summarise([], [], now=NOW), now=NOW) == (0, [])


def test_durations_in_words() -> None:
    assert _duration(90) == "2 minutes"
    assert _duration(2 * 3600) == "2 hours"
    assert _duration(86400) == "1 day"
    assert _duration(130 * 86400) == "4 months"


@given(
    mail=st.lists(
        st.builds(
            MailItem,
            at=st.datetimes(min_value=EARLIEST, max_value=LATEST, timezones=st.just(dt.UTC)),
            direction=st.sampled_from(["in", "out"]), thread=st.text(max_size=2),
            recipient_count=st.integers(0, 10_000),
        ), max_size=30,
    )
)  # fmt: skip
def test_strength_is_always_within_0_and_100(mail: list[MailItem]) -> None:
    value, reasons = score(summarise(mail, [], now=NOW), now=NOW)
    assert 0 <= value <= 100
    assert all(isinstance(r, str) and r for r in reasons)
