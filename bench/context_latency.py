"""Benchmark: latency of the contact context API on a synced sandbox mailbox.

Generates one mailbox, connects and syncs it with the real engine (bench/sync_bench.py), then
calls `GET /api/v1/contacts/<email>/context` in-process (Flask test client: the view, the core
queries and serialization; no network, no gunicorn) for the busiest contacts, round-robin, and
prints p50 / p90 / p99 / max in milliseconds. The batch endpoint is timed with 10 addresses.

    python -m bench.context_latency --messages 2000 --requests 300
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import migrations
from bench.sync_bench import _connect, _settings
from core.auth import create_api_token
from core.db import transaction, utcnow
from core.models import ConnectedAccount, Contact
from sandbox.generate import generate_mailbox
from sandbox.server import Sandbox
from server.app import create_app
from tests.functional.syncing import factory_for, sync_until_idle


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    cut = statistics.quantiles(ordered, n=100)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(cut[89], 2),
        "p99_ms": round(cut[98], 2),
        "max_ms": round(ordered[-1], 2),
    }


def run(messages: int, requests: int, seed: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp, Sandbox(latency=None) as sandbox:
        state = sandbox.state
        state.config["auto_consent"] = True
        state.controls.set_quota_profile("legacy")
        email = "bench-context@sandbox-gmail.test"
        with state.lock:
            generate_mailbox(
                state.store, email=email, provider="google", seed=seed, messages=messages
            )
        settings = _settings(sandbox, Path(tmp) / "data", "legacy")
        settings.data_dir.mkdir(parents=True)
        migrations.upgrade(settings.effective_database_url)
        account_id = _connect(settings, "google")
        sync_until_idle(settings, account_id, max_runs=500)
        with factory_for(settings)() as session:
            addresses = list(
                session.scalars(
                    Contact.__table__.select()
                    .with_only_columns(Contact.address)
                    .order_by((Contact.inbound_count + Contact.outbound_count).desc())
                    .limit(20)
                )
            )
            contacts = session.query(Contact).count()
        app = create_app(settings)
        client = app.test_client()
        with transaction(factory_for(settings)) as session:
            user_id = session.get(ConnectedAccount, account_id).user_id  # type: ignore[union-attr]
            _, token = create_api_token(session, user_id=user_id, name="bench", now=utcnow())
        headers = {"Authorization": f"Bearer {token}"}
        for address in addresses:  # warm up caches and the connection pool
            client.get(f"/api/v1/contacts/{quote(address)}/context", headers=headers)
        single = []
        for i in range(requests):
            address = addresses[i % len(addresses)]
            started = time.perf_counter()
            response = client.get(f"/api/v1/contacts/{quote(address)}/context", headers=headers)
            single.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        batch = []
        for _ in range(max(10, requests // 10)):
            started = time.perf_counter()
            response = client.post(
                "/api/v1/contexts", json={"emails": addresses[:10]}, headers=headers
            )
            batch.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        return {
            "messages": messages,
            "contacts": contacts,
            "single": _percentiles(single),
            "batch_of_10": _percentiles(batch),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    result = run(args.messages, args.requests, args.seed)
    print(f"mailbox: {result['messages']} messages, {result['contacts']} contacts")
    for name in ("single", "batch_of_10"):
        row = result[name]
        print(f"{name:>12}: " + "  ".join(f"{k} {v}" for k, v in row.items()))  # type: ignore[union-attr]


if __name__ == "__main__":
    main()
