"""Relationship strength 0-100 with its reasons in words (pure: `now` is given).

DEFINITIONS.md says nothing about strength; this is the reading, chosen to be explainable:

    score = 35·recency + 30·frequency + 20·reciprocity·recency + 15·meetings     (rounded)

* recency     = 0.5 ** (days since last contact / 45): halves every 45 quiet days. This is the
  decay: a relationship that goes quiet loses its recency points, and its reciprocity points
  with them, while frequency and meetings fall out of their windows.
* frequency   = log(1 + emails both ways in 90 days) / log(1 + 40), capped at 1. Mass mail
  (more than 25 recipients) weighs 0.1 of a message (history.MASS_WEIGHT).
* reciprocity = min(in, out) / max(in, out) over all counted mail: one-sided mail is weak.
* meetings    = log(1 + past meetings in 180 days) / log(1 + 8), capped at 1.

Reasons name what the score stands on, strongest first, e.g. "41 emails both ways in 90 days",
"3 meetings in the last 6 months", "you reply within 2 hours", "quiet for 4 months". A contact
with no interaction at all scores 0 with no reasons.
"""

from __future__ import annotations

import datetime as dt
import math

from core.derive.history import History

HALF_LIFE_DAYS = 45.0
FULL_FREQUENCY = 40.0
FULL_MEETINGS = 8.0
WEIGHTS = {"recency": 35.0, "frequency": 30.0, "reciprocity": 20.0, "meetings": 15.0}


def score(history: History, *, now: dt.datetime) -> tuple[int, list[str]]:
    """Return (strength 0-100, reasons in words) for one contact's history."""
    if history.last_contact_at is None and history.next_meeting_at is None:
        return 0, []
    days_quiet = _days_since(history.last_contact_at, now)
    recency = 0.5 ** (days_quiet / HALF_LIFE_DAYS) if days_quiet is not None else 0.0
    recent_mail = history.recent_inbound + history.recent_outbound
    frequency = min(1.0, math.log1p(recent_mail) / math.log1p(FULL_FREQUENCY))
    both = (history.inbound_count, history.outbound_count)
    reciprocity = min(both) / max(both) if max(both) else 0.0
    meetings = min(1.0, math.log1p(history.recent_meetings) / math.log1p(FULL_MEETINGS))
    total = (
        WEIGHTS["recency"] * recency
        + WEIGHTS["frequency"] * frequency
        + WEIGHTS["reciprocity"] * reciprocity * recency
        + WEIGHTS["meetings"] * meetings
    )
    value = max(0, min(100, round(total)))
    return value, _reasons(history, days_quiet, recent_mail, reciprocity)


def _reasons(
    history: History, days_quiet: float | None, recent_mail: float, reciprocity: float
) -> list[str]:
    reasons: list[str] = []
    emails = round(recent_mail)
    if emails:
        way = (
            "both ways"
            if history.recent_inbound and history.recent_outbound
            else ("from them" if history.recent_inbound else "from you")
        )
        reasons.append(f"{_plural(emails, 'email')} {way} in 90 days")
    if history.recent_meetings:
        reasons.append(f"{_plural(history.recent_meetings, 'meeting')} in the last 6 months")
    if history.next_meeting_at is not None:
        reasons.append("a meeting is coming up")
    if history.my_reply_median_s is not None:
        reasons.append(f"you reply within {_duration(history.my_reply_median_s)}")
    if history.their_reply_median_s is not None:
        reasons.append(f"they reply within {_duration(history.their_reply_median_s)}")
    if history.inbound_count + history.outbound_count >= 4 and reciprocity < 0.2:
        reasons.append("mostly one-sided")
    if days_quiet is not None:
        usual = history.cadence_days or 0.0
        if days_quiet >= max(60.0, 3 * usual):
            reasons.append(f"quiet for {_duration(int(days_quiet * 86400))}")
        elif not emails and not history.recent_meetings:
            reasons.append(f"last contact {_duration(int(days_quiet * 86400))} ago")
    return reasons


def _days_since(when: dt.datetime | None, now: dt.datetime) -> float | None:
    if when is None:
        return None
    return max(0.0, (now - when).total_seconds() / 86400)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _duration(seconds: int) -> str:
    """Return a rounded human duration: "5 minutes", "2 hours", "3 days", "4 months"."""
    seconds = max(0, int(seconds))
    for unit, size in (("year", 365 * 86400), ("month", 30 * 86400), ("day", 86400)):
        if seconds >= size * (2 if unit != "day" else 1):
            return _plural(max(1, round(seconds / size)), unit)
    if seconds >= 3600:
        return _plural(max(1, math.ceil(seconds / 3600)), "hour")
    return _plural(max(1, math.ceil(seconds / 60)), "minute")
