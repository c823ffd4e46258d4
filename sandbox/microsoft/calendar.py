"""Graph v1.0 calendars and events, and the neutral-event -> Graph event rendering that
calendar_view.py (calendarView delta) and schedule.py (getSchedule) share.

Provider facts this copies (PROVIDERS.md §4):

- Ids: a series' occurrences get stable ids derived from the master id and the original start
  (an exception keeps its occurrence's id), so deleting or fetching an occurrence by the id the
  view handed out works.
- Event resource (https://learn.microsoft.com/graph/api/resources/event): ``attendees[]`` of
  ``{type: required|optional|resource, status: {response, time}, emailAddress}`` with responses
  ``none|organizer|tentativelyAccepted|accepted|declined|notResponded``; ``start``/``end`` are
  ``dateTimeTimeZone`` (wall clock, 7 fraction digits).
- ``transactionId``: a repeated create with the same transactionId and the same content answers
  201 with the event created the first time, and creates nothing
  (https://blog.rykoma.net/2020/10/05/1559/, by a Microsoft support engineer); the same
  transactionId with different content is refused with 400 ``ErrorDuplicateTransactionId``
  "Your request can't be completed. The TransactionId specified in the request has already been
  used to create a different event." (the error body as seen by public Graph clients). The
  property cannot be changed after creation. The event resource doc promises neither answer
  (https://learn.microsoft.com/graph/api/resources/event), so the switch
  ``graph_duplicate_transaction_status`` (e.g. 409) makes every repeat of a transactionId, same
  content or not, answer that status instead.
- ``POST /me/calendars`` with an existing name: 409 ``ErrorFolderExists``. ``GET /me/calendars``
  pages like other Outlook collections: 10 by default, ``$top``/``$skip`` links, ``$select``
  (https://learn.microsoft.com/graph/api/user-list-calendars, https://learn.microsoft.com/graph/paging).
- ``GET /me/calendars/{id}`` (404 ``ErrorItemNotFound`` for an unknown or deleted calendar) and
  ``GET /me/events`` / ``/me/calendar/events`` / ``/me/calendars/{id}/events``: single events
  and series masters, not expanded, 10 per page by default, ``$top``/``$skip`` paging with an
  ``@odata.nextLink``, ``$select`` (https://learn.microsoft.com/graph/api/calendar-get,
  https://learn.microsoft.com/graph/api/user-list-events,
  https://learn.microsoft.com/graph/paging).
- Gaps: creating recurring events (501), PATCH of a single occurrence (404).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from typing import Any

from flask import Response, request

from sandbox.errors import GraphError
from sandbox.google.recurrence import Occurrence, expand, is_all_day, original_key, to_utc
from sandbox.microsoft.common import b64url, b64url_decode, iso_z
from sandbox.microsoft.graphbase import (
    CAL_READ,
    CAL_READ_BASIC,
    CAL_WRITE,
    GRAPH,
    Caller,
    apply_preferences,
    bp,
    context_url,
    graph_call,
    graph_datetime,
    json_response,
    parse_graph_datetime,
    parse_select,
    prefer,
    project,
    self_link,
    windows_name,
    zone,
)
from sandbox.state import get_state

DEFAULT_PAGE = 10
MAX_PAGE = 1000
_OCC = "AAMkADocc"
_NEVER = "0001-01-01T00:00:00Z"
RESPONSE = {
    "accepted": "accepted",
    "declined": "declined",
    "tentative": "tentativelyAccepted",
    "needsAction": "notResponded",
}
_FROM_GRAPH_RESPONSE = {v: k for k, v in RESPONSE.items()}


# -- calendars ---------------------------------------------------------------------------------


def primary_calendar(caller: Caller) -> dict[str, Any]:
    """Return the mailbox's default calendar (made on first use: every mailbox has one)."""
    store = get_state().store
    for cal in store.list_calendars(caller.email):
        if cal["is_primary"]:
            return cal
    return store.upsert_calendar(
        caller.email,
        id=_opaque(caller.email, "calendar", "primary"),
        summary="Calendar",
        time_zone=caller.mailbox.get("time_zone") or "UTC",
        is_primary=True,
    )


