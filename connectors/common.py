"""Small helpers both provider connectors use."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import requests

from core.ports import Interval


def expiry_from_now(expires_in: object) -> dt.datetime | None:
    """Turn an OAuth `expires_in` (seconds, number or string) into an absolute UTC time."""
    try:
        seconds = float(expires_in)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


def http_session(ca_bundle: str | None) -> requests.Session:
    """A requests session that verifies against `ca_bundle` when one is configured.

    requests lets REQUESTS_CA_BUNDLE override Session.verify, so a configured bundle also turns
    environment lookups off for this session (PROVIDERS.md §5).
    """
    session = requests.Session()
    if ca_bundle:
        session.trust_env = False
        session.verify = ca_bundle
    return session


def coalesce(
    spans: Iterable[tuple[dt.datetime, dt.datetime]], start: dt.datetime, end: dt.datetime
) -> list[Interval]:
    """Clip busy spans to [start, end), sort them and merge the ones that overlap or touch."""
    clipped = sorted((max(s, start), min(e, end)) for s, e in spans if min(e, end) > max(s, start))
    merged: list[list[dt.datetime]] = []
    for s, e in clipped:
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [Interval(start=s, end=e) for s, e in merged]
