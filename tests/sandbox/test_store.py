"""Store semantics: history ordering and floor, paging stability, tombstones, OAuth codes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.store import StaleCursorError, Store

MB = "me@example.com"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(str(tmp_path / "s.sqlite"))
    s.create_mailbox(MB, provider="google", display_name="Me", aliases=[], time_zone="UTC")
    yield s
    s.close()


def _msgs(n: int, start: int = 0) -> list[dict]:
    return [
        {
            "id": f"{i:016x}",
            "thread_id": f"{i - i % 3:016x}",
            "internal_ms": 1_000_000 + i * 10,
            "labels": ["INBOX", "UNREAD"] if i % 2 else ["SENT"],
            "folder": "inbox" if i % 2 else "sentitems",
            "headers": [["From", "a@b.c"]],
        }
        for i in range(start, start + n)
    ]


def test_history_ids_increase_and_list_after_start(store: Store) -> None:
    store.add_messages(MB, _msgs(5))
    start = store.get_mailbox(MB)["history_id"]
    store.modify_labels(MB, f"{1:016x}", remove=["UNREAD"])
    store.delete_message(MB, f"{2:016x}")
    store.add_messages(MB, _msgs(1, start=10))
    rows, cursor = store.list_history(MB, start_history_id=start, page_size=10)
    assert cursor is None
    assert [r["kind"] for r in rows] == ["labelRemoved", "messageDeleted", "messageAdded"]
    ids = [r["history_id"] for r in rows]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    assert ids[0] > start
    assert rows[0]["label_ids"] == ["UNREAD"]
    assert store.get_mailbox(MB)["history_id"] == ids[-1]


def test_history_paging_and_filters(store: Store) -> None:
    start = store.get_mailbox(MB)["history_id"]
    store.add_messages(MB, _msgs(7))
    store.modify_labels(MB, f"{1:016x}", add=["STARRED"], remove=["INBOX"])  # one record, 2 rows
    seen, after = [], None
    while True:
        rows, after = store.list_history(MB, start_history_id=start, page_size=3, after=after)
        seen += rows
        if after is None:
            break
    assert len({r["history_id"] for r in seen}) == 8
    assert len(seen) == 9  # the modify record holds labelAdded + labelRemoved
    added, _ = store.list_history(
        MB, start_history_id=start, history_types=["labelAdded"], page_size=50
    )
    assert [r["label_ids"] for r in added] == [["STARRED"]]
    sent, _ = store.list_history(MB, start_history_id=start, label_id="SENT", page_size=50)
    assert {r["message_id"] for r in sent} == {f"{i:016x}" for i in (0, 2, 4, 6)}


def test_history_floor_and_expiry(store: Store) -> None:
    store.add_messages(MB, _msgs(3), record_history=False)
    floor = store.get_mailbox(MB)["history_floor"]
    with pytest.raises(StaleCursorError):
        store.list_history(MB, start_history_id=floor - 1, page_size=10)
    assert store.list_history(MB, start_history_id=floor, page_size=10) == ([], None)
    seq = store.current_seq(MB)
    store.expire_cursors(MB)
    with pytest.raises(StaleCursorError):
        store.list_history(MB, start_history_id=floor, page_size=10)
    with pytest.raises(StaleCursorError):
        store.list_folder_changes(MB, "inbox", since_seq=seq, page_size=10)


def test_list_messages_paging_is_stable_under_inserts(store: Store) -> None:
    store.add_messages(MB, _msgs(20))
    page1, cursor = store.list_messages(MB, page_size=7)
    store.add_messages(MB, _msgs(5, start=100))  # newer mail arrives mid-listing
    rest = []
    while cursor:
        page, cursor = store.list_messages(MB, page_size=7, after=cursor)
        rest += page
    ids = [m["id"] for m in page1 + rest]
    assert ids == [f"{i:016x}" for i in range(19, -1, -1)]
    inbox, _ = store.list_messages(MB, label_ids=["INBOX", "UNREAD"], page_size=100)
    assert len(inbox) == 12  # 10 odd of the first 20, plus 101 and 103


def test_spam_trash_hidden_and_threads(store: Store) -> None:
    store.add_messages(MB, _msgs(6))
    store.modify_labels(MB, f"{1:016x}", add=["TRASH"])
    rows, _ = store.list_messages(MB, page_size=50)
    assert f"{1:016x}" not in {m["id"] for m in rows}
    rows, _ = store.list_messages(MB, page_size=50, include_spam_trash=True)
    assert len(rows) == 6
    assert store.get_message(MB, f"{1:016x}")["folder"] == "deleteditems"
    threads, _ = store.list_threads(MB, page_size=50)
    assert [t["id"] for t in threads] == [f"{3:016x}", f"{0:016x}"]
    assert [m["id"] for m in store.get_thread(MB, f"{0:016x}")] == [f"{i:016x}" for i in range(3)]
    assert store.count_threads(MB) == 2


def test_tombstones_and_folder_delta(store: Store) -> None:
    store.add_messages(MB, _msgs(4))
    seq = store.current_seq(MB)
    store.delete_message(MB, f"{1:016x}")
    store.move_message(MB, f"{3:016x}", folder="archive")
    assert store.get_message(MB, f"{1:016x}") is None
    assert store.delete_message(MB, f"{1:016x}") is False
    rows, _ = store.list_folder_changes(MB, "inbox", since_seq=seq, page_size=10)
    assert [(r["id"], r["is_deleted"], r["removed_reason"]) for r in rows] == [
        (f"{1:016x}", True, "deleted"),
        (f"{3:016x}", True, "changed"),
    ]
    rows, _ = store.list_folder_changes(MB, "archive", since_seq=seq, page_size=10)
    assert [(r["id"], r["removed_reason"]) for r in rows] == [(f"{3:016x}", None)]
    assert "INBOX" not in store.get_message(MB, f"{3:016x}")["labels"]


def test_events_tombstones_and_sync(store: Store) -> None:
    store.upsert_calendar(MB, id=MB, summary="Me", time_zone="UTC", is_primary=True)
    body = {
        "id": "abc12345",
        "status": "confirmed",
        "start": {"date_time": "2026-01-05T10:00:00+01:00", "time_zone": "Europe/Berlin"},
        "end": {"date_time": "2026-01-05T11:00:00+01:00", "time_zone": "Europe/Berlin"},
        "attendees": [],
    }
    store.put_event(MB, MB, body, now_ms=5)
    seq = store.current_seq(MB)
    assert store.delete_event(MB, MB, "abc12345", now_ms=6)
    assert store.delete_event(MB, MB, "abc12345") is False  # Calendar answers 410
    rows, _ = store.list_events(MB, MB, since_seq=seq, page_size=10)
    assert rows[0]["is_deleted"]
    assert rows[0]["body"]["status"] == "cancelled"
    assert store.list_events(MB, MB, page_size=10) == ([], None)
    window = store.list_events_in_window(MB, MB, start_ms=0, end_ms=2**60, include_deleted=True)
    assert [e["id"] for e in window] == ["abc12345"]


def test_auth_codes_single_use_and_grants(store: Store) -> None:
    code = store.create_auth_code(
        provider="google",
        mailbox=MB,
        client_id="c",
        redirect_uri="http://127.0.0.1/cb",
        scopes="openid",
        nonce="n",
        extra={"state": "s"},
    )
    first = store.take_auth_code(code)
    assert first["nonce"] == "n"
    assert first["extra"] == {"state": "s"}
    assert store.take_auth_code(code) is None
    grant = store.create_grant(provider="google", mailbox=MB, client_id="c", scopes="s")
    token = store.issue_access_token(grant["id"], "s", ttl_s=60)
    assert store.get_access_token(token)["mailbox"] == MB
    assert store.get_access_token(token, at_ms=2**62) is None  # expired
    new_rt = store.rotate_refresh_token(grant["id"])
    assert store.get_grant_by_refresh_token(grant["refresh_token"]) is None
    assert store.get_grant_by_refresh_token(new_rt)["id"] == grant["id"]
    assert store.revoke_token(token)
    assert store.get_access_token(token) is None
    assert store.get_grant_by_refresh_token(new_rt) is None


def test_subscriptions_roundtrip(store: Store) -> None:
    sub = store.create_subscription(
        MB,
        provider="microsoft",
        resource="me/messages",
        notification_url="https://x/n",
        client_state="cs",
        expiration_ms=10,
    )
    assert store.update_subscription(sub["id"], expiration_ms=20)["expiration_ms"] == 20
    assert [s["id"] for s in store.list_subscriptions(MB)] == [sub["id"]]
    assert store.delete_subscription(sub["id"])
    assert not store.delete_subscription(sub["id"])


def test_delete_mailbox_removes_rows(store: Store) -> None:
    store.add_messages(MB, _msgs(3))
    store.delete_mailbox(MB)
    assert store.get_mailbox(MB) is None
    assert store.count_messages(MB) == 0