def _opaque(email_addr: str, kind: str, key: str) -> str:
    digest = hashlib.sha256(f"{email_addr}|{kind}|{key}".encode()).digest()
    return "AAMkAD" + b64url(digest)[:40] + "AAA="


CALENDAR_PROPS = {
    "id",
    "name",
    "color",
    "hexColor",
    "isDefaultCalendar",
    "changeKey",
    "canShare",
    "canViewPrivateItems",
    "canEdit",
    "allowedOnlineMeetingProviders",
    "defaultOnlineMeetingProvider",
    "isTallyingResponses",
    "isRemovable",
    "owner",
}


def calendar_resource(caller: Caller, cal: dict[str, Any]) -> dict[str, Any]:
    """Render a calendar resource."""
    return {
        "id": cal["id"],
        "name": cal["summary"],
        "color": "auto",
        "hexColor": "",
        "isDefaultCalendar": bool(cal["is_primary"]),
        "changeKey": "fJKVL07sbkmIfHqjbDnRgQAA" + str(cal.get("changed_seq", 0)),
        "canShare": True,
        "canViewPrivateItems": True,
        "canEdit": cal.get("access_role", "owner") in ("owner", "writer"),
        "allowedOnlineMeetingProviders": ["teamsForBusiness"],
        "defaultOnlineMeetingProvider": "teamsForBusiness",
        "isTallyingResponses": True,
        "isRemovable": not cal["is_primary"],
        "owner": {
            "name": caller.mailbox.get("display_name") or caller.email,
            "address": caller.email,
        },
    }


@bp.get(f"{GRAPH}/me/calendars")
def list_calendars() -> Response:
    """List the user's calendars."""
    with graph_call("calendars.list", CAL_READ_BASIC) as caller:
        primary_calendar(caller)
        cals = get_state().store.list_calendars(caller.email)
        select = parse_select(
            request.args.get("$select"), CALENDAR_PROPS, "microsoft.graph.calendar"
        )
        top = min(page_arg("$top", DEFAULT_PAGE), MAX_PAGE) or DEFAULT_PAGE
        skip = page_arg("$skip", 0)
        body: dict[str, Any] = {
            "@odata.context": context_url(f"users('{caller.oid}')/calendars"),
            "value": [
                project(calendar_resource(caller, c), select, ("id",))
                for c in cals[skip : skip + top]
            ],
        }
        if skip + top < len(cals):
            params = {"$top": str(top), "$skip": str(skip + top)}
            if select is not None:
                params["$select"] = ",".join(select)
            body["@odata.nextLink"] = self_link(params)
        return json_response(body)


@bp.get(f"{GRAPH}/me/calendars/<cal_id>")
def get_calendar(cal_id: str) -> Response:
    """Get one calendar by id (https://learn.microsoft.com/graph/api/calendar-get)."""
    with graph_call("calendars.get", CAL_READ_BASIC) as caller:
        primary_calendar(caller)
        cal = get_state().store.get_calendar(caller.email, cal_id)
        if cal is None:
            raise GraphError.not_found()
        select = parse_select(
            request.args.get("$select"), CALENDAR_PROPS, "microsoft.graph.calendar"
        )
        body = {
            "@odata.context": context_url(f"users('{caller.oid}')/calendars/$entity"),
            **project(calendar_resource(caller, cal), select, ("id",)),
        }
        return json_response(body)


@bp.get(f"{GRAPH}/me/calendar")
def get_default_calendar() -> Response:
    """Get the default calendar."""
    with graph_call("calendar.get", CAL_READ_BASIC) as caller:
        cal = primary_calendar(caller)
        body = {
            "@odata.context": context_url(f"users('{caller.oid}')/calendars/$entity"),
            **calendar_resource(caller, cal),
        }
        return json_response(body)


