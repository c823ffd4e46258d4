"""Small helpers both provider connectors use."""

from __future__ import annotations

import datetime as dt


def expiry_from_now(expires_in: object) -> dt.datetime | None:
    """Turn an OAuth `expires_in` (seconds, number or string) into an absolute UTC time."""
    try:
        seconds = float(expires_in)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
