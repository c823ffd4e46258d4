"""Google Calendar API v3 stand-in: ``/calendar/v3/...`` and ``/batch/calendar/v3``.

Speaks the wire protocol google-api-python-client expects (``api_endpoint`` must be
``http://HOST:P/calendar/v3/``, PROVIDERS.md §1.5). Events live in the store provider-neutral
(DESIGN.md, ``event`` table) and are rendered as Google's Event resource here
(https://developers.google.com/calendar/api/v3/reference/events#resource).

Provider quirks reproduced (sources inline):

- ``calendarId=primary`` is an alias of the mailbox's primary calendar, whose id is the email.
- events.list: ``timeMax`` is an exclusive upper bound on an event's start, ``timeMin`` an
  exclusive lower bound on its end (events.list reference, discovery doc revision 20261030);
  ``orderBy=startTime`` needs ``singleEvents=true`` (else 400); ``maxResults`` defaults to 250
  and is capped at 2500; ``nextSyncToken`` only on the last page, ``nextPageToken`` otherwise;
  ``syncToken`` cannot be combined with ``iCalUID, orderBy, privateExtendedProperty, q,
  sharedExtendedProperty, timeMin, timeMax, updatedMin`` nor with ``showDeleted=false``
  (PROVIDERS.md §2); an expired token is a 410 ``fullSyncRequired``
  (https://developers.google.com/calendar/api/guides/sync).
- Incremental results include deleted events as ``status: cancelled`` with only the id (and, for
  instances, ``recurringEventId`` + ``originalStartTime``) guaranteed (PROVIDERS.md §2).
- Without ``singleEvents`` and ``showDeleted``, cancelled *instances* of a live recurring event
  are still listed ("Cancelled instances of recurring events (but not the underlying recurring
  event) will still be included if showDeleted and singleEvents are both False", events.list).
- Instance ids are ``<masterId>_<YYYYMMDDTHHMMSSZ>`` (``_<YYYYMMDD>`` for all-day series), with
  ``recurringEventId`` and ``originalStartTime``
  (https://developers.google.com/calendar/api/guides/recurringevents).
- events.insert accepts a client id (base32hex ``[a-v0-9]``, 5-1024 chars); a taken id is a 409
  ``duplicate``, also when its event was deleted (ids stay reserved; a patch/update with status
  ``confirmed`` restores it); deleting a deleted event is a 410 ``deleted``
  (https://developers.google.com/calendar/api/v3/reference/events/insert,
  https://developers.google.com/calendar/api/guides/errors#410_gone).
- ``calendar.app.created`` only reaches calendars the app created; anything else answers like a
  missing scope (403 ``insufficientPermissions``) [?: the exact body Google sends for this case
  is not documented; this is the scope-failure body].
- Calendar quota is per request (PROVIDERS.md §2): every call passes ``controls.call``.
- Knob ``state.config["calendar_floating_times"]`` (off): render a timed EventDateTime that has
  a ``timeZone`` as wall-clock time in that zone with no offset, a shape the reference allows
  ("A time zone offset is required unless a time zone is explicitly specified in timeZone",
  https://developers.google.com/calendar/api/v3/reference/events). Off, Google's usual shape:
  the offset is always written.

Sync and page tokens are opaque base64url JSON. A sync token carries the mailbox ``change_seq``
it was issued at and the ``token_floor`` in force then; ``store.expire_cursors`` raises the floor,
which makes every earlier token stale (410) while tokens issued afterwards stay valid.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, g, jsonify, request

from sandbox.errors import GoogleError
from sandbox.google import batch, oauth, recurrence
from sandbox.state import get_state
from sandbox.store import StaleCursorError

bp = Blueprint("google_calendar", __name__)

API = "/calendar/v3"
UTC = dt.UTC
AUTH = "https://www.googleapis.com/auth/"

# Scopes accepted per method, from googleapiclient/discovery_cache/documents/calendar.v3.json
# (revision 20261030), PROVIDERS.md §2.
_READ_EVENTS = (
    "calendar",
    "calendar.app.created",
    "calendar.events",
    "calendar.events.freebusy",
    "calendar.events.owned",
    "calendar.events.owned.readonly",
    "calendar.events.public.readonly",
    "calendar.events.readonly",
    "calendar.readonly",
)
_WRITE_EVENTS = ("calendar", "calendar.app.created", "calendar.events", "calendar.events.owned")
METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "calendarList.list": (
        "calendar",
        "calendar.calendarlist",
        "calendar.calendarlist.readonly",
        "calendar.readonly",
    ),
    "calendarList.get": (
        "calendar",
        "calendar.app.created",
        "calendar.calendarlist",
        "calendar.calendarlist.readonly",
        "calendar.readonly",
    ),
    "calendars.insert": ("calendar", "calendar.app.created", "calendar.calendars"),
    "calendars.get": (
        "calendar",
        "calendar.app.created",
        "calendar.calendars",
        "calendar.calendars.readonly",
        "calendar.readonly",
    ),
    "calendars.delete": ("calendar", "calendar.app.created", "calendar.calendars"),
    "events.list": _READ_EVENTS,
    "events.get": _READ_EVENTS,
    "events.instances": _READ_EVENTS,
    "events.insert": _WRITE_EVENTS,
    "events.patch": _WRITE_EVENTS,
    "events.update": _WRITE_EVENTS,
    "events.delete": _WRITE_EVENTS,
    "freebusy.query": (
        "calendar",
        "calendar.events.freebusy",
        "calendar.freebusy",
        "calendar.readonly",
    ),
}
APP_CREATED = AUTH + "calendar.app.created"
WRITE_METHODS = frozenset(
    {"events.insert", "events.patch", "events.update", "events.delete", "calendars.delete"}
)

DEFAULT_MAX_RESULTS = 250  # events.list reference
MAX_MAX_RESULTS = 2500
STORE_PAGE = 500
MAX_BATCH_PARTS = 1000  # https://developers.google.com/calendar/api/guides/batch
SYNC_FORBIDDEN = (
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
)
_CLIENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")
_INSTANCE_ID = re.compile(r"^(?P<master>.+)_(?P<slot>\d{8}(T\d{6}Z)?)$")


# ---------------------------------------------------------------------------------------------
# Partial responses: ``fields=items(id,status),nextPageToken``
# (https://developers.google.com/calendar/api/guides/performance#partial-response). A client that
# forgets ``nextPageToken`` or ``nextSyncToken`` in its selection loses them here, as with Google.

FieldTree = dict[str, "FieldTree | None"]
_FIELD_PATH = re.compile(r"[A-Za-z0-9_@.*-]+(/[A-Za-z0-9_@.*-]+)*")


def parse_fields(spec: str) -> FieldTree:
    """Parse a ``fields`` selector into {name: subtree or None (whole value)}."""
    tree, rest = _parse_field_list(spec.replace(" ", ""), 0)
    if rest != len(spec.replace(" ", "")):
        raise _bad_param("fields")
    return tree


def _parse_field_list(spec: str, pos: int) -> tuple[FieldTree, int]:
    tree: FieldTree = {}
    while pos < len(spec) and spec[pos] != ")":
        match = _FIELD_PATH.match(spec, pos)
        if not match:
            raise _bad_param("fields")
        names = match.group(0).split("/")
        pos = match.end()
        sub: FieldTree | None = None
        if pos < len(spec) and spec[pos] == "(":
            sub, pos = _parse_field_list(spec, pos + 1)
            if pos >= len(spec) or spec[pos] != ")":
                raise _bad_param("fields")
            pos += 1
        node = tree
        for name in names[:-1]:
            child = node.get(name)
            if child is None:
                child = node[name] = {}
            node = child
        node[names[-1]] = sub
        if pos < len(spec) and spec[pos] == ",":
            pos += 1
    return tree, pos


def select_fields(value: Any, tree: FieldTree | None) -> Any:
    """Keep only the selected fields of a JSON value (lists apply the selection per item)."""
    if tree is None or "*" in tree:
        return value
    if isinstance(value, list):
        return [select_fields(item, tree) for item in value]
    if not isinstance(value, dict):
        return value
    # The resource's own key order survives, as in Google's partial responses.
    return {key: select_fields(item, tree[key]) for key, item in value.items() if key in tree}


@bp.before_request
def _parse_fields_param() -> None:
    # Parsed before the view so a malformed selector is a proper 400, not a 500 afterwards.
    spec = request.args.get("fields")
    g.calendar_fields = parse_fields(spec) if spec else None


@bp.after_request
def _partial_response(response: Response) -> Response:
    tree = g.get("calendar_fields")
    if tree is None or response.status_code != 200 or not response.is_json:
        return response  # errors are never filtered
    response.set_data(json.dumps(select_fields(response.get_json(), tree)))
    return response


# ---------------------------------------------------------------------------------------------
# Errors (bodies from https://developers.google.com/calendar/api/guides/errors)


def _err(code: int, message: str, **kw: Any) -> GoogleError:
    """A Calendar error body as the errors guide shows it: errors[], code, message, no status.

    https://developers.google.com/calendar/api/guides/errors (every sample lacks ``status``).
    """
    kw.setdefault("status", "")
    return GoogleError(code, message, **kw)


def _not_found() -> GoogleError:
    return _err(404, "Not Found", reason="notFound")


def _bad_request(
    message: str = "Bad Request", *, reason: str = "badRequest", **kw: Any
) -> GoogleError:
    return _err(400, message, reason=reason, **kw)


def _bad_param(name: str) -> GoogleError:
    return _err(400, "Bad Request", reason="badRequest", location=name, location_type="parameter")


def _full_sync_required() -> GoogleError:
    # Exact body: PROVIDERS.md §2, https://developers.google.com/calendar/api/guides/errors#410_gone
    return _err(
        410,
        "Sync token is no longer valid, a full sync is required.",
        reason="fullSyncRequired",
        domain="calendar",
        location="syncToken",
        location_type="parameter",
    )


def _insufficient_scope() -> GoogleError:
    # Google's body for a token lacking the method's scope (see also sandbox/google/oauth.py).
    return oauth.insufficient_scope()


# ---------------------------------------------------------------------------------------------
# Request context: who is calling, with which scopes, through the quota gate


@dataclass
class Ctx:
    """The authenticated caller of one request."""

    email: str
    mailbox: dict[str, Any]
    scopes: frozenset[str]
    method: str
    self_addresses: frozenset[str] = field(default_factory=frozenset)

    @property
    def app_created_only(self) -> bool:
        """True when the only scope that lets this method through is calendar.app.created."""
        allowed = {AUTH + name for name in METHOD_SCOPES[self.method]}
        return (self.scopes & allowed) == {APP_CREATED}

    @property
    def owned_only(self) -> bool:
        """True when only calendar.events.owned(.readonly) lets this method through."""
        allowed = {AUTH + name for name in METHOD_SCOPES[self.method]}
        granted = self.scopes & allowed
        return bool(granted) and all(".owned" in scope for scope in granted)

    @property
    def time_zone(self) -> str:
        return self.mailbox.get("time_zone") or "UTC"


def _authenticate(method: str) -> Ctx:
    """Validate the bearer token for this method's scopes (oauth.py) and load the mailbox."""
    info = oauth.authenticate(AUTH + name for name in METHOD_SCOPES[method])
    email = str(info["mailbox"]).lower()
    mailbox = get_state().store.get_mailbox(email)
    if mailbox is None:  # the mailbox was deleted under a live token
        raise _err(404, "Not Found", reason="notFound")
    selves = {email}
    for alias in mailbox.get("aliases") or []:
        if isinstance(alias, dict) and alias.get("email"):
            selves.add(str(alias["email"]).lower())
    return Ctx(
        email=email,
        mailbox=mailbox,
        scopes=frozenset(info["scopes"]),
        method=method,
        self_addresses=frozenset(selves),
    )


