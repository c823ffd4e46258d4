"""GoogleCalendarWriter: core.ports.CalendarWriter for one Google account (Calendar v3).

Scopes it lives with (connectors/google/oauth.py): `calendar.app.created` (create the follow-ups
calendar and write only into it), `calendar.calendarlist.readonly` (find it again, read the
primary calendar's zone), `calendar.freebusy` (busy spans). Granular consent lets the user untick
any of them, so a 403 `insufficientPermissions` degrades where it can: `busy` answers None and
`ensure_calendar` reports no zone.

Provider facts this module relies on (PROVIDERS.md §2):

- **Idempotent create.** events.insert accepts a client id: base32hex (`[a-v0-9]`), 5-1024
  characters, unique per calendar (Event.id, https://developers.google.com/calendar/api/v3/reference/events/insert).
  `EventSpec.key` is such an id. A taken id answers 409 "The requested identifier already
  exists." - after a lost response, and also when the event with that id was *deleted*: ids
  stay reserved (https://github.com/googleapis/google-api-python-client/issues/210, issue 846;
  https://github.com/googleapis/google-api-ruby-client/issues/1811). On the organizer's calendar
  a deleted event keeps its details "so that they can be restored (undeleted)" (Event.status,
  https://developers.google.com/calendar/api/v3/reference/events), so after a 409 we read the
  event and, unless it already is what the spec says, patch it back to the spec with status
  "confirmed". Matching first means a retry never re-sends invitations.
- Deleting a deleted event answers 410 `deleted`, an unknown one 404: both mean "gone"
  (https://developers.google.com/calendar/api/guides/errors#410_gone).
- **freebusy.query** takes at most 50 calendars (`calendarExpansionMax`), clips busy blocks to
  the window, and reports a calendar it cannot read per calendar (`calendars[id].errors`, e.g.
  `notFound`) instead of failing the request
  (https://developers.google.com/calendar/api/v3/reference/freebusy/query). The answer is keyed
  by the ids we sent ("primary" included).
- calendarList.list hides calendars the user hid unless `showHidden=true`; our calendar's
  description tells the user they may hide it, so we always ask for hidden ones too
  (https://developers.google.com/calendar/api/v3/reference/calendarList/list).
- Calendar quota is per request (pacer bucket "calendar", one unit each, quota.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from googleapiclient.errors import HttpError

from connectors.common import coalesce
from connectors.google import quota
from connectors.google.calendar import (
    CALENDAR_LIST_PAGE_SIZE,
    parse_time,
    rfc3339,
    zone_or_none,
)
from connectors.google.config import GoogleConfig
from connectors.google.errors import error_details, is_insufficient_permissions, is_rate_limit
from connectors.google.sync import Session
from core.errors import ProviderUnavailable
from core.ports import EventSpec, FollowupCalendar, Interval, Pacer, TokenSource

FREEBUSY_MAX_CALENDARS = 50  # freebusy.query calendarExpansionMax
FOLLOWUP_PROPERTY = {"warmline": "followup"}  # extendedProperties.private: marks our events
CALENDAR_DESCRIPTION = (
    "Follow-ups Warmline suggested: people to get back to, at times your calendar was free. "
    "Warmline writes only into this calendar. You can hide it or change its colour; delete it "
    "and Warmline makes a new one the next time it writes a follow-up."
)
UNUSED_PROFILE = "2026"  # Session needs a Gmail profile; Calendar costs do not depend on it


def _status(exc: BaseException) -> int | None:
    return int(exc.resp.status) if isinstance(exc, HttpError) else None


def _is_gone(exc: BaseException) -> bool:
    """404 (unknown) or 410 (deleted): the thing is not there."""
    return _status(exc) in (404, 410)


def _is_conflict(exc: BaseException) -> bool:
    """409 duplicate: an event with this client id exists (or existed) in the calendar."""
    return _status(exc) == 409


def _is_unreachable(exc: BaseException) -> bool:
    """Gone, or a 403 that is not quota: a calendar this grant may not use.

    Under `calendar.app.created` only, any calendar the app did not create answers like a
    missing scope; either way it is not ours to write into.
    """
    if _is_gone(exc):
        return True
    if not isinstance(exc, HttpError):
        return False
    status, reason, domain, message = error_details(exc)
    return status == 403 and not is_rate_limit(status, reason, domain, message)


def describe(spec: EventSpec) -> str:
    """The event's description: the spec's text, then the link to act on it."""
    return f"{spec.description}\n\n{spec.link}" if spec.link else spec.description


def event_time(moment: dt.datetime, time_zone: str) -> dict[str, str]:
    """An EventDateTime in `time_zone` (wall clock with its offset); UTC if the zone is unknown."""
    zone: dt.tzinfo | None = zone_or_none(time_zone)
    if zone is None:
        zone, time_zone = dt.UTC, "UTC"
    return {"dateTime": moment.astimezone(zone).isoformat(), "timeZone": time_zone}


def event_resource(spec: EventSpec) -> dict[str, Any]:
    """The Event fields Warmline owns; used for insert (plus `id`) and for patch alike.

    `attendees` is always sent so a patch also removes guests the spec no longer has.
    """
    return {
        "summary": spec.summary,
        "description": describe(spec),
        "start": event_time(spec.start, spec.time_zone),
        "end": event_time(spec.end, spec.time_zone),
        "status": "confirmed",
        "transparency": "opaque",
        "reminders": {"useDefault": True},
        "extendedProperties": {"private": dict(FOLLOWUP_PROPERTY)},
        "attendees": [{"email": address} for address in spec.attendees],
    }


def matches(event: dict[str, Any], spec: EventSpec) -> bool:
    """Tell whether a live event already is what `spec` describes (times compared as instants)."""
    guests = sorted(
        str(a.get("email", "")).lower()
        for a in event.get("attendees") or ()
        if isinstance(a, dict) and not a.get("organizer")
    )
    return (
        event.get("status") == "confirmed"
        and event.get("summary", "") == spec.summary
        and event.get("description", "") == describe(spec)
        and parse_time(event.get("start"))[0] == spec.start
        and parse_time(event.get("end"))[0] == spec.end
        and guests == sorted(a.lower() for a in spec.attendees)
    )


def send_updates(spec: EventSpec) -> str:
    """Invite (and update) guests only when the user asked for guests."""
    return "all" if spec.attendees else "none"


class GoogleCalendarWriter:
    """core.ports.CalendarWriter for one Google account; see the module docstring."""

    def __init__(self, config: GoogleConfig, *, token: TokenSource, pacer: Pacer) -> None:
        self.config = config
        self.token = token
        self.pacer = pacer

    def _session(self) -> Session:
        # One Session (one httplib2.Http, which is not thread-safe) per call, as sync does.
        return Session(self.config, token=self.token, pacer=self.pacer, profile=UNUSED_PROFILE)

    # -- CalendarWriter ------------------------------------------------------------------------

    def ensure_calendar(self, *, known_id: str | None, name: str) -> FollowupCalendar:
        """Return `known_id` if it still exists, else our calendar named `name`, else a new one.

        Costs 2 requests when `known_id` is alive, up to 4 otherwise.
        """
        session = self._session()
        service = session.calendar()
        time_zone = self._primary_time_zone(session)
        if known_id:
            found = _call_or_none(
                session, service.calendars().get(calendarId=known_id), when=_is_unreachable
            )
            if found is not None:
                return FollowupCalendar(calendar_id=str(found["id"]), time_zone=time_zone)
        calendar_id = self._find_owned(session, name)
        if calendar_id is None:
            body: dict[str, Any] = {"summary": name, "description": CALENDAR_DESCRIPTION}
            if time_zone:
                body["timeZone"] = time_zone
            made = _call(session, service.calendars().insert(body=body))
            calendar_id = str(made["id"])
        return FollowupCalendar(calendar_id=calendar_id, time_zone=time_zone)

    def busy(
        self, *, calendar_ids: Sequence[str], start: dt.datetime, end: dt.datetime
    ) -> list[Interval] | None:
        """Busy spans of the primary calendar and `calendar_ids` (freebusy.query, UTC).

        A listed calendar Google cannot read (deleted, not shared) is left out; when the primary
        calendar itself cannot be read, or the grant lacks `calendar.freebusy`, answer None.
        """
        if end <= start:
            return []
        session = self._session()
        service = session.calendar()
        wanted = ["primary", *(c for c in dict.fromkeys(calendar_ids) if c != "primary")]
        spans: list[tuple[dt.datetime, dt.datetime]] = []
        for offset in range(0, len(wanted), FREEBUSY_MAX_CALENDARS):
            chunk = wanted[offset : offset + FREEBUSY_MAX_CALENDARS]
            body = {
                "timeMin": rfc3339(start),
                "timeMax": rfc3339(end),
                "timeZone": "UTC",
                "items": [{"id": c} for c in chunk],
            }
            answer = _call_or_none(
                session, service.freebusy().query(body=body), when=is_insufficient_permissions
            )
            if answer is None:
                return None
            calendars = answer.get("calendars") or {}
            for calendar_id in chunk:
                entry = calendars.get(calendar_id)
                if not isinstance(entry, dict) or entry.get("errors"):
                    if calendar_id == "primary":
                        return None
                    continue  # e.g. notFound: a follow-ups calendar the user deleted
                spans += _busy_spans(entry.get("busy") or ())
        return coalesce(spans, start, end)

    def put_event(self, calendar_id: str, spec: EventSpec, *, event_id: str | None) -> str:
        """Insert the event under the client id `spec.key` (or patch `event_id`); return its id."""
        session = self._session()
        events = session.calendar().events()
        resource = event_resource(spec)
        notify = send_updates(spec)
        if event_id is not None:
            patched = _call_or_none(
                session,
                events.patch(
                    calendarId=calendar_id, eventId=event_id, body=resource, sendUpdates=notify
                ),
                when=_is_gone,
            )
            if patched is not None:
                return str(patched["id"])
            # The event is gone for good (404/410, e.g. its calendar was re-created): write it
            # anew under the spec's key, which the insert below does idempotently.
        created = _call_or_none(
            session,
            events.insert(
                calendarId=calendar_id, body={**resource, "id": spec.key}, sendUpdates=notify
            ),
            when=_is_conflict,
        )
        if created is not None:
            return str(created["id"])
        # 409: the id is taken - by our own earlier insert whose answer was lost, or by an event
        # deleted since (ids stay reserved). Make that event match the spec and be live again.
        current = _call(session, events.get(calendarId=calendar_id, eventId=spec.key))
        if matches(current, spec):
            return str(current["id"])
        revived = _call(
            session,
            events.patch(
                calendarId=calendar_id, eventId=spec.key, body=resource, sendUpdates=notify
            ),
        )
        return str(revived["id"])

    def find_event(self, calendar_id: str, key: str) -> str | None:
        """The event under the client id `key`, unless it never got written or was deleted."""
        session = self._session()
        found = _call_or_none(
            session,
            session.calendar().events().get(calendarId=calendar_id, eventId=key),
            when=_is_gone,
        )
        if found is None or found.get("status") == "cancelled":
            return None
        return str(found["id"])

    def remove_event(self, calendar_id: str, event_id: str) -> None:
        """Delete the event (guests, if any, get Google's cancellation); gone already is fine."""
        session = self._session()
        _call_or_none(
            session,
            session.calendar()
            .events()
            .delete(calendarId=calendar_id, eventId=event_id, sendUpdates="all"),
            when=_is_gone,
        )

    # -- internals -----------------------------------------------------------------------------

    def _primary_time_zone(self, session: Session) -> str | None:
        """The primary calendar's IANA zone (calendarList.get); None if we may not read it."""
        entry = _call_or_none(
            session,
            session.calendar().calendarList().get(calendarId="primary"),
            when=_is_unreachable,
        )
        zone = entry.get("timeZone") if entry else None
        return str(zone) if zone else None

    def _find_owned(self, session: Session, name: str) -> str | None:
        """The id of an owned calendar whose title is `name` (hidden ones included), or None."""
        service = session.calendar()
        found: list[str] = []
        page_token: str | None = None
        while True:
            params: dict[str, Any] = {
                "minAccessRole": "owner",
                "showHidden": True,
                "maxResults": CALENDAR_LIST_PAGE_SIZE,
            }
            if page_token:
                params["pageToken"] = page_token
            body = _call_or_none(
                session,
                service.calendarList().list(**params),
                # Without calendarlist.readonly we cannot look: the caller's known_id is all
                # there is, and a new calendar is made.
                when=is_insufficient_permissions,
            )
            if body is None:
                return None
            found += [
                str(item["id"])
                for item in body.get("items") or ()
                if isinstance(item, dict)
                and item.get("summary") == name
                and item.get("accessRole") == "owner"
                and not item.get("deleted")
                and not item.get("primary")
            ]
            page_token = body.get("nextPageToken")
            if not page_token:
                # Two calendars of that name (made by two racing workers): always pick the same.
                return min(found) if found else None


def _call(session: Session, request: Any) -> dict[str, Any]:
    answer = session.execute(request, bucket=quota.CALENDAR, cost=quota.CALENDAR_REQUEST_COST)
    if not isinstance(answer, dict):
        raise ProviderUnavailable("Google Calendar answered an unexpected body")
    return answer


def _call_or_none(
    session: Session, request: Any, *, when: Callable[[BaseException], bool]
) -> dict[str, Any] | None:
    answer = session.execute_or_none(
        request, bucket=quota.CALENDAR, cost=quota.CALENDAR_REQUEST_COST, when=when
    )
    # events.delete answers 204: the client hands back "" for an empty body.
    return answer if isinstance(answer, dict) else (None if answer is None else {})


def _busy_spans(blocks: Iterable[Any]) -> list[tuple[dt.datetime, dt.datetime]]:
    out: list[tuple[dt.datetime, dt.datetime]] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        start, _ = parse_time({"dateTime": block.get("start")})
        end, _ = parse_time({"dateTime": block.get("end")})
        if start is not None and end is not None and end > start:
            out.append((start, end))
    return out


__all__ = ["GoogleCalendarWriter"]
