"""Graph calendarView delta → EventRecord / EventDeleted (pure functions; sync.py does the I/O).

`GET /me/calendarView/delta?startDateTime=..&endDateTime=..` tracks the **primary calendar**
only, over a window fixed by the first call (it lives in the skip/delta tokens); it takes no
`$select`/`$filter`/`$orderby`/`$expand`, and honours `Prefer: odata.maxpagesize` and
`Prefer: outlook.timezone` (https://learn.microsoft.com/graph/api/event-delta,
https://learn.microsoft.com/graph/delta-query-events, PROVIDERS.md §4). Other calendars have
no documented delta in v1.0 (sync.py lists them instead).

**Times.** We ask for UTC, so `start`/`end` `dateTime` are normally UTC wall clock
("2026-11-09T06:00:00.0000000"). When the preference is not applied, the answer is in the
mailbox's zone, and dateTimeTimeZone.timeZone may be a Windows name ("Pacific Standard Time")
as well as an IANA one (https://learn.microsoft.com/graph/api/resources/datetimetimezone):
Windows names map through CLDR's windowsZones as packaged by icalendar (`iana_zone`, shared with
calendar_write.py).

**Sparse rows.** "Updated instances are represented by their id with at least the properties
that have been updated" (https://learn.microsoft.com/graph/delta-query-overview): a row that
lacks what an EventRecord needs is not mapped (it would blank the stored event) but re-read by
id (`needs_reread`; sync.py).

**Recurring series.** The view is expanded: occurrences (`type` occurrence/exception) and single
events each come as their own item, and a `seriesMaster` item is not an occurrence, so it is
never an EventRecord. Live Graph sends occurrences *sparsely* — only id, seriesMasterId, type,
start and end — and expects the client to take the rest from the series master
(https://github.com/microsoftgraph/microsoft-graph-docs/issues/22197 and issue 7632); the
sandbox sends full occurrences. So an occurrence without `organizer` borrows organizer,
attendees, responseStatus, isOrganizer, isCancelled and iCalUId from its master (from the same
page, else sync.py GETs it once).

**Responses.** Outlook's `responseType` values map to the provider-neutral ones:
accepted → accepted, tentativelyAccepted → tentative, declined → declined,
notResponded/none → needsAction (https://learn.microsoft.com/graph/api/resources/responsestatus).
`self_response` is "organizer" when `isOrganizer`, None when the user has no response at all
(`none` and not the organizer). Outlook lists the organizer in `organizer`, not in `attendees`.

**All-day events** come as midnight-to-midnight in whatever zone the answer is in: `start_at`
is that date's midnight UTC (whatever the zone) and `is_all_day` says how to read it.

**Removals.** `@removed` → EventDeleted; removals may name events outside the window (the docs
say so) and are passed on: deleting what the store does not have is harmless.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from connectors.microsoft.mail import decode_name, parse_graph_time
from core.records import Address, Attendee, Change, EventDeleted, EventRecord

EVENT_DELTA_PAGE_SIZE = 500  # [?] undocumented maximum; the same bound as message delta
SERIES_MASTER = "seriesMaster"
# Fields an occurrence takes from its series master when Graph sends it sparsely.
MASTER_FIELDS = (
    "organizer",
    "attendees",
    "responseStatus",
    "isOrganizer",
    "isCancelled",
    "iCalUId",
    "isAllDay",
)
# What a single event's delta row must carry to be mapped without a re-read.
EVENT_FIELDS = ("type", "start", "end", *MASTER_FIELDS)
# An occurrence's own fields; the rest it takes from its series master.
OCCURRENCE_FIELDS = ("type", "start", "end", "seriesMasterId")
# `$select` of an event re-read by id, and of a calendarView listing.
EVENT_SELECT = ("id", "seriesMasterId", *EVENT_FIELDS)
# Event times in UTC, asked of every calendar read (module docstring, "Times").
UTC_VIEW = 'outlook.timezone="UTC"'
UTC_NAMES = frozenset({"utc", "etc/utc", "coordinated universal time"})
_WINDOWS_LOWER = {name.lower(): iana for name, iana in WINDOWS_TO_OLSON.items()}
IANA_TO_WINDOWS = {iana: windows for windows, iana in WINDOWS_TO_OLSON.items()}
IANA_TO_WINDOWS["UTC"] = "UTC"
RESPONSES = {
    "accepted": "accepted",
    "tentativelyaccepted": "tentative",
    "declined": "declined",
    "notresponded": "needsAction",
    "none": "needsAction",
    "organizer": "accepted",  # an attendee row marked organizer has accepted by definition
}


def window(
    now: dt.datetime, *, past_days: int, future_days: int
) -> tuple[dt.datetime, dt.datetime]:
    """Return the calendarView window around `now`, whole seconds, UTC."""
    now = now.astimezone(dt.UTC).replace(microsecond=0)
    return now - dt.timedelta(days=past_days), now + dt.timedelta(days=future_days)


def graph_window_params(start: dt.datetime, end: dt.datetime) -> dict[str, str]:
    """Return startDateTime/endDateTime query parameters (ISO 8601, UTC)."""
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return {
        "startDateTime": start.astimezone(dt.UTC).strftime(fmt),
        "endDateTime": end.astimezone(dt.UTC).strftime(fmt),
    }


def iana_zone(name: object) -> str | None:
    """The IANA zone for a Graph zone name (Windows or IANA); None for custom/unknown zones."""
    if not isinstance(name, str) or not name.strip():
        return None
    name = name.strip()
    candidate = _WINDOWS_LOWER.get(name.lower(), name)
    try:
        ZoneInfo(candidate)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return candidate


def parse_event_time(value: object) -> dt.datetime | None:
    """Parse a dateTimeTimeZone `{dateTime, timeZone}` into an aware UTC datetime."""
    if not isinstance(value, dict):
        return None
    moment = parse_graph_time(str(value.get("dateTime") or ""))
    if moment is None:
        return None
    zone = str(value.get("timeZone") or "UTC")
    if zone.lower() in UTC_NAMES:
        return moment
    iana = iana_zone(zone)
    if iana is None:
        # "Customized Time Zone" or a name neither CLDR nor tzdata knows: nothing says where the
        # wall clock is, and UTC is at most a day off where failing would lose the event.
        return moment
    # parse_graph_time read the wall clock as UTC; re-read it in the named zone.
    return moment.replace(tzinfo=ZoneInfo(iana)).astimezone(dt.UTC)


def parse_event_day(value: object) -> dt.datetime | None:
    """An all-day bound: midnight UTC of its wall-clock date, whatever zone it is given in."""
    if not isinstance(value, dict):
        return None
    moment = parse_graph_time(str(value.get("dateTime") or ""))
    return None if moment is None else dt.datetime.combine(moment.date(), dt.time(), dt.UTC)


def map_response(value: object) -> str | None:
    """Map an Outlook responseType to accepted|declined|tentative|needsAction."""
    if not isinstance(value, str):
        return None
    return RESPONSES.get(value.lower())


def self_response(item: Mapping[str, Any]) -> str | None:
    """Return the user's own response: "organizer" when they organised it."""
    if item.get("isOrganizer"):
        return "organizer"
    status = item.get("responseStatus")
    raw = status.get("response") if isinstance(status, dict) else None
    if not isinstance(raw, str) or raw.lower() == "none":
        return None
    if raw.lower() == "organizer":
        return "organizer"
    return map_response(raw)


