"""Benchmark: the contact context API over HTTP, served the way production serves it.

Builds (once; reused from `--data-dir` while the parameters match) a Warmline data directory
whose database holds one user's mailbox of N messages (default 100,000), synthesised by
bench/derive_rebuild.py on a migrated schema, with contacts derived by `rebuild_user`. Then starts
`warmline serve` (gunicorn, gthread, the configured workers, 4 threads each) on a loopback port,
creates a real API token (`wl_…`) and drives the API with `requests` (one keep-alive session
per client thread):

* `ordinary`: `GET /api/v1/contacts/<email>/context` for known contacts outside the top 20;
* `top-20`:   the same for the 20 busiest correspondents (the heaviest answers);
* `unknown`:  the same for addresses with no history;
* `batch-10`: `POST /api/v1/contexts` with 10 participants (2 top, 6 ordinary, 2 unknown).

Each mix runs at every `--concurrency` level (closed loop: each client thread sends its next
request when the last one has answered). Latency is client-observed (ms); req/s is requests over
wall time; a non-200 answer is counted under `errors` (and its latency kept). The client runs on
the same machine and takes its share of the CPU. The server log is `<data dir>/serve.log`.

    python -m bench.context_http --messages 100000 --contacts 5000

Not a test: it prints a markdown table, and a row for README's benchmark table.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import requests
from sqlalchemy import func, select

import migrations
from bench.derive_rebuild import synthesise
from core.auth import create_api_token
from core.db import make_engine, make_session_factory, transaction, utcnow
from core.derive import rebuild_user
from core.models import Contact, Message, User
from tests.support import free_port, wait_for_http

DEFAULT_DATA_DIR = Path(".cache/bench/context_http")
READY = "ready"  # written once the database is complete: a half-built one is rebuilt
TOP = 20
STARTUP_TIMEOUT_S = 120.0


# The database


def prepare(data_dir: Path, *, messages: int, contacts: int, seed: int) -> Path:
    """Return a Warmline data directory holding the synthesised mailbox, building it if needed."""
    # Keyed by the schema too: a database built before a new migration is built again.
    home = (data_dir / f"m{messages}-c{contacts}-s{seed}-{migrations.head_revision()}").resolve()
    if (home / READY).exists():
        print(f"reusing {home}", file=sys.stderr)
        return home
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    url = f"sqlite:///{home / 'warmline.sqlite'}"
    started = time.perf_counter()
    # Migrate first: `warmline serve` finds the schema at head (the synthesiser's create_all
    # then leaves the migrated tables as they are).
    migrations.upgrade(url)
    user_id, _ = synthesise(url, messages, contacts, seed=seed)
    engine = make_engine(url)
    with transaction(make_session_factory(engine)) as session:
        result = rebuild_user(session, user_id=user_id, now=utcnow())
    engine.dispose()
    (home / READY).write_text(f"{result.contacts_written} contacts\n")
    print(f"built {home} in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return home


def pick_addresses(url: str, *, seed: int) -> tuple[dict[str, list[str]], int, int]:
    """Return the address pools per mix, the message count and the contact count."""
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        busiest = list(
            session.scalars(
                select(Contact.address).order_by(
                    (Contact.inbound_count + Contact.outbound_count).desc(), Contact.address
                )
            )
        )
        stored = session.scalar(select(func.count()).select_from(Message)) or 0
    engine.dispose()
    rng = random.Random(seed)
    rest = busiest[TOP:]
    pools = {
        "top": busiest[:TOP],
        "ordinary": rng.sample(rest, min(500, len(rest))),
        "unknown": [f"nobody{i}@unknown-{i % 7}.example" for i in range(500)],
    }
    return pools, stored, len(busiest)


def make_token(url: str) -> str:
    """Create an API token for the mailbox's user; return the raw `wl_…` value."""
    engine = make_engine(url)
    with transaction(make_session_factory(engine)) as session:
        user_id = session.scalars(select(User.id)).one()
        _, raw = create_api_token(session, user_id=user_id, name="bench", now=utcnow())
    engine.dispose()
    return raw


# The server


