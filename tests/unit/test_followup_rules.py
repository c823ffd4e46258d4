"""The follow-up rules on their edges: working days, time zones, lists, mass mail, meetings."""

from __future__ import annotations

import datetime as dt

import pytest

from core.followups.rules import Mail, Meeting, PersonFacts, Thresholds, suggest
from core.followups.slots import WorkingTime
from core.models import FollowupKind as K

UTC = dt.UTC
LIMITS = Thresholds()
BERLIN = WorkingTime("Europe/Berlin")


def at(day: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    """November 2026: the 16th is a Monday, the 20th a Friday."""
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def kinds(person: PersonFacts, now: dt.datetime, working: WorkingTime = BERLIN) -> list[K]:
    return [s.kind for s in suggest(person, now=now, working=working, limits=LIMITS)]


def person(**kw: object) -> PersonFacts:
    values: dict[str, object] = {"address": "ada@example.org", "name": "Ada"}
    values.update(kw)
    return PersonFacts(**values)  # type: ignore[arg-type]


# Waiting on you


def test_waiting_on_you_after_two_full_working_days_skipping_the_weekend() -> None:
    ada = person(last_inbound=Mail(at(20, 16)), inbound_count=1)  # Friday afternoon
    assert kinds(ada, at(23, 12)) == []  # Monday: one working day so far
    assert kinds(ada, at(24, 22, 59)) == []  # Tuesday 23:59 Berlin: not yet two full days
    assert kinds(ada, at(24, 23, 0)) == [K.WAITING_ON_YOU]  # Wednesday 00:00 Berlin
    (s,) = suggest(ada, now=at(25), working=BERLIN, limits=LIMITS)
    assert "Ada wrote" in s.reason
    assert "you have not replied" in s.reason


def test_working_days_are_counted_in_the_users_time_zone() -> None:
    # Thursday 12:00 UTC is Thursday afternoon in Berlin but already Friday in Auckland.
    ada = person(last_inbound=Mail(at(19, 12)))
    auckland = WorkingTime("Pacific/Auckland")
    assert kinds(ada, at(23, 22, 59), BERLIN) == []
    assert kinds(ada, at(23, 23, 0), BERLIN) == [K.WAITING_ON_YOU]  # Fri + Mon done: Tue 00:00
    assert kinds(ada, at(24, 6), auckland) == []  # Tue 19:00 there: only Monday is done
    assert kinds(ada, at(24, 10, 59), auckland) == []
    assert kinds(ada, at(24, 11, 0), auckland) == [K.WAITING_ON_YOU]  # Wed 00:00 NZDT


def test_my_reply_or_a_meeting_since_resolves_waiting_on_you() -> None:
    base = {"last_inbound": Mail(at(10))}
    assert kinds(person(**base), at(18)) == [K.WAITING_ON_YOU]
    assert kinds(person(**base, last_outbound=Mail(at(17))), at(18)) == []
    met = Meeting(at(12), at(12, 13), people=1)
    assert K.WAITING_ON_YOU not in kinds(person(**base, last_meeting=met), at(18))


def test_cc_only_or_mass_mail_is_not_waiting_on_you() -> None:
    assert kinds(person(last_inbound=Mail(at(10), to_me_directly=False)), at(18)) == []
    crowd = Mail(at(10), recipients=LIMITS.mass_recipients + 1)
    assert kinds(person(last_inbound=crowd), at(18)) == []


def test_old_unanswered_mail_is_history_not_a_to_do() -> None:
    ada = person(last_inbound=Mail(at(1) - dt.timedelta(days=LIMITS.max_age_days)))
    assert kinds(ada, at(2)) == []


# No reply to you


def test_nudge_after_n_days_and_not_to_a_list() -> None:
    mine = Mail(at(10), recipients=2)
    assert kinds(person(last_outbound=mine), at(15, 11)) == []
    assert kinds(person(last_outbound=mine), at(15, 12)) == [K.NO_REPLY]
    to_list = Mail(at(10), to_list=True)
    assert kinds(person(last_outbound=to_list), at(18)) == []
    answer = Mail(at(10), answers_them=True)  # the last word of an exchange
    assert kinds(person(last_outbound=answer), at(18)) == []
    assert K.NO_REPLY not in kinds(person(last_outbound=mine, last_inbound=Mail(at(11))), at(18))


def test_a_tie_between_their_message_and_mine_means_i_wrote_last() -> None:
    same = at(10)
    ada = person(last_inbound=Mail(same), last_outbound=Mail(same))
    assert kinds(ada, at(18)) == [K.NO_REPLY]


# After a meeting


def test_after_a_small_one_off_meeting_without_email() -> None:
    met = Meeting(at(16, 10), at(16, 11), people=1)
    assert kinds(person(last_meeting=met), at(18, 10, 59)) == []
    assert kinds(person(last_meeting=met), at(18, 11)) == [K.AFTER_MEETING]
    # Any email after it, either way, answers it.
    assert kinds(person(last_meeting=met, last_outbound=Mail(at(16, 12))), at(19)) == []
    assert kinds(person(last_meeting=met, last_inbound=Mail(at(17))), at(19)) == []


@pytest.mark.parametrize(
    "meeting",
    [
        Meeting(at(16, 10), at(16, 11), people=1, recurring=True),
        Meeting(at(16, 10), at(16, 11), people=LIMITS.meeting_max_people + 1),
    ],
    ids=["recurring", "big"],
)
def test_no_follow_up_after_recurring_or_big_meetings(meeting: Meeting) -> None:
    assert kinds(person(last_meeting=meeting), at(20)) == []


# Going quiet


def strong(**kw: object) -> PersonFacts:
    return person(strength=70, cadence_days=7.0, **kw)


def test_going_quiet_past_one_and_a_half_cadences_with_a_floor() -> None:
    last = at(1)
    # 1.5 x 7 days = 10.5 days, but never before the 14-day floor.
    assert kinds(strong(last_contact_at=last), at(15, 11)) == []
    assert kinds(strong(last_contact_at=last), at(15, 12)) == [K.GOING_QUIET]
    weekly = person(strength=70, cadence_days=20.0, last_contact_at=last)
    assert kinds(weekly, last + dt.timedelta(days=29)) == []  # 1.5 x 20 days = 30
    assert kinds(weekly, last + dt.timedelta(days=30)) == [K.GOING_QUIET]


def test_going_quiet_needs_strength_and_no_scheduled_meeting() -> None:
    weak = person(strength=LIMITS.quiet_min_strength - 1, cadence_days=7.0, last_contact_at=at(1))
    assert kinds(weak, at(20)) == []
    booked = strong(last_contact_at=at(1), next_meeting_at=at(25))
    assert kinds(booked, at(20)) == []


def test_going_quiet_gives_way_to_a_more_specific_rule() -> None:
    ada = strong(last_contact_at=at(1), last_inbound=Mail(at(1)))
    assert kinds(ada, at(20)) == [K.WAITING_ON_YOU]


# Take it off the screen


def emails_only(**kw: object) -> PersonFacts:
    values: dict[str, object] = {
        "inbound_count": 30,
        "outbound_count": 32,
        "first_contact_at": dt.datetime(2026, 3, 2, tzinfo=UTC),
        "last_contact_at": at(18),
        "last_outbound": Mail(at(18), to_list=True),
    }
    values.update(kw)
    return person(**values)


def test_email_only_relationship_gets_a_call_suggestion_with_numbers_in_words() -> None:
    (s,) = suggest(emails_only(), now=at(20), working=BERLIN, limits=LIMITS)
    assert s.kind is K.OFF_SCREEN
    assert s.cause_key == "screen:never"
    assert s.reason == "62 emails both ways since March, never met: suggest a call."


def test_off_screen_edges() -> None:
    assert kinds(emails_only(inbound_count=2), at(20)) == []  # one-sided
    assert kinds(emails_only(first_contact_at=at(1)), at(20)) == []  # weeks, not months
    assert kinds(emails_only(last_contact_at=at(18) - dt.timedelta(days=40)), at(20)) == []
    assert kinds(emails_only(next_meeting_at=at(27)), at(20)) == []
    recent = Meeting(at(1) - dt.timedelta(days=100), at(1) - dt.timedelta(days=100))
    assert kinds(emails_only(last_meeting=recent), at(20)) == []
    stale = Meeting(at(1) - dt.timedelta(days=300), at(1) - dt.timedelta(days=300))
    (s,) = suggest(emails_only(last_meeting=stale), now=at(20), working=BERLIN, limits=LIMITS)
    assert s.cause_key.startswith("screen:last:")
    assert "last met" in s.reason


def test_lists_and_automated_senders_are_never_suggested() -> None:
    for kind in ("list", "automated"):
        assert kinds(emails_only(kind=kind, last_inbound=Mail(at(10))), at(20)) == []


def test_causes_are_stable_and_move_with_new_facts() -> None:
    one = suggest(person(last_inbound=Mail(at(10))), now=at(18), working=BERLIN, limits=LIMITS)
    two = suggest(person(last_inbound=Mail(at(10))), now=at(19), working=BERLIN, limits=LIMITS)
    three = suggest(person(last_inbound=Mail(at(11))), now=at(19), working=BERLIN, limits=LIMITS)
    assert one[0].cause_key == two[0].cause_key != three[0].cause_key