def _call(ctx: Ctx) -> Any:
    """Enter the quota/fault gate: Calendar quota is per request (PROVIDERS.md §2)."""
    return get_state().controls.call(service="calendar", mailbox=ctx.email, method=ctx.method)


def _handle(method: str, work: Callable[[Ctx], Any]) -> Any:
    ctx = _authenticate(method)
    with _call(ctx):
        return work(ctx)


# ---------------------------------------------------------------------------------------------
# Store adapter: the only place that knows the store's row shapes (sandbox/store.py)


def _is_gone(body: dict[str, Any]) -> bool:
    """Deleted: the store keeps deletions as tombstones with status 'cancelled'."""
    return body.get("status") == "cancelled"


def _get_calendar(ctx: Ctx, calendar_id: str) -> dict[str, Any]:
    """Resolve a calendarId ('primary' alias included) to one of the mailbox's calendars."""
    cid = ctx.email if calendar_id.lower() in {"primary", ctx.email} else calendar_id
    cal = get_state().store.get_calendar(ctx.email, cid)
    if cal is None:
        raise _not_found()
    if ctx.app_created_only and not cal.get("is_app_created"):
        raise _insufficient_scope()
    if ctx.owned_only and cal.get("access_role") != "owner":
        raise _insufficient_scope()  # calendar.events.owned*: "calendars you own"
    if ctx.method in WRITE_METHODS and cal.get("access_role") not in {"owner", "writer"}:
        # A shared calendar the user may only read.
        raise _err(
            403,
            "You need to have writer access to this calendar.",
            reason="requiredAccessLevel",
            domain="calendar",
        )
    return cal


def _get_event_body(ctx: Ctx, cal_id: str, event_id: str) -> dict[str, Any] | None:
    """A stored event body, tombstones included (they answer get with status cancelled)."""
    return get_state().store.get_event(ctx.email, cal_id, event_id, include_deleted=True)


def _put_event(ctx: Ctx, cal_id: str, body: dict[str, Any]) -> dict[str, Any]:
    state = get_state()
    with state.lock:
        return dict(state.store.put_event(ctx.email, cal_id, body))


def _iter_rows(
    ctx: Ctx, cal_id: str, *, since_seq: int | None, include_deleted: bool, after: Any = None
) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """Yield (cursor used, page of bodies) one store page at a time, in (changed_seq, id)."""
    store = get_state().store
    while True:
        try:
            rows, nxt = store.list_events(
                ctx.email,
                cal_id,
                since_seq=since_seq,
                include_deleted=include_deleted,
                page_size=STORE_PAGE,
                after=after,
            )
        except StaleCursorError:
            raise _full_sync_required() from None
        yield after, [dict(r["body"]) for r in rows]
        if nxt is None:
            return
        after = nxt