@bp.post(f"{GRAPH}/me/calendars")
def create_calendar() -> Response:
    """Create a calendar (Warmline makes "Warmline follow-ups")."""
    with graph_call("calendars.create", CAL_WRITE) as caller:
        payload = json_body()
        name = str(payload.get("name") or "").strip()
        if not name:
            raise GraphError(400, "ErrorInvalidRequest", "The calendar name is required.")
        store = get_state().store
        primary_calendar(caller)
        if any(c["summary"].lower() == name.lower() for c in store.list_calendars(caller.email)):
            raise GraphError(
                409, "ErrorFolderExists", "A folder with the specified name already exists."
            )
        cal = store.upsert_calendar(
            caller.email,
            id=_opaque(caller.email, "calendar", uuid.uuid4().hex),
            summary=name,
            time_zone=caller.mailbox.get("time_zone") or "UTC",
            is_app_created=True,
        )
        body = {
            "@odata.context": context_url(f"users('{caller.oid}')/calendars/$entity"),
            **calendar_resource(caller, cal),
        }
        return json_response(body, 201)


def json_body() -> dict[str, Any]:
    try:
        payload = json.loads(request.get_data(as_text=True) or "{}")
    except ValueError:
        raise GraphError(
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type "
            "header is set and payload is of valid JSON format.",
        ) from None
    if not isinstance(payload, dict):
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.")
    return payload


# -- event rendering ---------------------------------------------------------------------------


def occurrence_id(master_id: str, key: str) -> str:
    """Return the stable id of one occurrence of a series."""
    return _OCC + b64url(f"{master_id}\x00{key}".encode())


def parse_occurrence_id(event_id: str) -> tuple[str, str] | None:
    """Return ``(master id, original key)`` of an occurrence id, else None."""
    if not event_id.startswith(_OCC):
        return None
    try:
        master, _, key = b64url_decode(event_id[len(_OCC) :]).decode().partition("\x00")
    except (ValueError, UnicodeDecodeError):
        return None
    return (master, key) if key else None


def occurrence_key(occ: Occurrence) -> str:
    value = occ.original_start
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return value.isoformat()


def _user_addresses(caller: Caller) -> set[str]:
    out = {caller.email.lower()}
    for alias in caller.mailbox.get("aliases") or []:
        if alias.get("email"):
            out.add(alias["email"].lower())
    return out


def _when(point: dict[str, Any], tz_name: str, tz: dt.tzinfo, default_tz: str) -> dict[str, str]:
    if is_all_day(point):
        # All-day items are floating: midnight in whatever zone the view is in.
        day = dt.date.fromisoformat(point["date"])
        return {"dateTime": f"{day.isoformat()}T00:00:00.0000000", "timeZone": tz_name}
    return {"dateTime": graph_datetime(to_utc(point, default_tz), tz), "timeZone": tz_name}


