"""How many follow-ups a big mailbox produces, by kind — and how long evaluating them takes.

Generates a mailbox in the sandbox (generated "now", so its recent weeks are live), syncs it
with the real engine and connectors (Graph by default: the fastest way in), derives contacts,
then runs the follow-up rules with the default thresholds and counts the suggestions.

    python -m bench.followup_counts --messages 100000 --provider microsoft [--data DIR]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import tempfile
import time
from pathlib import Path

import migrations
from bench.sync_bench import _connect, _settings
from core.db import transaction
from core.followups.policy import thresholds
from core.followups.slots import WorkingTime
from core.followups.store import evaluate_user
from core.models import ConnectedAccount, Contact, Followup, SyncPhase, SyncStream
from core.settings import Settings
from core.sync import SyncPolicy
from sandbox.generate import generate_mailbox
from sandbox.server import Sandbox
from tests.functional.syncing import factory_for, run_once


def run(provider: str, messages: int, seed: int, keep: Path | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        data = keep or Path(tmp) / "data"
        sync_s = None
        if not (data / "warmline.sqlite").exists():
            sync_s = _sync(provider, messages, seed, data)
        settings = Settings(data_dir=data)
        return {"provider": provider, "messages": messages, "sync_s": sync_s} | _evaluate(settings)


def _sync(provider: str, messages: int, seed: int, data: Path) -> float:
    with Sandbox(latency=None) as sandbox:
        state = sandbox.state
        state.config["auto_consent"] = True
        state.controls.set_quota_profile("legacy")
        domain = "sandbox-gmail.test" if provider == "google" else "sandbox-outlook.test"
        email = f"followups-{provider}@{domain}"
        with state.lock:
            generate_mailbox(
                state.store, email=email, provider=provider, seed=seed, messages=messages
            )
        settings = _settings(sandbox, data, "legacy")
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        migrations.upgrade(settings.effective_database_url)
        account_id = _connect(settings, provider)
        policy = SyncPolicy(poll_interval_s=3600, lease_s=600, run_budget_s=3600)
        factory = factory_for(settings)
        started = time.monotonic()
        while True:
            run_once(settings, account_id, policy)
            with factory() as session:
                phases = session.query(SyncStream.phase).filter_by(account_id=account_id).all()
            if phases and all(p[0] is SyncPhase.INCREMENTAL for p in phases):
                return round(time.monotonic() - started, 1)


def _evaluate(settings: Settings) -> dict[str, object]:
    migrations.upgrade(settings.effective_database_url)
    factory = factory_for(settings)
    now = dt.datetime.now(dt.UTC)
    with transaction(factory) as session:
        session.query(Followup).delete()
        user_id = session.query(ConnectedAccount.user_id).limit(1).scalar()
        people = session.query(Contact).filter_by(user_id=user_id, kind="person").count()
        active = (
            session.query(Contact)
            .filter(
                Contact.user_id == user_id,
                Contact.kind == "person",
                Contact.last_contact_at >= now - dt.timedelta(days=30),
            )
            .count()
        )
    timings = []
    results = []
    for _ in range(2):  # the second run finds nothing new
        t0 = time.monotonic()
        with transaction(factory) as session:
            results.append(
                evaluate_user(
                    session,
                    user_id=user_id,
                    now=now,
                    working=WorkingTime("Europe/Berlin"),
                    limits=thresholds(settings),
                )
            )
        timings.append(round(time.monotonic() - t0, 2))
    with factory() as session:
        kinds = collections.Counter(
            row.kind.value for row in session.query(Followup).filter_by(user_id=user_id)
        )
    return {
        "people": people,
        "active_30d": active,
        "people_evaluated": results[0].people,
        "suggestions": dict(sorted(kinds.items())),
        "total": sum(kinds.values()),
        "evaluate_s": timings[0],
        "reevaluate_s": timings[1],
        "second_run_opened": results[1].opened,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", choices=("google", "microsoft"), default="microsoft")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--data", type=Path, help="keep the synced database here and reuse it on the next run"
    )
    args = parser.parse_args()
    print(run(args.provider, args.messages, args.seed, args.data))


if __name__ == "__main__":
    main()
