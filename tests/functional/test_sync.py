"""End-to-end sync: the real engine and connectors against the sandbox's generated mailboxes."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select

from core.models import AccountState, CalendarEvent, ConnectedAccount, SyncStream
from core.settings import Settings
from tests.functional.conftest import Browser
from tests.functional.syncing import (
    assert_same_messages,
    expire_stored_access_token,
    factory_for,
    make_all_due,
    sandbox_messages,
    stored_messages,
    sync_until_idle,
)

if TYPE_CHECKING:
    from sandbox.server import Sandbox


def _connect(browser: Browser, provider: str, mailbox: str) -> uuid.UUID:
    status, page = browser.connect(provider, mailbox)
    assert status == 302, page[:300]
    [account] = browser.client.get("/api/v1/accounts").get_json()["accounts"]
    return uuid.UUID(account["id"])


@pytest.fixture(autouse=True)
def _fast_quota(sandbox: Sandbox) -> None:
    # The legacy Gmail profile keeps these small syncs quick; the 2026 profile is exercised in
    # the pacing test and the benchmarks.
    sandbox.state.controls.set_quota_profile("legacy")


@pytest.fixture
def legacy_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"gmail_quota_profile": "legacy"})


@pytest.mark.parametrize("provider", ["google", "microsoft"])
def test_initial_sync_stores_exactly_the_mailbox(
    provider: str, browser: Browser, make_mailbox, legacy_settings: Settings, sandbox: Sandbox
) -> None:
    mailbox = make_mailbox(provider, messages=250)
    account_id = _connect(browser, provider, mailbox)
    sync_until_idle(legacy_settings, account_id)
    assert_same_messages(
        stored_messages(legacy_settings, account_id),
        sandbox_messages(sandbox, mailbox, provider),
        provider,
    )
    [account] = browser.client.get("/api/v1/accounts").get_json()["accounts"]
    assert account["sync"]["phase"] == "incremental"
    assert account["sync"]["percent"] == 100
    coverage = account["sync"]["coverage"]
    assert coverage["provider"]["messages"] >= 1
    assert coverage["message_gap"] == 0, coverage  # reconciled against the provider's count
    with factory_for(legacy_settings)() as session:
        events = session.scalar(select(func.count()).where(CalendarEvent.account_id == account_id))
    assert (events or 0) > 0


@pytest.mark.parametrize("provider", ["google", "microsoft"])
def test_incremental_sync_follows_new_mail_deletions_and_changes(
    provider: str, browser: Browser, make_mailbox, legacy_settings: Settings, sandbox: Sandbox
) -> None:
    from sandbox.generate import generate_activity

    mailbox = make_mailbox(provider, messages=150)
    account_id = _connect(browser, provider, mailbox)
    sync_until_idle(legacy_settings, account_id)
    with sandbox.state.lock:
        generate_activity(
            sandbox.state.store,
            mailbox,
            seed=7,
            new=20,
            deleted=8,
            label_changes=10,
            moved=6 if provider == "microsoft" else 0,
            events_changed=4,
        )
    make_all_due(legacy_settings, account_id)
    sync_until_idle(legacy_settings, account_id)
    assert_same_messages(
        stored_messages(legacy_settings, account_id),
        sandbox_messages(sandbox, mailbox, provider),
        provider,
    )


@pytest.mark.parametrize("provider", ["google", "microsoft"])
def test_an_expired_cursor_resyncs_and_loses_nothing(
    provider: str, browser: Browser, make_mailbox, legacy_settings: Settings, sandbox: Sandbox
) -> None:
    from sandbox.generate import generate_activity

    mailbox = make_mailbox(provider, messages=120)
    account_id = _connect(browser, provider, mailbox)
    sync_until_idle(legacy_settings, account_id)
    with sandbox.state.lock:
        generate_activity(sandbox.state.store, mailbox, seed=11, new=5, deleted=10)
        sandbox.state.store.expire_cursors(mailbox)
    make_all_due(legacy_settings, account_id)
    sync_until_idle(legacy_settings, account_id)
    assert_same_messages(
        stored_messages(legacy_settings, account_id),
        sandbox_messages(sandbox, mailbox, provider),
        provider,
    )
    with factory_for(legacy_settings)() as session:
        generations = session.scalars(
            select(SyncStream.generation).where(SyncStream.account_id == account_id)
        ).all()
    assert max(generations) >= 2  # a full resync happened


@pytest.mark.parametrize("provider", ["google", "microsoft"])
def test_a_revoked_grant_stops_the_sync_and_asks_to_reconnect(
    provider: str, browser: Browser, make_mailbox, legacy_settings: Settings, sandbox: Sandbox
) -> None:
    mailbox = make_mailbox(provider, messages=40)
    account_id = _connect(browser, provider, mailbox)
    with sandbox.state.lock:
        sandbox.state.store.revoke_all_grants(mailbox, provider)
    expire_stored_access_token(legacy_settings, account_id)
    sync_until_idle(legacy_settings, account_id)
    with factory_for(legacy_settings)() as session:
        assert session.get(ConnectedAccount, account_id).state is AccountState.NEEDS_REAUTH
    [account] = browser.client.get("/api/v1/accounts").get_json()["accounts"]
    assert account["needs_reauth"] is True


@pytest.mark.parametrize("provider", ["google", "microsoft"])
def test_injected_faults_converge_without_breaching_quota(
    provider: str, browser: Browser, make_mailbox, legacy_settings: Settings, sandbox: Sandbox
) -> None:
    mailbox = make_mailbox(provider, messages=150)
    account_id = _connect(browser, provider, mailbox)
    sandbox.state.controls.set_faults({"429": 0.04, "500": 0.03, "503": 0.03})
    sync_until_idle(legacy_settings, account_id, max_runs=200)
    sandbox.state.controls.clear_faults()
    assert_same_messages(
        stored_messages(legacy_settings, account_id),
        sandbox_messages(sandbox, mailbox, provider),
        provider,
    )
    counters = sandbox.state.controls.counters(mailbox)
    quota_refusals = sum(c.get("rejected", 0) for c in counters.values())
    assert quota_refusals == 0, counters
