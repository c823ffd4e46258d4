"""Expand a provider-neutral recurring series into occurrences inside a time window.

Pure (no store, no Flask), so Google's ``events.list?singleEvents=true`` / ``freeBusy`` and
Graph's ``calendarView`` can share it. Inputs are the store's provider-neutral event bodies
(see ``sandbox/DESIGN.md``, ``event`` table):

- ``start`` / ``end``: ``{"date_time": ISO-8601 with offset, "time_zone": IANA}`` or
  ``{"date": "YYYY-MM-DD"}`` (all-day; the end date is exclusive, as in RFC 5545 and both APIs).
- ``recurrence``: RFC 5545 lines, ``RRULE:``, ``EXDATE:`` and ``RDATE:``
  (https://developers.google.com/calendar/api/v3/reference/events#recurrence).
- exceptions: bodies with ``recurring_event_id`` and ``original_start`` (same shape as ``start``,
  or a bare ISO string); a ``status`` of ``cancelled`` removes that occurrence, anything else
  moves/edits it.

Rules follow RFC 5545 §3.3.10: the series is expanded in the *event's own time zone* (wall clock),
so a 09:00 America/New_York weekly meeting stays at 09:00 across a DST change, and ``UNTIL`` given
in UTC is compared against the local occurrence converted to UTC.

An occurrence overlaps the window when ``start < window_end`` and ``end > window_start``: the
semantics of Calendar ``timeMax`` (exclusive upper bound on start) and ``timeMin`` (exclusive lower
bound on end) from the events.list reference
(https://developers.google.com/calendar/api/v3/reference/events/list), which Graph's calendarView
shares (https://learn.microsoft.com/graph/api/user-list-calendarview).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from dateutil import rrule

UTC = dt.UTC

# Unbounded series (no COUNT/UNTIL) asked for without an end bound: stop after this horizon so
# one request cannot expand forever. Google pages through instances far into the future; a
# sandbox only needs enough of them for sync code to notice the series continues.
DEFAULT_HORIZON = dt.timedelta(days=2 * 365)
MAX_OCCURRENCES = 5000


@dataclass(frozen=True)
class Occurrence:
    """One instance of a series, after exceptions are applied.

    ``original_start`` is the slot the rule produced (UTC for timed events, a date for all-day
    ones); ``start``/``end`` are the actual times (moved if an exception says so) as neutral
    ``{"date_time", "time_zone"}`` / ``{"date"}`` dicts; ``exception`` is the exception body that
    replaced this slot, if any; ``is_cancelled`` marks a cancelled exception.
    """

    original_start: dt.datetime | dt.date
    start: dict[str, Any]
    end: dict[str, Any]
    start_utc: dt.datetime
    end_utc: dt.datetime
    exception: dict[str, Any] | None
    is_cancelled: bool


def is_all_day(when: dict[str, Any]) -> bool:
    """Return True for a ``{"date": ...}`` time."""
    return "date" in when and not when.get("date_time")


def zone_of(when: dict[str, Any], default_tz: str = "UTC") -> dt.tzinfo:
    """Return the zone a time is expanded in: its IANA zone, else its fixed offset."""
    name = when.get("time_zone")
    if name:
        try:
            return ZoneInfo(name)
        except (KeyError, ValueError):
            pass
    if when.get("date_time"):
        parsed = dt.datetime.fromisoformat(when["date_time"])
        if parsed.tzinfo is not None:
            return parsed.tzinfo
    return ZoneInfo(default_tz)


def to_utc(when: dict[str, Any] | str, default_tz: str = "UTC") -> dt.datetime:
    """Return the instant of a neutral time; all-day dates start at midnight in ``default_tz``."""
    if isinstance(when, str):
        when = {"date": when} if len(when) == 10 else {"date_time": when}
    if is_all_day(when):
        day = dt.date.fromisoformat(when["date"])
        return dt.datetime.combine(day, dt.time(), ZoneInfo(default_tz)).astimezone(UTC)
    parsed = dt.datetime.fromisoformat(when["date_time"])
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone_of(when, default_tz))
    return parsed.astimezone(UTC)


def _local_naive(when: dict[str, Any], zone: dt.tzinfo) -> dt.datetime:
    if is_all_day(when):
        return dt.datetime.combine(dt.date.fromisoformat(when["date"]), dt.time())
    parsed = dt.datetime.fromisoformat(when["date_time"])
    if parsed.tzinfo is None:
        return parsed
    return parsed.astimezone(zone).replace(tzinfo=None)


_PROP = re.compile(r"^(?P<name>[A-Z-]+)(?P<params>(;[^:]*)?):(?P<value>.*)$")


def _parse_value(value: str, params: dict[str, str], zone: dt.tzinfo) -> dt.datetime:
    """Parse one RFC 5545 DATE / DATE-TIME value into a local naive datetime."""
    value = value.strip()
    if len(value) == 8:  # VALUE=DATE
        return dt.datetime.strptime(value, "%Y%m%d")  # noqa: DTZ007 - floating local date
    if value.endswith("Z"):
        instant = dt.datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return instant.astimezone(zone).replace(tzinfo=None)
    naive = dt.datetime.strptime(value, "%Y%m%dT%H%M%S")  # noqa: DTZ007 - zone applied below
    if "TZID" in params:
        instant = naive.replace(tzinfo=ZoneInfo(params["TZID"]))
        return instant.astimezone(zone).replace(tzinfo=None)
    return naive


def _rule_set(
    recurrence: Iterable[str], dtstart: dt.datetime, zone: dt.tzinfo, all_day: bool
) -> rrule.rruleset:
    """Build a dateutil rruleset in local wall-clock (naive) time."""
    rules = rrule.rruleset()
    has_rule = False
    for line in recurrence:
        match = _PROP.match(line.strip())
        if not match:
            continue
        name = match["name"]
        params = dict(part.split("=", 1) for part in match["params"].split(";")[1:] if "=" in part)
        if name in {"RRULE", "EXRULE"}:
            parts = []
            for part in match["value"].split(";"):
                key, _, val = part.partition("=")
                if key == "UNTIL":
                    # dateutil insists UNTIL and DTSTART agree on naive/aware; the series is
                    # expanded naive in local time, so bring UNTIL into local wall-clock time.
                    until = _parse_value(val, {}, zone)
                    if all_day or len(val) == 8:
                        until = until.replace(hour=23, minute=59, second=59)
                    val = until.strftime("%Y%m%dT%H%M%S")
                parts.append(f"{key}={val}")
            rule = rrule.rrulestr(";".join(parts), dtstart=dtstart)
            if name == "RRULE":
                rules.rrule(rule)  # type: ignore[arg-type]
                has_rule = True
            else:
                rules.exrule(rule)  # type: ignore[arg-type]
        elif name in {"EXDATE", "RDATE"}:
            for value in match["value"].split(","):
                local = _parse_value(value, params, zone)
                if len(value.strip()) == 8 and not all_day:
                    local = local.replace(hour=dtstart.hour, minute=dtstart.minute)
                if name == "EXDATE":
                    rules.exdate(local)
                else:
                    rules.rdate(local)
                    has_rule = True
    if not has_rule:
        rules.rdate(dtstart)
    return rules


def _neutral(local: dt.datetime, zone: dt.tzinfo, all_day: bool, tz_name: str | None) -> dict:
    if all_day:
        return {"date": local.date().isoformat()}
    aware = local.replace(tzinfo=zone)
    out: dict[str, Any] = {"date_time": aware.isoformat()}
    if tz_name:
        out["time_zone"] = tz_name
    return out


def original_key(value: dict[str, Any] | str | None, default_tz: str = "UTC") -> str | None:
    """Normalise an ``original_start`` so exceptions match rule slots: UTC instant or date."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"date": value} if len(value) == 10 else {"date_time": value}
    if is_all_day(value):
        return value["date"]
    return to_utc(value, default_tz).strftime("%Y%m%dT%H%M%SZ")


