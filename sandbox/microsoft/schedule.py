"""Graph v1.0 ``POST /me/calendar/getSchedule`` (free/busy).

https://learn.microsoft.com/graph/api/calendar-getschedule (PROVIDERS.md §4): ``availabilityView``
has one digit per interval (0 free, 1 tentative, 2 busy, 3 oof, 4 workingElsewhere); the
interval is 5..1440 minutes, default 30; work/school accounts only. For a personal account the
sandbox answers 400 ``ErrorInvalidRequest`` [?: the live error for MSA is undocumented]. An
address the sandbox does not host gets a per-schedule ``error`` with
``ErrorMailRecipientNotFound``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response

from sandbox.errors import GraphError
from sandbox.google.recurrence import expand, to_utc
from sandbox.microsoft.calendar import (
    json_body,
    view_timezone,
)
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
        tz_name, tz, applied = view_timezone()
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
            "timeZone": {"name": default_tz},
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
