"""GoogleSyncSource end to end: real google-api-python-client/httplib2 against the sandbox.

Tokens are minted in the sandbox store (a grant plus an access token), as the OAuth flow would
leave them; quotas are off for correctness tests (a 300-message backfill is a whole minute of the
2026 budget) and on where the test is about quota. The fake pacer records every acquire, so the
units Warmline thinks it spends can be compared with what the sandbox charged.

Measure units/message: `.venv/bin/pytest tests/functional/test_google_sync_connector.py -k units
-s` prints the table.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import httplib2
import pytest
import requests
from google.auth.exceptions import RefreshError
from googleapiclient.discovery_cache import get_static_doc
from googleapiclient.errors import HttpError

from connectors.google import gmail as gmail_module
from connectors.google.calendar import parse_time
from connectors.google.calendar_write import GoogleCalendarWriter
from connectors.google.config import GoogleConfig
from connectors.google.errors import DEFAULT_RETRY_AFTER_S, is_insufficient_permissions, map_error
from connectors.google.gmail import (
    BackfillState,
    parse_addresses,
    parse_date,
    parse_message,
    plan_fetch,
    prefer_thread_fetch,
)
from connectors.google.oauth import GoogleOAuth
from connectors.google.quota import GMAIL_COSTS, LIMITS, QuotaLimit
from connectors.google.sync import GoogleSyncSource, Session
from core.addon_auth import AddonAuthError, verify_google_id_token
from core.errors import (
    CursorExpired,
    OAuthFlowError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    ReauthRequired,
)
from core.ports import Grant
from core.records import (
    Address,
    EventDeleted,
    EventRecord,
    LabelsChanged,
    MessageDeleted,
    MessageRecord,
    Page,
)
from tests.functional.fakes import RecordingPacer

AUTH = "https://www.googleapis.com/auth/"
SCOPES = " ".join(
    AUTH + s
    for s in ("gmail.metadata", "calendar.calendarlist.readonly", "calendar.events.readonly")
)
_numbers = itertools.count(1)


# ---------------------------------------------------------------------------------------------
# helpers


def access_token(sandbox: Any, email: str, scopes: str = SCOPES) -> str:
    store = sandbox.state.store
    with sandbox.state.lock:
        grant = store.create_grant(
            provider="google", mailbox=email, client_id="warmline-sandbox", scopes=scopes
        )
        return str(store.issue_access_token(grant["id"], scopes, 3600))


def source(
    sandbox: Any,
    email: str,
    *,
    pacer: RecordingPacer | None = None,
    profile: str = "2026",
    token: Callable[..., str] | None = None,
    timeout_s: float = 10.0,
    **config_overrides: Any,
) -> tuple[GoogleSyncSource, RecordingPacer]:
    pacer = pacer or RecordingPacer()
    config = GoogleConfig(
        **{
            "client_id": "warmline-sandbox",
            "client_secret": "sandbox-secret",
            "gmail_root": sandbox.http_url + "/",
            "calendar_root": sandbox.http_url + "/",
            "timeout_s": timeout_s,
            **config_overrides,
        }
    )
    if token is None:
        fixed = access_token(sandbox, email)

        def token(force: bool = False) -> str:
            return fixed

    return GoogleSyncSource(config, token=token, pacer=pacer, quota_profile=profile), pacer


def sync_all(
    src: GoogleSyncSource, stream: str, *, cursor: str | None = None
) -> tuple[list[Page], str | None]:
    """Fetch pages until the phase completes; return the pages and the final cursor."""
    pages: list[Page] = []
    backfill: str | None = None
    while True:
        page = src.fetch_page(stream, cursor=cursor, backfill_cursor=backfill)
        pages.append(page)
        backfill, cursor = page.backfill_cursor, page.cursor
        assert len(pages) < 200, "runaway paging"
        if page.is_complete:
            assert backfill is None
            return pages, cursor


def apply(state: dict[str, MessageRecord], pages: list[Page]) -> None:
    """Apply mail changes the way the sync engine will (upsert / delete / label delta)."""
    for page in pages:
        for change in page.changes:
            if isinstance(change, MessageRecord):
                state[change.provider_message_id] = change
            elif isinstance(change, MessageDeleted):
                state.pop(change.provider_message_id, None)
            elif isinstance(change, LabelsChanged) and change.provider_message_id in state:
                old = state[change.provider_message_id]
                labels = (set(old.labels) | set(change.added)) - set(change.removed)
                state[old.provider_message_id] = MessageRecord(
                    provider_message_id=old.provider_message_id,
                    provider_thread_id=old.provider_thread_id,
                    received_at=old.received_at,
                    labels=tuple(sorted(labels)),
                )


def store_messages(sandbox: Any, email: str, *, spam_trash: bool = False) -> dict[str, dict]:
    rows, after, out = None, None, {}
    while True:
        rows, after = sandbox.state.store.list_messages(
            email, page_size=1000, after=after, include_spam_trash=spam_trash
        )
        out.update({r["id"]: r for r in rows})
        if after is None:
            return out


def ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


# ---------------------------------------------------------------------------------------------
# pure parts


def test_quota_tables_match_providers_md():
    assert GMAIL_COSTS["2026"]["messages.get"] == 20
    assert GMAIL_COSTS["2026"]["threads.get"] == 40
    assert GMAIL_COSTS["legacy"]["messages.get"] == 5
    assert GMAIL_COSTS["legacy"]["threads.get"] == 10
    assert LIMITS["2026"]["gmail"] == QuotaLimit(6_000, 60.0)
    assert LIMITS["legacy"]["gmail"] == QuotaLimit(250, 1.0)
    assert LIMITS["2026"]["calendar"] == QuotaLimit(600, 60.0)


@pytest.mark.parametrize(
    ("listed", "avg", "expected"),
    [
        (0, 9.0, False),  # nothing to read
        (1, 1.5, False),  # a lone message in a mailbox of short threads: messages.get
        (1, 2.0, False),  # the prior alone must win strictly
        (1, 2.5, True),  # long threads on average: the thread brings the rest
        (2, 1.0, True),  # a tie on what we know, and maybe more for free
        (5, 1.0, True),
    ],
)
def test_prefer_thread_fetch(listed: int, avg: float, expected: bool):
    for costs in GMAIL_COSTS.values():
        got = prefer_thread_fetch(
            listed,
            avg_thread_len=avg,
            message_cost=costs["messages.get"],
            thread_cost=costs["threads.get"],
        )
        assert got is expected


def test_plan_fetch_reads_a_thread_once_and_respects_the_part_budget():
    pending = [["m1", "A"], ["m2", "B"], ["m3", "A"], ["m4", "C"], ["m5", "D"], ["m6", "D"]]
    threads, messages, rest = plan_fetch(
        pending, avg_thread_len=1.0, message_cost=20, thread_cost=40, max_parts=3
    )
    assert threads == ["A"]  # m3 rides along with m1
    assert messages == ["m2", "m4"]
    assert rest == [["m5", "D"], ["m6", "D"]]


def test_backfill_state_round_trips_and_bounds_threads():
    state = BackfillState(history_id="7", pending=[["a", "t"]])
    for i in range(gmail_module.MAX_KNOWN_THREADS + 5):
        state.remember_thread(f"t{i}", i)
    assert len(state.threads) == gmail_module.MAX_KNOWN_THREADS
    assert "t0" not in state.threads
    again = BackfillState.loads(state.dumps())
    assert again == state
    again.forget_threads_newer_than(100)
    assert all(oldest <= 100 for oldest in again.threads.values())
    with pytest.raises(ValueError, match="not a Gmail backfill cursor"):
        BackfillState.loads('{"v": 2}')


def test_sent_window_only_skips_exact_matches():
    state = BackfillState(history_id="1", phase="all", sent_window=["s1", "s2", "s3"])
    assert not state.take_sent_match("x")
    assert state.take_sent_match("s2")  # s1 vanished from the full listing: passed over
    assert state.sent_window == ["s3"]


def test_hostile_headers_keep_every_valid_address():
    got = parse_addresses(
        [
            '=?UTF-8?B?SsO8cmdlbg==?= <J@Müller-Bau.DE>, "O\'Brien, Pat" <Pat.OBrien@EXAMPLE.com>',
            "undisclosed-recipients:;",
            "bob@, <@nowhere>, not an address at all",
            "Broken Name <broken@example.com",
            '"Quote Unterminated <q@example.com>',
            "=?unknown-8bit?Q?caf=E9?= <c@xn--caf-dma.fr>, =?UTF-8?B?!!notbase64?= <n@x.org>",
            "Team: a@x.com, b@y.com;",
        ]
    )
    assert got == (
        Address("J@Müller-Bau.DE", "Jürgen"),
        Address("Pat.OBrien@EXAMPLE.com", "O'Brien, Pat"),
        # An unclosed "<" or quote makes an entry no address at all (not a guessed one).
        Address("c@xn--caf-dma.fr", "caf\ufffd"),  # unknown charset: replaced, not fatal
        Address("n@x.org", "=?UTF-8?B?!!notbase64?="),
        Address("a@x.com", None),
        Address("b@y.com", None),
    )


def test_message_times_come_from_internal_date_and_bad_dates_are_none():
    base = {"id": "1", "threadId": "1", "internalDate": "1700000000123", "labelIds": ["SENT"]}
    for date in ("yesterday-ish", "", "Tue, 99 Foo 2023 99:99:99 +9999"):
        record = parse_message({**base, "payload": {"headers": [{"name": "Date", "value": date}]}})
        assert record.sent_at is None
        assert ms(record.received_at) == 1_700_000_000_123
        assert record.is_sent
        assert not record.is_inbox
    assert parse_date("Tue, 14 Nov 2023 22:13:20 -0000") == dt.datetime(
        2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC
    )


@pytest.mark.parametrize(
    ("value", "calendar_zone", "utc_hour"),
    [
        ({"dateTime": "2026-03-02T09:00:00", "timeZone": "America/New_York"}, None, 14),
        ({"dateTime": "2026-03-02T09:00:00"}, "Europe/Berlin", 8),  # the calendar's zone
        ({"dateTime": "2026-03-02T09:00:00", "timeZone": "Mars/Olympus"}, "Europe/Berlin", 8),
        ({"dateTime": "2026-03-02T09:00:00", "timeZone": "America"}, "../etc", 9),  # then UTC
        ({"dateTime": "2026-03-02T09:00:00-05:00", "timeZone": "Europe/Berlin"}, None, 14),
    ],
)
def test_a_date_time_without_offset_is_read_in_its_zone(
    value: dict[str, str], calendar_zone: str | None, utc_hour: int
):
    assert parse_time(value, calendar_zone) == (
        dt.datetime(2026, 3, 2, utc_hour, tzinfo=dt.UTC),
        False,
    )


def http_error(body: dict[str, Any], **headers: str) -> HttpError:
    return HttpError(httplib2.Response({"status": 403, **headers}), json.dumps(body).encode())


SCOPE_MESSAGE = "Request had insufficient authentication scopes."
SCOPE_INFO = {
    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
    "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
    "domain": "googleapis.com",
}
DENIED = {"code": 403, "message": SCOPE_MESSAGE, "status": "PERMISSION_DENIED"}


RATE_LIMITED_403 = {
    "code": 403,
    "message": "User Rate Limit Exceeded",
    "status": "PERMISSION_DENIED",
    "errors": [{"reason": "userRateLimitExceeded", "domain": "usageLimits"}],
    "details": [{**SCOPE_INFO, "reason": "RATE_LIMIT_EXCEEDED"}],
}


@pytest.mark.parametrize(
    ("error", "is_scope", "mapped"),
    [
        (
            http_error({"error": {**DENIED, "errors": [{"reason": "insufficientPermissions"}]}}),
            True,
            ProviderRejected,
        ),
        (http_error({"error": {**DENIED, "details": [SCOPE_INFO]}}), True, ProviderRejected),
        (
            http_error(
                {"error": DENIED},
                **{"www-authenticate": 'Bearer realm="x", error="insufficient_scope", scope="s"'},
            ),
            True,
            ProviderRejected,
        ),
        # PERMISSION_DENIED alone says nothing about scopes; quota keeps its mapping.
        (http_error({"error": DENIED}), False, ProviderRejected),
        (http_error({"error": RATE_LIMITED_403}), False, RateLimited),
    ],
)
def test_missing_scope_is_recognised_in_every_shape_and_only_then(
    error: HttpError, is_scope: bool, mapped: type
):
    assert is_insufficient_permissions(error) is is_scope
    assert type(map_error(error)) is mapped


# ---------------------------------------------------------------------------------------------
# Gmail over the sandbox


def test_backfill_equals_the_store_sent_first(sandbox: Any, make_mailbox: Any):
    email = make_mailbox("google", messages=300)
    sandbox.state.controls.configure(email, enabled=False)
    src, pacer = source(sandbox, email)
    pages, cursor = sync_all(src, "mail")
    got: dict[str, MessageRecord] = {}
    apply(got, pages)

    expected = store_messages(sandbox, email)
    assert set(got) == set(expected)
    for message_id, row in expected.items():
        record = got[message_id]
        assert record.provider_thread_id == row["thread_id"]
        assert set(record.labels) == set(row["labels"])
        assert ms(record.received_at) == row["internal_ms"]
        assert record.is_sent == ("SENT" in row["labels"])
        assert record.is_draft == ("DRAFT" in row["labels"])
    # every record carries the incremental cursor captured before the listing
    assert {p.cursor for p in pages} == {cursor}
    assert int(cursor or 0) <= sandbox.state.store.get_mailbox(email)["history_id"]
    assert all(len(p.changes) <= 200 for p in pages)

    # SENT first: every sent message arrives before the first page that reads unrelated mail
    sent_ids = {i for i, r in expected.items() if "SENT" in r["labels"]}
    seen: set[str] = set()
    for page in pages:
        ids = {c.provider_message_id for c in page.changes if isinstance(c, MessageRecord)}
        threads_with_sent = {got[i].provider_thread_id for i in seen | ids if i in sent_ids}
        if any(got[i].provider_thread_id not in threads_with_sent for i in ids):
            assert sent_ids <= seen, "non-sent mail was read before the SENT listing finished"
        seen |= ids

    # addresses: what the generator meant (fact_party, canonical) is what we parsed
    conn = sandbox.state.store.connection()
    from sandbox.generate import canonical_address

    for message_id, address, direction in conn.execute(
        "SELECT message_id, address, direction FROM fact_party WHERE mailbox = ?", (email,)
    ):
        if message_id not in got:
            continue
        record = got[message_id]
        fields = record.from_ if direction == "in" else record.to + record.cc + record.bcc
        assert address in {canonical_address(a.address) for a in fields}, (message_id, direction)
    names = [a.name for r in got.values() for a in r.from_ + r.to + r.cc if a.name]
    assert names
    assert not any(n.startswith("=?UTF-8?") for n in names)
    assert any(not n.isascii() for n in names)  # RFC 2047 / raw UTF-8 names decoded

    # owner addresses: sendAs is closed under gmail.metadata -> profile + From of SENT mail
    assert email in pages[-1].owner_addresses
    # nothing was ever asked with format=full or q (the sandbox would have answered 403)
    methods = sandbox.state.controls.counters(email)
    assert all(v["rejected"] == 0 for v in methods.values())
    assert (
        pacer.units("gmail")
        == sum(v["units"] for (service, _), v in methods.items() if service == "gmail")
        + GMAIL_COSTS["2026"]["sendAs.list"]
    )  # refused before the sandbox counts it


def test_incremental_applies_activity_and_expiry(sandbox: Any, make_mailbox: Any):
    from sandbox.generate import generate_activity

    email = make_mailbox("google", messages=120)
    sandbox.state.controls.configure(email, enabled=False)
    src, _ = source(sandbox, email)
    pages, cursor = sync_all(src, "mail")
    state: dict[str, MessageRecord] = {}
    apply(state, pages)
    with sandbox.state.lock:
        done = generate_activity(
            sandbox.state.store, email, seed=5, new=25, deleted=8, label_changes=20
        )
    assert done["deleted"]
    assert done["label_changes"]
    changes, cursor = sync_all(src, "mail", cursor=cursor)
    apply(state, changes)
    live = store_messages(sandbox, email, spam_trash=True)
    visible = store_messages(sandbox, email)
    # everything listed is there with today's labels; spam/trash moves are label deltas
    assert set(visible) <= set(state) <= set(live)
    for message_id, record in state.items():
        assert set(record.labels) == set(live[message_id]["labels"]), message_id
    assert cursor == str(sandbox.state.store.get_mailbox(email)["history_id"])
    # nothing new: an empty, complete page that keeps the cursor
    page = src.fetch_page("mail", cursor=cursor, backfill_cursor=None)
    assert page.is_complete
    assert page.changes == []
    assert page.cursor == cursor

    with sandbox.state.lock:
        sandbox.state.store.expire_cursors(email)
    with pytest.raises(CursorExpired):
        src.fetch_page("mail", cursor=cursor, backfill_cursor=None)


def test_history_follows_next_page_tokens_even_through_an_empty_page(
    sandbox: Any, make_mailbox: Any, monkeypatch: pytest.MonkeyPatch
):
    from sandbox.generate import generate_activity

    email = make_mailbox("google", messages=40)
    sandbox.state.controls.configure(email, enabled=False)
    src, _ = source(sandbox, email)
    _, cursor = sync_all(src, "mail")
    with sandbox.state.lock:
        generate_activity(sandbox.state.store, email, seed=9, label_changes=30)
    # Gmail may cut a page and then filter all of it out: a nextPageToken and no history.
    sandbox.state.config["gmail_history_empty_first_page"] = True
    monkeypatch.setattr(gmail_module, "HISTORY_PAGE_SIZE", 7)
    pages, final = sync_all(src, "mail", cursor=cursor)
    assert pages[0].changes == []
    assert not pages[0].is_complete
    assert pages[0].cursor != cursor
    assert len(pages) >= 4  # the empty page, then at least three of records
    assert all(not p.is_complete for p in pages[:-1])
    assert final == str(sandbox.state.store.get_mailbox(email)["history_id"])
    labels = [c for p in pages for c in p.changes if isinstance(c, LabelsChanged)]
    assert len(labels) >= 20

    # A crash mid-walk: a fresh source resumes at the committed cursor and reads no page twice.
    again, _ = source(sandbox, email)
    resumed, resumed_final = sync_all(again, "mail", cursor=pages[1].cursor)
    assert [p.changes for p in resumed] == [p.changes for p in pages[2:]]
    assert resumed_final == final
    # A page token gone stale while the walk waited (Gmail: 400 Invalid pageToken): the walk
    # starts again from its startHistoryId instead of failing the stream for good.
    stale = gmail_module.encode_history_cursor(cursor, "stale-token")
    replay, replay_final = sync_all(again, "mail", cursor=stale)
    assert replay[0].changes == []
    assert replay[0].cursor == cursor
    assert replay_final == final
    # Gmail's 404 for a start too old still means a full resync, page token or not.
    with sandbox.state.lock:
        sandbox.state.store.expire_cursors(email)
    with pytest.raises(CursorExpired):
        again.fetch_page("mail", cursor=pages[1].cursor, backfill_cursor=None)


def test_roots_without_a_trailing_slash_reach_gmail_batches_and_calendar(
    sandbox: Any, make_mailbox: Any
):
    email = make_mailbox("google", messages=30)
    sandbox.state.controls.configure(email, enabled=False)
    src, _ = source(sandbox, email, gmail_root=sandbox.http_url, calendar_root=sandbox.http_url)
    pages, _ = sync_all(src, "mail")  # messages.list, then batches of messages/threads.get
    got: dict[str, MessageRecord] = {}
    apply(got, pages)
    assert set(got) == set(store_messages(sandbox, email))
    streams = src.list_streams()
    assert f"calendar:{email}" in streams
    events, _ = sync_all(src, f"calendar:{email}")
    assert any(p.changes for p in events)


def test_batches_go_to_the_discovery_batch_path_unless_configured(sandbox: Any, small_box: str):
    src, _ = source(sandbox, small_box)
    session = Session(src.config, token=src.token, pacer=RecordingPacer(), profile="2026")
    for service, version in (("gmail", "v1"), ("calendar", "v3")):
        batch_path = json.loads(get_static_doc(service, version))["batchPath"]
        assert session.batch_uri(service) == f"{sandbox.http_url}/{batch_path}"

    # Gmail's API-specific path, which a proxy might serve instead: every batch goes there.
    src, _ = source(sandbox, small_box, gmail_batch_url=sandbox.http_url + "/batch/gmail/v1")
    pages, _ = sync_all(src, "mail")
    got: dict[str, MessageRecord] = {}
    apply(got, pages)
    assert set(got) == set(store_messages(sandbox, small_box))
    src, _ = source(sandbox, small_box, gmail_batch_url=sandbox.http_url + "/nowhere")
    with pytest.raises(ProviderRejected) as exc:
        sync_all(src, "mail")
    assert exc.value.status == 404


# ---------------------------------------------------------------------------------------------
# Calendar over the sandbox


def test_calendar_streams_full_incremental_and_410(sandbox: Any, make_mailbox: Any):
    from sandbox.generate import generate_activity

    email = make_mailbox("google", messages=60)
    sandbox.state.controls.configure(email, enabled=False)
    src, pacer = source(sandbox, email)
    streams = src.list_streams()
    owned = [
        c["id"] for c in sandbox.state.store.list_calendars(email) if c["access_role"] == "owner"
    ]
    assert streams == ["mail", *(f"calendar:{c}" for c in sorted(owned, key=lambda c: c != email))]
    stream = f"calendar:{email}"
    pages, cursor = sync_all(src, stream)
    events = [c for p in pages for c in p.changes]
    assert events
    assert all(isinstance(e, EventRecord) for e in events)
    assert all(e.start_at is None or e.start_at.tzinfo is dt.UTC for e in events)  # type: ignore[union-attr]
    assert any(e.recurring_event_id for e in events)  # type: ignore[union-attr]
    assert any(e.self_response == "organizer" or e.self_response == "accepted" for e in events)  # type: ignore[union-attr]
    all_day = [e for e in events if e.is_all_day]  # type: ignore[union-attr]
    assert all(e.start_at and e.start_at.hour == 0 for e in all_day)  # type: ignore[union-attr]
    assert {b for b, _ in pacer.acquired} == {"calendar"}

    with sandbox.state.lock:
        done = generate_activity(sandbox.state.store, email, seed=3, events_changed=6)
    assert done["events_changed"]
    changes, cursor2 = sync_all(src, stream, cursor=cursor)
    kinds = {type(c) for p in changes for c in p.changes}
    assert kinds
    assert kinds <= {EventRecord, EventDeleted}
    assert cursor2 != cursor

    with sandbox.state.lock:
        sandbox.state.store.expire_cursors(email)
    with pytest.raises(CursorExpired):
        src.fetch_page(stream, cursor=cursor2, backfill_cursor=None)
    with pytest.raises(ProviderRejected):
        src.fetch_page("calendar:nope@example.org", cursor=None, backfill_cursor=None)


def test_calendar_needs_no_scope_for_mail_to_sync(sandbox: Any, make_mailbox: Any):
    email = make_mailbox("google", messages=5)
    only_mail = access_token(sandbox, email, AUTH + "gmail.metadata")
    src, _ = source(sandbox, email, token=lambda force=False: only_mail)
    assert src.list_streams() == ["mail"]


def test_calendar_reads_a_time_without_offset_in_the_events_zone(sandbox: Any, make_mailbox: Any):
    email = make_mailbox("google", messages=5)
    sandbox.state.controls.configure(email, enabled=False)
    zone = ZoneInfo("America/New_York")
    start = (dt.datetime.now(zone) + dt.timedelta(days=3)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    body = {
        "id": "floating0event",
        "status": "confirmed",
        "summary": "Coffee",
        "start": {"date_time": start.isoformat(), "time_zone": "America/New_York"},
        "end": {
            "date_time": (start + dt.timedelta(hours=1)).isoformat(),
            "time_zone": "America/New_York",
        },
        "is_all_day": False,
        "organizer": {"email": email},
        "attendees": [{"email": email, "response": "accepted", "is_organizer": True}],
    }
    with sandbox.state.lock:
        sandbox.state.store.put_event(email, email, body)
    # Events come back as "09:00:00" + timeZone, no offset (EventDateTime allows it).
    sandbox.state.config["calendar_floating_times"] = True
    src, _ = source(sandbox, email)
    pages, _ = sync_all(src, f"calendar:{email}")
    events = [c for p in pages for c in p.changes if isinstance(c, EventRecord)]
    [event] = [e for e in events if e.provider_event_id == "floating0event"]
    assert event.start_at == start.astimezone(dt.UTC)
    assert event.end_at == (start + dt.timedelta(hours=1)).astimezone(dt.UTC)


def test_a_hidden_guest_list_is_not_a_one_to_one_meeting(sandbox: Any, make_mailbox: Any):
    # A webinar whose organizer hid the guest list: the user sees only themselves listed, and
    # must not read it as a one-to-one with the organizer.
    email = make_mailbox("google", messages=5)
    sandbox.state.controls.configure(email, enabled=False)
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=2)
    guests = [{"email": f"guest{n}@elsewhere.example", "response": "accepted"} for n in range(40)]
    body = {
        "id": "webinar0event",
        "status": "confirmed",
        "summary": "Product webinar",
        "start": {"date_time": start.isoformat()},
        "end": {"date_time": (start + dt.timedelta(hours=1)).isoformat()},
        "is_all_day": False,
        "organizer": {"email": "host@vendor.example"},
        "guests_can_see_other_guests": False,
        "attendees": [
            {"email": "host@vendor.example", "response": "accepted", "is_organizer": True},
            {"email": email, "response": "accepted"},
            *guests,
        ],
    }
    with sandbox.state.lock:
        sandbox.state.store.put_event(email, email, body)
    src, _ = source(sandbox, email)
    pages, _ = sync_all(src, f"calendar:{email}")
    [event] = [
        c for p in pages for c in p.changes
        if isinstance(c, EventRecord) and c.provider_event_id == "webinar0event"
    ]  # fmt: skip
    assert [a.address for a in event.attendees] == [email]
    assert event.attendees_omitted


# ---------------------------------------------------------------------------------------------
# error mapping: every branch


@pytest.fixture
def small_box(sandbox: Any, make_mailbox: Any) -> str:
    email = make_mailbox("google", messages=30)
    sandbox.state.controls.configure(email, enabled=False)
    return email


@pytest.mark.parametrize(
    ("fault", "error"),
    [("429", RateLimited), ("500", ProviderUnavailable), ("503", ProviderUnavailable)],
)
def test_direct_call_faults(sandbox: Any, small_box: str, fault: str, error: type):
    src, pacer = source(sandbox, small_box)
    sandbox.state.controls.fail_next(fault, mailbox=small_box, method="getProfile")
    with pytest.raises(error):
        src.mailbox_counts()
    if error is RateLimited:
        assert pacer.penalties == [("gmail", DEFAULT_RETRY_AFTER_S)]
    assert src.mailbox_counts()["messages"] > 0


def test_quota_answer_as_403_is_rate_limited(sandbox: Any, small_box: str):
    controls = sandbox.state.controls
    controls.configure(small_box, enabled=True, google_quota_status=403)
    controls.set_cost("2026", "getProfile", 6_001)  # one call over the per-minute budget
    src, pacer = source(sandbox, small_box)
    with pytest.raises(RateLimited) as exc:
        src.mailbox_counts()
    assert exc.value.retry_after_s == DEFAULT_RETRY_AFTER_S
    assert pacer.penalties == [("gmail", DEFAULT_RETRY_AFTER_S)]


def test_calendar_quota_is_rate_limited(sandbox: Any, small_box: str):
    sandbox.state.controls.configure(small_box, enabled=True, calendar_limit=1)
    src, pacer = source(sandbox, small_box)
    src.list_streams()
    with pytest.raises(RateLimited):
        src.fetch_page(f"calendar:{small_box}", cursor=None, backfill_cursor=None)
    assert pacer.penalties == [("calendar", DEFAULT_RETRY_AFTER_S)]


@pytest.mark.parametrize("style", ["errors", "details"])
def test_a_missing_scope_degrades_whatever_the_error_shape(
    sandbox: Any, small_box: str, style: str
):
    sandbox.state.config["google_scope_error_style"] = style
    # sendAs.list is closed to gmail.metadata: the owner is the profile plus SENT From.
    src, _ = source(sandbox, small_box)
    pages, _ = sync_all(src, "mail")
    assert small_box in pages[-1].owner_addresses
    # no calendar scopes: calendarList is refused and mail alone syncs
    only_mail = access_token(sandbox, small_box, AUTH + "gmail.metadata")
    src, pacer = source(sandbox, small_box, token=lambda force=False: only_mail)
    assert src.list_streams() == ["mail"]
    # no calendar.freebusy: follow-ups get no busy information, not an error
    writer = GoogleCalendarWriter(src.config, token=src.token, pacer=pacer)
    now = dt.datetime.now(dt.UTC)
    assert writer.busy(calendar_ids=[], start=now, end=now + dt.timedelta(days=1)) is None


def test_a_quota_403_on_a_scope_gated_call_stays_rate_limited(sandbox: Any, small_box: str):
    sandbox.state.controls.configure(
        small_box, enabled=True, calendar_limit=1, google_quota_status=403
    )
    src, _ = source(sandbox, small_box)
    src.list_streams()
    with pytest.raises(RateLimited):  # not "no calendar scope": the calendars are still there
        src.list_streams()


@pytest.mark.parametrize("fault", ["slow", "drop"])
def test_timeouts_and_dropped_connections_are_unavailable(sandbox: Any, small_box: str, fault: str):
    sandbox.state.controls.configure(slow_s=1.5)
    src, _ = source(sandbox, small_box, timeout_s=0.5)
    # httplib2 itself re-sends once after a dropped connection, so drop twice.
    sandbox.state.controls.fail_next(fault, count=2, mailbox=small_box, method="getProfile")
    with pytest.raises(ProviderUnavailable):
        src.mailbox_counts()


def test_failed_batch_parts_are_replayed_never_skipped(sandbox: Any, small_box: str):
    controls = sandbox.state.controls
    controls.fail_next("429", count=3, mailbox=small_box, method="messages.get")
    controls.fail_next("503", count=2, mailbox=small_box, method="threads.get")
    src, pacer = source(sandbox, small_box)
    pages, _ = sync_all(src, "mail")
    got: dict[str, MessageRecord] = {}
    apply(got, pages)
    assert set(got) == set(store_messages(sandbox, small_box))
    assert ("gmail", DEFAULT_RETRY_AFTER_S) in pacer.penalties


def test_batch_parts_that_keep_failing_fail_the_page(sandbox: Any, small_box: str):
    sandbox.state.controls.fail_next("500", count=1000, mailbox=small_box, method="*.get")
    src, _ = source(sandbox, small_box)
    with pytest.raises(ProviderUnavailable):
        sync_all(src, "mail")


def test_revoked_grant_needs_reauth_after_one_fresh_token(sandbox: Any, small_box: str):
    token = access_token(sandbox, small_box)
    calls: list[str] = []

    def stale(force: bool = False) -> str:
        calls.append(token)
        return token

    src, _ = source(sandbox, small_box, token=stale)
    with sandbox.state.lock:
        sandbox.state.store.revoke_all_grants(small_box, "google")
    with pytest.raises(ReauthRequired):
        src.mailbox_counts()
    assert len(calls) == 2  # the first token, then one refresh


def test_a_401_is_cured_by_a_fresh_token(sandbox: Any, small_box: str):
    tokens = iter(["not-a-token", access_token(sandbox, small_box)])
    src, _ = source(sandbox, small_box, token=lambda force=False: next(tokens))
    assert src.mailbox_counts()["messages"] > 0


def test_invalid_grant_from_the_token_source_needs_reauth(sandbox: Any, small_box: str):
    def dead(force: bool = False) -> str:
        raise RefreshError("invalid_grant: Token has been expired or revoked.", retryable=False)

    src, _ = source(sandbox, small_box, token=dead)
    with pytest.raises(ReauthRequired):
        src.mailbox_counts()


def test_other_4xx_is_rejected(sandbox: Any, small_box: str):
    src, _ = source(sandbox, small_box)
    with pytest.raises(ProviderRejected) as exc:
        src.fetch_page("calendar:missing@example.org", cursor=None, backfill_cursor=None)
    assert exc.value.status == 404
    with pytest.raises(CursorExpired):
        src.fetch_page("mail", cursor="not-a-history-id", backfill_cursor=None)


# ---------------------------------------------------------------------------------------------
# quota: units per message, messages-only vs the thread-aware plan


def long_thread_mailbox(sandbox: Any, n_threads: int = 40, per_thread: int = 6) -> str:
    """A hand-made mailbox of long conversations (generated ones average < 2 per thread)."""
    email = f"threads-{next(_numbers)}@sandbox-gmail.test"
    store = sandbox.state.store
    base = 1_750_000_000_000
    messages = []
    for t in range(n_threads):
        for i in range(per_thread):
            number = t * per_thread + i
            sent = i % 2 == 1
            messages.append(
                {
                    "id": f"{0x19A0000000000000 + number:016x}",
                    "thread_id": f"{0x19A0000000000000 + t * per_thread:016x}",
                    # Threads interleave in time like real conversations.
                    "internal_ms": base + (i * n_threads + t) * 60_000,
                    "labels": ["SENT"] if sent else ["INBOX"],
                    "folder": "sentitems" if sent else "inbox",
                    "headers": [
                        ["From", email if sent else f"p{t}@example.org"],
                        ["To", f"p{t}@example.org" if sent else email],
                        ["Subject", f"t{t}"],
                    ],
                    "size_estimate": 100,
                    "is_read": True,
                }
            )
    with sandbox.state.lock:
        store.create_mailbox(
            email, provider="google", display_name="T", aliases=[], time_zone="UTC"
        )
        store.add_messages(email, messages, record_history=False)
    sandbox.state.controls.configure(email, enabled=False)
    return email


def measure(sandbox: Any, email: str, profile: str) -> tuple[float, int]:
    sandbox.state.controls.configure(email, gmail_profile=profile)
    src, pacer = source(sandbox, email, profile=profile)
    pages, _ = sync_all(src, "mail")
    got: dict[str, MessageRecord] = {}
    apply(got, pages)
    assert set(got) == set(store_messages(sandbox, email))
    return pacer.units("gmail") / len(got), len(got)


def test_units_per_message(
    sandbox: Any, make_mailbox: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
):
    boxes = {
        "generated-300": make_mailbox("google", messages=300),
        "long-threads-240": long_thread_mailbox(sandbox),
    }
    for email in boxes.values():
        sandbox.state.controls.configure(email, enabled=False)
    table: dict[tuple[str, str, str], float] = {}
    for name, email in boxes.items():
        for profile in ("2026", "legacy"):
            table[(name, profile, "planned")] = measure(sandbox, email, profile)[0]
            with monkeypatch.context() as patch:
                patch.setattr(gmail_module, "prefer_thread_fetch", lambda *a, **k: False)
                table[(name, profile, "messages-only")] = measure(sandbox, email, profile)[0]
    with capsys.disabled():
        sys.stdout.write("\nGmail units per message (backfill, incl. list/profile/sendAs)\n")
        for (name, profile, strategy), units in sorted(table.items()):
            sys.stdout.write(f"  {name:18} {profile:7} {strategy:14} {units:6.2f}\n")
    for name in boxes:
        for profile in ("2026", "legacy"):
            assert table[(name, profile, "planned")] <= table[(name, profile, "messages-only")]
    assert table[("long-threads-240", "2026", "planned")] < 8  # 40 units per 6-message thread
    sandbox.state.store.delete_mailbox(boxes["long-threads-240"])


def test_the_2026_budget_holds_under_real_quotas(sandbox: Any, make_mailbox: Any):
    """With quotas on, a 120-message backfill fits in one minute's 6,000 units, no 429."""
    email = make_mailbox("google", messages=120)
    src, pacer = source(sandbox, email)
    pages, _ = sync_all(src, "mail")
    assert pacer.units("gmail") < 6_000
    assert pacer.penalties == []
    counters = sandbox.state.controls.counters(email)
    assert all(v["rejected"] == 0 for v in counters.values())
    got: dict[str, MessageRecord] = {}
    apply(got, pages)
    assert set(got) == set(store_messages(sandbox, email))