def parse_attendees(
    item: Mapping[str, Any], owner_addresses: Iterable[str]
) -> tuple[Attendee, ...]:
    """Parse `attendees[]`; `is_self` when the address is one of the user's own."""
    mine = {a.lower() for a in owner_addresses}
    out = []
    for att in item.get("attendees") or []:
        if not isinstance(att, dict):
            continue
        email = att.get("emailAddress") if isinstance(att.get("emailAddress"), dict) else {}
        address = str(email.get("address") or "").strip()
        if not address:
            continue
        status = att.get("status") if isinstance(att.get("status"), dict) else {}
        raw_response = str(status.get("response") or "")
        kind = str(att.get("type") or "required").lower()
        out.append(
            Attendee(
                address=address,
                name=decode_name(email.get("name"), address),
                response=map_response(raw_response),
                is_organizer=raw_response.lower() == "organizer",
                is_self=address.lower() in mine,
                is_optional=kind == "optional",
                is_resource=kind == "resource",
            )
        )
    return tuple(out)


def needs_reread(item: Mapping[str, Any]) -> bool:
    """Return True for a delta row too sparse to map: re-read it by id (module docstring)."""
    if "@removed" in item or item.get("type") == SERIES_MASTER:
        return False
    if item.get("type") in ("occurrence", "exception") and item.get("seriesMasterId"):
        # Live Graph sends occurrences with just these; their master fills in the rest.
        return any(key not in item for key in OCCURRENCE_FIELDS)
    return any(key not in item for key in EVENT_FIELDS)


