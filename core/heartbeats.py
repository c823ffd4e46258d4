"""Signs of life of background components (worker, beat), stored in the database."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Heartbeat


def record_heartbeat(
    session: Session, *, component: str, now: dt.datetime, detail: dict[str, object]
) -> None:
    """Record that `component` was alive at `now`."""
    row = session.get(Heartbeat, component)
    if row is None:
        session.add(Heartbeat(component=component, seen_at=now, detail=detail))
    else:
        row.seen_at = now
        row.detail = detail


def list_heartbeats(session: Session) -> list[Heartbeat]:
    """Return every component's last heartbeat."""
    return list(session.scalars(select(Heartbeat).order_by(Heartbeat.component)))
