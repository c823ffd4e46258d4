"""Task implementations. Each is idempotent and takes plain ids, never objects."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

from celery import Celery
from sqlalchemy import select

from core.db import utcnow
from core.derive import rebuild_user
from core.heartbeats import record_heartbeat
from core.models import ConnectedAccount, User
from core.queue import (
    DERIVE_REFRESH,
    DERIVE_USER,
    FOLLOWUPS_REFRESH,
    FOLLOWUPS_USER,
    HEARTBEAT,
    PING,
    SYNC_ACCOUNT,
    SYNC_DISPATCH,
)
from core.sync import claim_due_for_dispatch


def register(app: Celery, *, base: type) -> None:
    """Register every Warmline task on `app`."""

    @app.task(name=PING, base=base, bind=True)
    def ping(self: Any, token: str) -> dict[str, Any]:
        """Answer a readiness probe: proves a worker process picked the message up."""
        return {"token": token, "pid": os.getpid(), "hostname": self.request.hostname}

    @app.task(name=HEARTBEAT, base=base, bind=True, ignore_result=True)
    def heartbeat(self: Any) -> None:
        """Record that a worker is alive (beat schedules this)."""
        with self.session() as session:
            record_heartbeat(
                session,
                component="worker",
                now=utcnow(),
                detail={"hostname": self.request.hostname or socket.gethostname()},
            )

    @app.task(name=SYNC_ACCOUNT, base=base, bind=True, ignore_result=True)
    def sync_account(self: Any, account_id: str) -> dict[str, Any]:
        """Sync one account's due streams (no-op when another worker holds its lease)."""
        from workers.sync import run_sync

        result = run_sync(
            self.app, uuid.UUID(account_id), owner=f"{self.request.hostname}:{os.getpid()}"
        )
        if result["changes"] and result.get("user_id"):
            # New mail or meetings may answer a suggestion or call for one.
            app.send_task(FOLLOWUPS_USER, args=[result["user_id"]])
        return result

    @app.task(name=SYNC_DISPATCH, base=base, bind=True, ignore_result=True)
    def sync_dispatch(self: Any) -> int:
        """Wake a worker for every account whose sync is due or whose lease expired."""
        settings = self.app.warmline_settings
        with self.session() as session:
            due = claim_due_for_dispatch(
                session, now=utcnow(), redispatch_after_s=max(settings.sync_lease_s, 30.0)
            )
        for account_id in due:
            app.send_task(SYNC_ACCOUNT, args=[str(account_id)])
        return len(due)

    @app.task(name=DERIVE_USER, base=base, bind=True, ignore_result=True)
    def derive_user(self: Any, user_id: str) -> int:
        """Recompute every contact of one user (after a disconnect, say)."""
        with self.session() as session:
            return rebuild_user(session, user_id=uuid.UUID(user_id), now=utcnow()).contacts_written

    @app.task(name=DERIVE_REFRESH, base=base, bind=True, ignore_result=True)
    def derive_refresh(self: Any) -> int:
        """Queue a full recompute for every user (beat, daily)."""
        with self.session() as session:
            users = list(session.scalars(select(User.id)))
        for user_id in users:
            app.send_task(DERIVE_USER, args=[str(user_id)])
        return len(users)

    @app.task(name=FOLLOWUPS_USER, base=base, bind=True, ignore_result=True)
    def followups_user(self: Any, user_id: str) -> dict[str, Any]:
        """Re-evaluate one user's suggestions and bring their calendar in line (idempotent)."""
        from workers.followups import run_followups

        return run_followups(self.app, uuid.UUID(user_id))

    @app.task(name=FOLLOWUPS_REFRESH, base=base, bind=True, ignore_result=True)
    def followups_refresh(self: Any) -> int:
        """Queue a follow-up run for every user with a connected account (beat)."""
        with self.session() as session:
            users = list(session.scalars(select(ConnectedAccount.user_id).distinct()))
        for user_id in users:
            app.send_task(FOLLOWUPS_USER, args=[str(user_id)])
        return len(users)
