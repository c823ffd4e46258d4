"""Benchmark: latency of the relationships page query on 50,000 contacts.

Synthesises one user's derived contacts straight into a migrated SQLite file with bulk inserts
(default 50,000 ranked people — a few percent with a second address of the same person — plus
lists and automated senders, and a few thousand follow-up suggestions in every kind and
status; a second user with the same shape shares the tables), then times
`core.relationships.list_relationships` in a fresh session per call, as a request would: the
first page, a deep page (cursor after 20,000 rows), each filter and a search. Prints one
markdown row per case (p50 / p99 / max in milliseconds) and the database's query plans with
`--plans`. CPU time per call is printed too: on a busy machine wall-clock percentiles
measure the neighbours as much as the query.

    python -m bench.relationships_latency --contacts 50000 --runs 200

Not a test. The database lives in a temporary directory unless `--db` names a file (reused
when it already holds the requested shape).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, insert, select

import migrations
from core import relationships
from core.db import make_engine, make_session_factory
from core.models import Contact, Followup, FollowupKind, FollowupStatus, User

NOW = dt.datetime(2026, 11, 17, 15, tzinfo=dt.UTC)
ZONE = "America/Los_Angeles"
CHUNK = 5_000
FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Frances")
LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson")


def _contact_rows(user_id: uuid.UUID, contacts: int, rng: random.Random) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    month = dt.datetime(NOW.year, NOW.month, 1, tzinfo=dt.UTC)
    for n in range(contacts):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        address = f"{first.lower()}.{last.lower()}{n}@org{n % 997}.example"
        # Strength: many ties (ints 1..100), skewed low as real mailboxes are.
        strength = max(1, min(100, int(rng.betavariate(1.3, 4.0) * 100)))
        new = rng.random() < 0.02
        first_at = (
            month + dt.timedelta(days=rng.uniform(0, 16))
            if new
            else NOW - dt.timedelta(days=rng.uniform(20, 5 * 365))
        )
        # Last contact: most people not lately (mean 150 days ago), never before the first.
        last_at = max(first_at, NOW - dt.timedelta(days=rng.expovariate(1 / 150)))
        met = rng.random() < 0.2
        row = {
            "user_id": user_id,
            "address": address,
            "display_name": f"{first} {last}",
            "company": f"org{n % 997}.example",
            "kind": "person",
            "inbound_count": rng.randint(0, 80),
            "outbound_count": rng.randint(0, 80),
            "first_contact_at": first_at,
            "last_contact_at": last_at,
            "last_inbound_at": last_at,
            "last_outbound_at": last_at - dt.timedelta(days=1),
            "awaiting_reply_from": "me",
            "past_meetings": rng.randint(1, 20) if met else 0,
            "last_meeting_at": last_at - dt.timedelta(days=3) if met else None,
            "next_meeting_at": NOW + dt.timedelta(days=5) if rng.random() < 0.03 else None,
            "strength": strength,
            "strength_reasons": ["12 emails each way in 90 days", "met 3 times", "replies fast"],
            "person_key": address,
            "threads_together": rng.randint(0, 40),
            "one_to_one_meetings": 0,
            "group_meetings": 0,
        }
        rows.append(row)
        if rng.random() < 0.03:  # the same person at a second address
            second = dict(row, address=f"{first.lower()}{n}@mail.example")
            second["strength"] = max(1, strength - rng.randint(0, 30))
            key = min(address, second["address"])
            row["person_key"] = second["person_key"] = key
            rows.append(second)
    for n in range(contacts // 10):  # not relationships: lists and robots
        address = f"noreply{n}@robots.example"
        rows.append(
            dict(
                rows[0],
                address=address,
                display_name=None,
                kind="automated" if n % 2 else "list",
                first_contact_at=NOW - dt.timedelta(days=rng.uniform(1, 900)),
                last_contact_at=NOW - dt.timedelta(days=rng.uniform(0, 30)),
                person_key=address,
                strength=None,
                strength_reasons=[],
            )
        )
    return rows


def synthesise(url: str, contacts: int, followups: int, seed: int = 7) -> uuid.UUID:
    """Fill a migrated database with two users' contacts and suggestions; return the first."""
    engine = make_engine(url)
    rng = random.Random(seed)
    ids = []
    with engine.begin() as conn:
        for n in range(2):
            user_id = uuid.uuid4()
            conn.execute(
                insert(User).values(
                    id=user_id,
                    email=f"me{n}@bench.example",
                    preferences={"time_zone": ZONE},
                    created_at=NOW,
                )
            )
            ids.append(user_id)
            rows = _contact_rows(user_id, contacts, rng)
            for start in range(0, len(rows), CHUNK):
                conn.execute(insert(Contact), rows[start : start + CHUNK])
            people = [r["address"] for r in rows if r["kind"] == "person"]
            suggestions = []
            for i, address in enumerate(rng.sample(people, min(followups, len(people)))):
                suggestions.append(
                    {
                        "user_id": user_id,
                        "address": address,
                        "kind": list(FollowupKind)[i % len(FollowupKind)],
                        "cause_key": f"c{i}",
                        "status": rng.choice(list(FollowupStatus)),
                        "reason": "It has been 6 weeks; you usually write every 2.",
                        "facts": {},
                        "due_at": NOW + dt.timedelta(hours=rng.uniform(-200, 200)),
                        "invite": False,
                        "created_at": NOW,
                        "status_at": NOW,
                        "write_seq": 0,
                        "updated_at": NOW,
                    }
                )
            for start in range(0, len(suggestions), CHUNK):
                conn.execute(insert(Followup), suggestions[start : start + CHUNK])
    with engine.connect() as conn:  # fold the WAL into the file, as a long-running server has
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return ids[0]


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    cut = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "p50": round(statistics.median(ordered), 2),
        "p99": round(cut[98], 2),
        "max": round(ordered[-1], 2),
    }


