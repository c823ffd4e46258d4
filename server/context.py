"""Per-request access to what `create_app` wired: settings, database session, Celery."""

from __future__ import annotations

from typing import Any

from celery import Celery
from flask import current_app, g
from sqlalchemy.orm import Session

from core.settings import Settings


def _ext() -> dict[str, Any]:
    return current_app.extensions["warmline"]  # type: ignore[no-any-return]


def settings() -> Settings:
    return _ext()["settings"]  # type: ignore[no-any-return]


def celery() -> Celery:
    return _ext()["celery"]  # type: ignore[no-any-return]


def db() -> Session:
    """Return this request's session; it commits at teardown unless the view raised."""
    session = g.get("db_session")
    if session is None:
        session = _ext()["session_factory"]()
        g.db_session = session
    return session  # type: ignore[no-any-return]
