"""The user's scheduled follow-ups as an iCalendar feed (RFC 5545, RFC 7986; pure: no I/O).

A subscribed calendar (Google, Apple, Outlook "add from URL") polls the feed; `REFRESH-INTERVAL`
and `X-PUBLISHED-TTL` ask for hourly refreshes. The `icalendar` library does the TEXT escaping
(backslash, comma, semicolon, newline), UTF-8 and the CRLF line folding at 75 octets; every
line break goes out as `\\n`, so a CR or CRLF in a summary comes back as LF.

What a client can rely on:

- `UID` is stable per follow-up event; a change comes with a higher `SEQUENCE` and a newer
  `LAST-MODIFIED` (the caller's to bump). A withdrawn follow-up is best kept in the feed as
  `STATUS:CANCELLED` (and `TRANSP:TRANSPARENT`) for a while, so clients drop it.
- `DTSTART`/`DTEND` carry the event's IANA `TZID` (never floating), and the feed holds one
  `VTIMEZONE` per zone used, covering the events' dates, for clients that do not know IANA
  names. The one exception: an instant in the second pass of a repeated (fall-back) hour
  cannot be named by local time (RFC 5545 3.3.5 reads such a local time as the first pass), so
  an event that starts or ends there is written in UTC instead.
- `DTSTAMP` and `LAST-MODIFIED` are the event's `updated`, not the render time, and events
  and zones are sorted: the same follow-ups render to the same bytes whatever `now` is, so an
  unchanged feed can be answered with 304 and no client sees every event change on each poll.
  (`now` is only checked. RFC 5545 3.8.7.2 reads DTSTAMP as the render time when METHOD is
  present; writing that would defeat both.)
- With no events the feed is a VCALENDAR of calendar properties only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from icalendar import Calendar, Event, Timezone, vText

from core.followups.slots import require_aware, zone_for

__all__ = ["PRODID", "FeedEvent", "render_feed"]

PRODID = "-//Warmline//Follow-ups//EN"
REFRESH = dt.timedelta(hours=1)
STATUSES = frozenset({"TENTATIVE", "CONFIRMED", "CANCELLED"})  # RFC 5545 3.8.1.11, VEVENT


@dataclass(frozen=True)
class FeedEvent:
    """One follow-up event as the feed shows it."""

    uid: str  # stable per follow-up event, e.g. "<key>@warmline"
    summary: str
    description: str
    start: dt.datetime  # UTC-aware
    end: dt.datetime
    time_zone: str  # IANA: DTSTART/DTEND carry this TZID, with a VTIMEZONE
    url: str | None
    updated: dt.datetime  # -> DTSTAMP and LAST-MODIFIED
    sequence: int = 0
    status: str = "CONFIRMED"  # or "CANCELLED" (or "TENTATIVE")


def render_feed(events: Iterable[FeedEvent], *, calendar_name: str, now: dt.datetime) -> bytes:
    """Return the iCalendar feed of `events`, named `calendar_name`, as of `now`."""
    require_aware(now, "now")  # not written: see the module docstring
    ordered = sorted(events, key=lambda e: (require_aware(e.start, "start"), e.uid))
    _check(ordered)

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    # icalendar types NAME and X-WR-CALNAME as unknown and would write them raw (an unescaped
    # newline there ends the content line): make them TEXT, as RFC 7986 and the clients read them.
    calendar.add("name", vText(calendar_name))
    calendar.add("x-wr-calname", vText(calendar_name))  # what Apple, Google, Outlook show
    calendar.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", "PT1H")

    for time_zone in sorted({e.time_zone for e in ordered}):
        calendar.add_component(
            _vtimezone(time_zone, [e for e in ordered if e.time_zone == time_zone])
        )
    for event in ordered:
        calendar.add_component(_vevent(event))
    return calendar.to_ical()


def _check(events: list[FeedEvent]) -> None:
    seen: set[str] = set()
    for event in events:
        if not event.uid:
            raise ValueError("a feed event needs a non-empty uid")
        if event.uid in seen:
            raise ValueError(f"duplicate uid in feed: {event.uid!r}")
        seen.add(event.uid)
        start, end = require_aware(event.start, "start"), require_aware(event.end, "end")
        require_aware(event.updated, "updated")
        if end <= start:
            raise ValueError(f"event {event.uid!r} must end after it starts")
        zone_for(event.time_zone)
        if event.status not in STATUSES:
            raise ValueError(f"event {event.uid!r}: status must be one of {sorted(STATUSES)}")
        if event.sequence < 0:
            raise ValueError(f"event {event.uid!r}: sequence must not be negative")


def _vtimezone(time_zone: str, events: list[FeedEvent]) -> Timezone:
    # Only the span the events need (a day's margin either side for the local-date shift): a
    # full 1970-2038 history is kilobytes per zone, fetched by every client every hour.
    first = min(e.start for e in events).astimezone(dt.UTC).date() - dt.timedelta(days=1)
    last = max(e.end for e in events).astimezone(dt.UTC).date() + dt.timedelta(days=1)
    return Timezone.from_tzid(time_zone, first_date=first, last_date=last)


def _vevent(event: FeedEvent) -> Event:
    vevent = Event()
    vevent.add("uid", event.uid)
    vevent.add("dtstamp", event.updated.astimezone(dt.UTC))
    vevent.add("last-modified", event.updated.astimezone(dt.UTC))
    vevent.add("sequence", event.sequence)
    vevent.add("status", event.status)
    vevent.add("summary", event.summary)
    vevent.add("description", event.description)
    start, end = _local(event.start, event.end, event.time_zone)
    vevent.add("dtstart", start)
    vevent.add("dtend", end)
    # A follow-up holds its slot; a cancelled one no longer does.
    vevent.add("transp", "TRANSPARENT" if event.status == "CANCELLED" else "OPAQUE")
    if event.url is not None:
        vevent.add("url", event.url)
    return vevent


def _local(start: dt.datetime, end: dt.datetime, time_zone: str) -> tuple[dt.datetime, dt.datetime]:
    """Return the span in `time_zone`, or in UTC if a local time would name another instant."""
    zone = zone_for(time_zone)
    utc = (start.astimezone(dt.UTC), end.astimezone(dt.UTC))
    local = (utc[0].astimezone(zone), utc[1].astimezone(zone))
    # Compare in UTC: PEP 495 makes inter-zone == false for any time in a repeated hour.
    if any(lt.replace(fold=0).astimezone(dt.UTC) != ut for lt, ut in zip(local, utc, strict=True)):
        return utc  # the repeated hour's second pass; keep both ends in one zone
    return local
