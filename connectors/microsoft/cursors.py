"""The "calendar:<id>" stream's cursors (pure; sync.py does the requests).

Both `cursor` and `backfill_cursor` are JSON
`{"link": <Graph link | null>, "window_start": ISO, "window_end": ISO, "mode"?: "list"}`:

- **delta** (no `mode`): `link` is a calendarView delta nextLink/deltaLink. The window is fixed
  by the first call and lives inside Graph's tokens, so its bounds are kept beside the link for
  the renewal check. A bare link (an older cursor) is read as delta without a window.
- **list**: the calendar has no delta (Graph v1.0 documents calendarView delta for the default
  calendar only, https://learn.microsoft.com/graph/api/event-delta), so every round is a plain
  calendarView listing over a fresh window. `link` is the listing's next page, or null where a
  round has not started yet (`LIST_START`) or has finished (the incremental `cursor`, which
  only says "list again"). Keeping the mode in the cursor is what spares a delta probe per round.
"""

from __future__ import annotations

import datetime as dt
import json

from core.errors import ProviderRejected

LIST = "list"


class CalendarCursor:
    """Graph's link, the window it was opened with, and whether the stream lists or deltas."""

    def __init__(
        self,
        link: str | None,
        window_start: dt.datetime | None = None,
        window_end: dt.datetime | None = None,
        *,
        mode: str | None = None,
    ) -> None:
        self.link = link
        self.window_start = window_start
        self.window_end = window_end
        self.mode = mode

    @property
    def is_list(self) -> bool:
        return self.mode == LIST

    @classmethod
    def load(cls, raw: str) -> CalendarCursor:
        try:
            data = json.loads(raw)
        except ValueError:
            return cls(raw)  # a bare Graph link: follow it, no renewal check
        if not isinstance(data, dict):
            raise ProviderRejected("malformed calendar cursor")
        mode = LIST if data.get("mode") == LIST else None
        link = data.get("link")
        if not isinstance(link, str) and not (mode == LIST and link is None):
            raise ProviderRejected("malformed calendar cursor")
        return cls(link, _iso(data.get("window_start")), _iso(data.get("window_end")), mode=mode)

    def with_link(self, link: str | None) -> CalendarCursor:
        return CalendarCursor(link, self.window_start, self.window_end, mode=self.mode)

    def dump(self) -> str:
        data: dict[str, str | None] = {
            "link": self.link,
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "window_end": self.window_end.isoformat() if self.window_end else None,
        }
        if self.mode:
            data["mode"] = self.mode
        return json.dumps(data, separators=(",", ":"))


# Where a listing round starts: the engine's restart hands it back as the backfill cursor.
LIST_START = CalendarCursor(None, mode=LIST).dump()


def _iso(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
