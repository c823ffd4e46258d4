"""A worker SIGKILLed in the middle of a sync: the next one resumes, nothing lost or doubled.

Real processes: `warmline worker` and `warmline beat` run as subprocesses on the embedded
filesystem broker, which loses the message of a killed worker — durability comes from the
database (the account's lease expires, beat's dispatcher wakes a new worker, which resumes from
the last committed page).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from core.models import Message, SyncPhase, SyncStream
from core.settings import Settings
from tests.functional.conftest import Browser
from tests.functional.syncing import (
    assert_same_messages,
    factory_for,
    sandbox_messages,
    stored_messages,
)

if TYPE_CHECKING:
    from sandbox.server import Sandbox

pytestmark = pytest.mark.slow


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a Warmline process needs to run with exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARMLINE_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"WARMLINE_{name.upper()}"] = str(value)
    env.update(extra)
    return env


def _start(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "server.cli", command],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _kill(process: subprocess.Popen[bytes], sig: int) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
    process.wait(timeout=30)


def _progress(settings: Settings, account_id: uuid.UUID) -> tuple[int, list[SyncPhase]]:
    with factory_for(settings)() as session:
        streams = session.scalars(
            select(SyncStream).where(SyncStream.account_id == account_id)
        ).all()
        stored = session.scalar(select(func.count()).where(Message.account_id == account_id))
        return int(stored or 0), [s.phase for s in streams]


def test_a_worker_killed_mid_sync_resumes_with_no_loss_and_no_duplicate(
    browser: Browser, make_mailbox, settings: Settings, sandbox: Sandbox, tmp_path: Path
) -> None:
    mailbox = make_mailbox("google", messages=700)
    sandbox.state.controls.configure(mailbox, latency_ms=25)  # the internet, roughly
    sandbox.state.controls.set_quota_profile("legacy", mailbox=mailbox)  # as Warmline is told
    status, _ = browser.connect("google", mailbox)
    assert status == 302
    account_id = uuid.UUID(browser.client.get("/api/v1/accounts").get_json()["accounts"][0]["id"])
    env = settings_env(
        settings,
        WARMLINE_GMAIL_QUOTA_PROFILE="legacy",
        WARMLINE_SYNC_LEASE_S="3",
        WARMLINE_SYNC_DISPATCH_INTERVAL_S="1",
        WARMLINE_WORKER_CONCURRENCY="1",
    )
    log = tmp_path / "processes.log"
    beat = _start("beat", env, log)
    worker = _start("worker", env, log)
    try:
        deadline = time.monotonic() + 120
        stored = 0
        while time.monotonic() < deadline:
            stored, phases = _progress(settings, account_id)
            if stored >= 150:
                break
            time.sleep(0.05)
        assert 150 <= stored < 700, (stored, log.read_text()[-3000:])
        _kill(worker, signal.SIGKILL)  # mid-sync, no warning, no cleanup
        at_kill, phases = _progress(settings, account_id)
        assert SyncPhase.INITIAL in phases  # it really was interrupted

        worker = _start("worker", env, log)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            stored, phases = _progress(settings, account_id)
            if phases and all(p is SyncPhase.INCREMENTAL for p in phases):
                break
            time.sleep(0.5)
        assert phases, log.read_text()[-3000:]
        assert all(p is SyncPhase.INCREMENTAL for p in phases), log.read_text()[-3000:]
    finally:
        _kill(worker, signal.SIGTERM)
        _kill(beat, signal.SIGTERM)
    # The same rows an uninterrupted sync ends with: exactly the mailbox, each message once.
    assert at_kill <= stored
    assert_same_messages(
        stored_messages(settings, account_id),
        sandbox_messages(sandbox, mailbox, "google"),
        "google",
    )
