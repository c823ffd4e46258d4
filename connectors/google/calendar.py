"""Google Calendar v3: the user's own calendars, their events as instances, sync tokens.

Provider facts this module relies on (PROVIDERS.md §2;
https://developers.google.com/calendar/api/guides/sync):

- Streams are the calendars whose calendarList accessRole is "owner" (DEFINITIONS.md: meetings
  count only on the user's own calendars); calendarList.list takes minAccessRole=owner.
- events.list with singleEvents=true expands recurring series into instances, each with its own
  (possibly moved) time, which is what DEFINITIONS.md "Meetings" counts.
- The initial listing is windowed (timeMin = now - 730 days). A syncToken cannot be combined
  with timeMin, and "all other query parameters should be the same as for the initial
  synchronization", so incremental rounds send singleEvents=true and no window.
- showDeleted is left at its default: the initial listing has no use for deleted events, and
  with a syncToken "deleted events ... are always included" while showDeleted=false is refused
  (events.list reference, syncToken).
- `nextSyncToken` comes only on the last page; a stale token (or page token) answers 410
  fullSyncRequired -> CursorExpired, and the stream starts over without a token.
- A status "cancelled" item is a deleted event or a cancelled occurrence; only its id (and, for
  an instance, recurringEventId + originalStartTime) is guaranteed, so it becomes EventDeleted.
- Calendar quota is per request: 600 per user per minute (pacer bucket "calendar").

Cursors (JSON strings):
- backfill_cursor `{"timeMin": RFC 3339, "pageToken": ...}` (the window is kept so a page token
  is always replayed with the query that issued it);
- cursor `{"sync": nextSyncToken}` once a listing is complete, `{"sync": ..., "page": ...}`
  while an incremental listing is between pages.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from connectors.google import quota
from connectors.google.errors import is_insufficient_permissions
from core.errors import CursorExpired, ProviderRejected
from core.records import Address, Attendee, Change, EventDeleted, EventRecord, Page

if TYPE_CHECKING:
    from connectors.google.sync import Session

INITIAL_WINDOW = dt.timedelta(days=730)
EVENTS_PAGE_SIZE = 2500  # events.list maximum; one page is one request (cheap to replay)
CALENDAR_LIST_PAGE_SIZE = 250

# ---------------------------------------------------------------------------------------------
# parsing (pure)


def zone_or_none(name: object) -> ZoneInfo | None:
    """The IANA zone called `name`, or None when it is missing or unknown here."""
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # not found, malformed, or a directory ("America")
        return None


def parse_time(value: Any, calendar_zone: str | None = None) -> tuple[dt.datetime | None, bool]:
    """Parse an EventDateTime to (UTC datetime, is_all_day); all-day dates are midnight UTC.

    A dateTime without an offset is wall-clock time in `timeZone`: "A time zone offset is
    required unless a time zone is explicitly specified in timeZone" (EventDateTime,
    https://developers.google.com/calendar/api/v3/reference/events). Without a usable timeZone
    it is read in the calendar's zone, else UTC.
    """
    if not isinstance(value, dict):
        return None, False
    if value.get("dateTime"):
        try:
            when = dt.datetime.fromisoformat(str(value["dateTime"]).replace("Z", "+00:00"))
        except ValueError:
            return None, False
        if when.tzinfo is None:
            zone = zone_or_none(value.get("timeZone")) or zone_or_none(calendar_zone) or dt.UTC
            when = when.replace(tzinfo=zone)
        return when.astimezone(dt.UTC), False
    if value.get("date"):
        try:
            day = dt.date.fromisoformat(str(value["date"]))
        except ValueError:
            return None, True
        return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC), True
    return None, False


def parse_event(
    calendar_id: str, item: dict[str, Any], calendar_zone: str | None = None
) -> EventRecord | EventDeleted:
    """Turn one events.list item into an EventRecord, or EventDeleted when it is cancelled."""
    event_id = str(item["id"])
    if item.get("status") == "cancelled":
        return EventDeleted(provider_calendar_id=calendar_id, provider_event_id=event_id)
    start_at, all_day = parse_time(item.get("start"), calendar_zone)
    end_at, _ = parse_time(item.get("end"), calendar_zone)
    organizer_raw = item.get("organizer") if isinstance(item.get("organizer"), dict) else {}
    organizer = (
        Address(address=str(organizer_raw["email"]), name=organizer_raw.get("displayName"))
        if organizer_raw.get("email")
        else None
    )
    attendees = tuple(
        Attendee(
            address=str(a["email"]),
            name=a.get("displayName"),
            response=a.get("responseStatus"),
            is_organizer=bool(a.get("organizer")),
            is_self=bool(a.get("self")),
            is_optional=bool(a.get("optional")),
            is_resource=bool(a.get("resource")),
        )
        for a in item.get("attendees") or ()
        if isinstance(a, dict) and a.get("email")
    )
    return EventRecord(
        provider_calendar_id=calendar_id,
        provider_event_id=event_id,
        start_at=start_at,
        end_at=end_at,
        is_all_day=all_day,
        ical_uid=item.get("iCalUID"),
        recurring_event_id=item.get("recurringEventId"),
        organizer=organizer,
        self_response=self_response(item),
        attendees=attendees,
        # "Whether attendees may have been omitted from the event's representation"
        # (https://developers.google.com/calendar/api/v3/reference/events): e.g. a guest list
        # hidden from guests. Then the organizer alone does not make it one-to-one.
        attendees_omitted=bool(item.get("attendeesOmitted")),
    )


def self_response(item: dict[str, Any]) -> str | None:
    """The user's own answer: their attendee row's responseStatus, else "organizer" if theirs.

    An event with no attendees that the user organised (a personal block) is "organizer" too.
    """
    for attendee in item.get("attendees") or ():
        if isinstance(attendee, dict) and attendee.get("self"):
            status = attendee.get("responseStatus")
            return str(status) if status else None
    organizer = item.get("organizer")
    if isinstance(organizer, dict) and organizer.get("self"):
        return "organizer"
    return None


# ---------------------------------------------------------------------------------------------
# cursors (pure)


def encode_cursor(sync_token: str, page_token: str | None = None) -> str:
    """The incremental cursor: the sync token and, between pages, the next page token."""
    data = {"sync": sync_token}
    if page_token:
        data["page"] = page_token
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def decode_cursor(raw: str) -> tuple[str, str | None]:
    """Return (syncToken, pageToken); a cursor we cannot read means a full sync."""
    try:
        data = json.loads(raw)
        return str(data["sync"]), (str(data["page"]) if data.get("page") else None)
    except (ValueError, KeyError, TypeError) as exc:
        raise CursorExpired("unreadable calendar cursor") from exc


def encode_backfill(time_min: str, page_token: str) -> str:
    return json.dumps(
        {"timeMin": time_min, "pageToken": page_token}, separators=(",", ":"), sort_keys=True
    )


def decode_backfill(raw: str) -> tuple[str, str | None]:
    try:
        data = json.loads(raw)
        return str(data["timeMin"]), (str(data["pageToken"]) if data.get("pageToken") else None)
    except (ValueError, KeyError, TypeError) as exc:
        raise CursorExpired("unreadable calendar backfill cursor") from exc


def rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# I/O


class CalendarReader:
    """Calendar's read calls for one Page, paced one unit per request."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.service = session.calendar()

    def _call(self, request: Any) -> dict[str, Any]:
        return self.session.execute(
            request, bucket=quota.CALENDAR, cost=quota.CALENDAR_REQUEST_COST
        )

    def owned_calendar_ids(self) -> list[str] | None:
        """Ids of calendars the user owns; None when the grant has no calendar scope."""
        ids: list[str] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {
                "minAccessRole": "owner",
                "maxResults": CALENDAR_LIST_PAGE_SIZE,
            }
            if token:
                params["pageToken"] = token
            body = self.session.execute_or_none(
                self.service.calendarList().list(**params),
                bucket=quota.CALENDAR,
                cost=quota.CALENDAR_REQUEST_COST,
                # Granular consent lets the user untick the calendar scopes: mail still syncs.
                when=is_insufficient_permissions,
            )
            if body is None:
                return None
            ids += [
                str(c["id"])
                for c in body.get("items") or ()
                if c.get("accessRole") == "owner" and not c.get("deleted")
            ]
            token = body.get("nextPageToken")
            if not token:
                return ids

    def page(
        self,
        calendar_id: str,
        *,
        cursor: str | None,
        backfill_cursor: str | None,
        now: dt.datetime,
    ) -> Page:
        """One events.list page: the windowed initial listing, or changes since `cursor`."""
        params: dict[str, Any] = {
            "calendarId": calendar_id,
            "singleEvents": True,
            "maxResults": EVENTS_PAGE_SIZE,
        }
        sync_token: str | None = None
        time_min: str | None = None
        if backfill_cursor is not None or cursor is None:
            if backfill_cursor is not None:
                time_min, page_token = decode_backfill(backfill_cursor)
            else:
                time_min, page_token = rfc3339(now - INITIAL_WINDOW), None
            params["timeMin"] = time_min
        else:
            sync_token, page_token = decode_cursor(cursor)
            params["syncToken"] = sync_token
        if page_token:
            params["pageToken"] = page_token
        body = self._call(self.service.events().list(**params))
        # events.list names the calendar's zone ("timeZone"), the fallback for floating times.
        zone = body.get("timeZone")
        changes: list[Change] = [
            parse_event(calendar_id, item, zone) for item in body.get("items") or ()
        ]
        next_page = body.get("nextPageToken")
        if next_page:
            if time_min is not None:
                return Page(changes=changes, backfill_cursor=encode_backfill(time_min, next_page))
            assert sync_token is not None
            return Page(changes=changes, cursor=encode_cursor(sync_token, next_page))
        next_sync = body.get("nextSyncToken")
        if not next_sync:
            # Google always ends a listing with nextSyncToken; without one we cannot go on.
            raise ProviderRejected("events.list ended without nextSyncToken")
        return Page(changes=changes, cursor=encode_cursor(str(next_sync)), is_complete=True)
