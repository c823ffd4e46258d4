"""Which follow-ups to suggest for one person (pure: no I/O, `now` is given).

Five rules, each with its reason in words and a *cause*: the fact that made it true. A new
cause is a new suggestion; a dismissed or done one never comes back for the same cause.

* **Waiting on you** — their latest message is newer than yours, it was written to you (you are
  in To, among at most `mass_recipients` people) and `reply_working_days` full working days have
  passed in your time zone (core/followups/slots.add_working_days). Cause: that message.
* **No reply to you** — your latest message is newer than theirs (or they never wrote), it
  opened a conversation or asked again (it is not your answer to their message in that thread:
  the last word of an exchange, "thanks, will do", needs no nudge), it went to no mailing list
  and to at most `mass_recipients` people, and `nudge_days` have passed. Cause: your message.
* **After a meeting** — your latest meeting with them ended `after_meeting_days` ago and no
  email either way followed. Only small meetings (at most `meeting_max_people` people besides
  you) that are not occurrences of a recurring series: a weekly one-to-one or an all-hands is
  not a meeting that calls for a follow-up. Cause: the meeting.
* **Going quiet** — a strong contact (strength ≥ `quiet_min_strength`) with a usual cadence: the
  time since your last interaction passed `quiet_factor` times the cadence (and at least
  `quiet_min_gap_days`), nothing is scheduled, and none of the three rules above already asks
  for the same thing. Cause: the last interaction.
* **Take it off the screen** — an email-only relationship: at least `offscreen_min_messages`
  messages, `offscreen_min_each_way` in each direction, spanning `offscreen_min_span_days`, still
  active (last contact within `offscreen_active_days`), never met — or not for
  `offscreen_stale_days` — and no meeting scheduled. Cause: "never" or the last meeting.

Every rule also stops applying once its cause is older than `max_age_days` (an unanswered
message from last year is history, not a to-do) — the suggestion then resolves, as it does when
a reply or a meeting takes its condition away. Only people are ever suggested (lists and
automated senders never are); the caller hands in facts that already follow DEFINITIONS.md.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from core.followups.slots import WorkingTime, add_working_days
from core.models import FollowupKind

PRIORITY = (
    FollowupKind.WAITING_ON_YOU,
    FollowupKind.AFTER_MEETING,
    FollowupKind.NO_REPLY,
    FollowupKind.GOING_QUIET,
    FollowupKind.OFF_SCREEN,
)


@dataclass(frozen=True)
class Thresholds:
    reply_working_days: int = 2
    nudge_days: int = 5
    after_meeting_days: int = 2
    max_age_days: int = 30
    mass_recipients: int = 10
    meeting_max_people: int = 3
    quiet_factor: float = 1.5
    quiet_min_strength: int = 50
    quiet_min_gap_days: int = 14
    offscreen_min_messages: int = 20
    offscreen_min_each_way: int = 5
    offscreen_min_span_days: int = 60
    offscreen_active_days: int = 30
    offscreen_stale_days: int = 180


@dataclass(frozen=True)
class Mail:
    """The latest counted message one way."""

    at: dt.datetime
    recipients: int = 1  # To + Cc + Bcc
    to_me_directly: bool = True  # inbound: one of my addresses is in To
    to_list: bool = False  # outbound: a mailing list was among the recipients
    answers_them: bool = False  # outbound: it replies to their message in the same thread
    subject: str | None = None


@dataclass(frozen=True)
class Meeting:
    """The latest qualifying meeting that has ended."""

    start: dt.datetime
    end: dt.datetime
    people: int = 1  # invited besides me (resources aside)
    recurring: bool = False


@dataclass(frozen=True)
class PersonFacts:
    address: str
    name: str | None = None
    kind: str = "person"
    strength: int | None = None
    inbound_count: int = 0
    outbound_count: int = 0
    first_contact_at: dt.datetime | None = None
    last_contact_at: dt.datetime | None = None
    last_inbound: Mail | None = None
    last_outbound: Mail | None = None
    last_meeting: Meeting | None = None
    past_meetings: int = 0
    next_meeting_at: dt.datetime | None = None
    cadence_days: float | None = None

    @property
    def label(self) -> str:
        return self.name or self.address


@dataclass(frozen=True)
class Suggestion:
    kind: FollowupKind
    cause_key: str
    due_at: dt.datetime
    reason: str
    facts: dict[str, object] = field(default_factory=dict)


def suggest(
    person: PersonFacts, *, now: dt.datetime, working: WorkingTime, limits: Thresholds
) -> list[Suggestion]:
    """Return the suggestions that hold for `person` at `now`, most pressing first."""
    if person.kind != "person":
        return []
    found = [
        s
        for s in (
            _waiting_on_you(person, now, working, limits),
            _after_meeting(person, now, limits),
            _no_reply(person, now, limits),
        )
        if s is not None
    ]
    if not found:
        quiet = _going_quiet(person, now, limits)
        if quiet is not None:
            found.append(quiet)
    screen = _off_screen(person, now, limits)
    if screen is not None:
        found.append(screen)
    return sorted(found, key=lambda s: PRIORITY.index(s.kind))


def _waiting_on_you(
    p: PersonFacts, now: dt.datetime, working: WorkingTime, t: Thresholds
) -> Suggestion | None:
    mail = p.last_inbound
    if mail is None or (p.last_outbound is not None and p.last_outbound.at >= mail.at):
        return None
    if not mail.to_me_directly or mail.recipients > t.mass_recipients:
        return None
    if _met_since(p, mail.at) or _too_old(mail.at, now, t):
        return None
    due = add_working_days(mail.at, t.reply_working_days, working)
    if due > now:
        return None
    about = f" about “{mail.subject}”" if mail.subject else ""
    return Suggestion(
        FollowupKind.WAITING_ON_YOU,
        _key("in", mail.at),
        due,
        f"{p.label} wrote{about} {_days_ago(mail.at, now)}; you have not replied.",
        {"message_at": _iso(mail.at), "subject": mail.subject},
    )


def _no_reply(p: PersonFacts, now: dt.datetime, t: Thresholds) -> Suggestion | None:
    mail = p.last_outbound
    if mail is None or (p.last_inbound is not None and p.last_inbound.at > mail.at):
        return None
    if mail.to_list or mail.answers_them or mail.recipients > t.mass_recipients:
        return None
    if _met_since(p, mail.at) or _too_old(mail.at, now, t):
        return None
    due = mail.at + dt.timedelta(days=t.nudge_days)
    if due > now:
        return None
    about = f" about “{mail.subject}”" if mail.subject else ""
    return Suggestion(
        FollowupKind.NO_REPLY,
        _key("out", mail.at),
        due,
        f"You wrote{about} {_days_ago(mail.at, now)}; no answer from {p.label} yet.",
        {"message_at": _iso(mail.at), "subject": mail.subject},
    )


def _after_meeting(p: PersonFacts, now: dt.datetime, t: Thresholds) -> Suggestion | None:
    meeting = p.last_meeting
    if meeting is None or meeting.end > now or meeting.recurring:
        return None
    if meeting.people > t.meeting_max_people or _too_old(meeting.end, now, t):
        return None
    if any(m is not None and m.at >= meeting.end for m in (p.last_inbound, p.last_outbound)):
        return None
    due = meeting.end + dt.timedelta(days=t.after_meeting_days)
    if due > now:
        return None
    return Suggestion(
        FollowupKind.AFTER_MEETING,
        _key("met", meeting.start),
        due,
        f"You met {p.label} {_days_ago(meeting.end, now)}; no email since.",
        {"meeting_start": _iso(meeting.start), "meeting_end": _iso(meeting.end)},
    )


def _going_quiet(p: PersonFacts, now: dt.datetime, t: Thresholds) -> Suggestion | None:
    if p.strength is None or p.strength < t.quiet_min_strength:
        return None
    if p.cadence_days is None or p.last_contact_at is None or p.next_meeting_at is not None:
        return None
    waited = max(t.quiet_factor * p.cadence_days, float(t.quiet_min_gap_days))
    due = p.last_contact_at + dt.timedelta(days=waited)
    if due > now:
        return None
    return Suggestion(
        FollowupKind.GOING_QUIET,
        _key("quiet", p.last_contact_at),
        due,
        f"You usually talk with {p.label} every {_span(p.cadence_days)}; "
        f"the last time was {_days_ago(p.last_contact_at, now)}.",
        {"cadence_days": p.cadence_days, "last_contact_at": _iso(p.last_contact_at)},
    )


def _off_screen(p: PersonFacts, now: dt.datetime, t: Thresholds) -> Suggestion | None:
    total = p.inbound_count + p.outbound_count
    if total < t.offscreen_min_messages or p.next_meeting_at is not None:
        return None
    if min(p.inbound_count, p.outbound_count) < t.offscreen_min_each_way:
        return None
    if p.first_contact_at is None or p.last_contact_at is None:
        return None
    if p.last_contact_at - p.first_contact_at < dt.timedelta(days=t.offscreen_min_span_days):
        return None
    if now - p.last_contact_at > dt.timedelta(days=t.offscreen_active_days):
        return None
    meeting = p.last_meeting
    if meeting is not None and now - meeting.start < dt.timedelta(days=t.offscreen_stale_days):
        return None
    since = _month_words(p.first_contact_at, now)
    if meeting is None:
        cause, met = "never", "never met"
        due = p.first_contact_at + dt.timedelta(days=t.offscreen_min_span_days)
    else:
        cause, met = _key("last", meeting.start), f"last met {_days_ago(meeting.start, now)}"
        due = meeting.start + dt.timedelta(days=t.offscreen_stale_days)
    return Suggestion(
        FollowupKind.OFF_SCREEN,
        f"screen:{cause}",
        max(due, p.first_contact_at),
        f"{total} emails both ways since {since}, {met}: suggest a call.",
        {"messages": total, "since": _iso(p.first_contact_at), "last_meeting": _iso_or_none(p)},
    )


# Helpers


def _met_since(p: PersonFacts, at: dt.datetime) -> bool:
    return p.last_meeting is not None and p.last_meeting.start >= at


def _too_old(at: dt.datetime, now: dt.datetime, t: Thresholds) -> bool:
    return now - at > dt.timedelta(days=t.max_age_days)


def _key(prefix: str, at: dt.datetime) -> str:
    return f"{prefix}:{int(at.timestamp())}"


def _iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat()


def _iso_or_none(p: PersonFacts) -> str | None:
    return _iso(p.last_meeting.start) if p.last_meeting else None


def _days_ago(at: dt.datetime, now: dt.datetime) -> str:
    days = (now - at).days
    if days <= 0:
        return "today"
    if days == 1:
        return "yesterday"
    if days < 14:
        return f"{days} days ago"
    if days < 60:
        return f"{days // 7} weeks ago"
    return f"{days // 30} months ago"


def _span(days: float) -> str:
    if days < 1.5:
        return "day"
    if days < 14:
        return f"{round(days)} days"
    if days < 60:
        return f"{round(days / 7)} weeks"
    return f"{round(days / 30)} months"


def _month_words(at: dt.datetime, now: dt.datetime) -> str:
    name = at.strftime("%B")
    return name if at.year == now.year else f"{name} {at.year}"