def event_resource(
    caller: Caller,
    body: dict[str, Any],
    *,
    tz_name: str,
    tz: dt.tzinfo,
    event_type: str,
    event_id: str,
    master_id: str | None = None,
    start: dict[str, Any] | None = None,
    end: dict[str, Any] | None = None,
    original_start: dt.datetime | dt.date | None = None,
    full: bool = True,
) -> dict[str, Any]:
    """Render a neutral event body (or one occurrence of it) as a Graph event."""
    default_tz = caller.mailbox.get("time_zone") or "UTC"
    mine = _user_addresses(caller)
    organizer = body.get("organizer") or {}
    is_organizer = (organizer.get("email") or "").lower() in mine
    attendees = []
    my_response = "none"
    for att in body.get("attendees") or []:
        address = att.get("email") or ""
        response = RESPONSE.get(att.get("response") or "needsAction", "none")
        if address.lower() in mine and not is_organizer:
            my_response = response
        if att.get("is_organizer"):
            continue  # the organizer is in `organizer`, not in Outlook's attendee list
        kind = (
            "resource" if att.get("resource") else "optional" if att.get("optional") else "required"
        )
        attendees.append(
            {
                "type": kind,
                "status": {"response": response, "time": _NEVER},
                "emailAddress": {"name": att.get("name") or address, "address": address},
            }
        )
    change_key = "DwAAABYAAAA" + b64url(str(body.get("updated_ms", 0)).encode())
    start = start or body["start"]
    end = end or body.get("end") or start
    all_day = is_all_day(start)
    item: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.event",
        "@odata.etag": f'W/"{change_key}"',
        "id": event_id,
        "createdDateTime": iso_z(body.get("created_ms") or 0),
        "lastModifiedDateTime": iso_z(body.get("updated_ms") or body.get("created_ms") or 0),
        "changeKey": change_key,
        "categories": [],
        "transactionId": body.get("transaction_id"),
        "originalStartTimeZone": body["start"].get("time_zone") or default_tz,
        "originalEndTimeZone": (body.get("end") or body["start"]).get("time_zone") or default_tz,
        "iCalUId": body.get("ical_uid"),
        "uid": body.get("ical_uid"),
        "reminderMinutesBeforeStart": 15,
        "isReminderOn": True,
        "hasAttachments": False,
        "subject": body.get("summary") or "",
        "bodyPreview": "",
        "importance": "normal",
        "sensitivity": "normal",
        "isAllDay": all_day,
        "isCancelled": body.get("status") == "cancelled",
        "isOrganizer": is_organizer,
        "responseRequested": True,
        "seriesMasterId": master_id,
        "showAs": "tentative" if my_response == "tentativelyAccepted" else "busy",
        "type": event_type,
        "webLink": "https://outlook.office365.com/owa/?itemid="
        + event_id
        + "&exvsurl=1&path=/calendar/item",
        "onlineMeetingUrl": None,
        "isOnlineMeeting": False,
        "onlineMeetingProvider": "unknown",
        "allowNewTimeProposals": True,
        "isDraft": False,
        "hideAttendees": False,
        "responseStatus": {
            "response": "organizer" if is_organizer else my_response,
            "time": _NEVER,
        },
        "body": {"contentType": "html", "content": body.get("description") or ""},
        "start": _when(start, tz_name, tz, default_tz),
        "end": _when(end, tz_name, tz, default_tz),
        "location": {
            "displayName": "",
            "locationType": "default",
            "uniqueIdType": "unknown",
            "address": {},
            "coordinates": {},
        },
        "locations": [],
        "recurrence": _recurrence(body) if event_type == "seriesMaster" else None,
        "attendees": attendees,
        "organizer": {
            "emailAddress": {
                "name": organizer.get("name") or organizer.get("email") or "",
                "address": organizer.get("email") or "",
            }
        },
        "onlineMeeting": None,
    }
    if original_start is not None:
        if isinstance(original_start, dt.datetime):
            item["originalStart"] = original_start.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            item["originalStart"] = f"{original_start.isoformat()}T00:00:00Z"
    if not full:
        item.pop("body")
        item.pop("bodyPreview")
    return item


SPARSE_KEYS = (
    "@odata.type",
    "@odata.etag",
    "id",
    "changeKey",
    "lastModifiedDateTime",
    "categories",
)


def sparse_update(item: dict[str, Any]) -> dict[str, Any]:
    """An updated event as a delta row may carry it: its id and a few changed properties
    ("at least the properties that have been updated",
    https://learn.microsoft.com/graph/delta-query-overview)."""
    return {key: item[key] for key in SPARSE_KEYS if key in item}


def _recurrence(body: dict[str, Any]) -> dict[str, Any] | None:
    """Render the common RRULE shapes as a patternedRecurrence (others: a daily pattern)."""
    rule = next((r[6:] for r in body.get("recurrence") or [] if r.startswith("RRULE:")), None)
    if rule is None:
        return None
    parts = dict(p.split("=", 1) for p in rule.split(";") if "=" in p)
    freq = parts.get("FREQ", "DAILY")
    days = {
        "MO": "monday",
        "TU": "tuesday",
        "WE": "wednesday",
        "TH": "thursday",
        "FR": "friday",
        "SA": "saturday",
        "SU": "sunday",
    }
    start_day = (body["start"].get("date") or body["start"].get("date_time", ""))[:10]
    pattern: dict[str, Any] = {
        "type": {
            "DAILY": "daily",
            "WEEKLY": "weekly",
            "MONTHLY": "absoluteMonthly",
            "YEARLY": "absoluteYearly",
        }.get(freq, "daily"),
        "interval": int(parts.get("INTERVAL", "1")),
        "month": 0,
        "dayOfMonth": 0,
        "daysOfWeek": [days[d[-2:]] for d in parts.get("BYDAY", "").split(",") if d[-2:] in days],
        "firstDayOfWeek": "sunday",
        "index": "first",
    }
    rng: dict[str, Any] = {
        "type": "noEnd",
        "startDate": start_day,
        "endDate": "0001-01-01",
        "recurrenceTimeZone": body["start"].get("time_zone") or "UTC",
        "numberOfOccurrences": 0,
    }
    if "COUNT" in parts:
        rng.update(type="numbered", numberOfOccurrences=int(parts["COUNT"]))
    elif "UNTIL" in parts:
        until = parts["UNTIL"]
        rng.update(type="endDate", endDate=f"{until[:4]}-{until[4:6]}-{until[6:8]}")
    return {"pattern": pattern, "range": rng}


