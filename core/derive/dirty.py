"""Stale contacts, recorded by sync pages and drained by derivation in batches.

A page commit calls `mark_dirty` in its own transaction (one idempotent insert per address);
`drain` recomputes up to `limit` of the oldest stale contacts with `update_contacts` and clears
them. A contact touched by many pages before a drain is recomputed once, which keeps the cost of
an initial sync linear in the mailbox instead of in pages times history.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.derive.store import DeriveResult, update_contacts
from core.models import DirtyContact


def mark_dirty(
    session: Session, *, user_id: uuid.UUID, addresses: Iterable[str], now: dt.datetime
) -> int:
    """Record that these addresses' contacts are stale; return how many were given."""
    rows = [{"user_id": user_id, "address": a, "marked_at": now} for a in sorted(set(addresses))]
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # Concurrent syncs of two accounts of one user may mark the same address: ignore, not fail.
    for start in range(0, len(rows), 500):
        statement = insert(DirtyContact).values(rows[start : start + 500])
        session.execute(statement.on_conflict_do_nothing(index_elements=["user_id", "address"]))
    return len(rows)


def drain(
    session: Session, *, user_id: uuid.UUID, now: dt.datetime, limit: int = 500
) -> DeriveResult:
    """Recompute up to `limit` stale contacts of the user and clear them."""
    batch = list(
        session.execute(
            select(DirtyContact.address, DirtyContact.marked_at)
            .where(DirtyContact.user_id == user_id)
            .order_by(DirtyContact.marked_at)
            .limit(limit)
        )
    )
    if not batch:
        return DeriveResult(0, 0)
    result = update_contacts(session, user_id=user_id, addresses=[a for a, _ in batch], now=now)
    for address, marked_at in batch:
        # A newer mark (another page, meanwhile) stays for the next drain.
        session.execute(
            delete(DirtyContact).where(
                DirtyContact.user_id == user_id,
                DirtyContact.address == address,
                DirtyContact.marked_at <= marked_at,
            )
        )
    return result


def has_dirty(session: Session, *, user_id: uuid.UUID) -> bool:
    return (
        session.scalar(select(DirtyContact.address).where(DirtyContact.user_id == user_id).limit(1))
        is not None
    )