class Series:
    """Per-request cache of recurring masters and their exception rows."""

    def __init__(self, ctx: Ctx, cal_id: str) -> None:
        self.ctx, self.cal_id = ctx, cal_id
        self._masters: dict[str, dict[str, Any] | None] = {}
        self._exceptions: dict[str, list[dict[str, Any]]] = {}

    def master(self, master_id: str) -> dict[str, Any] | None:
        if master_id not in self._masters:
            self._masters[master_id] = _get_event_body(self.ctx, self.cal_id, master_id)
        return self._masters[master_id]

    def exceptions(self, master_id: str) -> list[dict[str, Any]]:
        """Moved and cancelled occurrences (a deleted exception row is a cancelled slot)."""
        if master_id not in self._exceptions:
            self._exceptions[master_id] = [
                body
                for body in get_state().store.list_event_exceptions(
                    self.ctx.email, self.cal_id, master_id
                )
                if body.get("original_start")
            ]
        return self._exceptions[master_id]


# ---------------------------------------------------------------------------------------------
# Time helpers


def rfc3339_ms(ms: int | None) -> str:
    """Render epoch ms as Google's ``created``/``updated``: ``2026-03-02T14:00:00.000Z``."""
    stamp = dt.datetime.fromtimestamp((ms or 0) / 1000, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _iso(instant: dt.datetime) -> str:
    text = instant.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _parse_rfc3339(value: str, name: str) -> dt.datetime:
    """Parse a query/body timestamp; the offset is mandatory (events.list reference)."""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _bad_param(name) from None
    if parsed.tzinfo is None:
        raise _bad_param(name)
    return parsed.astimezone(UTC)


def _now_ms() -> int:
    return int(dt.datetime.now(UTC).timestamp() * 1000)


def _out_time(when: dict[str, Any], out_tz: dt.tzinfo | None) -> dict[str, Any]:
    """Neutral ``{date_time, time_zone}`` / ``{date}`` -> Google ``{dateTime, timeZone}``."""
    if recurrence.is_all_day(when):
        return {"date": when["date"]}
    instant = dt.datetime.fromisoformat(when["date_time"])
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=recurrence.zone_of(when))
    if out_tz is not None:
        instant = instant.astimezone(out_tz)
    out: dict[str, Any] = {"dateTime": _iso(instant)}
    if (
        out_tz is None
        and when.get("time_zone")
        and get_state().config.get("calendar_floating_times")
    ):
        # The knob in the module doc: wall-clock time, the zone named only by timeZone.
        local = instant.astimezone(recurrence.zone_of(when))
        out["dateTime"] = local.replace(microsecond=0, tzinfo=None).isoformat()
    if when.get("time_zone"):
        out["timeZone"] = when["time_zone"]
    return out


def _in_time(value: Any, name: str, default_tz: str | None = None) -> dict[str, Any]:
    """Google ``EventDateTime`` -> neutral, with Google's validation messages."""
    if not isinstance(value, dict) or not (value.get("date") or value.get("dateTime")):
        # [?: message wording; Google answers 400 "required" for a missing start/end]
        raise _bad_request(f"Missing {name} time.", reason="required")
    if value.get("date") and value.get("dateTime"):
        raise _bad_request(f"Invalid {name} time.", reason="invalid")
    if value.get("date"):
        try:
            dt.date.fromisoformat(value["date"])
        except ValueError:
            raise _bad_request(f"Invalid {name} time.", reason="invalid") from None
        return {"date": value["date"]}
    tz_name = value.get("timeZone")
    try:
        parsed = dt.datetime.fromisoformat(value["dateTime"].replace("Z", "+00:00"))
    except ValueError:
        raise _bad_request(f"Invalid {name} time.", reason="invalid") from None
    if tz_name:
        try:
            zone = ZoneInfo(tz_name)
        except (KeyError, ValueError):
            raise _bad_request(
                f"Invalid time zone definition for {name} time.", reason="timeZoneInvalid"
            ) from None
        parsed = parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed.astimezone(zone)
    elif parsed.tzinfo is None:
        # Real message for a floating dateTime with no timeZone.
        raise _bad_request(f"Missing time zone definition for {name} time.", reason="required")
    out = {"date_time": parsed.isoformat()}
    if tz_name:
        out["time_zone"] = tz_name
    return out


def _span(body: dict[str, Any], default_tz: str) -> tuple[dt.datetime, dt.datetime]:
    start = recurrence.to_utc(body["start"], default_tz)
    end = recurrence.to_utc(body.get("end") or body["start"], default_tz)
    return start, end


def instance_id(master_id: str, original: dt.datetime | dt.date) -> str:
    """Google's instance id: ``<masterId>_<YYYYMMDDTHHMMSSZ>`` or ``_<YYYYMMDD>`` (all-day)."""
    if isinstance(original, dt.datetime):
        return f"{master_id}_{original.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    return f"{master_id}_{original.strftime('%Y%m%d')}"


# ---------------------------------------------------------------------------------------------
# Rendering: neutral body -> Google Event resource


@dataclass
class RenderOpts:
    """Per-request rendering knobs."""

    calendar_id: str
    out_tz: dt.tzinfo | None = None
    max_attendees: int | None = None


def _etag(body: dict[str, Any]) -> str:
    # Google etags are quoted decimal strings, e.g. "\"3181161784712000\"".
    return f'"{int(body.get("updated_ms") or 0) * 1000 + int(body.get("_seq") or 0) % 1000}"'


def _html_link(event_id: str, calendar_id: str) -> str:
    # htmlLink's eid is base64url("<eventId> <calendarId>") without padding.
    eid = base64.urlsafe_b64encode(f"{event_id} {calendar_id}".encode()).decode().rstrip("=")
    return f"https://www.google.com/calendar/event?eid={eid}"


def _person(email: str | None, name: str | None, ctx: Ctx) -> dict[str, Any]:
    out: dict[str, Any] = {"email": email or ""}
    if name:
        out["displayName"] = name
    if email and email.lower() in ctx.self_addresses:
        out["self"] = True
    return out


