"""MicrosoftCalendarWriter: core.ports.CalendarWriter for one Microsoft account (Graph v1.0).

Permissions: `Calendars.ReadWrite` and `User.Read` (connectors/microsoft/oauth.py); nothing here
needs more. Every request goes through graph.py's client: paced, `Prefer: IdType="ImmutableId"`,
one 401 refresh, errors mapped once.

Provider facts this module relies on (PROVIDERS.md §4):

- **Idempotent create.** An event carries a client `transactionId`, which the event resource doc
  only says avoids "redundant POST operations in case of client retries" and "cannot change"
  (https://learn.microsoft.com/graph/api/resources/event). Reported behaviour: a repeat with the
  same content answers 201 with the event created the first time
  (https://blog.rykoma.net/2020/10/05/1559/, by a Microsoft support engineer), one with
  *different* content 400 `ErrorDuplicateTransactionId` (the event made under our key has been
  changed since, by the user or by an update whose event id the caller then lost). Neither is
  documented, so any 400 or 409 to the create makes us look the key's event up by transactionId
  in the follow-ups calendar and patch it back to the spec; only when there is none does the
  refusal stand.
- **Free/busy.** `POST /me/calendar/getSchedule` reports the **default calendar** only ("schedule
  items that match existing events in Alex's default calendar",
  https://learn.microsoft.com/graph/outlook-get-free-busy-schedule) and is **work/school only**
  ("Delegated (personal Microsoft account): Not supported",
  https://learn.microsoft.com/graph/api/calendar-getschedule). What a personal account gets back
  is not documented [?]: we take any 4xx other than 401/408/429 from getSchedule, or a
  per-schedule `error` for the user's own address (e.g. responseCode 5009 "Unable to resolve
  e-mail address ... to an Active Directory object",
  https://github.com/microsoftgraph/microsoft-graph-docs/issues/11225), as "cannot answer" and
  return None. It runs before the generic mapping because that maps 403 ErrorAccessDenied to
  ReauthRequired, which would park an account whose grant is fine.
- Busy statuses: `busy`, `oof` and `tentative` block a slot; `free`, `workingElsewhere` and
  `unknown` do not. availabilityView folds workingElsewhere into 0, "free or working elsewhere"
  (https://learn.microsoft.com/graph/api/resources/scheduleinformation), and a tentative
  meeting is still a meeting the user may attend. Events of the follow-ups calendar come from
  `GET /me/calendars/{id}/calendarView` with `Prefer: outlook.timezone="UTC"` and the same
  `showAs` rule (https://learn.microsoft.com/graph/api/calendar-list-calendarview).
- **Time zones.** dateTimeTimeZone.timeZone takes "any of the time zones supported by Windows",
  plus a fixed list of IANA names (https://learn.microsoft.com/graph/api/resources/datetimetimezone).
  We send the Windows name of the spec's IANA zone (CLDR windowsZones, as packaged by icalendar,
  a dependency already) with the wall clock in that zone, and UTC when the zone has no Windows
  name. Reading the user's zone needs MailboxSettings.Read, which Warmline does not ask for;
  getSchedule's `workingHours.timeZone.name` (a Windows name, or "Customized Time Zone") is the
  closest thing the granted permissions show, so `ensure_calendar` reports that zone for
  work/school accounts and None otherwise.
- `POST /me/calendars` with a name in use answers 409 `ErrorFolderExists`: another worker made
  it first; list again and take it.
- `DELETE /me/events/{id}` on the organizer's event sends attendees a cancellation; an unknown
  id answers 404 `ErrorItemNotFound`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.common import coalesce
from connectors.microsoft import calendar as cal
from connectors.microsoft.config import MicrosoftConfig
from connectors.microsoft.graph import GraphClient, Json, graph_error
from connectors.microsoft.sync import _path_id
from core.errors import ProviderRejected
from core.ports import EventSpec, FollowupCalendar, Interval, Pacer, TokenSource

BUSY_STATUSES = frozenset({"busy", "oof", "tentative"})
SCHEDULE_INTERVAL_MIN = 15
PAGE_SIZE = 100
# The schedule asked for only to learn the user's working-hours zone.
ZONE_PROBE = dt.timedelta(hours=1)


def _not_found(status: int, code: str) -> bool:
    return status == 404


def _missing_calendar(status: int, code: str) -> bool:
    # An id from elsewhere (another account, a deleted calendar) may also be malformed here.
    return status == 404 or (status == 400 and code == "errorinvalididmalformed")


def _schedule_unsupported(status: int, code: str) -> bool:
    return (400 <= status < 500 and status not in (401, 408, 429)) or status == 501


def _folder_exists(status: int, code: str) -> bool:
    return status == 409 and code == "errorfolderexists"


def _maybe_duplicate(status: int, code: str) -> bool:
    # Whatever Graph calls a repeated transactionId (400 ErrorDuplicateTransactionId is what
    # clients report; the docs name no status), the event lookup below settles it.
    return status in (400, 409)


def graph_time(moment: dt.datetime, time_zone: str) -> dict[str, str]:
    """A dateTimeTimeZone: the wall clock in the spec's zone under its Windows name, else UTC."""
    windows = cal.IANA_TO_WINDOWS.get(time_zone)
    zone: dt.tzinfo = dt.UTC
    if windows is not None:
        try:
            zone = ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            windows = None
    if windows is None:
        zone, windows = dt.UTC, "UTC"
    return {"dateTime": moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": windows}


def describe(spec: EventSpec) -> str:
    """The event body: the spec's text, then the link to act on it."""
    return f"{spec.description}\n\n{spec.link}" if spec.link else spec.description


def event_payload(spec: EventSpec) -> Json:
    """The event properties Warmline owns (POST adds transactionId).

    `attendees` is always sent so a PATCH also removes guests the spec no longer has; Graph
    invites on create and sends updates on change by itself.
    """
    return {
        "subject": spec.summary,
        "body": {"contentType": "text", "content": describe(spec)},
        "start": graph_time(spec.start, spec.time_zone),
        "end": graph_time(spec.end, spec.time_zone),
        "showAs": "busy",
        "isReminderOn": True,
        "attendees": [
            {"emailAddress": {"address": address}, "type": "required"} for address in spec.attendees
        ],
    }


def _span(item: Mapping[str, Any]) -> tuple[dt.datetime, dt.datetime] | None:
    start = cal.parse_event_time(item.get("start"))
    end = cal.parse_event_time(item.get("end"))
    return (start, end) if start is not None and end is not None and end > start else None


class MicrosoftCalendarWriter:
    """core.ports.CalendarWriter for one Microsoft account; see the module docstring."""

    def __init__(self, config: MicrosoftConfig, *, token: TokenSource, pacer: Pacer) -> None:
        self.graph = GraphClient(config, token=token, pacer=pacer)
        self._address: str | None = None

    # -- CalendarWriter ------------------------------------------------------------------------

    def ensure_calendar(self, *, known_id: str | None, name: str) -> FollowupCalendar:
        """Return `known_id` if it still exists, else the calendar named `name`, else a new one.

        Costs 3 requests when `known_id` is alive (the calendar, /me and getSchedule for the zone).
        """
        calendar_id: str | None = None
        if known_id:
            status, body = self.graph.call(
                "GET",
                f"me/calendars/{_path_id(known_id)}",
                params={"$select": "id,name"},
                accept=_missing_calendar,
            )
            if status == 200 and body.get("id"):
                calendar_id = str(body["id"])
        if calendar_id is None:
            calendar_id = self._find_calendar(name)
        if calendar_id is None:
            status, body = self.graph.call(
                "POST", "me/calendars", json_body={"name": name}, accept=_folder_exists
            )
            if status == 409:
                # Made meanwhile by another worker: take that one.
                calendar_id = self._find_calendar(name)
                if calendar_id is None:
                    raise ProviderRejected(
                        "Graph says the calendar exists but does not list it", status=409
                    )
            else:
                calendar_id = str(body["id"])
        now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
        info = self._schedule(now, now + ZONE_PROBE)
        zone = None
        if info is not None:
            hours = info.get("workingHours")
            if isinstance(hours, dict) and isinstance(hours.get("timeZone"), dict):
                zone = cal.iana_zone(hours["timeZone"].get("name"))
        return FollowupCalendar(calendar_id=calendar_id, time_zone=zone)

    def busy(
        self, *, calendar_ids: Sequence[str], start: dt.datetime, end: dt.datetime
    ) -> list[Interval] | None:
        """Busy spans from getSchedule (default calendar) plus the events of `calendar_ids`.

        None for an account getSchedule does not serve (personal Microsoft accounts).
        """
        if end <= start:
            return []
        info = self._schedule(start, end)
        if info is None:
            return None
        spans: list[tuple[dt.datetime, dt.datetime]] = []
        for item in info.get("scheduleItems") or ():
            if isinstance(item, dict) and str(item.get("status", "")).lower() in BUSY_STATUSES:
                span = _span(item)
                if span is not None:
                    spans.append(span)
        for calendar_id in dict.fromkeys(calendar_ids):
            spans += self._calendar_busy(calendar_id, start, end)
        return coalesce(spans, start, end)

    def put_event(self, calendar_id: str, spec: EventSpec, *, event_id: str | None) -> str:
        """Create the event with `transactionId=spec.key` (or PATCH `event_id`); return its id."""
        payload = event_payload(spec)
        if event_id is not None:
            status, body = self.graph.call(
                "PATCH", f"me/events/{_path_id(event_id)}", json_body=payload, accept=_not_found
            )
            if status < 300:
                return str(body["id"])
            # The event is gone (the user deleted it): create it again, idempotently.
        status, body = self.graph.call(
            "POST",
            f"me/calendars/{_path_id(calendar_id)}/events",
            json_body={**payload, "transactionId": spec.key},
            accept=_maybe_duplicate,
        )
        if status < 300:
            # 201, for a new event and for a repeat of the same create alike.
            return str(body["id"])
        # 400/409: perhaps our key already made an event (changed since, or a repeat Graph
        # refuses rather than answers 201). Find it and make it match the spec again rather
        # than make a second one; without one, the refusal was about the request itself.
        existing = self._find_by_transaction(calendar_id, spec.key)
        if existing is None:
            # Also when the key's event lives outside the follow-ups calendar (moved, or in
            # Deleted Items): only a new key can make a new event.
            raise graph_error(status, body, {})
        _, body = self.graph.call("PATCH", f"me/events/{_path_id(existing)}", json_body=payload)
        return str(body.get("id") or existing)

    def find_event(self, calendar_id: str, key: str) -> str | None:
        """The event created with transactionId `key` in the follow-ups calendar, or None."""
        return self._find_by_transaction(calendar_id, key)

    def remove_event(self, calendar_id: str, event_id: str) -> None:
        """Delete the event (attendees get Outlook's cancellation); gone already is fine."""
        self.graph.call("DELETE", f"me/events/{_path_id(event_id)}", accept=_not_found)

    # -- internals -----------------------------------------------------------------------------

    def _user_address(self) -> str:
        if self._address is None:
            me = self.graph.get("me", params={"$select": "mail,userPrincipalName"})
            address = me.get("mail") or me.get("userPrincipalName")
            if not address:
                raise ProviderRejected("Graph /me has neither mail nor userPrincipalName")
            self._address = str(address)
        return self._address

    def _schedule(self, start: dt.datetime, end: dt.datetime) -> Json | None:
        """The user's own scheduleInformation over [start, end), in UTC; None if unsupported."""
        address = self._user_address()
        status, body = self.graph.call(
            "POST",
            "me/calendar/getSchedule",
            json_body={
                "schedules": [address],
                "startTime": graph_time(start, "UTC"),
                "endTime": graph_time(end, "UTC"),
                "availabilityViewInterval": SCHEDULE_INTERVAL_MIN,
            },
            prefer=[cal.UTC_VIEW],
            accept=_schedule_unsupported,
        )
        if status >= 300:
            return None
        values = [v for v in body.get("value") or () if isinstance(v, dict)]
        mine = next(
            (v for v in values if str(v.get("scheduleId", "")).lower() == address.lower()),
            values[0] if values else None,
        )
        if mine is None or mine.get("error"):
            return None
        return mine

    def _calendar_busy(
        self, calendar_id: str, start: dt.datetime, end: dt.datetime
    ) -> list[tuple[dt.datetime, dt.datetime]]:
        """Busy spans of one calendar's events (calendarView); a calendar gone adds none."""
        spans: list[tuple[dt.datetime, dt.datetime]] = []
        link: str | None = self.graph.url(
            f"me/calendars/{_path_id(calendar_id)}/calendarView",
            {
                **cal.graph_window_params(start, end),
                "$select": "start,end,showAs,isCancelled",
                "$top": str(PAGE_SIZE),
            },
        )
        while link:
            status, body = self.graph.call(
                "GET", link, prefer=[cal.UTC_VIEW], accept=_missing_calendar
            )
            if status >= 300:
                return spans  # the calendar was deleted: nothing of it is busy
            for item in body.get("value") or ():
                if not isinstance(item, dict) or item.get("isCancelled"):
                    continue
                if str(item.get("showAs", "busy")).lower() not in BUSY_STATUSES:
                    continue
                span = _span(item)
                if span is not None:
                    spans.append(span)
            next_link = body.get("@odata.nextLink")
            link = str(next_link) if next_link else None
        return spans

    def _find_calendar(self, name: str) -> str | None:
        """The id of the user's calendar named `name` (case-insensitive, as Outlook's folder
        names are), or None."""
        found: list[tuple[bool, str]] = []
        link: str | None = self.graph.url(
            "me/calendars", {"$select": "id,name,canEdit", "$top": str(PAGE_SIZE)}
        )
        while link:
            body = self.graph.get(link)
            for item in body.get("value") or ():
                if not isinstance(item, dict) or not item.get("id"):
                    continue
                title = str(item.get("name") or "")
                if title.lower() == name.lower() and item.get("canEdit", True):
                    found.append((title != name, str(item["id"])))
            next_link = body.get("@odata.nextLink")
            link = str(next_link) if next_link else None
        return min(found)[1] if found else None

    def _find_by_transaction(self, calendar_id: str, key: str) -> str | None:
        """The id of the event in `calendar_id` created with transactionId `key`, or None.

        The follow-ups calendar holds only Warmline's events, so listing it is cheap; whether
        Graph can `$filter` on transactionId is not documented.
        """
        link: str | None = self.graph.url(
            f"me/calendars/{_path_id(calendar_id)}/events",
            {"$select": "id,transactionId", "$top": str(PAGE_SIZE)},
        )
        while link:
            body = self.graph.get(link)
            for item in body.get("value") or ():
                if isinstance(item, dict) and item.get("transactionId") == key and item.get("id"):
                    return str(item["id"])
            next_link = body.get("@odata.nextLink")
            link = str(next_link) if next_link else None
        return None


__all__ = ["MicrosoftCalendarWriter"]
