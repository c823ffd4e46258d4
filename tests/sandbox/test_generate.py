"""Generator determinism and awkward cases; ground truth rules and mutations."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sandbox.generate import generate_activity, generate_mailbox
from sandbox.store import Store
from sandbox.truth import ground_truth

NOW = 1_780_000_000_000  # 2026-05-28
G, M = "me@example.com", "ms@example.com"


def _all(store: Store, email: str) -> Iterator[dict]:
    after = None
    while True:
        rows, after = store.list_messages(
            email, page_size=500, after=after, include_spam_trash=True
        )
        yield from rows
        if after is None:
            return


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = Store(str(tmp_path_factory.mktemp("gen") / "s.sqlite"))
    generate_mailbox(s, email=G, provider="google", seed=11, messages=2500, now_ms=NOW)
    generate_mailbox(s, email=M, provider="microsoft", seed=11, messages=800, now_ms=NOW)
    yield s
    s.close()


def test_same_seed_same_mailbox(tmp_path: Path, store: Store) -> None:
    other = Store(str(tmp_path / "o.sqlite"))
    generate_mailbox(other, email=M, provider="microsoft", seed=11, messages=800, now_ms=NOW)
    assert list(_all(other, M)) == list(_all(store, M))
    for cal in store.list_calendars(M):
        assert other.list_events(M, cal["id"], page_size=5000) == store.list_events(
            M, cal["id"], page_size=5000
        )
    generate_mailbox(
        other, email="x@example.com", provider="microsoft", seed=12, messages=50, now_ms=NOW
    )
    assert [m["headers"] for m in _all(other, "x@example.com")] != [
        m["headers"] for m in _all(store, M)
    ][:50]
    other.close()


def test_tiny_mailbox(tmp_path: Path) -> None:
    s = Store(str(tmp_path / "t.sqlite"))
    summary = generate_mailbox(
        s, email="t@example.com", provider="google", seed=1, messages=5, now_ms=NOW
    )
    assert summary["messages"] == 5 == s.count_messages("t@example.com")
    s.close()


def test_ids_threads_and_labels(store: Store) -> None:
    msgs = list(_all(store, G))
    assert len(msgs) == 2500
    assert all(re.fullmatch(r"[0-9a-f]{16}", m["id"]) for m in msgs)
    first: dict[str, dict] = {}
    for m in sorted(msgs, key=lambda m: (m["internal_ms"], m["id"])):
        first.setdefault(m["thread_id"], m)
    assert all(tid == m["id"] for tid, m in first.items())  # threadId = first message id
    assert all(m["labels"] and m["folder"] for m in msgs)
    assert max(m["internal_ms"] for m in msgs) < NOW
    labels = {x for m in msgs for x in m["labels"]}
    assert {"INBOX", "SENT", "DRAFT", "SPAM", "TRASH", "UNREAD", "Label_1"} <= labels
    folders = {m["folder"] for m in msgs}
    assert {"inbox", "sentitems", "archive", "drafts", "junkemail", "deleteditems"} <= folders
    graph = list(_all(store, M))
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{100,}=*", m["id"]) for m in graph)
    assert len({m["thread_id"] for m in graph}) < len(graph)


def test_awkward_headers_present(store: Store) -> None:
    text = "\n".join(f"{n}: {v}" for m in _all(store, G) for n, v in m["headers"])
    for needle in (
        "=?UTF-8?B?",
        "=?ISO-8859-1?Q?",
        "@xn--",
        "@bücher.example",
        "List-Id: ",
        "List-Unsubscribe: ",
        "Precedence: bulk",
        "Precedence: list",
        "Auto-Submitted: auto-generated",
        "calendar-notification@google.com",
        "Subject: Invitation: ",
        "Bcc: ",
        "In-Reply-To: ",
        "References: ",
        "Subject: Re: ",
        "me+",
        "undisclosed-recipients:;",
        "Reply-To: ",
        "Date: Someday",
    ):
        assert needle in text, needle
    assert re.search(r"Date: .* (1970|1999|2099) ", text)
    assert re.search(r"[A-Z][a-z]+\.[A-Z][a-z]+@", text)  # mixed-case address
    conn = store.connection()
    quirks = " ".join(
        q for (q,) in conn.execute("SELECT quirks FROM fact_message WHERE mailbox = ?", (G,))
    ).split()
    for tag in (
        "missing_date",
        "bcc_only",
        "bcc_sent",
        "plus_address",
        "alias_from",
        "self",
        "draft",
        "spam",
        "trash",
        "archived",
        "multi_address",
        "malformed_addr",
        "mass",
        "group",
        "odd_encoding",
        "user_label",
        "ooo",
    ):
        assert tag in quirks, tag
    no_date = conn.execute(
        "SELECT message_id FROM fact_message WHERE mailbox = ? AND quirks LIKE '%missing_date%'",
        (G,),
    ).fetchone()[0]
    assert all(n != "Date" for n, _ in store.get_message(G, no_date)["headers"])


def test_calendar_cases_present(store: Store) -> None:
    cals = store.list_calendars(G)
    assert cals[0]["id"] == G
    assert cals[0]["is_primary"]
    assert {c["access_role"] for c in cals} == {"owner", "reader"}
    bodies = [
        r["body"]
        for c in cals
        for r in store.list_events(G, c["id"], include_deleted=True, page_size=5000)[0]
    ]
    masters = [b for b in bodies if b["recurrence"]]
    assert masters
    assert masters[0]["recurrence"][0].startswith("RRULE:FREQ=WEEKLY")
    exc = [b for b in bodies if b["recurring_event_id"] == masters[0]["id"]]
    assert {e["status"] for e in exc} == {"confirmed", "cancelled"}
    assert all(e["original_start"] for e in exc)
    assert any(b["is_all_day"] for b in bodies)
    assert any(b["start"].get("time_zone") in ("America/New_York", "Asia/Tokyo") for b in bodies)
    responses = {a["response"] for b in bodies for a in b["attendees"]}
    assert {"accepted", "declined", "tentative"} <= responses


def test_truth_excludes_user_and_non_people(store: Store) -> None:
    truth = ground_truth(store, G, now_ms=NOW)
    contacts = truth["contacts"]
    assert contacts
    assert not set(contacts) & set(truth["user_addresses"])
    assert not set(contacts) & set(truth["non_person_addresses"])
    assert "calendar-notification@google.com" in truth["non_person_addresses"]
    assert all(a == a.lower() and "xn--" not in a for a in contacts)
    assert any(not a.isascii() for a in contacts)  # IDN in U-label form
    top = max(contacts.values(), key=lambda c: c["inbound_count"] + c["outbound_count"])
    assert top["inbound_count"] > 10
    assert top["awaiting_reply_from"] in ("me", "them")
    persons = {}
    for addr, c in contacts.items():
        persons.setdefault(c["person_id"], []).append(addr)
    assert any(len(v) > 1 for v in persons.values())
    assert any(c["next_meeting_at"] for c in contacts.values())
    assert any(c["past_meetings"] for c in contacts.values())


def test_bcc_only_and_plus_address_count_inbound(store: Store) -> None:
    truth = ground_truth(store, G, now_ms=NOW)["contacts"]
    conn = store.connection()
    for tag in ("bcc_only", "plus_address"):
        addr = conn.execute(
            "SELECT p.address FROM fact_message f JOIN fact_party p ON p.mailbox = f.mailbox "
            "AND p.message_id = f.message_id JOIN message m ON m.mailbox = f.mailbox AND "
            "m.id = f.message_id WHERE f.mailbox = ? AND f.quirks LIKE ? AND m.labels NOT LIKE "
            "'% SPAM %' AND m.labels NOT LIKE '% TRASH %' LIMIT 1",
            (G, f"%{tag}%"),
        ).fetchone()[0]
        assert truth[addr]["inbound_count"] >= 1


def test_truth_follows_mutations(tmp_path: Path) -> None:
    s = Store(str(tmp_path / "m.sqlite"))
    email = "live@example.com"
    generate_mailbox(s, email=email, provider="google", seed=3, messages=600, now_ms=NOW)
    before = ground_truth(s, email, now_ms=NOW)["contacts"]
    addr, c = max(before.items(), key=lambda kv: kv[1]["inbound_count"])
    mid = (
        s.connection()
        .execute(
            "SELECT p.message_id FROM fact_party p JOIN message m ON m.mailbox = p.mailbox AND "
            "m.id = p.message_id WHERE p.mailbox = ? AND p.address = ? AND p.direction = 'in' "
            "AND m.labels NOT LIKE '% TRASH %' AND m.labels NOT LIKE '% SPAM %' LIMIT 1",
            (email, addr),
        )
        .fetchone()[0]
    )
    s.modify_labels(email, mid, add=["TRASH"])
    after = ground_truth(s, email, now_ms=NOW)["contacts"]
    assert after[addr]["inbound_count"] == c["inbound_count"] - 1
    hid = s.get_mailbox(email)["history_id"]
    done = generate_activity(
        s,
        email,
        seed=4,
        new=20,
        deleted=5,
        label_changes=5,
        moved=3,
        events_changed=4,
        now_ms=NOW + 60_000,
    )
    assert done["new"] == 20
    assert len(done["deleted"]) == 5
    rows, _ = s.list_history(email, start_history_id=hid, page_size=500)
    kinds = {r["kind"] for r in rows}
    assert {"messageAdded", "messageDeleted"} <= kinds
    later = ground_truth(s, email, now_ms=NOW + 60_000)["contacts"]
    total = sum(x["inbound_count"] + x["outbound_count"] for x in after.values())
    assert sum(x["inbound_count"] + x["outbound_count"] for x in later.values()) != total
    s.close()


def test_meeting_rules(tmp_path: Path) -> None:
    s = Store(str(tmp_path / "c.sqlite"))
    email = "cal@example.com"
    generate_mailbox(s, email=email, provider="google", seed=5, messages=20, now_ms=NOW)
    friend, tz = "new.friend@example.net", "America/New_York"
    first = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday before NOW

    def occ(k: int) -> datetime:
        # Weekly in the event's zone keeps wall-clock time across DST (US DST starts 2026-03-08).
        wall = first.astimezone(ZoneInfo(tz)).replace(tzinfo=None) + timedelta(weeks=k)
        return wall.replace(tzinfo=ZoneInfo(tz))

    def ev(eid: str, at: datetime, **kw: object) -> dict:
        local = at.astimezone(ZoneInfo(tz))
        body = {
            "id": eid,
            "status": "confirmed",
            "summary": "t",
            "is_all_day": False,
            "start": {"date_time": local.isoformat(), "time_zone": tz},
            "end": {"date_time": (local + timedelta(minutes=30)).isoformat(), "time_zone": tz},
            "organizer": {"email": email, "name": "Me"},
            "attendees": [
                {"email": email, "response": "accepted", "is_organizer": True, "resource": False},
                {
                    "email": "New.Friend@EXAMPLE.net",
                    "response": "accepted",
                    "is_organizer": False,
                    "resource": False,
                },
            ],
            "recurrence": [],
            "recurring_event_id": None,
            "original_start": None,
        }
        body.update(kw)
        return body

    master = ev("series00001", first, recurrence=["RRULE:FREQ=WEEKLY;COUNT=5"])
    s.put_event(email, email, master, now_ms=NOW)
    orig2 = ev("x", occ(1))["start"]
    orig3 = ev("x", occ(2))["start"]
    moved = occ(1) + timedelta(days=1)
    s.put_event(
        email,
        email,
        ev("series00001_2", moved, recurring_event_id="series00001", original_start=orig2),
        now_ms=NOW,
    )
    s.put_event(
        email,
        email,
        ev(
            "series00001_3",
            first + timedelta(weeks=2),
            status="cancelled",
            recurring_event_id="series00001",
            original_start=orig3,
        ),
        now_ms=NOW,
    )
    declined = ev("declined001", first + timedelta(days=2))
    declined["attendees"][1]["response"] = "declined"
    s.put_event(email, email, declined, now_ms=NOW)
    s.put_event(
        email,
        email,
        ev(
            "allday00001",
            first,
            is_all_day=True,
            start={"date": "2026-03-03"},
            end={"date": "2026-03-04"},
        ),
        now_ms=NOW,
    )
    tentative = ev("tent0000001", first + timedelta(days=3))
    tentative["attendees"][1]["response"] = "tentative"
    s.put_event(email, email, tentative, now_ms=NOW)
    future = datetime.fromtimestamp(NOW / 1000, tz=UTC) + timedelta(days=3)
    s.put_event(email, email, ev("future00001", future), now_ms=NOW)
    c = ground_truth(s, email, now_ms=NOW)["contacts"][friend]
    assert c["past_meetings"] == 4  # 5 occurrences, one cancelled; moved one counts
    last = occ(4)
    assert c["last_meeting_at"] == int(last.timestamp() * 1000)
    assert c["first_contact_at"] == int(first.timestamp() * 1000)
    assert c["next_meeting_at"] == int(future.timestamp() * 1000)
    assert c["inbound_count"] == 0
    assert c["awaiting_reply_from"] is None
    s.delete_event(email, email, "series00001", now_ms=NOW)
    c = ground_truth(s, email, now_ms=NOW)["contacts"][friend]
    assert c["past_meetings"] == 0
    assert c["next_meeting_at"] is not None
    s.close()