def render_event(
    body: dict[str, Any], ctx: Ctx, opts: RenderOpts, *, minimal: bool = False
) -> dict[str, Any]:
    """Render a neutral event (master, single, exception or expanded instance) as Google does."""
    event_id = body["id"]
    if minimal:
        # A deleted event in incremental sync: only the id is guaranteed (PROVIDERS.md §2).
        out: dict[str, Any] = {
            "kind": "calendar#event",
            "etag": _etag(body),
            "id": event_id,
            "status": "cancelled",
        }
        if body.get("recurring_event_id"):
            out["recurringEventId"] = body["recurring_event_id"]
            out["originalStartTime"] = _original_start_time(body, opts)
        return out
    organizer = body.get("organizer") or {}
    out = {
        "kind": "calendar#event",
        "etag": _etag(body),
        "id": event_id,
        "status": body.get("status") or "confirmed",
        "htmlLink": _html_link(event_id, opts.calendar_id),
        "created": rfc3339_ms(body.get("created_ms")),
        "updated": rfc3339_ms(body.get("updated_ms") or body.get("created_ms")),
    }
    for key in ("summary", "description", "location"):
        if body.get(key):
            out[key] = body[key]
    creator = body.get("creator") or organizer
    out["creator"] = _person(creator.get("email"), creator.get("name"), ctx)
    out["organizer"] = _person(organizer.get("email"), organizer.get("name"), ctx)
    out["start"] = _out_time(body["start"], opts.out_tz)
    out["end"] = _out_time(body.get("end") or body["start"], opts.out_tz)
    if body.get("end_time_unspecified"):
        out["endTimeUnspecified"] = True
    if body.get("recurrence"):
        out["recurrence"] = list(body["recurrence"])
    if body.get("recurring_event_id"):
        out["recurringEventId"] = body["recurring_event_id"]
        out["originalStartTime"] = _original_start_time(body, opts)
    if body.get("transparency") == "transparent":
        out["transparency"] = "transparent"
    if body.get("visibility") and body["visibility"] != "default":
        out["visibility"] = body["visibility"]
    out["iCalUID"] = body.get("ical_uid") or f"{event_id}@google.com"
    out["sequence"] = int(body.get("sequence") or 0)
    attendees = [_render_attendee(a, ctx) for a in body.get("attendees") or []]
    organised = bool(out.get("organizer", {}).get("self"))
    hidden = body.get("guests_can_see_other_guests") is False and not organised
    if attendees:
        if hidden or (opts.max_attendees is not None and len(attendees) > opts.max_attendees):
            # "only the participant is returned" (events.list maxAttendees). A guest list hidden
            # from guests shows a guest only themselves (lfx-self-serve#2434 describes it); the
            # events reference says attendeesOmitted marks any such omission.
            attendees = [a for a in attendees if a.get("self")]
            out["attendeesOmitted"] = True
        out["attendees"] = attendees
    if body.get("guests_can_modify"):
        out["guestsCanModify"] = True
    if body.get("guests_can_see_other_guests") is False:
        out["guestsCanSeeOtherGuests"] = False
    out["reminders"] = body.get("reminders") or {"useDefault": True}
    out["eventType"] = body.get("event_type") or "default"
    return out