def expand(
    master_body: dict[str, Any],
    exceptions: Iterable[dict[str, Any]],
    window_start: dt.datetime | None,
    window_end: dt.datetime | None,
    *,
    default_tz: str = "UTC",
) -> list[Occurrence]:
    """Return the series' occurrences overlapping ``(window_start, window_end)``, by start.

    Cancelled occurrences are returned with ``is_cancelled`` so callers decide (Google shows them
    in incremental sync and with ``showDeleted``; busy time ignores them). A moved occurrence is
    returned if its *new* time overlaps the window. ``default_tz`` places all-day events and
    floating times (the calendar's zone).
    """
    return list(_iter_expand(master_body, exceptions, window_start, window_end, default_tz))


def _iter_expand(
    master: dict[str, Any],
    exceptions: Iterable[dict[str, Any]],
    window_start: dt.datetime | None,
    window_end: dt.datetime | None,
    default_tz: str,
) -> Iterator[Occurrence]:
    start, end = master["start"], master.get("end") or master["start"]
    all_day = is_all_day(start)
    zone = ZoneInfo(default_tz) if all_day else zone_of(start, default_tz)
    tz_name = None if all_day else start.get("time_zone")
    local_start = _local_naive(start, zone)
    duration = (
        _local_naive(end, zone) - local_start
        if all_day
        else (to_utc(end, default_tz) - to_utc(start, default_tz))
    )
    by_slot: dict[str, dict[str, Any]] = {}
    for exc in exceptions:
        key = original_key(exc.get("original_start"), default_tz)
        if key:
            by_slot[key] = exc

    rules = _rule_set(master.get("recurrence") or [], local_start, zone, all_day)
    # Slots are generated in local time; widen the search by the duration (an occurrence that
    # started before the window may still overlap it) and by a day for offset differences.
    slack = abs(duration) + dt.timedelta(days=1)
    lo = window_start.astimezone(zone).replace(tzinfo=None) - slack if window_start else None
    if window_end is not None:
        hi = window_end.astimezone(zone).replace(tzinfo=None) + dt.timedelta(days=1)
    else:
        hi = max(local_start, dt.datetime.now(UTC).astimezone(zone).replace(tzinfo=None))
        hi += DEFAULT_HORIZON
    slots = (
        rules.between(lo, hi, inc=True)
        if lo is not None
        else rules.between(local_start - dt.timedelta(seconds=1), hi, inc=True)
    )

    moved: list[Occurrence] = []
    seen_keys: set[str] = set()
    for count, slot in enumerate(slots):
        if count >= MAX_OCCURRENCES:
            break
        if all_day:
            original: dt.datetime | dt.date = slot.date()
            key = slot.date().isoformat()
            slot_start_utc = dt.datetime.combine(slot.date(), dt.time(), zone).astimezone(UTC)
            slot_end_utc = dt.datetime.combine(
                (slot + duration).date(), dt.time(), zone
            ).astimezone(UTC)
        else:
            slot_start_utc = slot.replace(tzinfo=zone).astimezone(UTC)
            slot_end_utc = slot_start_utc + duration
            original = slot_start_utc
            key = slot_start_utc.strftime("%Y%m%dT%H%M%SZ")
        seen_keys.add(key)
        exc = by_slot.get(key)
        if exc is not None and exc.get("status") != "cancelled":
            # Moved/edited: judged by its own times, emitted in start order below.
            moved.append(_from_exception(exc, original, default_tz))
            continue
        occ = Occurrence(
            original_start=original,
            start=_neutral(slot, zone, all_day, tz_name),
            end=_neutral(slot + duration, zone, all_day, tz_name)
            if all_day
            else _neutral(
                slot_end_utc.astimezone(zone).replace(tzinfo=None), zone, all_day, tz_name
            ),
            start_utc=slot_start_utc,
            end_utc=slot_end_utc,
            exception=exc,
            is_cancelled=exc is not None,
        )
        if _overlaps(occ, window_start, window_end):
            moved.append(occ)
    # Exceptions whose slot lies outside the searched range may have been moved into it.
    for key, exc in by_slot.items():
        if key in seen_keys or exc.get("status") == "cancelled":
            continue
        original_raw = exc.get("original_start")
        if isinstance(original_raw, dict) and is_all_day(original_raw):
            original = dt.date.fromisoformat(original_raw["date"])
        else:
            original = dt.datetime.strptime(key, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        moved.append(_from_exception(exc, original, default_tz))
    result = [occ for occ in moved if occ.is_cancelled or _overlaps(occ, window_start, window_end)]
    result.sort(key=lambda occ: (occ.start_utc, str(occ.original_start)))
    return iter(result)


def _from_exception(
    exc: dict[str, Any], original: dt.datetime | dt.date, default_tz: str
) -> Occurrence:
    start, end = exc["start"], exc.get("end") or exc["start"]
    return Occurrence(
        original_start=original,
        start=start,
        end=end,
        start_utc=to_utc(start, default_tz),
        end_utc=to_utc(end, default_tz),
        exception=exc,
        is_cancelled=exc.get("status") == "cancelled",
    )


def _overlaps(
    occ: Occurrence, window_start: dt.datetime | None, window_end: dt.datetime | None
) -> bool:
    if window_end is not None and not occ.start_utc < window_end:
        return False
    return not (window_start is not None and not occ.end_utc > window_start)
