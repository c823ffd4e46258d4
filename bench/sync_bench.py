"""Initial-sync benchmark: Warmline's real engine and connectors against the sandbox.

Measures, for one generated mailbox: wall time, messages per second, quota units per message,
and the ratio of the time taken to the quota floor — the least time any call pattern could take
at the provider's per-user rate (Gmail: for each thread the cheaper of threads.get and one
messages.get per message, plus the listing; Graph: one delta request per page of 500).

    python -m bench.sync_bench --provider google --profile 2026 --messages 2000 --latency-ms 50
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import migrations
from connectors.google.quota import GMAIL_COSTS, LIMITS
from core.models import SyncPhase, SyncStream
from core.settings import Settings
from core.sync import SyncPolicy
from sandbox.generate import generate_mailbox
from sandbox.server import Sandbox
from server.app import create_app
from tests.functional.syncing import factory_for, run_once


def _settings(sandbox: Sandbox, data: Path, profile: str) -> Settings:
    return Settings(
        data_dir=data,
        google_client_id="warmline-sandbox",
        google_client_secret="sandbox-secret",  # type: ignore[arg-type]
        google_auth_uri=f"{sandbox.http_url}/o/oauth2/v2/auth",
        google_token_uri=f"{sandbox.http_url}/token",
        google_revoke_uri=f"{sandbox.http_url}/revoke",
        google_certs_uri=f"{sandbox.http_url}/oauth2/v1/certs",
        google_gmail_api_root=f"{sandbox.http_url}/",
        google_calendar_api_root=f"{sandbox.http_url}/",
        microsoft_client_id="warmline-sandbox",
        microsoft_client_secret="sandbox-secret",  # type: ignore[arg-type]
        microsoft_authority=f"{sandbox.https_url}/common",
        microsoft_graph_root=f"{sandbox.https_url}/v1.0",
        provider_ca_bundle=Path(sandbox.ca_path),
        gmail_quota_profile=profile,
    )


def _connect(settings: Settings, provider: str) -> uuid.UUID:
    import requests

    client = create_app(settings).test_client()
    start = client.get(f"/auth/{provider}/start?intent=signin")
    http = requests.Session()
    http.trust_env = False
    http.verify = str(settings.provider_ca_bundle)
    answer = http.get(start.headers["Location"], allow_redirects=False, timeout=30)
    if answer.status_code == 200:  # form_post: post the fields ourselves
        from tests.functional.browser import _Form

        form = _Form()
        form.feed(answer.text)
        done = client.post(urlsplit(form.action).path, data=dict(form.fields))
    else:
        target = urlsplit(answer.headers["Location"])
        done = client.get(f"{target.path}?{target.query}")
    assert done.status_code == 302, done.get_data(as_text=True)[:500]
    accounts = client.get("/api/v1/accounts").get_json()["accounts"]
    return uuid.UUID(accounts[0]["id"])


def _gmail_floor_units(sandbox: Sandbox, email: str, profile: str) -> float:
    costs = GMAIL_COSTS[profile]
    db = sandbox.state.store.connection()
    rows = db.execute(
        "SELECT thread_id, count(*) FROM message WHERE mailbox = ? AND is_deleted = 0 "
        "AND labels NOT LIKE '% SPAM %' AND labels NOT LIKE '% TRASH %' GROUP BY thread_id",
        (email,),
    ).fetchall()
    messages = sum(n for _, n in rows)
    fetch = sum(min(costs["threads.get"], n * costs["messages.get"]) for _, n in rows)
    listing = costs["messages.list"] * -(-messages // 500)
    return float(fetch + listing)


def run(
    provider: str, profile: str, messages: int, latency_ms: float, seed: int
) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp, Sandbox(latency=None) as sandbox:
        state = sandbox.state
        state.config["auto_consent"] = True
        state.controls.set_quota_profile(profile)
        domain = "sandbox-gmail.test" if provider == "google" else "sandbox-outlook.test"
        email = f"bench-{provider}@{domain}"
        t0 = time.monotonic()
        with state.lock:
            generate_mailbox(
                state.store, email=email, provider=provider, seed=seed, messages=messages
            )
        generated_s = time.monotonic() - t0
        settings = _settings(sandbox, Path(tmp) / "data", profile)
        settings.data_dir.mkdir(parents=True)
        migrations.upgrade(settings.effective_database_url)
        account_id = _connect(settings, provider)
        state.controls.set_latency(latency_ms, latency_ms / 2)
        state.controls.reset_counters()
        policy = SyncPolicy(poll_interval_s=3600, lease_s=600, run_budget_s=3600)
        factory = factory_for(settings)
        started = time.monotonic()
        while True:
            run_once(settings, account_id, policy)
            with factory() as session:
                phases = session.query(SyncStream.phase).filter_by(account_id=account_id).all()
                due = session.query(SyncStream.due_at).filter_by(account_id=account_id).all()
            if phases and all(p[0] is SyncPhase.INCREMENTAL for p in phases):
                break
            waits = [d[0] for d in due if d[0] is not None]
            if waits:
                pause = (min(waits) - dt.datetime.now(dt.UTC)).total_seconds()
                if pause > 0:
                    time.sleep(min(pause, 60))
        elapsed = time.monotonic() - started
        counters = state.controls.counters(email)
        units = sum(c["units"] for c in counters.values())
        refused = sum(c["rejected"] for c in counters.values())
        requests_ = sum(c["requests"] for c in counters.values())
        with factory() as session:
            from core.models import Message

            stored = session.query(Message).filter_by(account_id=account_id).count()
        row: dict[str, object] = {
            "provider": provider,
            "profile": profile if provider == "google" else "graph",
            "messages": stored,
            "generate_s": round(generated_s, 1),
            "sync_s": round(elapsed, 1),
            "msg_per_s": round(stored / elapsed, 1),
            "requests": requests_,
            "units_per_msg": round(units / max(stored, 1), 2),
            "quota_refusals": refused,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
        if provider == "google":
            limit = LIMITS[profile]["gmail"]
            floor_s = _gmail_floor_units(sandbox, email, profile) / (limit.units / limit.window_s)
            row["floor_s"] = round(floor_s, 1)
            row["time_over_floor"] = round(elapsed / floor_s, 2)
        return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--provider", choices=["google", "microsoft"], default="google")
    parser.add_argument("--profile", choices=["2026", "legacy"], default="2026")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    row = run(args.provider, args.profile, args.messages, args.latency_ms, args.seed)
    width = max(len(k) for k in row)
    for key, value in row.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
