"""Per-contact email and meeting history, from plain records (pure: no I/O, `now` is given).

Readings of DEFINITIONS.md ("Email fields", "Meetings"), as applied here:

* Input mail items are already *counted* messages (see core/derive/people.py for which ones
  count), one per message per contact, deduplicated across accounts and folders by the caller.
* `inbound_count` / `outbound_count`, `last_inbound_at` / `last_outbound_at`: counts and latest
  delivery times each way; null when there is none.
* `first_contact_at` / `last_contact_at`: earliest / latest counted mail or *past* meeting (a
  meeting's time is its start). A future meeting is not contact yet; a meeting in progress is
  neither past nor next (it ends after `now`, it started before).
* `awaiting_reply_from`: `me` when their latest message is newer than mine (or only they wrote),
  `them` when mine is newer or equal, None without mail. A tie is `them`: the user's own message
  is the latest thing they can see.
* Meetings: `past_meetings` counts qualifying occurrences with `end <= now`; `last_meeting_at`
  is the latest such start; `next_meeting_at` the earliest start `> now`. An occurrence is
  one-to-one when the user and this contact are the only people invited (resources aside),
  group otherwise.
* Threads together: distinct threads holding counted mail with the contact.
* Reply times (a reading; DEFINITIONS.md is silent): within a thread, a message answering the
  other side's latest message — my reply time is from their message to my next one, theirs the
  reverse. The median over all such pairs, in seconds; None without any pair.
* Cadence (a reading): the median gap, in days, between consecutive days (UTC) on which the user
  and the contact interacted (counted mail or past meeting); None with fewer than three such days.
* Recent activity for strength: mail in the last 90 days, each message weighted 1 — or
  `MASS_WEIGHT` when it had more than `MASS_RECIPIENTS` recipients (mass mail is still counted,
  DEFINITIONS.md allows discounting it for strength) — and past meetings in the last 180 days.
"""

from __future__ import annotations

import datetime as dt
import itertools
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["in", "out"]

RECENT_MAIL = dt.timedelta(days=90)
RECENT_MEETINGS = dt.timedelta(days=180)
MASS_RECIPIENTS = 25
MASS_WEIGHT = 0.1
MIN_CADENCE_DAYS = 3


@dataclass(frozen=True)
class MailItem:
    """One counted message between the user and the contact."""

    at: dt.datetime
    direction: Direction
    thread: str
    recipient_count: int = 1


@dataclass(frozen=True)
class MeetingItem:
    """One qualifying meeting occurrence with the contact."""

    start_at: dt.datetime
    end_at: dt.datetime
    is_group: bool = False
    people: int = 1  # invited besides the user (resources aside); follow-up rules read it
    recurring: bool = False  # an occurrence of a recurring series


@dataclass
class History:
    """The derived facts of one contact (see the module docstring for each field's reading)."""

    inbound_count: int = 0
    outbound_count: int = 0
    first_contact_at: dt.datetime | None = None
    last_contact_at: dt.datetime | None = None
    last_inbound_at: dt.datetime | None = None
    last_outbound_at: dt.datetime | None = None
    awaiting_reply_from: str | None = None
    threads_together: int = 0
    my_reply_median_s: int | None = None
    their_reply_median_s: int | None = None
    past_meetings: int = 0
    one_to_one_meetings: int = 0
    group_meetings: int = 0
    last_meeting_at: dt.datetime | None = None
    next_meeting_at: dt.datetime | None = None
    cadence_days: float | None = None
    recent_inbound: float = 0.0  # weighted, last 90 days
    recent_outbound: float = 0.0
    recent_meetings: int = 0  # past meetings in the last 180 days
    interaction_days: list[dt.date] = field(default_factory=list, repr=False)

    @property
    def has_interaction(self) -> bool:
        """True when the contact has any counted mail or any qualifying meeting."""
        return bool(
            self.inbound_count
            or self.outbound_count
            or self.past_meetings
            or self.next_meeting_at is not None
        )


def summarise(
    mail: Iterable[MailItem], meetings: Iterable[MeetingItem], *, now: dt.datetime
) -> History:
    """Return the history of one contact from its counted mail and qualifying meetings."""
    mail = sorted(mail, key=lambda m: (m.at, m.direction, m.thread))
    history = History()
    contact_times: list[dt.datetime] = []
    threads: dict[str, list[MailItem]] = {}
    for item in mail:
        threads.setdefault(item.thread, []).append(item)
        contact_times.append(item.at)
        recent = item.at > now - RECENT_MAIL
        weight = MASS_WEIGHT if item.recipient_count > MASS_RECIPIENTS else 1.0
        if item.direction == "in":
            history.inbound_count += 1
            history.last_inbound_at = _later(history.last_inbound_at, item.at)
            history.recent_inbound += weight if recent else 0.0
        else:
            history.outbound_count += 1
            history.last_outbound_at = _later(history.last_outbound_at, item.at)
            history.recent_outbound += weight if recent else 0.0
    history.threads_together = len(threads)
    history.my_reply_median_s, history.their_reply_median_s = _reply_medians(threads.values())
    li, lo = history.last_inbound_at, history.last_outbound_at
    if li is not None and (lo is None or li > lo):
        history.awaiting_reply_from = "me"
    elif lo is not None:
        history.awaiting_reply_from = "them"

    for meeting in sorted(meetings, key=lambda m: (m.start_at, m.end_at)):
        if meeting.end_at <= now:
            history.past_meetings += 1
            if meeting.is_group:
                history.group_meetings += 1
            else:
                history.one_to_one_meetings += 1
            history.last_meeting_at = _later(history.last_meeting_at, meeting.start_at)
            contact_times.append(meeting.start_at)
            if meeting.start_at > now - RECENT_MEETINGS:
                history.recent_meetings += 1
        elif meeting.start_at > now and history.next_meeting_at is None:
            history.next_meeting_at = meeting.start_at  # sorted: the first one is the earliest

    if contact_times:
        history.first_contact_at = min(contact_times)
        history.last_contact_at = max(contact_times)
    days = sorted({t.astimezone(dt.UTC).date() for t in contact_times})
    history.interaction_days = days
    history.cadence_days = cadence_days(days)
    return history


def cadence_days(days: list[dt.date]) -> float | None:
    """Return the median gap in days between consecutive interaction days, or None."""
    if len(days) < MIN_CADENCE_DAYS:
        return None
    gaps = [(b - a).days for a, b in itertools.pairwise(days)]
    return float(statistics.median(gaps))


def _reply_medians(threads: Iterable[list[MailItem]]) -> tuple[int | None, int | None]:
    mine: list[float] = []
    theirs: list[float] = []
    for items in threads:
        for previous, current in itertools.pairwise(items):
            if previous.direction == current.direction:
                continue
            delay = (current.at - previous.at).total_seconds()
            (mine if current.direction == "out" else theirs).append(delay)
    return _median_s(mine), _median_s(theirs)


def _median_s(values: list[float]) -> int | None:
    return round(statistics.median(values)) if values else None


def _later(current: dt.datetime | None, value: dt.datetime) -> dt.datetime:
    return value if current is None or value > current else current
