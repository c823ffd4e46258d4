"""Per-contact history from plain records (pure), including hostile records."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from core.derive.history import MailItem, MeetingItem, cadence_days, summarise

NOW = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)


def ago(hours: float) -> dt.datetime:
    return NOW - dt.timedelta(hours=hours)


def test_counts_times_and_awaiting() -> None:
    mail = [
        MailItem(ago(50), "in", "t1"),
        MailItem(ago(48), "out", "t1"),
        MailItem(ago(10), "in", "t2"),
    ]
    h = summarise(mail, [], now=NOW)
    assert (h.inbound_count, h.outbound_count, h.threads_together) == (2, 1, 2)
    assert h.last_inbound_at == ago(10)
    assert h.last_outbound_at == ago(48)
    assert h.first_contact_at == ago(50)
    assert h.awaiting_reply_from == "me"
    assert h.my_reply_median_s == 2 * 3600
    assert h.their_reply_median_s is None


def test_a_tie_waits_on_them_and_no_mail_waits_on_nobody() -> None:
    tie = [MailItem(ago(1), "in", "t"), MailItem(ago(1), "out", "t")]
    assert summarise(tie, [], now=NOW).awaiting_reply_from == "them"
    assert summarise([], [], now=NOW).awaiting_reply_from is None


def test_meetings_past_next_and_in_progress() -> None:
    hour = dt.timedelta(hours=1)
    meetings = [
        MeetingItem(ago(30), ago(29)),
        MeetingItem(ago(5), ago(4), is_group=True),
        MeetingItem(ago(0.5), ago(0.5) + hour),  # in progress: neither past nor next
        MeetingItem(NOW + 3 * hour, NOW + 4 * hour),
        MeetingItem(NOW + 2 * hour, NOW + 3 * hour),
    ]
    h = summarise([], meetings, now=NOW)
    assert h.past_meetings == 2
    assert (h.one_to_one_meetings, h.group_meetings) == (1, 1)
    assert h.last_meeting_at == ago(5)
    assert h.next_meeting_at == NOW + 2 * hour
    assert h.first_contact_at == ago(30)
    assert h.last_contact_at == ago(5)  # a future meeting is not contact yet


def test_cadence_is_the_median_gap_between_interaction_days() -> None:
    day = dt.date(2026, 1, 1)
    days = [day + dt.timedelta(days=d) for d in (0, 7, 14, 30)]
    assert cadence_days(days) == 7.0
    assert cadence_days(days[:2]) is None


def test_mass_mail_counts_but_weighs_little_for_strength() -> None:
    h = summarise([MailItem(ago(1), "out", "t", recipient_count=200)], [], now=NOW)
    assert h.outbound_count == 1
    assert h.recent_outbound < 1


# Hypothesis takes naive bounds and attaches the zone itself.
EARLIEST = dt.datetime(1970, 1, 1)  # noqa: DTZ001
LATEST = dt.datetime(2100, 1, 1)  # noqa: DTZ001
aware = st.datetimes(min_value=EARLIEST, max_value=LATEST, timezones=st.just(dt.UTC))


@given(
    mail=st.lists(
        st.builds(
            MailItem, at=aware, direction=st.sampled_from(["in", "out"]),
            thread=st.text(max_size=3), recipient_count=st.integers(-5, 100_000),
        ),
        max_size=40,
    ),
    meetings=st.lists(st.builds(MeetingItem, start_at=aware, end_at=aware), max_size=10),
)  # fmt: skip
def test_history_of_hostile_records_is_consistent(
    mail: list[MailItem], meetings: list[MeetingItem]
) -> None:
    h = summarise(mail, meetings, now=NOW)
    assert h.inbound_count + h.outbound_count == len(mail)  # nothing valid is dropped
    assert h.past_meetings == sum(1 for m in meetings if m.end_at <= NOW)
    if h.first_contact_at is not None:
        assert h.last_contact_at is not None
        assert h.first_contact_at <= h.last_contact_at
    assert h.my_reply_median_s is None or h.my_reply_median_s >= 0
