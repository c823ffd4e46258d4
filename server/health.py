"""Liveness and readiness.

- `/healthz`: the process answers. No dependency is touched, so an orchestrator never restarts a
  healthy web process because the database is briefly busy.
- `/readyz`: the database answers and is migrated to this code's head, and the broker accepts
  connections. `?deep=1` also sends a ping task through the broker and waits for a worker process
  to answer it, proving the whole web → broker → worker → result path.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from flask import Blueprint, request
from sqlalchemy import text

import migrations
from core.heartbeats import list_heartbeats
from core.queue import PING, QUEUE, check_broker
from server import context

bp = Blueprint("health", __name__)

DEEP_TIMEOUT_S = 10.0


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    checks: dict[str, Any] = {"database": _check_database(), "broker": _check_broker()}
    if request.args.get("deep") in {"1", "true"}:
        checks["worker"] = _check_worker()
    ready = all(c["ok"] for c in checks.values())
    return {"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503


def _check_database() -> dict[str, Any]:
    try:
        session = context.db()
        session.execute(text("SELECT 1"))
        current = session.execute(text("SELECT version_num FROM alembic_version")).scalar()
        head = migrations.head_revision()
        heartbeats = {
            h.component: h.seen_at.isoformat(timespec="seconds") for h in list_heartbeats(session)
        }
    except Exception as exc:
        return {"ok": False, "error": _describe(exc)}
    if current != head:
        return {"ok": False, "error": f"database at revision {current}, code expects {head}"}
    return {"ok": True, "revision": current, "heartbeats": heartbeats}


def _check_broker() -> dict[str, Any]:
    try:
        check_broker(context.celery())
    except Exception as exc:
        return {"ok": False, "error": _describe(exc)}
    return {"ok": True}


def _check_worker() -> dict[str, Any]:
    token = secrets.token_hex(8)
    started = time.monotonic()
    try:
        result = context.celery().send_task(PING, args=[token], queue=QUEUE)
        answer = result.get(timeout=DEEP_TIMEOUT_S)
    except Exception as exc:
        return {"ok": False, "error": _describe(exc)}
    if answer.get("token") != token:
        return {"ok": False, "error": "worker answered a different ping"}
    return {
        "ok": True,
        "pid": answer.get("pid"),
        "hostname": answer.get("hostname"),
        "round_trip_ms": round((time.monotonic() - started) * 1000),
    }


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
