"""Where a follow-up goes on the user's calendar, and when it falls due (pure: no I/O, no clock).

Every datetime in and out is UTC-aware (any aware datetime is accepted and compared as the
instant it names; results are in UTC); a naive one raises ValueError. Working hours and days
are local to `WorkingTime.time_zone`, an IANA name resolved with `zoneinfo`.

`find_slot` semantics:

- Candidates are local wall-clock times on a `step` grid anchored at `working.start` on each
  working day (`working.start`, `+step`, `+2*step`, ... while before `working.end`). A whole
  slot, `duration` of real elapsed time, must end no later than `working.end` that day.
- Nothing starts before `earliest = max(now + lead, not_before)`.
- A candidate is free when `[start, start + duration)` overlaps no busy interval. Busy
  intervals are half-open `[start, end)`; they may overlap each other, come in any order,
  cross midnight or extend past the horizon. An empty one (`start == end`, a zero-length
  event) is the instant it names: it blocks the slots that contain it, as it would sit on top
  of them in the user's calendar.
- The horizon is `horizon_days` local calendar days, counted from the local date of
  `earliest` (that date included): with `not_before` set, the search still gets the full
  horizon after it.
- The chosen day is the first working day in the horizon with any free candidate; within it,
  the candidate whose local start hour (0-23) has the highest count in `preferred_hours`
  wins, ties going to the earliest. A preferred hour never moves the slot to a later day.
- None when no candidate in the horizon is free.

DST: a grid time that does not exist locally (spring forward) is skipped, never shifted; an
ambiguous one (fall back) means its first occurrence, as RFC 5545 reads local times. A
`working.end` that does not exist that day ends the working day at the transition.

`add_working_days` counts working days only by weekday: public holidays and the user's
vacations are NOT modelled.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "WorkingTime",
    "add_working_days",
    "find_slot",
    "hour_histogram",
    "require_aware",
    "zone_for",
]

_INSTANT = dt.timedelta(microseconds=1)  # the resolution of datetime


@dataclass(frozen=True)
class WorkingTime:
    """The user's working hours (local wall clock) and working weekdays (Monday=0)."""

    time_zone: str  # IANA name, e.g. "Europe/Berlin"
    start: dt.time = dt.time(9)
    end: dt.time = dt.time(17)
    days: frozenset[int] = field(default=frozenset({0, 1, 2, 3, 4}))

    def __post_init__(self) -> None:
        zone_for(self.time_zone)
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("working hours are local wall-clock times: pass naive dt.time")
        if self.start >= self.end:
            raise ValueError(
                f"working hours must start before they end: {self.start} >= {self.end}"
            )
        days = frozenset(self.days)
        if not days:
            raise ValueError("at least one working day is needed")
        if not days <= frozenset(range(7)):
            raise ValueError(f"working days are weekdays 0 (Monday) to 6: got {sorted(days)}")
        object.__setattr__(self, "days", days)  # accept any set, keep the frozen contract


def zone_for(name: str) -> ZoneInfo:
    """Return the IANA zone `name`, or raise ValueError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def require_aware(value: dt.datetime, name: str) -> dt.datetime:
    """Return `value` in UTC; raise ValueError if it is naive."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime (UTC), got naive {value}")
    return value.astimezone(dt.UTC)


def find_slot(
    *,
    busy: Sequence[tuple[dt.datetime, dt.datetime]],
    now: dt.datetime,
    working: WorkingTime,
    duration: dt.timedelta,
    preferred_hours: Mapping[int, int] | None = None,
    horizon_days: int = 14,
    step: dt.timedelta = dt.timedelta(minutes=15),
    lead: dt.timedelta = dt.timedelta(minutes=30),
    not_before: dt.datetime | None = None,
) -> tuple[dt.datetime, dt.datetime] | None:
    """Return the best free `(start, end)` in UTC for a follow-up, or None (module docstring)."""
    now = require_aware(now, "now")
    if duration <= dt.timedelta(0):
        raise ValueError(f"duration must be positive, got {duration}")
    if step <= dt.timedelta(0):
        raise ValueError(f"step must be positive, got {step}")
    if lead < dt.timedelta(0):
        raise ValueError(f"lead must not be negative, got {lead}")
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be at least 1, got {horizon_days}")
    weights = _check_preferred_hours(preferred_hours)
    earliest = now + lead
    if not_before is not None:
        earliest = max(earliest, require_aware(not_before, "not_before"))
    starts, ends = _merge(busy)
    zone = zone_for(working.time_zone)

    first_day = earliest.astimezone(zone).date()
    for offset in range(horizon_days):
        day = first_day + dt.timedelta(days=offset)
        if day.weekday() not in working.days:
            continue
        best: dt.datetime | None = None
        best_weight = -1
        for start in _candidates(day, working, zone, duration, step):
            if start < earliest or not _is_free(start, start + duration, starts, ends):
                continue
            weight = weights.get(start.astimezone(zone).hour, 0)
            if weight > best_weight:  # strict: ties keep the earlier candidate
                best, best_weight = start, weight
        if best is not None:
            return best, best + duration
    return None