# ---------------------------------------------------------------------------------------------
# sign-in: the id_token checks


REDIRECT_URI = "http://127.0.0.1:9/oauth/callback"
SANDBOX_ISSUER = "https://accounts.sandbox.test"


def sign_in(sandbox: Any, email: str, **config: Any) -> Grant:
    """Run GoogleOAuth's whole flow against the sandbox (auto-consent plays the person)."""
    oauth = GoogleOAuth(
        GoogleConfig(
            client_id="warmline-sandbox",
            client_secret="sandbox-secret",
            auth_uri=sandbox.http_url + "/o/oauth2/v2/auth",
            token_uri=sandbox.http_url + "/token",
            certs_uri=sandbox.http_url + "/oauth2/v1/certs",
            **config,
        )
    )
    start = oauth.start_authorization(redirect_uri=REDIRECT_URI, login_hint=email)
    answer = requests.get(start.url, allow_redirects=False, timeout=10)
    params = dict(parse_qsl(urlsplit(answer.headers["Location"]).query))
    return oauth.complete_authorization(
        redirect_uri=REDIRECT_URI, secret_payload=start.secret_payload, params=params
    )


@pytest.fixture
def consenting(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # GoogleOAuth sets both for the loopback sandbox; monkeypatch puts them back afterwards.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")
    sandbox.state.config["auto_consent"] = True


def test_sign_in_allows_a_few_seconds_of_clock_skew(sandbox: Any, small_box: str, consenting: None):
    sandbox.state.config["google_clock_ahead_s"] = 5  # Google's clock a little ahead of ours
    grant = sign_in(sandbox, small_box)
    assert grant.identity.email == small_box
    sandbox.state.config["google_clock_ahead_s"] = 120  # but not minutes
    with pytest.raises(OAuthFlowError, match="Token used too early"):
        sign_in(sandbox, small_box)


def test_id_token_issuers_are_configurable(sandbox: Any, small_box: str, consenting: None):
    sandbox.state.config["google_issuer"] = SANDBOX_ISSUER
    with pytest.raises(OAuthFlowError, match="wrong issuer"):
        sign_in(sandbox, small_box)  # Google's two issuers by default
    assert sign_in(sandbox, small_box, issuers=(SANDBOX_ISSUER,)).identity.email == small_box

    # The Gmail add-on's check takes the same list.
    now = int(time.time())
    token = sandbox.state.google_key.sign(
        {"iss": SANDBOX_ISSUER, "aud": "warmline-sandbox", "sub": "1", "iat": now, "exp": now + 60}
    )
    certs = sandbox.state.google_key.x509_certs()
    with pytest.raises(AddonAuthError, match="wrong issuer"):
        verify_google_id_token(token, certs=certs, audience="warmline-sandbox")
    claims = verify_google_id_token(
        token, certs=certs, audience="warmline-sandbox", issuers=(SANDBOX_ISSUER,)
    )
    assert claims["sub"] == "1"
