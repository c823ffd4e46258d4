"""Benchmark: full rebuild of one user's contacts, and the incremental cost of one page.

Synthesises N messages (default 1,000,000) straight into a SQLite file with bulk inserts — a
Zipf-distributed set of correspondents, threads, group mail, list and bulk mail, spam, some
meetings — then times `rebuild_user` and, for pages of 100 new messages written the way sync
writes them (`apply_changes`), `touched_addresses` + `update_contacts`.

    python -m bench.derive_rebuild --messages 1000000

Not a test: it prints a small table. The database is kept in a temporary directory unless
`--db` names a file (reused if it already holds the requested size).
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import func, insert, select

from core.db import Base, make_engine, make_session_factory
from core.derive import rebuild_user, touched_addresses, update_contacts
from core.mailstore import apply_changes
from core.models import (
    AccountAddress,
    CalendarEvent,
    ConnectedAccount,
    Contact,
    EventAttendee,
    Message,
    MessageParticipant,
    Provider,
    User,
)
from core.records import Address, MessageRecord

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
ME = "me@bench.example"
YEARS = 5
CHUNK = 20_000


def _zipf(n: int, s: float = 1.1) -> list[float]:
    cum, total = [], 0.0
    for k in range(n):
        total += 1.0 / (k + 1) ** s
        cum.append(total)
    return [c / total for c in cum]


def synthesise(
    url: str, messages: int, contacts: int, seed: int = 7
) -> tuple[uuid.UUID, uuid.UUID]:
    """Fill an empty database; return (user id, account id)."""
    rng = random.Random(seed)
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    cum = _zipf(contacts)
    people = [f"person{i}@{'corp' if i % 3 else 'gmail'}{i % 50}.example" for i in range(contacts)]
    names = [f"Person {i} Example" for i in range(contacts)]
    user_id, account_id = uuid.uuid4(), uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(insert(User), [{"id": user_id, "email": ME, "created_at": NOW}])
        conn.execute(insert(ConnectedAccount), [{
            "id": account_id, "user_id": user_id, "provider": Provider.GOOGLE,
            "provider_account_id": "bench", "email": ME, "granted_scopes": "", "coverage": {},
            "created_at": NOW, "updated_at": NOW,
        }])  # fmt: skip
        conn.execute(insert(AccountAddress), [{"account_id": account_id, "address": ME}])
    span_s = YEARS * 365 * 86400
    msg_rows: list[dict[str, object]] = []
    part_rows: list[dict[str, object]] = []
    next_id = 1
    thread = 0
    with engine.begin() as conn:
        while next_id <= messages:
            thread += 1
            main = bisect.bisect_left(cum, rng.random())
            roll = rng.random()
            start = NOW - dt.timedelta(seconds=rng.randrange(span_s))
            length = 1 + min(int(rng.expovariate(0.55)), 8)
            inbound = rng.random() < 0.55
            for k in range(length):
                if next_id > messages:
                    break
                at = start + dt.timedelta(hours=k * rng.uniform(0.2, 30))
                row: dict[str, object] = {
                    "id": next_id, "account_id": account_id, "provider_message_id": f"m{next_id}",
                    "provider_thread_id": f"t{thread}", "internet_message_id": f"<{next_id}@b>",
                    "received_at": at, "labels": [], "is_sent": not inbound, "is_inbox": inbound,
                    "is_excluded": rng.random() < 0.02, "has_list_unsubscribe": False,
                    "recipient_count": 1, "sync_generation": 1, "updated_at": NOW,
                    "list_id": None, "precedence": None, "auto_submitted": None,
                }  # fmt: skip
                parts = []
                if roll < 0.12:  # list / bulk mail, no conversation
                    row.update(list_id="<list.lists.example>", precedence="list", is_sent=False)
                    parts = [("from", people[main], names[main]), ("to", "all@lists.example", None)]
                elif inbound:
                    parts = [("from", people[main], names[main]), ("to", ME, "Me")]
                    if roll < 0.25:
                        other = bisect.bisect_left(cum, rng.random())
                        parts.append(("cc", people[other], names[other]))
                else:
                    parts = [("from", ME, "Me"), ("to", people[main], names[main])]
                    if roll < 0.25:
                        other = bisect.bisect_left(cum, rng.random())
                        parts.append(("cc", people[other], names[other]))
                row["recipient_count"] = len(parts) - 1
                msg_rows.append(row)
                positions: dict[str, int] = {}
                for role, address, name in parts:
                    pos = positions.get(role, 0)
                    positions[role] = pos + 1
                    part_rows.append({"message_id": next_id, "role": role, "position": pos,
                                      "address": address, "display_name": name})  # fmt: skip
                next_id += 1
                if rng.random() < 0.8:
                    inbound = not inbound
            if len(msg_rows) >= CHUNK:
                conn.execute(insert(Message), msg_rows)
                conn.execute(insert(MessageParticipant), part_rows)
                msg_rows, part_rows = [], []
        if msg_rows:
            conn.execute(insert(Message), msg_rows)
            conn.execute(insert(MessageParticipant), part_rows)
        _meetings(conn, rng, account_id, people, cum, count=max(100, messages // 100))
    engine.dispose()
    return user_id, account_id


def _meetings(conn, rng, account_id, people, cum, *, count: int) -> None:  # type: ignore[no-untyped-def]
    events, attendees = [], []
    for i in range(1, count + 1):
        start = NOW + dt.timedelta(days=rng.uniform(-YEARS * 365, 60))
        events.append({
            "id": i, "account_id": account_id, "provider_calendar_id": "primary",
            "provider_event_id": f"e{i}", "ical_uid": f"u{i}", "is_cancelled": rng.random() < 0.1,
            "is_all_day": False, "start_at": start, "end_at": start + dt.timedelta(minutes=30),
            "organizer_address": ME, "self_response": "organizer", "sync_generation": 1,
            "updated_at": NOW,
        })  # fmt: skip
        who = {people[bisect.bisect_left(cum, rng.random())] for _ in range(rng.choice((1, 1, 3)))}
        for address in [ME, *sorted(who)]:
            attendees.append({
                "event_id": i, "address": address, "response_status": rng.choice(
                    ("accepted", "accepted", "declined", "tentative")),
                "is_organizer": address == ME, "is_self": address == ME, "is_optional": False,
                "is_resource": False,
            })  # fmt: skip
    conn.execute(insert(CalendarEvent), events)
    conn.execute(insert(EventAttendee), attendees)


def page(rng: random.Random, n: int, contacts: int, start: int) -> list[MessageRecord]:
    cum = _zipf(contacts)
    out = []
    for k in range(n):
        i = bisect.bisect_left(cum, rng.random())
        them = Address(f"person{i}@{'corp' if i % 3 else 'gmail'}{i % 50}.example", f"Person {i}")
        inbound = rng.random() < 0.55
        out.append(MessageRecord(
            provider_message_id=f"new{start + k}", received_at=NOW - dt.timedelta(minutes=k),
            provider_thread_id=f"nt{start + k}", internet_message_id=f"<new{start + k}@b>",
            from_=(them,) if inbound else (Address(ME),), to=(Address(ME),) if inbound else (them,),
            labels=("INBOX",) if inbound else ("SENT",),
        ))  # fmt: skip
    return out


def _ms(value: float) -> str:
    return f"{value:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--db", type=Path)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    path = args.db or Path(tmp.name) / "bench.db"
    url = f"sqlite:///{path}"
    t0 = time.perf_counter()
    existing = path.exists()
    if not existing:
        synthesise(url, args.messages, args.contacts)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with factory() as session:
        user_id, account_id = session.execute(select(User.id, ConnectedAccount.id).join(
            ConnectedAccount, ConnectedAccount.user_id == User.id)).one()  # fmt: skip
        stored = session.scalar(select(func.count()).select_from(Message))
        participants = session.scalar(select(func.count()).select_from(MessageParticipant))
    synth_s = time.perf_counter() - t0

    with factory() as session, session.begin():
        t0 = time.perf_counter()
        result = rebuild_user(session, user_id=user_id, now=NOW)
        rebuild_s = time.perf_counter() - t0
    with factory() as session:
        persons = session.scalar(select(func.count()).where(Contact.kind == "person"))

    rng = random.Random(11)
    apply_ms, derive_ms = [], []
    for p in range(args.pages):
        changes = page(rng, args.page_size, args.contacts, p * args.page_size)
        with factory() as session, session.begin():
            t0 = time.perf_counter()
            touched = touched_addresses(session, account_id=account_id, changes=changes)
            apply_changes(session, account_id=account_id, changes=changes, generation=1)
            t1 = time.perf_counter()
            update_contacts(session, user_id=user_id, addresses=touched, now=NOW)
            t2 = time.perf_counter()
        apply_ms.append((t1 - t0) * 1000)
        derive_ms.append((t2 - t1) * 1000)

    rows = [
        ("messages stored", f"{stored:,}"),
        ("participant rows", f"{participants:,}"),
        ("synthesis (s)" + (" [reused db]" if existing else ""), f"{synth_s:.1f}"),
        ("full rebuild (s)", f"{rebuild_s:.1f}"),
        ("contacts written / persons", f"{result.contacts_written:,} / {persons:,}"),
        (f"page of {args.page_size}: apply_changes (ms, median)",
         _ms(statistics.median(apply_ms))),
        (f"page of {args.page_size}: update_contacts (ms, median)",
         _ms(statistics.median(derive_ms))),
        (f"page of {args.page_size}: update_contacts (ms, max)", f"{max(derive_ms):.0f}"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value:>14}")
    engine.dispose()
    tmp.cleanup()


if __name__ == "__main__":
    main()
