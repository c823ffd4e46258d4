"""Run Warmline's real sync (engine + connectors + pacer) in-process against the sandbox, and
read back what the sandbox's mailbox holds, for comparisons."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from connectors import registry
from core.db import make_engine, make_session_factory, transaction
from core.models import ConnectedAccount, Message, SyncPhase, SyncStream
from core.runtime import make_vault
from core.settings import Settings
from core.sync import RunResult, SyncPolicy
from core.syncrun import run_account_sync

if TYPE_CHECKING:
    from sandbox.server import Sandbox

FAST = SyncPolicy(poll_interval_s=3600, lease_s=60, backoff_base_s=0.01, backoff_max_s=0.05)

# What each provider's sync reads: spam, trash and drafts never count (DEFINITIONS.md), and the
# connectors do not fetch spam/trash (Gmail) or the junk/deleted/drafts folders (Graph).
GRAPH_SKIPPED_FOLDERS = {"junkemail", "deleteditems", "drafts", "outbox"}


def factory_for(settings: Settings) -> sessionmaker[Session]:
    return make_session_factory(make_engine(settings.effective_database_url))


def run_once(settings: Settings, account_id: uuid.UUID, policy: SyncPolicy = FAST) -> RunResult:
    return run_account_sync(
        factory_for(settings),
        account_id=account_id,
        owner="test-worker",
        policy=policy,
        oauth=registry.oauth_providers(settings),
        vault=make_vault(settings),
        limits_for=lambda provider: registry.quota_limits(settings, provider),
        build_source=lambda provider, token, pacer: registry.sync_source(
            settings, provider, token=token, pacer=pacer
        ),
    )


def sync_until_idle(
    settings: Settings, account_id: uuid.UUID, *, max_runs: int = 60, policy: SyncPolicy = FAST
) -> list[RunResult]:
    """Run the engine until every stream is incremental and nothing is due.

    Backoff waits are skipped by making deferred streams due again (the test's clock runs fast);
    quota waits are real (the pacer sleeps), so keep mailboxes small.
    """
    factory = factory_for(settings)
    results = []
    for _ in range(max_runs):
        results.append(run_once(settings, account_id, policy))
        with transaction(factory) as session:
            account = session.get(ConnectedAccount, account_id)
            if account is None or account.state.value != "active":
                return results
            streams = list(
                session.scalars(select(SyncStream).where(SyncStream.account_id == account_id))
            )
            pending = [s for s in streams if s.phase is SyncPhase.INITIAL or s.last_error]
            if streams and not pending:
                return results
            now = dt.datetime.now(dt.UTC)
            session.execute(
                update(SyncStream)
                .where(SyncStream.account_id == account_id, SyncStream.due_at > now)
                .values(due_at=now)
            )
    raise AssertionError(f"sync did not settle in {max_runs} runs: {results[-3:]}")


def make_all_due(settings: Settings, account_id: uuid.UUID) -> None:
    with transaction(factory_for(settings)) as session:
        now = dt.datetime.now(dt.UTC)
        session.execute(
            update(SyncStream).where(SyncStream.account_id == account_id).values(due_at=now)
        )
        session.execute(
            update(ConnectedAccount)
            .where(ConnectedAccount.id == account_id)
            .values(sync_due_at=now)
        )


def expire_stored_access_token(settings: Settings, account_id: uuid.UUID) -> None:
    """Make Warmline's stored access token look expired, so the next call must refresh."""
    vault = make_vault(settings)
    with transaction(factory_for(settings)) as session:
        account = session.get(ConnectedAccount, account_id)
        assert account is not None
        assert account.token_ciphertext is not None
        stored = json.loads(vault.decrypt(account.token_ciphertext))
        if "refresh_token" in stored:  # Google: our own JSON
            stored["expires_at"] = dt.datetime.now(dt.UTC).isoformat()
        else:  # Microsoft: msal's cache serves its access token until near expiry
            stored["AccessToken"] = {}
        account.token_ciphertext = vault.encrypt(json.dumps(stored).encode())


def stored_messages(settings: Settings, account_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    """Warmline's copy: provider id → the fields a comparison needs."""
    with factory_for(settings)() as session:
        rows = session.scalars(select(Message).where(Message.account_id == account_id)).all()
        return {
            m.provider_message_id: {
                "thread": m.provider_thread_id,
                "received_ms": int(m.received_at.timestamp() * 1000),
                "labels": sorted(m.labels),
                "folder": m.folder,
                "from": sorted(p.address for p in m.participants if p.role.value == "from"),
                "to": sorted(p.address for p in m.participants if p.role.value == "to"),
            }
            for m in rows
        }


def sandbox_messages(
    sandbox: Sandbox, email: str, provider: str, *, everything: bool = False
) -> dict[str, dict[str, Any]]:
    """The sandbox mailbox's live messages that the provider's sync should bring.

    Gmail: spam and trash are not listed, but a message stored earlier and trashed since stays,
    labelled TRASH (it never counts); `everything` includes them for that comparison.
    """
    db = sandbox.state.store.connection()
    rows = db.execute(
        "SELECT id, thread_id, internal_ms, labels, folder FROM message "
        "WHERE mailbox = ? AND is_deleted = 0",
        (email,),
    ).fetchall()
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        labels = sorted(str(row[3]).split())
        if provider == "google" and {"SPAM", "TRASH"} & set(labels) and not everything:
            continue
        if provider == "microsoft" and row[4] in GRAPH_SKIPPED_FOLDERS:
            continue
        out[row[0]] = {
            "thread": row[1],
            "received_ms": int(row[2]),
            "labels": labels,
            "folder": row[4],
        }
    return out


def assert_same_messages(
    stored: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]], provider: str
) -> None:
    if provider == "google":
        # Stored spam/trash (trashed after it was synced) must be labelled so in the mailbox too.
        binned = {k: v for k, v in stored.items() if {"SPAM", "TRASH"} & set(v["labels"])}
        stored = {k: v for k, v in stored.items() if k not in binned}
        for mid, row in binned.items():
            assert mid not in expected, mid
            assert row["labels"], mid
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    assert (missing, extra) == ([], []), f"missing {len(missing)}, extra {len(extra)}"
    for mid, want in expected.items():
        got = stored[mid]
        if provider == "google":
            assert got["received_ms"] == want["received_ms"], mid
        else:  # Graph's receivedDateTime has whole seconds
            assert got["received_ms"] // 1000 == want["received_ms"] // 1000, mid
        if provider == "google":
            assert got["thread"] == want["thread"], mid
            assert got["labels"] == want["labels"], (mid, got["labels"], want["labels"])


def dump(value: object) -> str:
    return json.dumps(value, default=str)[:2000]


__all__ = [
    "FAST",
    "assert_same_messages",
    "expire_stored_access_token",
    "factory_for",
    "make_all_due",
    "run_once",
    "sandbox_messages",
    "stored_messages",
    "sync_until_idle",
]
