"""Assemble a sync run for one account: token provider, pacer and engine, from settings.

Kept apart from the engine so the engine stays provider- and configuration-agnostic; the
connector factory comes in as a function (the workers pass connectors.registry's).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from core.db import utcnow
from core.models import ConnectedAccount, Provider
from core.ports import OAuthProvider, Pacer, SyncSource, TokenSource
from core.quota import DbPacer
from core.sync import Engine, RunResult, SyncPolicy
from core.tokens import get_access_token
from core.vault import Vault


def run_account_sync(
    factory: sessionmaker[Session],
    *,
    account_id: uuid.UUID,
    owner: str,
    policy: SyncPolicy,
    oauth: Mapping[Provider, OAuthProvider],
    vault: Vault,
    limits_for: Callable[[Provider], Mapping[str, Any]],
    build_source: Callable[[Provider, TokenSource, Pacer], SyncSource],
) -> RunResult:
    """Run the engine once for this account (a no-op if another worker holds it)."""

    def source_for(account: ConnectedAccount) -> SyncSource:
        provider = account.provider
        provider_oauth = oauth[provider]

        def token(*, force: bool = False) -> str:
            return get_access_token(
                factory,
                account_id=account.id,
                oauth=provider_oauth,
                vault=vault,
                now=utcnow(),
                force=force,
            ).token

        pacer = DbPacer(
            factory,
            account_id=account.id,
            limits=limits_for(provider),
            lease_owner=owner,
            lease_s=policy.lease_s,
        )
        return build_source(provider, token, pacer)

    engine = Engine(factory, source_for=source_for, policy=policy, owner=owner, clock=utcnow)
    return engine.run(account_id)