def needs_master(item: Mapping[str, Any]) -> bool:
    """Return True for an occurrence that came without its series' details."""
    return (
        "@removed" not in item
        and item.get("type") in ("occurrence", "exception")
        and bool(item.get("seriesMasterId"))
        and "organizer" not in item
    )


def is_full_master(item: Mapping[str, Any]) -> bool:
    """A series master row that can lend its fields (a sparse, updated one cannot)."""
    return item.get("type") == SERIES_MASTER and "organizer" in item and "@removed" not in item


def with_master(item: Mapping[str, Any], master: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the occurrence with the master's fields filled in where it has none."""
    merged = dict(item)
    if master:
        for key in MASTER_FIELDS:
            if key not in merged and key in master:
                merged[key] = master[key]
    return merged


def map_event(
    item: Mapping[str, Any], *, calendar_id: str, owner_addresses: Iterable[str] = ()
) -> EventRecord:
    """Map one calendarView item (single instance, occurrence or exception) to an EventRecord."""
    organizer = None
    org = item.get("organizer")
    if isinstance(org, dict) and isinstance(org.get("emailAddress"), dict):
        address = str(org["emailAddress"].get("address") or "").strip()
        if address:
            organizer = Address(address, decode_name(org["emailAddress"].get("name"), address))
    all_day = bool(item.get("isAllDay"))
    parse = parse_event_day if all_day else parse_event_time
    return EventRecord(
        provider_calendar_id=calendar_id,
        provider_event_id=str(item["id"]),
        start_at=parse(item.get("start")),
        end_at=parse(item.get("end")),
        is_all_day=all_day,
        is_cancelled=bool(item.get("isCancelled")),
        ical_uid=item.get("iCalUId") or None,
        recurring_event_id=item.get("seriesMasterId") or None,
        organizer=organizer,
        self_response=self_response(item),
        attendees=parse_attendees(item, owner_addresses),
    )


def map_delta_items(
    items: Iterable[Mapping[str, Any]],
    *,
    calendar_id: str,
    owner_addresses: Iterable[str] = (),
    masters: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Change]:
    """Map one page of calendarView delta items; series masters only feed their occurrences."""
    items = list(items)
    owners = tuple(owner_addresses)
    known = dict(masters or {})
    known.update({str(i["id"]): i for i in items if is_full_master(i)})
    out: list[Change] = []
    for item in items:
        if "@removed" in item:
            out.append(
                EventDeleted(provider_calendar_id=calendar_id, provider_event_id=str(item["id"]))
            )
            continue
        if item.get("type") == SERIES_MASTER:
            continue
        if needs_master(item):
            item = with_master(item, known.get(str(item["seriesMasterId"])))
        out.append(map_event(item, calendar_id=calendar_id, owner_addresses=owners))
    return out
