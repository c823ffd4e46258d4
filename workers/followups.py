"""The follow-up task's body: wire settings and connectors into one user's follow-up run."""

from __future__ import annotations

import uuid
from typing import Any

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from connectors import registry
from core.followups.run import FollowupRun, run_user_followups
from core.runtime import make_vault
from core.settings import Settings


def followup_run(
    settings: Settings, factory: sessionmaker[Session], user_id: uuid.UUID
) -> FollowupRun:
    """One user's follow-up run with the configured connectors (the task, tests, benches)."""
    return run_user_followups(
        factory,
        user_id=user_id,
        settings=settings,
        oauth=registry.oauth_providers(settings),
        vault=make_vault(settings),
        limits_for=lambda provider: registry.quota_limits(settings, provider),
        build_writer=lambda provider, token, pacer: registry.calendar_writer(
            settings, provider, token=token, pacer=pacer
        ),
    )


def run_followups(app: Celery, user_id: uuid.UUID) -> dict[str, Any]:
    result = followup_run(app.warmline_settings, app.warmline_session_factory, user_id)
    evaluated = result.evaluated
    return {
        "opened": evaluated.opened if evaluated else 0,
        "resolved": evaluated.resolved if evaluated else 0,
        "written": result.calendar.written,
        "removed": result.calendar.removed,
        "pending": result.calendar.pending,
        "error": result.calendar.error,
        "retry_after_s": result.calendar.retry_after_s,
    }
