"""What the API and the sidebar say about an account's sync: phase, progress, coverage.

Coverage is reported, never hidden: the provider's own totals at the last reconciliation next to
what Warmline stores, the difference, how old the cursors are, and the last error.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import ConnectedAccount, SyncPhase, SyncStream


def account_sync_status(
    session: Session, *, account: ConnectedAccount, now: dt.datetime
) -> dict[str, Any]:
    streams = list(
        session.scalars(
            select(SyncStream)
            .where(SyncStream.account_id == account.id)
            .order_by(SyncStream.stream)
        )
    )
    initial = not streams or any(s.phase is SyncPhase.INITIAL for s in streams)
    seen = sum(s.items_seen for s in streams if s.stream.startswith("mail"))
    estimates = [
        s.items_total_estimate
        for s in streams
        if s.stream.startswith("mail") and s.items_total_estimate is not None
    ]
    estimate = sum(estimates) if estimates else None
    percent = None
    if initial and estimate:
        percent = min(99, int(100 * seen / estimate))
    elif not initial:
        percent = 100
    cursor_times = [s.cursor_updated_at for s in streams if s.cursor_updated_at is not None]
    errors = [s.last_error for s in streams if s.last_error]
    coverage = dict(account.coverage or {})
    provider_messages = (coverage.get("provider") or {}).get("messages")  # type: ignore[union-attr]
    stored_messages = (coverage.get("stored") or {}).get("messages")  # type: ignore[union-attr]
    if isinstance(provider_messages, int) and isinstance(stored_messages, int):
        coverage["message_gap"] = provider_messages - stored_messages
    return {
        "phase": "initial" if initial else "incremental",
        "percent": percent,
        "messages_seen": seen,
        "messages_estimate": estimate,
        "cursor_age_s": round((now - min(cursor_times)).total_seconds()) if cursor_times else None,
        "last_error": errors[0] if errors else None,
        "coverage": coverage,
        "streams": [
            {
                "stream": s.stream,
                "phase": s.phase.value,
                "items_seen": s.items_seen,
                "items_total_estimate": s.items_total_estimate,
                "generation": s.generation,
                "due_at": s.due_at.isoformat() if s.due_at else None,
                "last_success_at": s.last_success_at.isoformat() if s.last_success_at else None,
                "last_error": s.last_error,
            }
            for s in streams
        ],
    }
