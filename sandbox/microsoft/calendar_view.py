"""Graph v1.0 ``GET /me/calendarView/delta`` over the primary calendar (and, unless the
"documented routes only" switch is on, over any calendar).

https://learn.microsoft.com/graph/api/event-delta and
https://learn.microsoft.com/graph/delta-query-events (PROVIDERS.md §4):

- ``startDateTime``/``endDateTime`` are required on the first call (400
  ``ErrorInvalidParameter`` otherwise) and stay fixed for the round (they live in the tokens);
  ``$select``/``$filter``/``$orderby``/``$expand``/``$search`` are refused.
- ``Prefer: odata.maxpagesize`` (default 10, capped at 1000 [?: undocumented]) and
  ``Prefer: outlook.timezone`` (UTC when absent), both echoed in ``Preference-Applied``.
- Series are expanded: the view holds ``singleInstance``, ``occurrence`` and ``exception`` items,
  never the ``seriesMaster``. Removals are ``{"@odata.type", "id", "@removed": {"reason":
  "deleted"}}`` and may name items outside the window. Stale tokens get the same 410 as message
  delta (mail.resync_error).

Switches (``state.config``, off by default):

- ``graph_documented_routes_only``: v1.0 documents calendarView delta for the default calendar
  only (``/me/calendarView/delta``, https://learn.microsoft.com/graph/api/event-delta; a docs PR
  extending it to other calendars was refused in review, microsoftgraph/microsoft-graph-docs
  PR 13204). With the switch, ``/me/calendars/{id}/calendarView/delta`` and
  ``/me/calendar/calendarView/delta`` answer as Graph answers a path it does not route: 400
  ``BadRequest`` "Resource not found for the segment '...'." (the body seen for v1.0 paths that
  exist in beta only, microsoftgraph/microsoft-graph-docs issue 4900) [?: which segment live
  Graph names here is unverified].
- ``graph_sparse_delta_updates``: "Updated instances are represented by their id with at least
  the properties that have been updated" (https://learn.microsoft.com/graph/delta-query-overview).
  With the switch an incremental round sends an event updated since the round's token (created
  before it) as ``{@odata.type, @odata.etag, id, changeKey, lastModifiedDateTime, categories}``;
  events created since come in full ("newly created instances ... standard representation").

Paging: one store page of changed rows can expand into more items than a page holds, so a
``$skiptoken`` carries the store cursor of the batch *and* how many of its items were already
sent. Known gap: when a series' rule changes, occurrences that no longer exist are not reported
as removed (the store keeps no history of the old rule).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response, request

from sandbox.errors import GraphError
from sandbox.google.recurrence import expand, original_key, to_utc
from sandbox.microsoft.calendar import (
    event_resource,
    may_read_body,
    occurrence_id,
    occurrence_key,
    original_start_of,
    primary_calendar,
    sparse_update,
    view_timezone,
)
from sandbox.microsoft.common import now_ms
from sandbox.microsoft.graphbase import (
    CAL_READ_BASIC,
    GRAPH,
    Caller,
    apply_preferences,
    bp,
    context_url,
    decode_token,
    encode_token,
    graph_call,
    json_response,
    parse_graph_datetime,
    prefer,
    self_link,
)
from sandbox.microsoft.mail import resync_error
from sandbox.state import get_state
from sandbox.store import StaleCursorError

DEFAULT_PAGE = 10
MAX_PAGE = 1000
UNROUTED = GraphError(400, "BadRequest", "Resource not found for the segment 'delta'.")

# -- calendarView delta ------------------------------------------------------------------------


def _items_for_row(
    caller: Caller,
    cal_id: str,
    row: dict[str, Any],
    window: tuple[dt.datetime, dt.datetime],
    *,
    incremental: bool,
    tz_name: str,
    tz: dt.tzinfo,
    sparse_before_ms: int | None = None,
) -> list[dict[str, Any]]:
    """Return the view items (and removals) one changed event row stands for.

    With ``sparse_before_ms``, a row created before it is an update and its items come sparse.
    """
    store = get_state().store
    body = row["body"]
    deleted = row["is_deleted"] or body.get("status") == "cancelled"
    default_tz = caller.mailbox.get("time_zone") or "UTC"
    full = may_read_body(caller)
    ws, we = window
    sparse = sparse_before_ms is not None and int(body.get("created_ms") or 0) < sparse_before_ms

    def shown(item: dict[str, Any]) -> dict[str, Any]:
        return sparse_update(item) if sparse else item

    def removed(event_id: str) -> dict[str, Any]:
        return {
            "@odata.type": "#microsoft.graph.event",
            "id": event_id,
            "@removed": {"reason": "deleted"},
        }

    master_id = body.get("recurring_event_id")
    if master_id:  # an exception row: its series master renders it
        if not incremental:
            return []
        master = store.get_event(caller.email, cal_id, master_id, include_deleted=True)
        if master is None:
            return []
        key = original_key(body.get("original_start"), default_tz) or ""
        occ_id = occurrence_id(master_id, key)
        if deleted or master.get("status") == "cancelled":
            return [removed(occ_id)]
        start_utc, end_utc = (
            to_utc(body["start"], default_tz),
            to_utc(body.get("end") or body["start"], default_tz),
        )
        if not (start_utc < we and end_utc > ws):
            return [removed(occ_id)]
        return [
            shown(
                event_resource(
                    caller,
                    body,
                    tz_name=tz_name,
                    tz=tz,
                    event_type="exception",
                    event_id=occ_id,
                    master_id=master_id,
                    original_start=original_start_of(body, default_tz),
                    full=full,
                )
            )
        ]

    if body.get("recurrence"):
        exceptions = store.list_event_exceptions(caller.email, cal_id, body["id"])
        occurrences = expand(body, exceptions, ws, we, default_tz=default_tz)
        out = []
        for occ in occurrences:
            occ_id = occurrence_id(body["id"], occurrence_key(occ))
            if deleted or occ.is_cancelled:
                if incremental:
                    out.append(removed(occ_id))
                continue
            source = occ.exception or body
            out.append(
                shown(
                    event_resource(
                        caller,
                        source,
                        tz_name=tz_name,
                        tz=tz,
                        event_type="exception" if occ.exception else "occurrence",
                        event_id=occ_id,
                        master_id=body["id"],
                        start=occ.start,
                        end=occ.end,
                        original_start=occ.original_start,
                        full=full,
                    )
                )
            )
        return out

    if deleted:
        return [removed(body["id"])] if incremental else []
    start_utc = to_utc(body["start"], default_tz)
    end_utc = to_utc(body.get("end") or body["start"], default_tz)
    if not (start_utc < we and end_utc > ws):
        return [removed(body["id"])] if incremental else []
    return [
        shown(
            event_resource(
                caller,
                body,
                tz_name=tz_name,
                tz=tz,
                event_type="singleInstance",
                event_id=body["id"],
                full=full,
            )
        )
    ]


def _page_size() -> tuple[int, list[str]]:
    raw = prefer().get("odata.maxpagesize")
    if raw is None:
        return DEFAULT_PAGE, []
    try:
        size = max(1, min(int(raw), MAX_PAGE))
    except ValueError:
        return DEFAULT_PAGE, []
    return size, [f"odata.maxpagesize={size}"]


@bp.get(f"{GRAPH}/me/calendarView/delta")
@bp.get(f"{GRAPH}/me/calendarview/delta")
@bp.get(f"{GRAPH}/me/calendar/calendarView/delta")
@bp.get(f"{GRAPH}/me/calendars/<calendar_id>/calendarView/delta")
@bp.get(f"{GRAPH}/me/calendars/<calendar_id>/calendarview/delta")
def calendar_view_delta(calendar_id: str | None = None) -> Response:
    """One page of a calendarView delta round over the primary or a named calendar.

    The delta-query concept page: "A calendar view is a collection of events in a date/time
    range (../me/calendarView) of the default calendar or some other specified calendar of a
    user" (https://learn.microsoft.com/graph/delta-query-events).
    """
    with graph_call("calendarView.delta", CAL_READ_BASIC) as caller:
        state = get_state()
        documented = request.path.lower() == f"{GRAPH}/me/calendarview/delta"
        if state.config.get("graph_documented_routes_only") and not documented:
            raise UNROUTED
        if calendar_id is not None and state.store.get_calendar(caller.email, calendar_id) is None:
            raise GraphError(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        for option in ("$select", "$filter", "$orderby", "$expand", "$search"):
            if option in request.args:
                raise GraphError(
                    400,
                    "ErrorInvalidUrlQuery",
                    f"The following parameters are not supported with change tracking over the "
                    f"'CalendarView' resource: '{option}'.",
                )
        skip = request.args.get("$skiptoken") or request.args.get("$skipToken")
        delta = request.args.get("$deltatoken") or request.args.get("$deltaToken")
        current = state.store.current_seq(caller.email)
        # "t": when this round started (its token's time); "p": when the previous round did, so
        # an event created before "p" and changed since is an update (graph_sparse_delta_updates).
        if skip:
            tok = decode_token(skip, "$skiptoken", ("w", "s", "h"))
        elif delta:
            tok = decode_token(delta, "$deltatoken", ("w", "s"))
            tok = {"w": tok["w"], "s": tok["s"], "h": current, "t": now_ms(), "p": tok.get("t")}
        else:
            start_raw = request.args.get("startDateTime") or request.args.get("startdatetime")
            end_raw = request.args.get("endDateTime") or request.args.get("enddatetime")
            if not start_raw or not end_raw:
                raise GraphError(
                    400,
                    "ErrorInvalidParameter",
                    "This request requires a time window specified by the query string "
                    "parameters StartDateTime and EndDateTime.",
                )
            ws = parse_graph_datetime(start_raw, "UTC").astimezone(dt.UTC)
            we = parse_graph_datetime(end_raw, "UTC").astimezone(dt.UTC)
            tok = {"w": [ws.isoformat(), we.isoformat()], "s": 0, "h": current, "t": now_ms()}
        window = (dt.datetime.fromisoformat(tok["w"][0]), dt.datetime.fromisoformat(tok["w"][1]))
        initial_url = self_link(
            {
                "startDateTime": window[0].strftime("%Y-%m-%dT%H:%M:%SZ"),
                "endDateTime": window[1].strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
        box = state.store.get_mailbox(caller.email) or {}
        floor = int(box.get("token_floor", 0))
        if (tok["s"] and tok["s"] < floor) or (skip and tok["h"] < floor):
            raise resync_error(initial_url, int(tok["s"] or tok["h"]), current)
        tz_name, tz, applied_tz = view_timezone(caller)
        size, applied = _page_size()
        cal = (
            state.store.get_calendar(caller.email, calendar_id)
            if calendar_id is not None
            else primary_calendar(caller)
        )
        incremental = bool(tok["s"])
        offset = int(tok.get("k", 0))
        sparse_before = (
            tok.get("p") if incremental and state.config.get("graph_sparse_delta_updates") else None
        )
        try:
            rows, cursor = state.store.list_events(
                caller.email,
                cal["id"],
                since_seq=tok["s"] or None,
                page_size=size,
                after=tok.get("a"),
            )
        except StaleCursorError:
            raise resync_error(initial_url, int(tok["s"]), current) from None
        items: list[dict[str, Any]] = []
        for row in rows:
            if tok["s"] and row["changed_seq"] <= tok["s"]:
                continue  # seen last round (the store's bound is inclusive of since_seq)
            items += _items_for_row(
                caller,
                cal["id"],
                row,
                window,
                incremental=incremental,
                tz_name=tz_name,
                tz=tz,
                sparse_before_ms=sparse_before,
            )
        page = items[offset : offset + size]
        body: dict[str, Any] = {"@odata.context": context_url("Collection(event)")}
        base = {k: tok.get(k) for k in ("w", "s", "h", "t", "p")}
        if offset + size < len(items):
            nxt = encode_token({**base, "a": tok.get("a"), "k": offset + size})
            body["@odata.nextLink"] = self_link({"$skiptoken": nxt})
        elif cursor:
            nxt = encode_token({**base, "a": cursor, "k": 0})
            body["@odata.nextLink"] = self_link({"$skiptoken": nxt})
        else:
            dtok = encode_token({"w": tok["w"], "s": tok["h"], "t": tok.get("t")})
            body["@odata.deltaLink"] = self_link({"$deltatoken": dtok})
        body["value"] = page
        return apply_preferences(json_response(body), applied + applied_tz)
