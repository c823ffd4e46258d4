"""The sync task's body: wire settings, connectors and the engine for one run."""

from __future__ import annotations

import uuid
from typing import Any

from celery import Celery

from connectors import registry
from core.models import ConnectedAccount
from core.runtime import make_vault
from core.sync import SyncPolicy
from core.syncrun import run_account_sync


def run_sync(app: Celery, account_id: uuid.UUID, *, owner: str) -> dict[str, Any]:
    settings = app.warmline_settings
    result = run_account_sync(
        app.warmline_session_factory,
        account_id=account_id,
        owner=owner,
        policy=SyncPolicy(poll_interval_s=settings.sync_interval_s, lease_s=settings.sync_lease_s),
        oauth=registry.oauth_providers(settings),
        vault=make_vault(settings),
        limits_for=lambda provider: registry.quota_limits(settings, provider),
        build_source=lambda provider, token, pacer: registry.sync_source(
            settings, provider, token=token, pacer=pacer
        ),
    )
    user_id = None
    if result.changes:
        with app.warmline_session_factory() as session:
            account = session.get(ConnectedAccount, account_id)
            user_id = str(account.user_id) if account else None
    return {
        "user_id": user_id,
        "claimed": result.claimed,
        "pages": result.pages,
        "changes": result.changes,
        "errors": result.errors,
        "state": result.state,
    }