def may_read_body(caller: Caller) -> bool:
    return caller.has_any(CAL_READ)


def view_timezone(caller: Caller) -> tuple[str, dt.tzinfo, list[str]]:
    """The zone event times are rendered in: ``Prefer: outlook.timezone``, else UTC.

    With ``graph_ignore_timezone_preference`` the preference is not applied (and not echoed):
    times come in the mailbox's own zone under its Windows name, which dateTimeTimeZone allows
    (https://learn.microsoft.com/graph/api/resources/datetimetimezone) [?: when live Graph does
    this is unverified; the switch makes a client prove it reads Windows names].
    """
    if get_state().config.get("graph_ignore_timezone_preference"):
        iana = caller.mailbox.get("time_zone") or "UTC"
        tz_name, tz = zone(windows_name(iana) or iana)
        return tz_name, tz, []
    name = prefer().get("outlook.timezone")
    if not name:
        return "UTC", dt.UTC, []
    tz_name, tz = zone(name)
    return tz_name, tz, [f'outlook.timezone="{tz_name}"']


def original_start_of(body: dict[str, Any], default_tz: str) -> dt.datetime | dt.date | None:
    raw = body.get("original_start")
    if raw is None:
        return None
    if isinstance(raw, dict) and is_all_day(raw):
        return dt.date.fromisoformat(raw["date"])
    if isinstance(raw, str) and len(raw) == 10:
        return dt.date.fromisoformat(raw)
    return to_utc(raw, default_tz)


# -- events CRUD -------------------------------------------------------------------------------


def _find(caller: Caller, event_id: str) -> tuple[str, dict[str, Any]] | None:
    store = get_state().store
    for cal in store.list_calendars(caller.email):
        body = store.get_event(caller.email, cal["id"], event_id)
        if body is not None:
            return cal["id"], body
    return None


