"""Graph v1.0 ``POST /me/calendar/getSchedule`` (free/busy) and ``GET .../calendarView``.

https://learn.microsoft.com/graph/api/calendar-getschedule (PROVIDERS.md §4): ``availabilityView``
has one digit per interval (0 free, 1 tentative, 2 busy, 3 oof, 4 workingElsewhere); the
interval is 5..1440 minutes, default 30; work/school accounts only. For a personal account the
sandbox answers 400 ``ErrorInvalidRequest`` [?: the live error for MSA is undocumented]. An
address the sandbox does not host gets a per-schedule ``error`` with
``ErrorMailRecipientNotFound``. Only the **default calendar** counts ("schedule items that match
existing events in Alex' default calendar", https://learn.microsoft.com/graph/outlook-get-free-busy-schedule).
``workingHours.timeZone.name`` is a Windows zone name ("Pacific Standard Time" in the reference
example), rendered from the mailbox's IANA zone where graphbase.WINDOWS_TZ knows one.

``GET /me/calendarView``, ``/me/calendar/calendarView`` and ``/me/calendars/{id}/calendarView``
(https://learn.microsoft.com/graph/api/calendar-list-calendarview): ``startDateTime`` and
``endDateTime`` are required (400 ``ErrorInvalidParameter``); occurrences, exceptions and single
events overlapping the window, by start; ``Prefer: outlook.timezone``; ``$select``; 10 per page
by default with ``$top``/``$skip`` links.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response, request

from sandbox.errors import GraphError
from sandbox.google.recurrence import expand, to_utc
from sandbox.microsoft.calendar import (
    event_page,
    json_body,
    primary_calendar,
    view_timezone,
)
from sandbox.microsoft.calendar_view import _items_for_row
from sandbox.microsoft.common import is_personal
from sandbox.microsoft.graphbase import (
    CAL_READ_BASIC,
    GRAPH,
    apply_preferences,
    bp,
    context_url,
    graph_call,
    graph_datetime,
    json_response,
    parse_graph_datetime,
    windows_name,
)
from sandbox.state import get_state

# -- getSchedule -------------------------------------------------------------------------------

_STATUS_DIGIT = {"free": "0", "tentative": "1", "busy": "2", "oof": "3", "workingElsewhere": "4"}


@bp.post(f"{GRAPH}/me/calendar/getSchedule")
def get_schedule() -> Response:
    """Free/busy of one or more mailboxes over a window."""
    with graph_call("calendar.getSchedule", CAL_READ_BASIC) as caller:
        if is_personal(caller.mailbox):
            raise GraphError(
                400,
                "ErrorInvalidRequest",
                "getSchedule is not supported for personal Microsoft accounts.",
            )
        payload = json_body()
        schedules = payload.get("schedules") or []
        if not schedules or not payload.get("startTime") or not payload.get("endTime"):
            raise GraphError(
                400, "ErrorInvalidParameter", "Schedules, StartTime and EndTime are required."
            )
        interval = int(payload.get("availabilityViewInterval") or 30)
        if not 5 <= interval <= 1440:
            raise GraphError(
                400,
                "ErrorInvalidParameter",
                "The availabilityViewInterval must be between 5 and 1440 minutes.",
            )
        start = parse_graph_datetime(
            payload["startTime"]["dateTime"], payload["startTime"].get("timeZone")
        )
        end = parse_graph_datetime(
            payload["endTime"]["dateTime"], payload["endTime"].get("timeZone")
        )
        tz_name, tz, applied = view_timezone(caller)
        out = [_schedule(str(s), start, end, interval, tz_name, tz) for s in schedules]
        body = {
            "@odata.context": context_url("Collection(microsoft.graph.scheduleInformation)"),
            "value": out,
        }
        return apply_preferences(json_response(body), applied)


def _schedule(
    address: str, start: dt.datetime, end: dt.datetime, interval: int, tz_name: str, tz: dt.tzinfo
) -> dict[str, Any]:
    store = get_state().store
    box = store.get_mailbox(address)
    if box is None or box.get("provider") != "microsoft":
        return {
            "scheduleId": address,
            "availabilityView": "",
            "scheduleItems": [],
            "error": {
                "message": f"The user or resource '{address}' was not found.",
                "responseCode": "ErrorMailRecipientNotFound",
            },
        }
    default_tz = box.get("time_zone") or "UTC"
    cal = next((c for c in store.list_calendars(box["email"]) if c["is_primary"]), None)
    busy: list[tuple[dt.datetime, dt.datetime, str, dict[str, Any], bool, bool]] = []
    if cal is not None:
        start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        for body in store.list_events_in_window(
            box["email"], cal["id"], start_ms=start_ms, end_ms=end_ms
        ):
            if body.get("recurring_event_id") or body.get("status") == "cancelled":
                continue
            if body.get("recurrence"):
                exceptions = store.list_event_exceptions(box["email"], cal["id"], body["id"])
                for occ in expand(body, exceptions, start, end, default_tz=default_tz):
                    if not occ.is_cancelled:
                        src = occ.exception or body
                        busy.append(
                            (
                                occ.start_utc,
                                occ.end_utc,
                                _status(src, box),
                                src,
                                True,
                                occ.exception is not None,
                            )
                        )
            else:
                s = to_utc(body["start"], default_tz)
                e = to_utc(body.get("end") or body["start"], default_tz)
                if s < end and e > start:
                    busy.append((s, e, _status(body, box), body, False, False))
    busy = [b for b in busy if b[2] != "free"]
    view = []
    slot = start
    step = dt.timedelta(minutes=interval)
    while slot < end:
        nxt = slot + step
        digit = "0"
        for s, e, status, *_ in busy:
            if s < nxt and e > slot:
                digit = max(digit, _STATUS_DIGIT[status])
        view.append(digit)
        slot = nxt
    items = [
        {
            "isPrivate": False,
            "status": status,
            "subject": src.get("summary") or "",
            "location": "",
            "isMeeting": bool(src.get("attendees")),
            "isRecurring": recurring,
            "isException": exception,
            "isReminderSet": True,
            "start": {"dateTime": graph_datetime(s, tz), "timeZone": tz_name},
            "end": {"dateTime": graph_datetime(e, tz), "timeZone": tz_name},
        }
        for s, e, status, src, recurring, exception in sorted(busy, key=lambda b: b[0])
    ]
    return {
        "scheduleId": address,
        "availabilityView": "".join(view),
        "scheduleItems": items,
        "workingHours": {
            "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
            "startTime": "08:00:00.0000000",
            "endTime": "17:00:00.0000000",
            "timeZone": {"name": windows_name(default_tz) or default_tz},
        },
    }


def _status(body: dict[str, Any], box: dict[str, Any]) -> str:
    mine = {box["email"].lower()} | {
        (a.get("email") or "").lower() for a in box.get("aliases") or []
    }
    if ((body.get("organizer") or {}).get("email") or "").lower() in mine:
        return "busy"
    for att in body.get("attendees") or []:
        if (att.get("email") or "").lower() in mine:
            return {"accepted": "busy", "declined": "free"}.get(att.get("response"), "tentative")
    return "busy"


# -- calendarView ------------------------------------------------------------------------------


@bp.get(f"{GRAPH}/me/calendarView")
@bp.get(f"{GRAPH}/me/calendarview")
@bp.get(f"{GRAPH}/me/calendar/calendarView")
@bp.get(f"{GRAPH}/me/calendars/<calendar_id>/calendarView")
@bp.get(f"{GRAPH}/me/calendars/<calendar_id>/calendarview")
def calendar_view(calendar_id: str | None = None) -> Response:
    """Occurrences, exceptions and single events of one calendar overlapping a window."""
    with graph_call("calendarView.list", CAL_READ_BASIC) as caller:
        store = get_state().store
        start_raw = request.args.get("startDateTime") or request.args.get("startdatetime")
        end_raw = request.args.get("endDateTime") or request.args.get("enddatetime")
        if not start_raw or not end_raw:
            raise GraphError(
                400,
                "ErrorInvalidParameter",
                "This request requires a time window specified by the query string parameters "
                "StartDateTime and EndDateTime.",
            )
        cal = (
            primary_calendar(caller)
            if calendar_id is None
            else store.get_calendar(caller.email, calendar_id)
        )
        if cal is None:
            raise GraphError.not_found()
        window = (
            parse_graph_datetime(start_raw, "UTC").astimezone(dt.UTC),
            parse_graph_datetime(end_raw, "UTC").astimezone(dt.UTC),
        )
        tz_name, tz, applied = view_timezone(caller)
        slack = dt.timedelta(days=1)  # all-day rows are placed in the mailbox's zone
        rows = store.list_events_in_window(
            caller.email,
            cal["id"],
            start_ms=int((window[0] - slack).timestamp() * 1000),
            end_ms=int((window[1] + slack).timestamp() * 1000),
        )
        items: list[dict[str, Any]] = []
        for body in rows:
            row = {"body": body, "is_deleted": False}
            items += _items_for_row(
                caller, cal["id"], row, window, incremental=False, tz_name=tz_name, tz=tz
            )
        for item in items:
            item.pop("@odata.type", None)
        items.sort(key=lambda i: (parse_graph_datetime(i["start"]["dateTime"], tz_name), i["id"]))
        page = event_page(
            items,
            keep_args=("startDateTime", "endDateTime", "startdatetime", "enddatetime"),
            context=f"users('{caller.oid}')/calendars('{cal['id']}')/calendarView",
        )
        return apply_preferences(json_response(page), applied)