def hour_histogram(times: Iterable[dt.datetime], time_zone: str) -> dict[int, int]:
    """Count `times` by local hour of day (0-23) in `time_zone`; hours never seen are absent."""
    zone = zone_for(time_zone)
    counts = Counter(require_aware(t, "time").astimezone(zone).hour for t in times)
    return dict(sorted(counts.items()))


def add_working_days(at: dt.datetime, n: int, working: WorkingTime) -> dt.datetime:
    """Return the UTC instant at which `n` full working days have passed after `at`'s local day.

    That is local midnight after the n-th working day strictly after `at`'s local date (a Friday
    message with n=2 is due Wednesday 00:00 local); n=0 returns `at`. Where midnight does not
    exist (DST starting at 00:00, e.g. America/Santiago, America/Havana) it is the first instant
    of that day. Holidays are not modelled: only `working.days` counts.
    """
    at = require_aware(at, "at")
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    if n == 0:
        return at
    zone = zone_for(working.time_zone)
    day = at.astimezone(zone).date()
    # Whole weeks first, so a large n costs no more than a small one.
    weeks, rest = divmod(n, len(working.days))
    if rest == 0:
        weeks, rest = weeks - 1, len(working.days)
    day += dt.timedelta(weeks=weeks)
    while rest:
        day += dt.timedelta(days=1)
        if day.weekday() in working.days:
            rest -= 1
    return _first_instant_at_or_after(
        dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0)), zone
    )


def _check_preferred_hours(preferred: Mapping[int, int] | None) -> Mapping[int, int]:
    if not preferred:
        return {}
    for hour, count in preferred.items():
        if not 0 <= hour <= 23:
            raise ValueError(f"preferred_hours keys are hours 0-23, got {hour}")
        if count < 0:
            raise ValueError(f"preferred_hours counts must not be negative, got {count}")
    return preferred


def _merge(
    busy: Sequence[tuple[dt.datetime, dt.datetime]],
) -> tuple[list[dt.datetime], list[dt.datetime]]:
    """Sort and merge busy intervals into disjoint ones; return their starts and ends."""
    spans = []
    for start, end in busy:
        start, end = require_aware(start, "busy start"), require_aware(end, "busy end")
        if end < start:
            raise ValueError(f"busy interval ends before it starts: {start} > {end}")
        # A zero-length event is its instant: the shortest span that contains it.
        spans.append((start, max(end, start + _INSTANT)))
    spans.sort()
    starts: list[dt.datetime] = []
    ends: list[dt.datetime] = []
    for start, end in spans:
        if ends and start <= ends[-1]:
            ends[-1] = max(ends[-1], end)
        else:
            starts.append(start)
            ends.append(end)
    return starts, ends


def _is_free(
    start: dt.datetime, end: dt.datetime, starts: list[dt.datetime], ends: list[dt.datetime]
) -> bool:
    # The first merged interval that ends after `start` is the only one that can overlap.
    i = bisect_right(ends, start)
    return i == len(starts) or starts[i] >= end


def _candidates(
    day: dt.date, working: WorkingTime, zone: ZoneInfo, duration: dt.timedelta, step: dt.timedelta
) -> Iterator[dt.datetime]:
    """Yield the UTC starts of the day's grid slots that exist and fit before working.end."""
    day_end = _first_instant_at_or_after(dt.datetime.combine(day, working.end), zone)
    wall = dt.datetime.combine(day, working.start)
    wall_end = dt.datetime.combine(day, working.end)
    while wall < wall_end:
        start = _existing_instant(wall, zone)
        if start is not None:
            if start + duration > day_end:
                return  # later grid times end later still
            yield start
        wall += step


def _existing_instant(wall: dt.datetime, zone: ZoneInfo) -> dt.datetime | None:
    """Return the UTC instant of naive local `wall` (first occurrence), or None in a DST gap."""
    instant = wall.replace(tzinfo=zone).astimezone(dt.UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != wall:
        return None
    return instant


def _first_instant_at_or_after(wall: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """Return the instant of naive local `wall`, or, in a DST gap, the instant the gap ends."""
    instant = _existing_instant(wall, zone)
    if instant is not None:
        return instant
    # PEP 495: in a gap, fold=1 maps before the transition and fold=0 after it. Bisect the
    # seconds between them for the transition (offsets are whole seconds).
    low = wall.replace(tzinfo=zone, fold=1).astimezone(dt.UTC)
    high = wall.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)
    while high - low > dt.timedelta(seconds=1):
        mid = low + (high - low) // 2
        if mid.astimezone(zone).replace(tzinfo=None) >= wall:
            high = mid
        else:
            low = mid
    return high
