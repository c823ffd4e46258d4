"""Task implementations. Each is idempotent and takes plain ids, never objects."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

from celery import Celery

from core.db import utcnow
from core.heartbeats import record_heartbeat
from core.queue import HEARTBEAT, PING, SYNC_ACCOUNT, SYNC_DISPATCH
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

        return run_sync(
            self.app, uuid.UUID(account_id), owner=f"{self.request.hostname}:{os.getpid()}"
        )

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