class Server:
    """`warmline serve` in a child process of its own session, on a free loopback port."""

    def __init__(self, home: Path, *, workers: int | None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("WARMLINE_")}
        env.update(
            WARMLINE_DATA_DIR=str(home),
            WARMLINE_HOST="127.0.0.1",
            WARMLINE_PORT=str(self.port),
            WARMLINE_LOG_LEVEL="WARNING",
        )
        argv = [sys.executable, "-m", "server.cli", "serve"]
        if workers:
            argv += ["--workers", str(workers)]
        self.log = (home / "serve.log").open("ab")
        self.process = subprocess.Popen(
            argv, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def __enter__(self) -> Server:
        try:
            wait_for_http(f"{self.base}/healthz", timeout_s=STARTUP_TIMEOUT_S, process=self.process)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # gunicorn: graceful stop
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


# The load


Call = Callable[[requests.Session, int], requests.Response]


def mixes(base: str, pools: dict[str, list[str]]) -> dict[str, Call]:
    """Return mix name → a function sending the i-th request of that mix."""

    def one(pool: list[str]) -> Call:
        def call(http: requests.Session, i: int) -> requests.Response:
            address = quote(pool[i % len(pool)], safe="@")
            return http.get(f"{base}/api/v1/contacts/{address}/context")

        return call

    def batch(http: requests.Session, i: int) -> requests.Response:
        emails = [
            *(pools["top"][(2 * i + k) % len(pools["top"])] for k in range(2)),
            *(pools["ordinary"][(6 * i + k) % len(pools["ordinary"])] for k in range(6)),
            *(pools["unknown"][(2 * i + k) % len(pools["unknown"])] for k in range(2)),
        ]
        return http.post(f"{base}/api/v1/contexts", json={"emails": emails})

    return {
        "ordinary": one(pools["ordinary"]),
        "top-20": one(pools["top"]),
        "unknown": one(pools["unknown"]),
        "batch-10": batch,
    }


def drive(call: Call, *, token: str, requests_n: int, concurrency: int) -> dict[str, float]:
    """Send `requests_n` requests from `concurrency` threads; return latency stats and req/s."""
    counter = iter(range(requests_n))
    lock = threading.Lock()
    samples: list[float] = []
    failures: list[str] = []

    def client() -> None:
        with requests.Session() as http:
            http.headers["Authorization"] = f"Bearer {token}"
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                started = time.perf_counter()
                response = call(http, i)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]!r}")
                with lock:
                    samples.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if failures:  # reported, not fatal: under load the server's own errors are a result too
        print(f"{len(failures)} failed requests, first: {failures[0]}", file=sys.stderr)
    ordered = sorted(samples)
    cut = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "p50": statistics.median(ordered),
        "p95": cut[94],
        "p99": cut[98],
        "max": ordered[-1],
        "rps": len(ordered) / wall,
        "errors": len(failures),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--contacts", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--requests", type=int, default=200, help="per mix and concurrency")
    parser.add_argument("--concurrency", default="1,4", help="comma-separated client threads")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (settings)")
    parser.add_argument("--mix", action="append", help="only these mixes (repeatable)")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    home = prepare(args.data_dir, messages=args.messages, contacts=args.contacts, seed=args.seed)
    url = f"sqlite:///{home / 'warmline.sqlite'}"
    pools, stored, contact_count = pick_addresses(url, seed=args.seed)
    token = make_token(url)
    results: list[tuple[str, int, dict[str, float]]] = []
    with Server(home, workers=args.workers) as server:
        calls = mixes(server.base, pools)
        for name, call in calls.items():
            if args.mix and name not in args.mix:
                continue
            # Warm up: every worker process and thread opens its connections, pages come in.
            drive(call, token=token, requests_n=max(levels) * 4, concurrency=max(levels))
            for level in levels:
                stats = drive(call, token=token, requests_n=args.requests, concurrency=level)
                results.append((name, level, stats))
                print(f"{name} c={level}: " + "  ".join(f"{k} {v:.1f}" for k, v in stats.items()),
                      file=sys.stderr)  # fmt: skip

    workers = args.workers or "default"
    print(f"\n{stored:,} messages, {contact_count:,} contacts; gunicorn workers: {workers}, "
          f"4 threads each; {args.requests} requests per row\n")  # fmt: skip
    print("| mix | concurrency | p50 ms | p95 ms | p99 ms | max ms | req/s | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for name, level, s in results:
        print(f"| {name} | {level} | {s['p50']:.0f} | {s['p95']:.0f} | {s['p99']:.0f} | "
              f"{s['max']:.0f} | {s['rps']:.0f} | {s['errors']:.0f} |")  # fmt: skip
    summary = "; ".join(
        f"{name} p50 {s['p50']:.0f} / p99 {s['p99']:.0f} ms"
        for name, level, s in results
        if level == levels[0]
    )
    command = (
        f"`python -m bench.context_http --messages {args.messages} --contacts {args.contacts}`"
    )
    print(f"\n| Context API over HTTP (gunicorn), {stored:,}-message mailbox "
          f"({contact_count:,} contacts), concurrency {levels[0]} | {summary} | p99 ≤ 10 ms | "
          f"{command} |")  # fmt: skip


if __name__ == "__main__":
    main()