def _render_by_id(caller: Caller, event_id: str, tz_name: str, tz: dt.tzinfo) -> dict[str, Any]:
    occ = parse_occurrence_id(event_id)
    full = may_read_body(caller)
    if occ is None:
        found = _find(caller, event_id)
        if found is None:
            raise GraphError.not_found()
        _, body = found
        kind = "seriesMaster" if body.get("recurrence") else "singleInstance"
        return event_resource(
            caller, body, tz_name=tz_name, tz=tz, event_type=kind, event_id=event_id, full=full
        )
    master_id, key = occ
    found = _find(caller, master_id)
    if found is None:
        raise GraphError.not_found()
    cal_id, master = found
    default_tz = caller.mailbox.get("time_zone") or "UTC"
    exceptions = get_state().store.list_event_exceptions(caller.email, cal_id, master_id)
    # Look around the original slot, and at every exception (a moved one may be far away).
    if len(key) == 10:
        anchor = dt.datetime.fromisoformat(key).replace(tzinfo=dt.UTC)
    else:
        anchor = dt.datetime.strptime(key, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    span = dt.timedelta(days=2)
    for occurrence in expand(
        master, exceptions, anchor - span, anchor + span, default_tz=default_tz
    ):
        if occurrence_key(occurrence) == key and not occurrence.is_cancelled:
            source = occurrence.exception or master
            return event_resource(
                caller,
                source,
                tz_name=tz_name,
                tz=tz,
                event_type="exception" if occurrence.exception else "occurrence",
                event_id=event_id,
                master_id=master_id,
                start=occurrence.start,
                end=occurrence.end,
                original_start=occurrence.original_start,
                full=full,
            )
    for exc in exceptions:
        if (
            original_key(exc.get("original_start"), default_tz) == key
            and exc.get("status") != "cancelled"
        ):
            return event_resource(
                caller,
                exc,
                tz_name=tz_name,
                tz=tz,
                event_type="exception",
                event_id=event_id,
                master_id=master_id,
                original_start=original_start_of(exc, default_tz),
                full=full,
            )
    raise GraphError.not_found()


def _event_response(caller: Caller, item: dict[str, Any], status: int = 200) -> Response:
    item = dict(item)
    item.pop("@odata.type", None)
    body = {"@odata.context": context_url(f"users('{caller.oid}')/events/$entity"), **item}
    return json_response(body, status)


EVENT_PROPS = {
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "transactionId",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "iCalUId",
    "uid",
    "reminderMinutesBeforeStart",
    "isReminderOn",
    "hasAttachments",
    "subject",
    "bodyPreview",
    "importance",
    "sensitivity",
    "isAllDay",
    "isCancelled",
    "isOrganizer",
    "responseRequested",
    "seriesMasterId",
    "showAs",
    "type",
    "webLink",
    "onlineMeetingUrl",
    "isOnlineMeeting",
    "onlineMeetingProvider",
    "allowNewTimeProposals",
    "isDraft",
    "hideAttendees",
    "responseStatus",
    "body",
    "start",
    "end",
    "location",
    "locations",
    "recurrence",
    "attendees",
    "organizer",
    "onlineMeeting",
    "originalStart",
}


def page_arg(name: str, default: int) -> int:
    """A non-negative integer query option ($top, $skip); 400 as Graph answers a bad one."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
        if value < 0:
            raise ValueError(name)
    except ValueError:
        raise GraphError(
            400, "BadRequest", f"Invalid value '{raw}' for query parameter '{name}'."
        ) from None
    return value


def event_page(
    items: list[dict[str, Any]], *, keep_args: tuple[str, ...], context: str
) -> dict[str, Any]:
    """One ``$top``/``$skip`` page of rendered events, projected by ``$select``.

    The nextLink repeats the request's other query options (``keep_args``) with ``$skip``
    advanced, as Graph's own links do (https://learn.microsoft.com/graph/paging).
    """
    select = parse_select(request.args.get("$select"), EVENT_PROPS, "microsoft.graph.event")
    top = min(page_arg("$top", DEFAULT_PAGE), MAX_PAGE) or DEFAULT_PAGE
    skip = page_arg("$skip", 0)
    page = items[skip : skip + top]
    body: dict[str, Any] = {
        "@odata.context": context_url(context),
        "value": [project(item, select, ("id",)) for item in page],
    }
    if skip + top < len(items):
        params = {k: request.args[k] for k in keep_args if k in request.args}
        params.update({"$top": str(top), "$skip": str(skip + top)})
        if select is not None:
            params["$select"] = ",".join(select)
        body["@odata.nextLink"] = self_link(params)
    return body


@bp.get(f"{GRAPH}/me/events")
@bp.get(f"{GRAPH}/me/calendar/events")
@bp.get(f"{GRAPH}/me/calendars/<cal_id>/events")
def list_events(cal_id: str | None = None) -> Response:
    """List a calendar's single events and series masters (not expanded), oldest change first."""
    with graph_call("events.list", CAL_READ_BASIC) as caller:
        store = get_state().store
        cal = (
            primary_calendar(caller) if cal_id is None else store.get_calendar(caller.email, cal_id)
        )
        if cal is None:
            raise GraphError.not_found()
        tz_name, tz, applied = view_timezone(caller)
        full = may_read_body(caller)
        items: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            rows, after = store.list_events(caller.email, cal["id"], page_size=500, after=after)
            for row in rows:
                event = row["body"]
                if event.get("recurring_event_id"):
                    continue  # exceptions are reached through their series
                kind = "seriesMaster" if event.get("recurrence") else "singleInstance"
                item = event_resource(
                    caller,
                    event,
                    tz_name=tz_name,
                    tz=tz,
                    event_type=kind,
                    event_id=event["id"],
                    full=full,
                )
                item.pop("@odata.type", None)
                items.append(item)
            if after is None:
                break
        body = event_page(
            items, keep_args=(), context=f"users('{caller.oid}')/calendars('{cal['id']}')/events"
        )
        return apply_preferences(json_response(body), applied)


@bp.get(f"{GRAPH}/me/events/<event_id>")
def get_event(event_id: str) -> Response:
    """Get an event, series master or occurrence."""
    with graph_call("events.get", CAL_READ_BASIC) as caller:
        tz_name, tz, applied = view_timezone(caller)
        item = _render_by_id(caller, event_id, tz_name, tz)
        return apply_preferences(_event_response(caller, item), applied)


def _neutral_time(value: Any, all_day: bool, field: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not value.get("dateTime"):
        raise GraphError(400, "ErrorInvalidRequest", f"Property {field} is required.")
    tz_name = value.get("timeZone") or "UTC"
    moment = parse_graph_datetime(value["dateTime"], tz_name)
    if all_day:
        if moment.time() != dt.time(0):
            raise GraphError(
                400,
                "ErrorPropertyValidationFailure",
                "At least one property failed validation. isAllDay events must start and end at "
                "midnight.",
            )
        return {"date": moment.date().isoformat()}
    iana = zone(tz_name)[1]
    return {"date_time": moment.isoformat(), "time_zone": getattr(iana, "key", "UTC")}


def _attendees_in(values: Any) -> list[dict[str, Any]]:
    out = []
    for att in values or []:
        address = ((att or {}).get("emailAddress") or {}).get("address")
        if not address:
            continue
        kind = (att.get("type") or "required").lower()
        response = ((att.get("status") or {}).get("response")) or "notResponded"
        out.append(
            {
                "email": address.lower(),
                "name": att["emailAddress"].get("name") or address,
                "response": _FROM_GRAPH_RESPONSE.get(response, "needsAction"),
                "optional": kind == "optional",
                "resource": kind == "resource",
                "is_organizer": False,
            }
        )
    return out


def _same_content(body: dict[str, Any], new: dict[str, Any]) -> bool:
    keys = ("summary", "start", "end", "is_all_day")
    return all(body.get(k) == new.get(k) for k in keys)


_DUPLICATE = (
    "Your request can't be completed. The TransactionId specified in the request has already "
    "been used to create a different event."
)


def _create_event(caller: Caller, cal_id: str) -> Response:
    payload = json_body()
    if payload.get("recurrence"):
        raise GraphError(
            501, "NotImplemented", "The sandbox does not create recurring events (recurrence)."
        )
    all_day = bool(payload.get("isAllDay"))
    start = _neutral_time(payload.get("start"), all_day, "Start")
    end = _neutral_time(payload.get("end"), all_day, "End")
    transaction_id = payload.get("transactionId")
    store = get_state().store
    if transaction_id:
        event_id = _opaque(caller.email, "txn", str(transaction_id))
    else:
        event_id = _opaque(caller.email, "event", uuid.uuid4().hex)
    name = caller.mailbox.get("display_name") or caller.email
    new = {
        "id": event_id,
        "ical_uid": "040000008200E00074C5B7101A82E00800000000"
        + hashlib.sha256(event_id.encode()).hexdigest()[:48].upper(),
        "status": "confirmed",
        "summary": payload.get("subject") or "",
        "description": (payload.get("body") or {}).get("content") or "",
        "start": start,
        "end": end,
        "is_all_day": all_day,
        "organizer": {"email": caller.email, "name": name},
        "attendees": _attendees_in(payload.get("attendees")),
        "recurrence": [],
        "recurring_event_id": None,
        "original_start": None,
        "transaction_id": transaction_id,
        "app_key": None,
    }
    if transaction_id:
        found = _find(caller, event_id)
        duplicate_status = get_state().config.get("graph_duplicate_transaction_status")
        if found is not None and duplicate_status:
            raise GraphError(int(duplicate_status), "ErrorDuplicateTransactionId", _DUPLICATE)
        if found is not None:
            if _same_content(found[1], new):
                item = event_resource(
                    caller,
                    found[1],
                    tz_name="UTC",
                    tz=dt.UTC,
                    event_type="singleInstance",
                    event_id=event_id,
                )
                return _event_response(caller, item, 201)
            raise GraphError(400, "ErrorDuplicateTransactionId", _DUPLICATE)
    body = store.put_event(caller.email, cal_id, new)
    tz_name, tz, applied = view_timezone(caller)
    item = event_resource(
        caller, body, tz_name=tz_name, tz=tz, event_type="singleInstance", event_id=event_id
    )
    return apply_preferences(_event_response(caller, item, 201), applied)


@bp.post(f"{GRAPH}/me/events")
@bp.post(f"{GRAPH}/me/calendar/events")
def create_event() -> Response:
    """Create an event in the default calendar."""
    with graph_call("events.create", CAL_WRITE) as caller:
        return _create_event(caller, primary_calendar(caller)["id"])


@bp.post(f"{GRAPH}/me/calendars/<cal_id>/events")
def create_event_in(cal_id: str) -> Response:
    """Create an event in one calendar."""
    with graph_call("events.create", CAL_WRITE) as caller:
        if get_state().store.get_calendar(caller.email, cal_id) is None:
            raise GraphError.not_found()
        return _create_event(caller, cal_id)


@bp.patch(f"{GRAPH}/me/events/<event_id>")
def update_event(event_id: str) -> Response:
    """Update a single event or series master."""
    with graph_call("events.update", CAL_WRITE) as caller:
        found = _find(caller, event_id)
        if found is None:
            raise GraphError.not_found()
        cal_id, body = found
        payload = json_body()
        if "transactionId" in payload and payload["transactionId"] != body.get("transaction_id"):
            raise GraphError(
                400, "ErrorInvalidRequest", "The transactionId property cannot be changed."
            )
        all_day = bool(payload.get("isAllDay", body.get("is_all_day")))
        if "subject" in payload:
            body["summary"] = payload["subject"] or ""
        if "start" in payload:
            body["start"] = _neutral_time(payload["start"], all_day, "Start")
        if "end" in payload:
            body["end"] = _neutral_time(payload["end"], all_day, "End")
        if "attendees" in payload:
            body["attendees"] = _attendees_in(payload["attendees"])
        if "body" in payload:
            body["description"] = (payload["body"] or {}).get("content") or ""
        body["is_all_day"] = all_day
        body = get_state().store.put_event(caller.email, cal_id, body)
        tz_name, tz, applied = view_timezone(caller)
        kind = "seriesMaster" if body.get("recurrence") else "singleInstance"
        item = event_resource(
            caller, body, tz_name=tz_name, tz=tz, event_type=kind, event_id=event_id
        )
        return apply_preferences(_event_response(caller, item), applied)


@bp.delete(f"{GRAPH}/me/events/<event_id>")
def delete_event(event_id: str) -> Response:
    """Delete an event, a series, or one occurrence (a cancelled exception)."""
    with graph_call("events.delete", CAL_WRITE) as caller:
        store = get_state().store
        occ = parse_occurrence_id(event_id)
        if occ is not None:
            master_id, key = occ
            found = _find(caller, master_id)
            if found is None:
                raise GraphError.not_found()
            cal_id, master = found
            original: dict[str, Any] = (
                {"date": key}
                if len(key) == 10
                else {
                    "date_time": dt.datetime.strptime(key, "%Y%m%dT%H%M%SZ")
                    .replace(tzinfo=dt.UTC)
                    .isoformat()
                }
            )
            exc_id = _opaque(caller.email, "exception", f"{master_id}|{key}")
            store.put_event(
                caller.email,
                cal_id,
                {
                    **master,
                    "id": exc_id,
                    "recurrence": [],
                    "recurring_event_id": master_id,
                    "original_start": original,
                    "start": original,
                    "end": original,
                    "status": "cancelled",
                    "ical_uid": master.get("ical_uid"),
                },
            )
            return Response(status=204)
        found = _find(caller, event_id)
        if found is None:
            raise GraphError.not_found()
        store.delete_event(caller.email, found[0], event_id)
        return Response(status=204)