def run(
    contacts: int, followups: int, runs: int, db: Path | None, plans: bool
) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = db or Path(tmp) / "relationships.sqlite"
        url = f"sqlite:///{path}"
        migrations.upgrade(url)
        engine = make_engine(url)
        factory = make_session_factory(engine)
        with factory() as session:
            user_id = session.scalar(
                select(User.id).where(User.email == "me0@bench.example")
            ) or uuid.UUID(int=0)
            have = session.scalar(
                select(func.count()).select_from(Contact).where(Contact.user_id == user_id)
            )
        if not have:
            started = time.perf_counter()
            user_id = synthesise(url, contacts, followups)
            print(f"synthesised in {time.perf_counter() - started:.1f} s")
        with factory() as session:
            ranked = session.scalar(
                select(func.count())
                .select_from(Contact)
                .where(Contact.user_id == user_id, Contact.strength.is_not(None))
            )
            deep = session.execute(
                select(Contact.strength, Contact.id)
                .where(Contact.user_id == user_id, Contact.strength.is_not(None))
                .order_by(Contact.strength.desc(), Contact.id.desc())
                .offset(20_000)
                .limit(1)
            ).one()
        deep_cursor = relationships.encode_cursor(*deep)
        cases: list[tuple[str, dict[str, Any]]] = [
            ("first page", {}),
            ("deep page (after 20,000)", {"cursor": deep_cursor}),
            *((f"filter={name}", {"filter": name}) for name in relationships.FILTERS),
            ("q=ada", {"q": "ada"}),
            ("q=lovelace12", {"q": "lovelace12"}),
            ("deep + never_met", {"cursor": deep_cursor, "filter": "never_met"}),
        ]
        results = []
        for label, kwargs in cases:

            def call(kwargs: dict[str, Any] = kwargs) -> relationships.Page:
                with factory() as session:
                    return relationships.list_relationships(
                        session, user_id=user_id, now=NOW, **kwargs
                    )

            page = call()  # warm the page cache
            wall, cpu = _time(call, runs)
            results.append(
                {
                    "case": label,
                    "rows": len(page.items),
                    **_percentiles(wall),
                    "cpu_p50": round(statistics.median(cpu), 2),
                }
            )
        if plans:
            _print_plans(engine, user_id, cases)
        engine.dispose()
        print(f"{ranked} ranked contact rows for the user, {contacts} people synthesised")
        return results


def _time(call: Callable[[], object], runs: int) -> tuple[list[float], list[float]]:
    """Return wall-clock and CPU milliseconds per call (CPU time ignores a busy machine)."""
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        call()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return wall, cpu


def _print_plans(engine: Any, user_id: uuid.UUID, cases: list[tuple[str, dict[str, Any]]]) -> None:
    """Print SQLite's plan of each case's page query (captured from a real call)."""
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "LIMIT" in statement:
            captured.append((statement, params))

    event.listen(engine, "before_cursor_execute", capture)
    factory = make_session_factory(engine)
    for label, kwargs in cases:
        captured.clear()
        with factory() as session:
            relationships.list_relationships(session, user_id=user_id, now=NOW, **kwargs)
        statement, params = captured[0]
        with engine.connect() as conn:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all()
        print(f"\n{label}:")
        for row in plan:
            print("   ", row[-1])
    event.remove(engine, "before_cursor_execute", capture)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--followups", type=int, default=3_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--plans", action="store_true", help="print the query plans")
    args = parser.parse_args()
    results = run(args.contacts, args.followups, args.runs, args.db, args.plans)
    print()
    print(f"load average (1 min): {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print("| case | rows | p50 ms | p99 ms | max ms | CPU p50 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['case']} | {r['rows']} | {r['p50']} | {r['p99']} | {r['max']} | {r['cpu_p50']} |"
        )


if __name__ == "__main__":
    main()
