"""The ICS feed: a secret, revocable per-user URL any calendar app can subscribe to.

The URL carries a random token; only its SHA-256 is stored (like API tokens), so the URL is
shown once when made, and making a new one revokes the old. The feed holds what the calendar
holds: the follow-ups that are scheduled (accepted, or open with auto-scheduling) and planned
into a slot — one event per write (`event_key`), so a moved follow-up keeps no ghost.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.followups.calendar import scheduled
from core.followups.ics import FeedEvent, render_feed
from core.followups.policy import Preferences
from core.models import Followup, FollowupStatus, User

PREFIX = "wlcal_"


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def rotate_token(session: Session, *, user_id: uuid.UUID) -> str:
    """Make a new feed token (revoking any earlier one) and return it; only its hash is kept."""
    raw = PREFIX + secrets.token_urlsafe(32)
    session.execute(update(User).where(User.id == user_id).values(ics_token_hash=_hash(raw)))
    return raw


def revoke_token(session: Session, *, user_id: uuid.UUID) -> None:
    session.execute(update(User).where(User.id == user_id).values(ics_token_hash=None))


def user_for_token(session: Session, raw: str) -> User | None:
    if not raw.startswith(PREFIX):
        return None
    return session.scalars(select(User).where(User.ics_token_hash == _hash(raw))).one_or_none()


def render_user_feed(session: Session, user: User, *, now: dt.datetime) -> bytes:
    prefs = Preferences.of(user.preferences)
    rows = session.scalars(
        select(Followup).where(
            Followup.user_id == user.id,
            Followup.status.in_((FollowupStatus.OPEN, FollowupStatus.ACCEPTED)),
        )
    ).all()
    wanted = scheduled(rows, prefs)
    events = []
    for row in rows:
        spec = row.event_spec or {}
        if row.id not in wanted or row.slot_start is None or row.slot_end is None or not spec:
            continue
        events.append(
            FeedEvent(
                uid=f"{row.event_key}@warmline",
                summary=str(spec.get("summary") or "Follow-up"),
                description=str(spec.get("description") or row.reason),
                start=row.slot_start,
                end=row.slot_end,
                time_zone=str(spec.get("time_zone") or "UTC"),
                url=str(spec["link"]) if spec.get("link") else None,
                updated=row.updated_at,
                sequence=row.write_seq,
            )
        )
    return render_feed(events, calendar_name="Warmline follow-ups", now=now)
