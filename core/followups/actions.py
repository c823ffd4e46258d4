"""What the user does with a suggestion — accept, done, snooze, dismiss — and how they list them.

Every action is idempotent (repeating it changes nothing) and scoped to the user: another
user's suggestion is "not found", never "forbidden", so ids reveal nothing. The calendar side
follows on the next calendar run (core/followups/calendar.py), which the caller triggers.

Transitions: accept / snooze from `open`, `accepted` or `snoozed`; done / dismiss from any of
those; `done`, `dismissed` and `resolved` are final — acting on them is a conflict, except
repeating the action that got them there.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.followups.rules import PRIORITY
from core.models import Contact, Followup, FollowupKind, FollowupStatus

LIVE = (FollowupStatus.OPEN, FollowupStatus.ACCEPTED, FollowupStatus.SNOOZED)
MAX_SNOOZE = dt.timedelta(days=366)


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


class Invalid(Exception):
    pass


def accept(
    session: Session, *, user_id: uuid.UUID, followup_id: int, invite: bool, now: dt.datetime
) -> Followup:
    row = _live(session, user_id, followup_id, FollowupStatus.ACCEPTED)
    if invite and row.kind is not FollowupKind.OFF_SCREEN:
        raise Invalid("only a call or meeting suggestion can invite the contact")
    if row.status is not FollowupStatus.ACCEPTED:
        row.status, row.status_at, row.snoozed_until = FollowupStatus.ACCEPTED, now, None
    row.invite = invite
    return row


def done(session: Session, *, user_id: uuid.UUID, followup_id: int, now: dt.datetime) -> Followup:
    return _finish(session, user_id, followup_id, FollowupStatus.DONE, now)


def dismiss(
    session: Session, *, user_id: uuid.UUID, followup_id: int, now: dt.datetime
) -> Followup:
    return _finish(session, user_id, followup_id, FollowupStatus.DISMISSED, now)


def snooze(
    session: Session,
    *,
    user_id: uuid.UUID,
    followup_id: int,
    until: dt.datetime,
    now: dt.datetime,
) -> Followup:
    if until.tzinfo is None:
        raise Invalid("`until` needs a time zone (e.g. 2026-12-01T09:00:00Z)")
    if until <= now:
        raise Invalid("`until` must be in the future")
    if until - now > MAX_SNOOZE:
        raise Invalid("a suggestion can be snoozed for at most a year")
    row = _live(session, user_id, followup_id, FollowupStatus.SNOOZED)
    row.status, row.status_at, row.snoozed_until = FollowupStatus.SNOOZED, now, until
    return row


def list_followups(
    session: Session,
    *,
    user_id: uuid.UUID,
    statuses: Collection[FollowupStatus] = LIVE,
    addresses: Collection[str] | None = None,
    limit: int = 200,
) -> list[Followup]:
    """The user's suggestions, most pressing kind first, then the oldest due first."""
    query = select(Followup).where(Followup.user_id == user_id, Followup.status.in_(statuses))
    if addresses is not None:
        query = query.where(Followup.address.in_(list(addresses) or [""]))
    rows = list(session.scalars(query.order_by(Followup.due_at, Followup.id).limit(limit)))
    return sorted(rows, key=lambda r: (PRIORITY.index(r.kind), r.due_at, r.id))


def as_json(session: Session, rows: list[Followup], *, now: dt.datetime) -> list[dict[str, Any]]:
    """The API shape of suggestions (names looked up in one query)."""
    names = dict(
        session.execute(
            select(Contact.address, Contact.display_name).where(
                Contact.user_id.in_({r.user_id for r in rows} or {uuid.UUID(int=0)}),
                Contact.address.in_({r.address for r in rows} or {""}),
            )
        ).all()
    )
    return [
        {
            "id": r.id,
            "address": r.address,
            "display_name": names.get(r.address),
            "kind": r.kind.value,
            "status": r.status.value,
            "reason": r.reason,
            "due_at": r.due_at,
            "snoozed_until": r.snoozed_until,
            "invite": r.invite,
            "scheduled": (
                {"start_at": r.slot_start, "end_at": r.slot_end, "written": r.event_id is not None}
                if r.slot_start is not None and r.slot_end is not None
                else None
            ),
            "calendar_error": r.calendar_error,
        }
        for r in rows
    ]


def _get(session: Session, user_id: uuid.UUID, followup_id: int) -> Followup:
    row = session.get(Followup, followup_id)
    if row is None or row.user_id != user_id:
        raise NotFound("no such follow-up")
    return row


def _live(
    session: Session, user_id: uuid.UUID, followup_id: int, target: FollowupStatus
) -> Followup:
    row = _get(session, user_id, followup_id)
    if row.status not in LIVE:
        raise Conflict(f"this follow-up is already {row.status.value}")
    return row


def _finish(
    session: Session,
    user_id: uuid.UUID,
    followup_id: int,
    target: FollowupStatus,
    now: dt.datetime,
) -> Followup:
    row = _get(session, user_id, followup_id)
    if row.status is target:
        return row
    if row.status not in LIVE:
        raise Conflict(f"this follow-up is already {row.status.value}")
    row.status, row.status_at, row.snoozed_until = target, now, None
    return row
