"""A user's follow-up preferences and the rule thresholds, read from settings and the user row.

Preferences live in `users.preferences` (JSON) so that new ones need no migration; anything
missing or malformed there falls back to the default rather than failing a worker.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from dataclasses import dataclass

from core.followups.rules import Thresholds
from core.followups.slots import WorkingTime
from core.settings import Settings

WEEKDAYS = (0, 1, 2, 3, 4)


@dataclass(frozen=True)
class Preferences:
    time_zone: str | None = None  # None: the calendar's zone, else the configured default
    work_start: dt.time = dt.time(9)
    work_end: dt.time = dt.time(17)
    working_days: tuple[int, ...] = WEEKDAYS
    auto_schedule: bool = False  # every suggestion goes to the calendar, not only accepted ones
    calendar_account_id: uuid.UUID | None = None  # whose calendar; None: the first connected

    @classmethod
    def of(cls, raw: object) -> Preferences:
        values = raw if isinstance(raw, dict) else {}
        defaults = cls()
        zone = values.get("time_zone")
        start = _time(values.get("work_start"), defaults.work_start)
        end = _time(values.get("work_end"), defaults.work_end)
        if end <= start:
            start, end = defaults.work_start, defaults.work_end
        days = values.get("working_days")
        if not (isinstance(days, list) and days and all(d in range(7) for d in days)):
            days = list(defaults.working_days)
        account = values.get("calendar_account_id")
        try:
            account_id = uuid.UUID(str(account)) if account else None
        except ValueError:
            account_id = None
        return cls(
            time_zone=zone if isinstance(zone, str) and is_time_zone(zone) else None,
            work_start=start,
            work_end=end,
            working_days=tuple(sorted(set(days))),
            auto_schedule=values.get("auto_schedule") is True,
            calendar_account_id=account_id,
        )

    def as_json(self) -> dict[str, object]:
        return {
            "time_zone": self.time_zone,
            "work_start": self.work_start.strftime("%H:%M"),
            "work_end": self.work_end.strftime("%H:%M"),
            "working_days": list(self.working_days),
            "auto_schedule": self.auto_schedule,
            "calendar_account_id": str(self.calendar_account_id)
            if self.calendar_account_id
            else None,
        }

    def working_time(self, zone: str) -> WorkingTime:
        return WorkingTime(
            time_zone=zone,
            start=self.work_start,
            end=self.work_end,
            days=frozenset(self.working_days),
        )


def thresholds(settings: Settings) -> Thresholds:
    return Thresholds(
        reply_working_days=settings.followup_reply_working_days,
        nudge_days=settings.followup_nudge_days,
        after_meeting_days=settings.followup_after_meeting_days,
        max_age_days=settings.followup_max_age_days,
        quiet_factor=settings.followup_quiet_factor,
        quiet_min_strength=settings.followup_quiet_min_strength,
        offscreen_min_messages=settings.followup_offscreen_min_messages,
        offscreen_stale_days=settings.followup_offscreen_stale_days,
    )


def is_time_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _time(value: object, default: dt.time) -> dt.time:
    if isinstance(value, str):
        try:
            return dt.time.fromisoformat(value)
        except ValueError:
            return default
    return default
