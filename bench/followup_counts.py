"""How many follow-ups a big mailbox produces, by kind — and how long evaluating them takes.

Generates a mailbox in the sandbox (generated "now", so its recent weeks are live), syncs it
with the real engine and connectors (Graph by default: the fastest way in), derives contacts,
then runs the follow-up rules with the default thresholds and counts the suggestions.

    python -m bench.followup_counts --messages 100000 --provider microsoft
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
from core.sync import SyncPolicy
from sandbox.generate import generate_mailbox
from sandbox.server import Sandbox
from tests.functional.syncing import factory_for, run_once


def run(provider: str, messages: int, seed: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp, Sandbox(latency=None) as sandbox:
        state = sandbox.state
        state.config["auto_consent"] = True
        state.controls.set_quota_profile("legacy")
        domain = "sandbox-gmail.test" if provider == "google" else "sandbox-outlook.test"
        email = f"followups-{provider}@{domain}"
        with state.lock:
            generate_mailbox(
                state.store, email=email, provider=provider, seed=seed, messages=messages
            )
        settings = _settings(sandbox, Path(tmp) / "data", "legacy")
        settings.data_dir.mkdir(parents=True)
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
                break
        sync_s = time.monotonic() - started
        with factory() as session:
            user_id = session.get(ConnectedAccount, account_id).user_id
            people = session.query(Contact).filter_by(user_id=user_id, kind="person").count()
            active = (
                session.query(Contact)
                .filter(
                    Contact.user_id == user_id,
                    Contact.kind == "person",
                    Contact.last_contact_at >= dt.datetime.now(dt.UTC) - dt.timedelta(days=30),
                )
                .count()
            )
        now = dt.datetime.now(dt.UTC)
        t0 = time.monotonic()
        with transaction(factory) as session:
            result = evaluate_user(
                session,
                user_id=user_id,
                now=now,
                working=WorkingTime("Europe/Berlin"),
                limits=thresholds(settings),
            )
        evaluate_s = time.monotonic() - t0
        t0 = time.monotonic()
        with transaction(factory) as session:  # a second run finds nothing new
            again = evaluate_user(
                session,
                user_id=user_id,
                now=now,
                working=WorkingTime("Europe/Berlin"),
                limits=thresholds(settings),
            )
        reevaluate_s = time.monotonic() - t0
        with factory() as session:
            kinds = collections.Counter(
                row.kind.value for row in session.query(Followup).filter_by(user_id=user_id)
            )
        return {
            "provider": provider,
            "messages": messages,
            "sync_s": round(sync_s, 1),
            "people": people,
            "active_30d": active,
            "people_evaluated": result.people,
            "suggestions": dict(sorted(kinds.items())),
            "total": sum(kinds.values()),
            "evaluate_s": round(evaluate_s, 2),
            "reevaluate_s": round(reevaluate_s, 2),
            "second_run_opened": again.opened,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", choices=("google", "microsoft"), default="microsoft")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(run(args.provider, args.messages, args.seed))


if __name__ == "__main__":
    main()
