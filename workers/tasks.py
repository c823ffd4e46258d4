"""Task implementations. Each is idempotent and takes plain ids, never objects."""

from __future__ import annotations

import os
import socket
from typing import Any

from celery import Celery

from core.db import utcnow
from core.heartbeats import record_heartbeat
from core.queue import HEARTBEAT, PING


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