def _render_attendee(att: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    # Google omits false booleans on attendees (Event resource, attendees[]).
    out = _person(att.get("email"), att.get("name"), ctx)
    if att.get("is_organizer"):
        out["organizer"] = True
    if att.get("resource"):
        out["resource"] = True
    if att.get("optional"):
        out["optional"] = True
    out["responseStatus"] = att.get("response") or "needsAction"
    return out


def _original_start_time(body: dict[str, Any], opts: RenderOpts) -> dict[str, Any]:
    original = body.get("original_start")
    if isinstance(original, str):
        original = {"date": original} if len(original) == 10 else {"date_time": original}
    if not original:
        original = body["start"]
    return _out_time(original, opts.out_tz)


def _instance_body(master: dict[str, Any], occ: recurrence.Occurrence) -> dict[str, Any]:
    """The neutral body of one expanded instance (an exception body wins if there is one)."""
    if isinstance(occ.original_start, dt.datetime):
        zone = recurrence.zone_of(master["start"])
        original: dict[str, Any] = {"date_time": occ.original_start.astimezone(zone).isoformat()}
        if master["start"].get("time_zone"):
            original["time_zone"] = master["start"]["time_zone"]
    else:
        original = {"date": occ.original_start.isoformat()}
    if occ.exception is not None:
        body = {**master, **occ.exception}
        body.pop("recurrence", None)
        body["id"] = occ.exception.get("id") or instance_id(master["id"], occ.original_start)
    else:
        body = {k: v for k, v in master.items() if k != "recurrence"}
        body["id"] = instance_id(master["id"], occ.original_start)
        body["start"], body["end"] = occ.start, occ.end
    body["recurring_event_id"] = master["id"]
    body["original_start"] = original
    if occ.is_cancelled:
        body["status"] = "cancelled"
    return body


# ---------------------------------------------------------------------------------------------
# Tokens


def _encode_token(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> dict[str, Any] | None:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def _query_fingerprint(args: dict[str, Any]) -> str:
    keep = {
        k: v
        for k, v in sorted(args.items())
        if k not in {"pageToken", "maxResults", "alt", "prettyPrint", "fields", "key"}
    }
    return hashlib.sha256(json.dumps(keep).encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------
# events.list


@dataclass
class ListQuery:
    """Parsed events.list / events.instances parameters."""

    calendar_id: str
    single: bool
    show_deleted: bool
    time_min: dt.datetime | None
    time_max: dt.datetime | None
    order_by: str | None
    max_results: int
    q: str | None
    ical_uid: str | None
    updated_min: int | None
    event_types: list[str]
    since_seq: int | None  # incremental when not None
    opts: RenderOpts
    only_master: str | None = None  # events.instances


def _bool_arg(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if raw.lower() in {"true", "1"}:
        return True
    if raw.lower() in {"false", "0"}:
        return False
    raise _bad_param(name)


def _int_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise _bad_param(name) from None


def _parse_list_query(ctx: Ctx, cal: dict[str, Any], *, for_instances: bool = False) -> ListQuery:
    args = request.args
    sync_token = args.get("syncToken")
    single = bool(_bool_arg("singleEvents")) or for_instances
    show_deleted_arg = _bool_arg("showDeleted")
    order_by = args.get("orderBy")
    since_seq: int | None = None
    if sync_token is not None and not for_instances:
        # PROVIDERS.md §2: these cannot be combined with syncToken [?: exact message].
        for name in SYNC_FORBIDDEN:
            if args.get(name) is not None:
                raise _bad_request(
                    # [?: message wording; the 400 itself is PROVIDERS.md §2]
                    f"Sync token cannot be used with the {name} parameter.",
                    reason="invalid",
                    location=name,
                    location_type="parameter",
                )
        if show_deleted_arg is False:
            raise _bad_request(
                "Sync token cannot be used with showDeleted=false.",
                reason="invalid",
                location="showDeleted",
                location_type="parameter",
            )
        since_seq = _check_sync_token(ctx, sync_token)
    if order_by is not None:
        if order_by not in {"startTime", "updated"}:
            raise _bad_param("orderBy")
        if order_by == "startTime" and not single:
            # Real message (events.list, orderBy=startTime "only available when querying
            # single events").
            raise _bad_request("The requested ordering is not available for the particular query.")
    time_min = _parse_rfc3339(args["timeMin"], "timeMin") if args.get("timeMin") else None
    time_max = _parse_rfc3339(args["timeMax"], "timeMax") if args.get("timeMax") else None
    if time_min and time_max and time_max <= time_min:
        # Exact body: https://developers.google.com/calendar/api/guides/errors#400_bad_request
        raise _err(
            400,
            "The specified time range is empty.",
            reason="timeRangeEmpty",
            domain="calendar",
            location="timeMax",
            location_type="parameter",
        )
    max_results = _int_arg("maxResults")
    if max_results is None:
        max_results = DEFAULT_MAX_RESULTS
    if max_results < 1:
        raise _bad_param("maxResults")
    max_results = min(max_results, MAX_MAX_RESULTS)
    updated_min = (
        int(_parse_rfc3339(args["updatedMin"], "updatedMin").timestamp() * 1000)
        if args.get("updatedMin")
        else None
    )
    out_tz = None
    if args.get("timeZone"):
        try:
            out_tz = ZoneInfo(args["timeZone"])
        except (KeyError, ValueError):
            raise _bad_param("timeZone") from None
    return ListQuery(
        calendar_id=cal["id"],
        single=single,
        # With a syncToken deleted entries are always returned (events.list syncToken).
        show_deleted=bool(show_deleted_arg) or since_seq is not None or updated_min is not None,
        time_min=time_min,
        time_max=time_max,
        order_by=order_by,
        max_results=max_results,
        q=(args.get("q") or "").lower() or None,
        ical_uid=args.get("iCalUID"),
        updated_min=updated_min,
        event_types=args.getlist("eventTypes"),
        since_seq=since_seq,
        opts=RenderOpts(
            calendar_id=cal["id"], out_tz=out_tz, max_attendees=_int_arg("maxAttendees")
        ),
    )


def _check_sync_token(ctx: Ctx, token: str) -> int:
    """Return the first change seq the token has not seen; 410 when malformed or stale."""
    data = _decode_token(token)
    if not data or data.get("k") != "sync" or not isinstance(data.get("seq"), int):
        raise _full_sync_required()
    if int(data.get("floor", 0)) < int(ctx.mailbox.get("token_floor") or 0):
        raise _full_sync_required()  # store.expire_cursors raised the floor since it was issued
    if data["seq"] > int(ctx.mailbox.get("change_seq") or 0) + 1:
        raise _full_sync_required()  # not one of ours
    return int(data["seq"])


def _matches(body: dict[str, Any], query: ListQuery) -> bool:
    """Non-time filters shared by every listing mode."""
    if query.event_types and (body.get("event_type") or "default") not in query.event_types:
        return False
    if query.ical_uid and (body.get("ical_uid") or f"{body['id']}@google.com") != query.ical_uid:
        return False
    if query.updated_min is not None and int(body.get("updated_ms") or 0) < query.updated_min:
        return False
    if query.q:
        hay = [body.get("summary"), body.get("description"), body.get("location")]
        organizer = body.get("organizer") or {}
        hay += [organizer.get("email"), organizer.get("name")]
        for att in body.get("attendees") or []:
            hay += [att.get("email"), att.get("name")]
        if not any(query.q in str(h).lower() for h in hay if h):
            return False
    return True


def _in_window(body: dict[str, Any], query: ListQuery, default_tz: str) -> bool:
    if query.time_min is None and query.time_max is None:
        return True
    if body.get("recurrence") and not body.get("recurring_event_id"):
        # A master matches when any instance overlaps the window.
        return bool(
            recurrence.expand(body, [], query.time_min, query.time_max, default_tz=default_tz)
        )
    if not body.get("start"):
        return False
    start, end = _span(body, default_tz)
    if query.time_max is not None and not start < query.time_max:
        return False
    return not (query.time_min is not None and not end > query.time_min)


def _items_for_row(
    body: dict[str, Any], query: ListQuery, ctx: Ctx, series: Series
) -> list[tuple[dict[str, Any], bool]]:
    """Turn one stored row into this listing's items: (neutral body, render minimal?)."""
    tz = ctx.time_zone
    incremental = query.since_seq is not None
    deleted = _is_gone(body)
    is_exception = bool(body.get("recurring_event_id"))
    is_master = bool(body.get("recurrence")) and not is_exception
    if query.only_master is not None and not (is_master and body["id"] == query.only_master):
        return []

    if query.single and is_master:
        if deleted and not incremental:
            # "only single instances of deleted events (but not the underlying recurring
            # events) are returned" (events.list showDeleted).
            return []
        window = (None, None) if incremental else (query.time_min, query.time_max)
        out = []
        for occ in recurrence.expand(body, series.exceptions(body["id"]), *window, default_tz=tz):
            inst = _instance_body(body, occ)
            gone = occ.is_cancelled or deleted
            if (gone and not query.show_deleted) or not _matches(inst, query):
                continue
            out.append(({**inst, "status": "cancelled"} if gone else inst, gone))
        return out
    if is_exception and not incremental:
        if query.single:
            return []  # emitted through its master's expansion
        master = series.master(body["recurring_event_id"])
        if master is None or _is_gone(master):
            return []  # the series is gone, and its instances with it
    if is_master and not incremental and not query.single:
        if deleted:
            return [(body, True)] if query.show_deleted else []
        if not _in_window(body, query, tz) or not _matches(body, query):
            return []
        out = [(body, False)]
        if not query.show_deleted:
            # Tombstoned exceptions are not in a plain listing; Google still lists cancelled
            # instances of a live series when showDeleted and singleEvents are both false.
            for exc in series.exceptions(body["id"]):
                if _is_gone(exc) and _in_window(exc, query, tz):
                    out.append((exc, True))
        return out
    if deleted and not query.show_deleted:
        return []
    if not incremental and not _in_window(body, query, tz):
        return []
    if not _matches(body, query):
        return []
    return [(body, deleted)]


def _list_events(ctx: Ctx, cal: dict[str, Any], query: ListQuery) -> dict[str, Any]:
    """Run one page of events.list (full or incremental, expanded or not)."""
    page_token = request.args.get("pageToken")
    fingerprint = _query_fingerprint(request.args.to_dict(flat=False))
    floor = int(ctx.mailbox.get("token_floor") or 0)
    if page_token:
        state = _decode_token(page_token)
        if not state or state.get("k") != "page" or state.get("q") != fingerprint:
            raise _err(
                400,
                "Invalid Value",
                reason="invalid",
                location="pageToken",
                location_type="parameter",
            )
        if int(state.get("floor", 0)) < floor:
            raise _full_sync_required()
        snapshot = int(state["snap"])
    else:
        state = {}
        snapshot = int(ctx.mailbox.get("change_seq") or 0)

    series = Series(ctx, cal["id"])
    rows = functools.partial(
        _iter_rows,
        ctx,
        cal["id"],
        since_seq=query.since_seq,
        include_deleted=query.show_deleted,
    )
    items: list[dict[str, Any]] = []
    next_state: dict[str, Any] | None = None
    if query.order_by:
        # A global order needs every matching item; calendars are small next to mailboxes.
        collected: list[tuple[dict[str, Any], bool]] = []
        for _, bodies in rows():
            for body in bodies:
                collected.extend(_items_for_row(body, query, ctx, series))
        if query.order_by == "startTime":
            collected.sort(key=lambda it: (_span(it[0], ctx.time_zone)[0], it[0]["id"]))
        else:
            collected.sort(key=lambda it: (int(it[0].get("updated_ms") or 0), it[0]["id"]))
        offset = int(state.get("off", 0))
        chunk = collected[offset : offset + query.max_results]
        items = [render_event(b, ctx, query.opts, minimal=m) for b, m in chunk]
        if offset + query.max_results < len(collected):
            next_state = {"off": offset + query.max_results}
    else:
        # Position = (store cursor of the row's page, row index in it, item index in the row):
        # a recurring master expands to many items, so a page may end inside one row.
        skip_rows, skip_items = int(state.get("r", 0)), int(state.get("i", 0))
        first_page = True
        for after, bodies in rows(after=state.get("a")):
            for r_idx, body in enumerate(bodies):
                if first_page and r_idx < skip_rows:
                    continue
                expanded = _items_for_row(body, query, ctx, series)
                for i_idx, (item, minimal) in enumerate(expanded):
                    if first_page and r_idx == skip_rows and i_idx < skip_items:
                        continue
                    if len(items) == query.max_results:
                        next_state = {"a": after, "r": r_idx, "i": i_idx}
                        break
                    items.append(render_event(item, ctx, query.opts, minimal=minimal))
                if next_state is not None:
                    break
            first_page = False
            if next_state is not None:
                break

    out: dict[str, Any] = {
        "kind": "calendar#events",
        "etag": f'"p{snapshot}"',
        "summary": cal.get("summary") or ctx.email,
        "description": "",
        "updated": rfc3339_ms(_now_ms()),
        "timeZone": cal.get("time_zone") or ctx.time_zone,
        "accessRole": cal.get("access_role") or "owner",
        "defaultReminders": [{"method": "popup", "minutes": 10}] if cal.get("is_primary") else [],
    }
    if next_state is not None:
        next_state.update({"k": "page", "q": fingerprint, "snap": snapshot, "floor": floor})
        out["nextPageToken"] = _encode_token(next_state)
    elif query.only_master is None:
        # nextSyncToken only on the last page (https://developers.google.com/calendar/api/guides/sync).
        # It names the first change seq not yet seen, and the floor in force now.
        out["nextSyncToken"] = _encode_token({"k": "sync", "seq": snapshot + 1, "floor": floor})
    out["items"] = items
    return out


@bp.get(f"{API}/calendars/<calendar_id>/events")
def events_list(calendar_id: str) -> Response:
    def work(ctx: Ctx) -> Response:
        cal = _get_calendar(ctx, calendar_id)
        return jsonify(_list_events(ctx, cal, _parse_list_query(ctx, cal)))

    return _handle("events.list", work)


@bp.get(f"{API}/calendars/<calendar_id>/events/<event_id>/instances")
def events_instances(calendar_id: str, event_id: str) -> Response:
    def work(ctx: Ctx) -> Response:
        cal = _get_calendar(ctx, calendar_id)
        master = _get_event_body(ctx, cal["id"], event_id)
        if master is None or not master.get("recurrence"):
            raise _not_found()
        query = _parse_list_query(ctx, cal, for_instances=True)
        query.only_master = event_id
        result = _list_events(ctx, cal, query)
        result.pop("nextSyncToken", None)
        return jsonify(result)

    return _handle("events.instances", work)


# ---------------------------------------------------------------------------------------------
# events.get / insert / patch / update / delete


def _lookup(ctx: Ctx, cal_id: str, event_id: str) -> dict[str, Any] | None:
    """A stored event, or a virtual instance of a recurring series (``<master>_<slot>``)."""
    body = _get_event_body(ctx, cal_id, event_id)
    if body is not None:
        return body
    match = _INSTANCE_ID.match(event_id)
    if not match:
        return None
    master = _get_event_body(ctx, cal_id, match["master"])
    if master is None or not master.get("recurrence"):
        return None
    excs = Series(ctx, cal_id).exceptions(master["id"])
    slot = match["slot"]
    if "T" in slot:
        at = dt.datetime.strptime(slot, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        lo, hi = at - dt.timedelta(days=1), at + dt.timedelta(days=1)
    else:
        day = dt.datetime.strptime(slot, "%Y%m%d").replace(tzinfo=UTC)
        lo, hi = day - dt.timedelta(days=2), day + dt.timedelta(days=2)
    for occ in recurrence.expand(master, excs, lo, hi, default_tz=ctx.time_zone):
        if instance_id(master["id"], occ.original_start) == event_id:
            inst = _instance_body(master, occ)
            inst["_virtual"] = True
            if _is_gone(master):
                inst["status"] = "cancelled"
            return inst
    return None


def _event_or_404(ctx: Ctx, cal_id: str, event_id: str) -> dict[str, Any]:
    body = _lookup(ctx, cal_id, event_id)
    if body is None:
        raise _not_found()
    return body


@bp.get(f"{API}/calendars/<calendar_id>/events/<event_id>")
def events_get(calendar_id: str, event_id: str) -> Response:
    def work(ctx: Ctx) -> Response:
        cal = _get_calendar(ctx, calendar_id)
        body = _event_or_404(ctx, cal["id"], event_id)
        opts = RenderOpts(calendar_id=cal["id"], max_attendees=_int_arg("maxAttendees"))
        if request.args.get("timeZone"):
            try:
                opts.out_tz = ZoneInfo(request.args["timeZone"])
            except (KeyError, ValueError):
                raise _bad_param("timeZone") from None
        # A deleted event is still readable, with status "cancelled" (the tombstone).
        return jsonify(render_event(body, ctx, opts, minimal=not body.get("start")))

    return _handle("events.get", work)


def _json_body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise _bad_request("Parse Error", reason="parseError")
    return data


def _neutral_from_google(
    data: dict[str, Any], ctx: Ctx, *, base: dict[str, Any] | None
) -> dict[str, Any]:
    """Google Event (full, after patch merge) -> neutral body, keeping server-owned fields."""
    body: dict[str, Any] = dict(base or {})
    body["start"] = _in_time(data.get("start"), "start")
    body["end"] = _in_time(data.get("end"), "end")
    if recurrence.is_all_day(body["start"]) != recurrence.is_all_day(body["end"]):
        raise _bad_request(
            "Start and end times must either both be date or both be dateTime.", reason="invalid"
        )
    start, end = _span(body, ctx.time_zone)
    if end < start:
        raise _err(
            400, "The specified time range is empty.", reason="timeRangeEmpty", domain="calendar"
        )
    body["is_all_day"] = recurrence.is_all_day(body["start"])
    body["status"] = data.get("status") or body.get("status") or "confirmed"
    if body["status"] not in {"confirmed", "tentative", "cancelled"}:
        raise _bad_request("Invalid Value", reason="invalid")
    for key in ("summary", "description", "location"):
        if key in data:
            body[key] = data[key]
    if "transparency" in data:
        body["transparency"] = data["transparency"]
    if "visibility" in data:
        body["visibility"] = data["visibility"]
    if "reminders" in data:
        body["reminders"] = data["reminders"]
    if "guestsCanSeeOtherGuests" in data:
        body["guests_can_see_other_guests"] = bool(data["guestsCanSeeOtherGuests"])
    if "recurrence" in data:
        rules = data["recurrence"] or []
        if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            raise _bad_request("Invalid recurrence rule.", reason="invalid")
        body["recurrence"] = rules
    if "attendees" in data:
        attendees = []
        for att in data.get("attendees") or []:
            if not isinstance(att, dict) or not att.get("email"):
                raise _bad_request("Missing attendee email.", reason="required")
            attendees.append(
                {
                    "email": att["email"],
                    "name": att.get("displayName"),
                    "response": att.get("responseStatus") or "needsAction",
                    "optional": bool(att.get("optional")),
                    "resource": bool(att.get("resource")),
                    "is_organizer": att["email"].lower()
                    == ((body.get("organizer") or {}).get("email") or ctx.email).lower(),
                }
            )
        body["attendees"] = attendees
    return body


@bp.post(f"{API}/calendars/<calendar_id>/events")
def events_insert(calendar_id: str) -> Response:
    def work(ctx: Ctx) -> Response:
        cal = _get_calendar(ctx, calendar_id)
        data = _json_body()
        event_id = data.get("id")
        if event_id is not None:
            # Client ids: base32hex, 5-1024 chars (events.insert reference, Event.id); and "only
            # one of [id, iCalUID] should be supplied" - sending both gets the same 400
            # (https://github.com/wanasit/google-calendar/issues/25,
            # https://github.com/melgarafael/DeskcommCRM/issues/467).
            if (
                not isinstance(event_id, str)
                or not _CLIENT_ID.match(event_id)
                or data.get("iCalUID")
            ):
                raise _bad_request("Invalid resource id value.", reason="invalid")
        else:
            # Google's own ids look like 26 base32hex characters.
            raw = base64.b32hexencode(secrets.token_bytes(16)).decode()
            event_id = raw.lower().rstrip("=")[:26]
        now = _now_ms()
        me = {"email": ctx.email, "name": ctx.mailbox.get("display_name")}
        body = _neutral_from_google(
            data,
            ctx,
            base={
                "id": event_id,
                "organizer": me,
                "creator": me,
                "created_ms": now,
                "sequence": 0,
                "attendees": [],
            },
        )
        body["updated_ms"] = now
        body["ical_uid"] = data.get("iCalUID") or f"{event_id}@google.com"
        state = get_state()
        with state.lock:
            # Ids stay reserved after deletion: re-inserting a deleted id is also a conflict
            # (https://github.com/googleapis/google-api-python-client/issues/210 and 846,
            # https://github.com/googleapis/google-api-ruby-client/issues/1811); the deleted
            # event can be restored by updating it with status "confirmed" (Event.status).
            stored = state.store.get_event(ctx.email, cal["id"], event_id, include_deleted=True)
            if stored is not None:
                raise _err(409, "The requested identifier already exists.", reason="duplicate")
            saved = _put_event(ctx, cal["id"], body)
        return _event_response(saved, ctx, cal)

    return _handle("events.insert", work)


def _event_response(body: dict[str, Any], ctx: Ctx, cal: dict[str, Any]) -> Response:
    return jsonify(render_event(body, ctx, RenderOpts(calendar_id=cal["id"])))


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Patch semantics: nested objects merge, arrays and scalars replace."""
    out = dict(base)
    for key, value in patch.items():
        if (
            isinstance(value, dict)
            and isinstance(out.get(key), dict)
            and key
            not in {
                "start",
                "end",  # an EventDateTime is replaced whole: date vs dateTime switch
            }
        ):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _write(ctx: Ctx, calendar_id: str, event_id: str, *, patch: bool) -> Response:
    cal = _get_calendar(ctx, calendar_id)
    current = _event_or_404(ctx, cal["id"], event_id)
    data = _json_body()
    opts = RenderOpts(calendar_id=cal["id"])
    as_google = render_event(current, ctx, opts) if current.get("start") else {}
    merged = _merge(as_google, data) if patch else data
    if not patch:
        # Update replaces the resource: read-only fields survive, the rest come from the body.
        for key in (
            "id",
            "iCalUID",
            "organizer",
            "creator",
            "recurringEventId",
            "originalStartTime",
        ):
            if key in as_google:
                merged.setdefault(key, as_google[key])
    server_keys = {
        k: v
        for k, v in current.items()
        if k
        in {
            "id",
            "ical_uid",
            "organizer",
            "creator",
            "created_ms",
            "recurring_event_id",
            "original_start",
            "sequence",
        }
    }
    if patch:
        server_keys.update({k: v for k, v in current.items() if not k.startswith("_")})
    body = _neutral_from_google(merged, ctx, base=server_keys)
    if body.get("recurring_event_id"):
        body.pop("recurrence", None)
    # Google bumps sequence when the time or the rule changes (RFC 5545 SEQUENCE).
    old_time = _span(current, ctx.time_zone) if current.get("start") else None
    if (_span(body, ctx.time_zone), body.get("recurrence") or []) != (
        old_time,
        current.get("recurrence") or [],
    ):
        body["sequence"] = int(current.get("sequence") or 0) + 1
    body["updated_ms"] = _now_ms()
    saved = _put_event(ctx, cal["id"], body)
    return _event_response(saved, ctx, cal)


@bp.patch(f"{API}/calendars/<calendar_id>/events/<event_id>")
def events_patch(calendar_id: str, event_id: str) -> Response:
    return _handle("events.patch", lambda ctx: _write(ctx, calendar_id, event_id, patch=True))


@bp.put(f"{API}/calendars/<calendar_id>/events/<event_id>")
def events_update(calendar_id: str, event_id: str) -> Response:
    return _handle("events.update", lambda ctx: _write(ctx, calendar_id, event_id, patch=False))


@bp.delete(f"{API}/calendars/<calendar_id>/events/<event_id>")
def events_delete(calendar_id: str, event_id: str) -> Response:
    def work(ctx: Ctx) -> Response:
        cal = _get_calendar(ctx, calendar_id)
        body = _event_or_404(ctx, cal["id"], event_id)
        if _is_gone(body):
            # https://developers.google.com/calendar/api/guides/errors#410_gone
            raise _err(410, "Resource has been deleted", reason="deleted")
        state = get_state()
        with state.lock:
            if body.pop("_virtual", None):
                # Deleting one instance records a cancelled exception of the series.
                body["status"] = "cancelled"
                state.store.put_event(ctx.email, cal["id"], body)
            else:
                if body.get("recurrence") and not body.get("recurring_event_id"):
                    # Deleting a series deletes its moved instances too.
                    for exc in state.store.list_event_exceptions(ctx.email, cal["id"], body["id"]):
                        state.store.delete_event(ctx.email, cal["id"], exc["id"])
                state.store.delete_event(ctx.email, cal["id"], body["id"])
        return Response(status=204)

    return _handle("events.delete", work)


# ---------------------------------------------------------------------------------------------
# calendarList / calendars


def _calendar_etag(cal: dict[str, Any]) -> str:
    return f'"{int(cal.get("changed_seq") or 0)}"'


def _render_calendar(cal: dict[str, Any]) -> dict[str, Any]:
    # https://developers.google.com/calendar/api/v3/reference/calendars#resource
    return {
        "kind": "calendar#calendar",
        "etag": _calendar_etag(cal),
        "id": cal["id"],
        "summary": cal.get("summary") or cal["id"],
        "timeZone": cal.get("time_zone") or "UTC",
        "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
    }


def _render_list_entry(cal: dict[str, Any]) -> dict[str, Any]:
    # https://developers.google.com/calendar/api/v3/reference/calendarList#resource
    out = {
        "kind": "calendar#calendarListEntry",
        "etag": _calendar_etag(cal),
        "id": cal["id"],
        "summary": cal.get("summary") or cal["id"],
        "timeZone": cal.get("time_zone") or "UTC",
        "colorId": "14" if cal.get("is_primary") else "1",
        "backgroundColor": "#9fe1e7" if cal.get("is_primary") else "#ac725e",
        "foregroundColor": "#000000",
        "selected": True,
        "accessRole": cal.get("access_role") or "owner",
        "defaultReminders": [{"method": "popup", "minutes": 10}] if cal.get("is_primary") else [],
        "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
    }
    if cal.get("is_primary"):
        out["primary"] = True
        out["notificationSettings"] = {
            "notifications": [
                {"type": "eventCreation", "method": "email"},
                {"type": "eventChange", "method": "email"},
                {"type": "eventCancellation", "method": "email"},
                {"type": "eventResponse", "method": "email"},
            ]
        }
    return out


def _live_calendars(ctx: Ctx) -> list[dict[str, Any]]:
    cals = [c for c in get_state().store.list_calendars(ctx.email) if not c.get("is_deleted")]
    cals.sort(key=lambda c: (not c.get("is_primary"), c["id"]))
    return cals


@bp.get(f"{API}/users/me/calendarList")
def calendar_list_list() -> Response:
    def work(ctx: Ctx) -> Response:
        items = [_render_list_entry(c) for c in _live_calendars(ctx)]
        seq = int(ctx.mailbox.get("change_seq") or 0)
        return jsonify(
            {
                "kind": "calendar#calendarList",
                "etag": f'"p{seq}"',
                "nextSyncToken": _encode_token({"k": "calsync", "seq": seq}),
                "items": items,
            }
        )

    return _handle("calendarList.list", work)


@bp.get(f"{API}/users/me/calendarList/<calendar_id>")
def calendar_list_get(calendar_id: str) -> Response:
    def work(ctx: Ctx) -> Response:
        return jsonify(_render_list_entry(_get_calendar(ctx, calendar_id)))

    return _handle("calendarList.get", work)


@bp.get(f"{API}/calendars/<calendar_id>")
def calendars_get(calendar_id: str) -> Response:
    def work(ctx: Ctx) -> Response:
        return jsonify(_render_calendar(_get_calendar(ctx, calendar_id)))

    return _handle("calendars.get", work)


@bp.post(f"{API}/calendars")
def calendars_insert() -> Response:
    # https://developers.google.com/calendar/api/v3/reference/calendars/insert
    def work(ctx: Ctx) -> Response:
        data = _json_body()
        if not data.get("summary"):
            raise _bad_request("Missing title.", reason="required")
        tz = data.get("timeZone") or ctx.time_zone
        try:
            ZoneInfo(tz)
        except (KeyError, ValueError):
            raise _bad_request("Invalid time zone.", reason="invalid") from None
        # New secondary calendars have ids like c_<hex>@group.calendar.google.com.
        cal_id = f"c_{secrets.token_hex(16)}@group.calendar.google.com"
        state = get_state()
        with state.lock:
            cal = state.store.upsert_calendar(
                ctx.email,
                id=cal_id,
                summary=data["summary"],
                time_zone=tz,
                is_primary=False,
                access_role="owner",
                # Made under calendar.app.created: that scope may use it afterwards.
                is_app_created=APP_CREATED in ctx.scopes,
            )
        return jsonify(_render_calendar(cal))

    return _handle("calendars.insert", work)


@bp.delete(f"{API}/calendars/<calendar_id>")
def calendars_delete(calendar_id: str) -> Response:
    def work(ctx: Ctx) -> Response:
        cal = _get_calendar(ctx, calendar_id)
        if cal.get("is_primary"):
            # The primary calendar can only be cleared (calendars.delete reference) [?: body].
            raise _bad_request(
                "Cannot delete primary calendar.", reason="cannotDeletePrimaryCalendar"
            )
        state = get_state()
        with state.lock:
            state.store.delete_calendar(ctx.email, cal["id"])
        return Response(status=204)

    return _handle("calendars.delete", work)


# ---------------------------------------------------------------------------------------------
# freebusy.query


def _busy_intervals(
    ctx: Ctx, cal_id: str, lo: dt.datetime, hi: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime]]:
    """Busy = confirmed/tentative, opaque, not declined by the user; series expanded."""
    tz = ctx.time_zone
    series = Series(ctx, cal_id)

    def busy(body: dict[str, Any]) -> bool:
        if _is_gone(body) or body.get("transparency") == "transparent":
            return False
        for att in body.get("attendees") or []:
            if str(att.get("email", "")).lower() in ctx.self_addresses:
                return att.get("response") != "declined"
        return True  # the user's own event, no attendee row for them

    spans: list[tuple[dt.datetime, dt.datetime]] = []
    # A day of slack either side: all-day events are placed in the calendar's zone.
    rows = get_state().store.list_events_in_window(
        ctx.email,
        cal_id,
        start_ms=int((lo - dt.timedelta(days=1)).timestamp() * 1000),
        end_ms=int((hi + dt.timedelta(days=1)).timestamp() * 1000),
    )
    for body in rows:
        if body.get("recurring_event_id") or not body.get("start"):
            continue  # exceptions come through their master
        if body.get("recurrence"):
            if _is_gone(body):
                continue
            for occ in recurrence.expand(
                body, series.exceptions(body["id"]), lo, hi, default_tz=tz
            ):
                instance = {**body, **occ.exception} if occ.exception else body
                if not occ.is_cancelled and busy(instance):
                    spans.append((occ.start_utc, occ.end_utc))
            continue
        if busy(body):
            start, end = _span(body, tz)
            if start < hi and end > lo:
                spans.append((start, end))
    # Google clips busy blocks to the query window and merges overlapping ones.
    spans = sorted((max(s, lo), min(e, hi)) for s, e in spans if min(e, hi) > max(s, lo))
    merged: list[tuple[dt.datetime, dt.datetime]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


@bp.post(f"{API}/freeBusy")
def freebusy_query() -> Response:
    # https://developers.google.com/calendar/api/v3/reference/freebusy/query
    def work(ctx: Ctx) -> Response:
        data = _json_body()
        for name in ("timeMin", "timeMax"):
            if not data.get(name):
                raise _bad_request(
                    f"Missing {name}.", reason="required", location=name, location_type="parameter"
                )
        lo = _parse_rfc3339(data["timeMin"], "timeMin")
        hi = _parse_rfc3339(data["timeMax"], "timeMax")
        if hi <= lo:
            raise _err(
                400,
                "The specified time range is empty.",
                reason="timeRangeEmpty",
                domain="calendar",
                location="timeMax",
                location_type="parameter",
            )
        out_tz: dt.tzinfo = UTC
        if data.get("timeZone"):
            try:
                out_tz = ZoneInfo(data["timeZone"])
            except (KeyError, ValueError):
                raise _bad_request("Invalid time zone.", reason="invalid") from None
        calendars: dict[str, Any] = {}
        for item in data.get("items") or []:
            requested = str((item or {}).get("id") or "")
            cid = ctx.email if requested == "primary" else requested
            cal = get_state().store.get_calendar(ctx.email, cid)
            if cal is None:
                # Per-calendar error, not a request failure (FreeBusyCalendar.errors).
                calendars[requested] = {
                    "errors": [{"domain": "global", "reason": "notFound"}],
                    "busy": [],
                }
                continue
            calendars[requested] = {
                "busy": [
                    {"start": _iso(s.astimezone(out_tz)), "end": _iso(e.astimezone(out_tz))}
                    for s, e in _busy_intervals(ctx, cal["id"], lo, hi)
                ]
            }
        return jsonify(
            {
                "kind": "calendar#freeBusy",
                # The echoed window carries milliseconds; busy blocks do not.
                "timeMin": rfc3339_ms(int(lo.timestamp() * 1000)),
                "timeMax": rfc3339_ms(int(hi.timestamp() * 1000)),
                "calendars": calendars,
            }
        )

    return _handle("freebusy.query", work)


# ---------------------------------------------------------------------------------------------
# batch


@bp.post("/batch/calendar/v3")
def calendar_batch() -> Response:
    """multipart/mixed batch of Calendar calls, at most 1000 parts.

    google-api-python-client posts here only when the batch URI is set explicitly (batch ignores
    ``api_endpoint``, PROVIDERS.md §1.5). Limit: https://developers.google.com/calendar/api/guides/batch
    """
    return batch.handle_batch(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        service="calendar",
        max_parts=MAX_BATCH_PARTS,
        path_prefixes=(f"{API}/",),
    )
