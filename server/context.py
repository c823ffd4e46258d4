"""Per-request access to what `create_app` wired: settings, database session, Celery."""

from __future__ import annotations

import uuid
from typing import Any

from celery import Celery
from flask import current_app, g
from sqlalchemy.orm import Session, sessionmaker

from core import accounts, connect
from core.models import Provider
from core.ports import OAuthProvider
from core.queue import DERIVE_USER
from core.settings import Settings
from core.vault import Vault


def _ext() -> dict[str, Any]:
    return current_app.extensions["warmline"]  # type: ignore[no-any-return]


def settings() -> Settings:
    return _ext()["settings"]  # type: ignore[no-any-return]


def celery() -> Celery:
    return _ext()["celery"]  # type: ignore[no-any-return]


def session_factory() -> sessionmaker[Session]:
    return _ext()["session_factory"]  # type: ignore[no-any-return]


def vault() -> Vault:
    return _ext()["vault"]  # type: ignore[no-any-return]


def oauth_providers() -> dict[Provider, OAuthProvider]:
    return _ext()["oauth"]  # type: ignore[no-any-return]


def disconnect_account(*, user_id: uuid.UUID, account_id: uuid.UUID) -> connect.Disconnected | None:
    """Disconnect one of the user's accounts (revoke at the provider, purge here)."""
    with session_factory()() as session:
        account = accounts.get_account(session, user_id=user_id, account_id=account_id)
        provider = account.provider if account else None
    result = connect.disconnect(
        session_factory(),
        user_id=user_id,
        account_id=account_id,
        oauth=oauth_providers().get(provider) if provider else None,
        vault=vault(),
    )
    if result is not None:  # contacts are rebuilt from the accounts that remain
        celery().send_task(DERIVE_USER, args=[str(user_id)])
    return result


def db() -> Session:
    """Return this request's session; it commits at teardown unless the view raised."""
    session = g.get("db_session")
    if session is None:
        session = _ext()["session_factory"]()
        g.db_session = session
    return session  # type: ignore[no-any-return]
