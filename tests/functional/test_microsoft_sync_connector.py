"""MicrosoftSyncSource end to end against the sandbox's Graph (HTTPS, its CA only).

Expectations are computed from what the sandbox store holds (its rows and raw headers, parsed
here with the stdlib), never from the connector's own output. A `RecordingPacer` stands in for
the engine's pacer and is compared with the sandbox's request counters.
"""

from __future__ import annotations

import datetime as dt
import email.errors
import email.utils
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from typing import Any

import pytest

from connectors.microsoft.config import MicrosoftConfig
from connectors.microsoft.graph import graph_error, retry_after_s
from connectors.microsoft.sync import MicrosoftSyncSource
from core.errors import (
    CursorExpired,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    ReauthRequired,
)
from core.records import (
    Address,
    Change,
    EventDeleted,
    EventRecord,
    MessageDeleted,
    MessageRecord,
)

SCOPES = ["User.Read", "Mail.ReadBasic", "Calendars.ReadWrite"]
SYNCED_WELL_KNOWN = ("inbox", "sentitems", "archive")
NOT_SYNCED = ("drafts", "junkemail", "deleteditems", "outbox", "conversationhistory")
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


# -- helpers -----------------------------------------------------------------------------------


@dataclass
class RecordingPacer:
    """A Pacer that never waits and remembers every call."""

    acquired: list[tuple[float, str]] = field(default_factory=list)
    penalties: list[tuple[float, str]] = field(default_factory=list)

    def acquire(self, units: float, *, bucket: str) -> None:
        self.acquired.append((units, bucket))

    def penalize(self, retry_after_s: float, *, bucket: str) -> None:
        self.penalties.append((retry_after_s, bucket))

    @property
    def units(self) -> float:
        return sum(units for units, _ in self.acquired)


def mint_token(sandbox: Any, email: str, scopes: list[str] = SCOPES, ttl_s: int = 3600) -> str:
    from sandbox.microsoft.identity import access_token

    with sandbox.app.app_context():
        return access_token(
            sandbox.state.store.get_mailbox(email), "warmline-sandbox", scopes, ttl_s
        )


def config_for(sandbox: Any, **overrides: Any) -> MicrosoftConfig:
    values: dict[str, Any] = {
        "client_id": "warmline-sandbox",
        "client_secret": "sandbox-secret",
        "authority": f"{sandbox.https_url}/common",
        "graph_root": f"{sandbox.https_url}/v1.0",
        "ca_bundle": sandbox.ca_path,
        "timeout_s": 10.0,
    }
    values.update(overrides)
    return MicrosoftConfig(**values)


def make_source(
    sandbox: Any,
    email: str,
    *,
    pacer: RecordingPacer | None = None,
    token: Callable[..., str] | None = None,
    **kwargs: Any,
) -> MicrosoftSyncSource:
    bearer = mint_token(sandbox, email)
    config = kwargs.pop("config", None) or config_for(sandbox)
    return MicrosoftSyncSource(
        config,
        token=token or (lambda force=False: bearer),
        pacer=pacer or RecordingPacer(),
        **kwargs,
    )


@dataclass
class Replica:
    """What the sync engine would hold: cursors per stream and the applied records."""

    cursors: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    messages: dict[str, MessageRecord] = field(default_factory=dict)
    events: dict[str, EventRecord] = field(default_factory=dict)
    owners: set[str] = field(default_factory=set)
    pages: int = 0

    def apply(self, changes: list[Change]) -> None:
        for change in changes:
            if isinstance(change, MessageRecord):
                self.messages[change.provider_message_id] = change
            elif isinstance(change, MessageDeleted):
                held = self.messages.get(change.provider_message_id)
                # Delete only the copy still recorded in the folder that reported the removal.
                if held is not None and change.folder in (None, held.folder):
                    del self.messages[change.provider_message_id]
            elif isinstance(change, EventRecord):
                self.events[change.provider_event_id] = change
            elif isinstance(change, EventDeleted):
                self.events.pop(change.provider_event_id, None)

    def sync(self, source: MicrosoftSyncSource, streams: list[str]) -> None:
        """Run every stream until its phase is complete (one round)."""
        for stream in streams:
            cursor, backfill = self.cursors.get(stream, (None, None))
            while True:
                page = source.fetch_page(stream, cursor=cursor, backfill_cursor=backfill)
                self.pages += 1
                self.apply(page.changes)
                self.owners.update(page.owner_addresses)
                cursor, backfill = page.cursor, page.backfill_cursor
                self.cursors[stream] = (cursor, backfill)
                if page.is_complete:
                    assert backfill is None
                    assert cursor is not None
                    break


def folder_ids(sandbox: Any, https_session: Any, email: str) -> dict[str, str]:
    """Return store folder key -> Graph folder id, read straight from the sandbox."""
    bearer = mint_token(sandbox, email)
    out = {}
    for row in sandbox.state.store.list_folders(email):
        key = row.get("well_known_name") or row["id"]
        answer = https_session.get(
            f"{sandbox.https_url}/v1.0/me/mailFolders/{key}",
            headers={"Authorization": f"Bearer {bearer}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        out[key] = answer.json()["id"]
    return out


def _split(raw: str) -> list[str]:
    parts, buf, quoted, depth = [], "", False, 0
    for ch in raw:
        quoted = not quoted if ch == '"' else quoted
        depth += (ch == "<") - (ch == ">") if not quoted else 0
        if ch == "," and not quoted and depth <= 0:
            parts.append(buf)
            buf = ""
        else:
            buf += ch
    return [p.strip() for p in [*parts, buf] if p.strip()]


def parse_list(raw: str | None) -> tuple[Address, ...]:
    """Parse an address-list header independently with the stdlib (RFC 2047 names decoded).

    A malformed entry (unclosed `<` or quote) names no recipient; its neighbours still do.
    """
    if not raw:
        return ()
    pairs = []
    for entry in _split(raw):
        try:
            parsed = policy.default.header_factory("To", entry)
        except Exception:  # noqa: S112 (unparseable: no recipient)
            continue
        if any(isinstance(d, email.errors.InvalidHeaderDefect) for d in parsed.defects):
            continue
        pairs += [(a.display_name, a.addr_spec) for a in parsed.addresses]  # type: ignore[attr-defined]
    out = []
    for name, address in pairs:
        if not address or "@" not in address:
            continue  # a malformed neighbour Graph would not list as a recipient
        out.append(Address(address, name if name and name.lower() != address.lower() else None))
    return tuple(out)


def header(row: dict[str, Any], name: str) -> str | None:
    return next((v for k, v in row["headers"] if k.lower() == name.lower()), None)


def header_all(row: dict[str, Any], name: str) -> str | None:
    """Every occurrence of an address header, joined (real mail repeats Cc)."""
    found = [v for k, v in row["headers"] if k.lower() == name.lower()]
    return ", ".join(found) if found else None


def sent_time(row: dict[str, Any]) -> dt.datetime:
    """The Date header in UTC, whole seconds; Graph falls back to delivery time without one."""
    moment = None
    raw = header(row, "Date")
    if raw:
        try:
            moment = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            moment = None
    if moment is None:
        return dt.datetime.fromtimestamp(row["internal_ms"] // 1000, dt.UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).replace(microsecond=0)


def _unfold(value: str | None) -> str | None:
    return " ".join(value.split()) or None if value is not None else None


def subject_of(row: dict[str, Any]) -> str:
    raw = header(row, "Subject")
    return str(policy.default.header_factory("Subject", raw)) if raw is not None else ""


def expected_messages(
    sandbox: Any, email_addr: str, ids: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """Every live message in a synced folder, as the fields the connector must report."""
    store = sandbox.state.store
    out = {}
    for key, graph_id in ids.items():
        if key in NOT_SYNCED:
            continue
        rows, _ = store.list_messages(email_addr, folder=key, page_size=5000)
        for row in rows:
            out[row["id"]] = {
                "folder": graph_id,
                "received_at": dt.datetime.fromtimestamp(row["internal_ms"] // 1000, dt.UTC),
                "sent_at": sent_time(row),
                "subject": subject_of(row),
                "thread_known": True,
                "from_": parse_list(header(row, "From")),
                "sender": parse_list(header(row, "Sender")) or parse_list(header(row, "From")),
                "to": parse_list(header_all(row, "To")),
                "cc": parse_list(header_all(row, "Cc")),
                "bcc": parse_list(header_all(row, "Bcc")),
                "reply_to": parse_list(header(row, "Reply-To")),
                "internet_message_id": header(row, "Message-ID"),
                "list_id": header(row, "List-Id"),
                "in_reply_to": _unfold(header(row, "In-Reply-To")),
                "references": _unfold(header(row, "References")),
                "has_list_unsubscribe": header(row, "List-Unsubscribe") is not None,
                "is_sent": key == "sentitems",
                "is_inbox": key == "inbox",
            }
    return out


def observed(record: MessageRecord) -> dict[str, Any]:
    return {
        "folder": record.folder,
        "received_at": record.received_at,
        "sent_at": record.sent_at,
        "subject": record.subject,
        "thread_known": bool(record.provider_thread_id),
        "from_": record.from_,
        "sender": record.sender,
        "to": record.to,
        "cc": record.cc,
        "bcc": record.bcc,
        "reply_to": record.reply_to,
        "internet_message_id": record.internet_message_id,
        "list_id": " ".join(record.list_id.split()) if record.list_id else None,
        "in_reply_to": record.in_reply_to,
        "references": record.references,
        "has_list_unsubscribe": record.has_list_unsubscribe,
        "is_sent": record.is_sent,
        "is_inbox": record.is_inbox,
    }


def assert_replica_matches_store(
    sandbox: Any, email_addr: str, replica: Replica, ids: dict[str, str]
) -> None:
    expected = expected_messages(sandbox, email_addr, ids)
    assert set(replica.messages) == set(expected)
    for message_id, want in expected.items():
        if want["list_id"]:
            want = {**want, "list_id": " ".join(want["list_id"].split())}
        assert observed(replica.messages[message_id]) == want, message_id


@pytest.fixture
def box(make_mailbox: Callable[..., str]) -> str:
    return make_mailbox("microsoft", messages=300)


# -- mail --------------------------------------------------------------------------------------


def test_full_then_incremental_mail_matches_store(
    sandbox: Any, https_session: Any, box: str
) -> None:
    from sandbox.generate import generate_activity

    store = sandbox.state.store
    ids = folder_ids(sandbox, https_session, box)
    pacer = RecordingPacer()
    source = make_source(sandbox, box, pacer=pacer)
    streams = source.list_streams()
    mail_streams = [s for s in streams if s.startswith("mail:")]
    assert streams[-1].startswith("calendar:")
    assert mail_streams[:2] == [f"mail:{ids['sentitems']}", f"mail:{ids['inbox']}"]
    synced = {s.removeprefix("mail:") for s in mail_streams}
    assert {ids[k] for k in SYNCED_WELL_KNOWN} <= synced
    assert not synced & {ids[k] for k in NOT_SYNCED if k in ids}
    custom = {gid for key, gid in ids.items() if key not in SYNCED_WELL_KNOWN + NOT_SYNCED}
    assert custom, "user folders (incl. 'Travel/2024', 'Ärzte')"
    assert custom <= synced

    replica = Replica()
    replica.sync(source, mail_streams)
    assert_replica_matches_store(sandbox, box, replica, ids)
    box_row = store.get_mailbox(box)
    aliases = {a["email"].lower() for a in box_row["aliases"]}
    assert {a.lower() for a in replica.owners} == {box} | aliases
    # The awkward wire forms came through parsed, not canonicalised.
    names = [a.name for m in replica.messages.values() for a in m.from_ + m.to if a.name]
    assert any(not n.isascii() for n in names), "RFC 2047 names decoded"
    assert not any("=?" in n for n in names)
    addresses = [a.address for m in replica.messages.values() for a in m.from_ + m.to]
    assert any(a != a.lower() for a in addresses), "mixed case kept as sent"
    assert any("xn--" in a or not a.isascii() for a in addresses), "IDN domains present"
    assert all(m.received_at.tzinfo is dt.UTC for m in replica.messages.values())
    assert any(m.in_reply_to for m in replica.messages.values()), "threading headers read"
    assert any(m.list_id for m in replica.messages.values()), "list mail recognisable"
    assert sum(1 for m in replica.messages.values() if m.is_sent) == store.count_messages(
        box, folder="sentitems"
    )

    counts = source.mailbox_counts()
    assert counts["messages"] == len(replica.messages)
    assert counts[f"folder:{ids['inbox']}"] == store.count_messages(box, folder="inbox")

    # A living mailbox: new, deleted, label changes (archive/trash/spam move folders), moves.
    inbox_rows, _ = store.list_messages(box, folder="inbox", page_size=2)
    moved_id = inbox_rows[0]["id"]
    store.move_message(box, moved_id, folder="archive")
    done = generate_activity(store, box, seed=11, new=12, deleted=6, label_changes=10, moved=10)
    assert done["deleted"]
    assert done["moved"]

    replica.sync(source, source.list_streams())
    assert_replica_matches_store(sandbox, box, replica, ids)
    moved_row = store.get_message(box, moved_id)
    if moved_row is not None and moved_row["folder"] not in NOT_SYNCED:  # activity may move it on
        assert replica.messages[moved_id].folder == ids[moved_row["folder"]]
    assert any(folder not in NOT_SYNCED for _, folder in done["moved"])
    for message_id in done["deleted"]:
        assert message_id not in replica.messages

    # The same move seen in the other stream order (target folder first) is not lost either.
    again = Replica(cursors=dict(replica.cursors), messages=dict(replica.messages))
    archive_rows, _ = store.list_messages(box, folder="archive", page_size=1)
    back_id = archive_rows[0]["id"]
    store.move_message(box, back_id, folder="inbox")
    again.sync(source, list(reversed(source.list_streams())))
    assert again.messages[back_id].folder == ids["inbox"]
    assert_replica_matches_store(sandbox, box, again, ids)


def test_pacer_sees_every_request(sandbox: Any, box: str) -> None:
    controls = sandbox.state.controls
    controls.reset_counters()
    pacer = RecordingPacer()
    source = make_source(sandbox, box, pacer=pacer)
    replica = Replica()
    replica.sync(source, source.list_streams())
    source.mailbox_counts()

    counters = controls.counters(box)
    graph_requests = sum(c["requests"] for (svc, m), c in counters.items() if m != "batch")
    batches = counters[("graph", "batch")]["requests"]
    batch_items = sum(units for units, _ in pacer.acquired if units > 1)
    assert {bucket for _, bucket in pacer.acquired} == {"graph"}
    # Units: one per request Graph counts (each $batch item counts on its own).
    assert pacer.units == graph_requests
    # Calls: one per HTTP request we sent (a $batch is one call for all its items).
    assert len(pacer.acquired) == graph_requests - batch_items + batches
    # One delta page per folder (500 messages a page) plus a fixed discovery cost: 300 messages
    # and a calendar take ~30 Graph requests (two folder discoveries of 9 $batch items each).
    messages = sandbox.state.store.count_messages(box)
    assert graph_requests / messages < 0.15, (graph_requests, messages)


def test_expired_delta_token_is_cursor_expired(sandbox: Any, box: str) -> None:
    source = make_source(sandbox, box)
    stream = next(s for s in source.list_streams() if s.startswith("mail:"))
    first = source.fetch_page(stream, cursor=None, backfill_cursor=None)
    assert first.is_complete
    sandbox.state.store.expire_cursors(box)
    with pytest.raises(CursorExpired):
        source.fetch_page(stream, cursor=first.cursor, backfill_cursor=None)
    sandbox.state.config["graph_resync_style"] = "location"  # the documented 410 + Location form
    with pytest.raises(CursorExpired):
        source.fetch_page(stream, cursor=first.cursor, backfill_cursor=None)
    # Starting over works.
    assert source.fetch_page(stream, cursor=None, backfill_cursor=None).changes


def test_multi_page_round_advances_only_on_success(
    sandbox: Any, box: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.microsoft import mail

    monkeypatch.setattr(mail, "MESSAGE_DELTA_PAGE_SIZE", 7)
    sandbox.state.controls.configure(box, retry_after_s=3)
    pacer = RecordingPacer()
    source = make_source(sandbox, box, pacer=pacer)
    stream = source.list_streams()[1]  # Inbox
    page = source.fetch_page(stream, cursor=None, backfill_cursor=None)
    assert len(page.changes) == 7
    assert page.backfill_cursor is not None
    assert page.cursor is None
    assert not page.is_complete
    assert page.items_total_estimate == sandbox.state.store.count_messages(box, folder="inbox")
    sandbox.state.controls.fail_next(429, service="graph", mailbox=box, method="messages.delta")
    with pytest.raises(RateLimited) as raised:
        source.fetch_page(stream, cursor=None, backfill_cursor=page.backfill_cursor)
    assert raised.value.retry_after_s == 3
    assert pacer.penalties == [(3, "graph")]
    # The engine retries the same backfill cursor: the page is not lost.
    again = source.fetch_page(stream, cursor=None, backfill_cursor=page.backfill_cursor)
    assert len(again.changes) == 7
    assert not {c.provider_message_id for c in again.changes} & {  # type: ignore[union-attr]
        c.provider_message_id  # type: ignore[union-attr]
        for c in page.changes
    }
    assert again.owner_addresses == ()


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error"),
    [("500", ProviderUnavailable), ("503", ProviderUnavailable), ("drop", ProviderUnavailable)],
)
def test_server_faults_are_provider_unavailable(
    sandbox: Any, box: str, fault: str, error: type[Exception]
) -> None:
    pacer = RecordingPacer()
    source = make_source(sandbox, box, pacer=pacer)
    stream = source.list_streams()[0]
    sandbox.state.controls.configure(box, retry_after_s=4)
    sandbox.state.controls.fail_next(fault, service="graph", mailbox=box, method="messages.delta")
    with pytest.raises(error):
        source.fetch_page(stream, cursor=None, backfill_cursor=None)
    # 503 carries Retry-After: the whole account is asked to wait.
    assert pacer.penalties == ([(4, "graph")] if fault == "503" else [])


def test_slow_answer_past_the_timeout_is_provider_unavailable(sandbox: Any, box: str) -> None:
    source = make_source(sandbox, box, config=config_for(sandbox, timeout_s=0.3))
    stream = source.list_streams()[0]
    sandbox.state.controls.configure(slow_s=1.0)
    sandbox.state.controls.fail_next("slow", service="graph", mailbox=box, method="messages.delta")
    with pytest.raises(ProviderUnavailable):
        source.fetch_page(stream, cursor=None, backfill_cursor=None)


def test_throttled_batch_item_is_rate_limited(sandbox: Any, box: str) -> None:
    pacer = RecordingPacer()
    source = make_source(sandbox, box, pacer=pacer)
    sandbox.state.controls.configure(box, graph_limit=3)  # the batch's 4th item is refused
    with pytest.raises(RateLimited) as raised:
        source.list_streams()
    assert raised.value.retry_after_s is not None
    assert raised.value.retry_after_s >= 1
    assert pacer.penalties
    assert pacer.penalties[0][1] == "graph"


def test_expired_access_token_is_refreshed_once(sandbox: Any, box: str) -> None:
    tokens = iter([mint_token(sandbox, box, ttl_s=-10), mint_token(sandbox, box)])
    calls: list[int] = []

    def token(force: bool = False) -> str:
        calls.append(1)
        return next(tokens)

    source = make_source(sandbox, box, token=token)
    assert source.list_streams()
    assert len(calls) == 2


def test_token_refused_twice_is_reauth_required(sandbox: Any, box: str) -> None:
    source = make_source(sandbox, box, token=lambda force=False: "garbage")
    with pytest.raises(ReauthRequired):
        source.list_streams()


def test_revoked_grant_is_reauth_required(sandbox: Any, box: str) -> None:
    """The real chain: Graph refuses the token, the refresh through msal finds the grant gone."""
    from connectors.microsoft.oauth import MicrosoftOAuth
    from tests.functional.browser import consent

    redirect_uri = "http://127.0.0.1:9/auth/microsoft/callback"
    oauth = MicrosoftOAuth(config_for(sandbox))
    # Tokens this short are inside msal's refresh margin, so every refresh() really refreshes.
    sandbox.state.config["access_token_ttl_s"] = 120
    start = oauth.start_authorization(redirect_uri=redirect_uri, login_hint=box)
    callback = consent(start.url, mailbox=box)
    grant = oauth.complete_authorization(
        redirect_uri=redirect_uri, secret_payload=start.secret_payload, params=callback.params
    )
    stale = iter(["expired-token"])

    def token(force: bool = False) -> str:
        return next(stale, None) or oauth.refresh(grant.credential).token

    sandbox.state.store.revoke_all_grants(box, "microsoft")
    source = make_source(sandbox, box, token=token)
    with pytest.raises(ReauthRequired):
        source.list_streams()


def test_withdrawn_mail_permission_is_reauth_required(sandbox: Any, box: str) -> None:
    bearer = mint_token(sandbox, box, ["User.Read", "Calendars.ReadWrite"])
    source = make_source(sandbox, box, token=lambda force=False: bearer)
    with pytest.raises(ReauthRequired):
        source.list_streams()


def test_bad_requests_are_provider_rejected(sandbox: Any, box: str) -> None:
    pacer = RecordingPacer()
    source = make_source(sandbox, box, pacer=pacer)
    stream = source.list_streams()[0]
    root = f"{sandbox.https_url}/v1.0"
    mangled = f"{root}/me/mailFolders/{stream[5:]}/messages/delta?$deltatoken=e30"
    with pytest.raises(ProviderRejected) as raised:
        source.fetch_page(stream, cursor=mangled, backfill_cursor=None)
    assert raised.value.status == 400
    with pytest.raises(ProviderRejected) as raised:
        source.fetch_page("mail:does-not-exist", cursor=None, backfill_cursor=None)
    assert raised.value.status == 404

    # A link to another origin is refused before anything is sent (our token stays home).
    sent = len(pacer.acquired)
    for foreign in (
        f"{sandbox.http_url}/v1.0/me/mailFolders/inbox/messages/delta",  # same host, http
        "https://graph.example.net/v1.0/me/mailFolders/inbox/messages/delta",
    ):
        with pytest.raises(ProviderRejected):
            source.fetch_page(stream, cursor=foreign, backfill_cursor=None)
    assert len(pacer.acquired) == sent


def test_graph_error_mapping_is_total() -> None:
    def body(code: str) -> dict[str, Any]:
        return {"error": {"code": code, "message": "ada@example.org", "innerError": {}}}

    assert isinstance(graph_error(410, body("SyncStateNotFound"), {}), CursorExpired)
    assert isinstance(graph_error(400, body("syncStateNotFound"), {}), CursorExpired)
    assert isinstance(graph_error(400, body("resyncRequired"), {}), CursorExpired)
    assert isinstance(graph_error(401, body("InvalidAuthenticationToken"), {}), ReauthRequired)
    assert isinstance(graph_error(403, body("ErrorAccessDenied"), {}), ReauthRequired)
    assert isinstance(graph_error(403, body("Authorization_RequestDenied"), {}), ReauthRequired)
    assert isinstance(graph_error(403, body("ErrorQuotaExceeded"), {}), ProviderRejected)
    limited = graph_error(429, body("TooManyRequests"), {"retry-after": "17"})
    assert isinstance(limited, RateLimited)
    assert limited.retry_after_s == 17
    assert isinstance(graph_error(429, None, {}), RateLimited)
    for status in (500, 502, 503, 504, 599):
        assert isinstance(graph_error(status, None, {}), ProviderUnavailable)
    rejected = graph_error(404, body("ErrorItemNotFound"), {})
    assert isinstance(rejected, ProviderRejected)
    assert rejected.status == 404
    assert "ada@" not in str(rejected)  # Graph's message text (it can name people) never leaks
    now = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
    assert retry_after_s({"Retry-After": "Mon, 02 Nov 2026 09:00:30 GMT"}, now=now) == 30
    assert retry_after_s({"Retry-After": "soon"}) is None


# -- calendar ----------------------------------------------------------------------------------


@pytest.fixture
def calendar_box(sandbox: Any) -> Iterator[str]:
    """A mailbox whose primary calendar holds a weekly series (one moved, one cancelled
    occurrence), a single meeting the user organises and an all-day event."""
    store = sandbox.state.store
    me = f"grace-{uuid.uuid4().hex[:8]}@contoso.test"
    store.create_mailbox(
        me, provider="microsoft", display_name="Grace Hopper",
        aliases=[{"email": "g.hopper@contoso.test", "display_name": "Grace", "is_primary": False,
                  "treat_as_alias": True}],
        time_zone="Europe/Berlin",
    )  # fmt: skip
    cal = store.upsert_calendar(
        me, id="AAMkADcal0", summary="Calendar", time_zone="Europe/Berlin", is_primary=True
    )
    people = [
        {"email": "g.hopper@contoso.test", "name": "Grace", "response": "accepted"},
        {"email": "ada@example.org", "name": "=?utf-8?q?Ada_L=C3=B6we?=", "response": "tentative",
         "optional": True},
        {"email": "room1@contoso.test", "name": "Room 1", "response": "accepted",
         "resource": True},
    ]  # fmt: skip
    series = {
        "id": "series1", "status": "confirmed", "summary": "Weekly 1:1", "ical_uid": "uid-series1",
        "start": {"date_time": "2026-11-02T10:00:00+01:00", "time_zone": "Europe/Berlin"},
        "end": {"date_time": "2026-11-02T10:30:00+01:00", "time_zone": "Europe/Berlin"},
        "organizer": {"email": "ada@example.org", "name": "Ada"}, "attendees": people,
        "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=4"],
    }  # fmt: skip
    moved = {
        **series, "id": "series1_moved", "recurrence": [], "recurring_event_id": "series1",
        "original_start": {"date_time": "2026-11-09T10:00:00+01:00"},
        "start": {"date_time": "2026-11-09T15:00:00+01:00", "time_zone": "Europe/Berlin"},
        "end": {"date_time": "2026-11-09T15:30:00+01:00", "time_zone": "Europe/Berlin"},
    }  # fmt: skip
    cancelled = {**moved, "id": "series1_cancel", "status": "cancelled",
                 "original_start": {"date_time": "2026-11-16T10:00:00+01:00"}}  # fmt: skip
    single = {
        "id": "single1", "status": "confirmed", "summary": "Lunch",
        "start": {"date_time": "2026-11-04T12:00:00+00:00", "time_zone": "UTC"},
        "end": {"date_time": "2026-11-04T13:00:00+00:00", "time_zone": "UTC"},
        "organizer": {"email": me, "name": "Grace"}, "attendees": people[1:2],
    }  # fmt: skip
    all_day = {
        "id": "allday1", "status": "confirmed", "summary": "Offsite",
        "start": {"date": "2026-11-20"}, "end": {"date": "2026-11-21"},
        "organizer": {"email": me, "name": "Grace"}, "attendees": [],
    }  # fmt: skip
    for event in (series, moved, cancelled, single, all_day):
        store.put_event(me, cal["id"], event)
    yield me
    store.delete_mailbox(me)


def test_calendar_view_delta_full_incremental_and_expiry(sandbox: Any, calendar_box: str) -> None:
    store = sandbox.state.store
    clock = {"now": T0}
    source = make_source(sandbox, calendar_box, now=lambda: clock["now"])
    calendar = next(s for s in source.list_streams() if s.startswith("calendar:"))
    replica = Replica()
    replica.sync(source, [calendar])
    events = replica.events
    assert replica.owners == {calendar_box, "g.hopper@contoso.test"}
    by_kind = sorted(
        (e.start_at, e.recurring_event_id is not None, e.is_all_day) for e in events.values()
    )
    assert by_kind == [
        (dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC), True, False),
        (dt.datetime(2026, 11, 4, 12, 0, tzinfo=dt.UTC), False, False),
        (dt.datetime(2026, 11, 9, 14, 0, tzinfo=dt.UTC), True, False),  # moved, not 9:00
        (dt.datetime(2026, 11, 20, 0, 0, tzinfo=dt.UTC), False, True),
        (dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC), True, False),  # 16th cancelled
    ]
    weekly = [e for e in events.values() if e.recurring_event_id]
    assert {e.recurring_event_id for e in weekly} == {"series1"}
    assert all(e.self_response == "accepted" for e in weekly)
    first = min(weekly, key=lambda e: e.start_at or T0)
    assert first.end_at == dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)
    assert first.organizer == Address("ada@example.org", "Ada")
    assert first.ical_uid == "uid-series1"
    attendees = {a.address: a for a in first.attendees}
    assert attendees["g.hopper@contoso.test"].is_self
    assert attendees["g.hopper@contoso.test"].response == "accepted"
    assert attendees["ada@example.org"].response == "tentative"
    assert attendees["ada@example.org"].is_optional
    assert attendees["ada@example.org"].name == "Ada Löwe"
    assert attendees["room1@contoso.test"].is_resource
    lunch = events["single1"]
    assert lunch.self_response == "organizer"
    assert lunch.organizer == Address(calendar_box, "Grace")
    assert not any(e.is_cancelled for e in events.values())

    # Incremental: the lunch is deleted, the all-day event moves a day.
    cal_id = store.list_calendars(calendar_box)[0]["id"]
    store.delete_event(calendar_box, cal_id, "single1")
    moved_day = {**store.get_event(calendar_box, cal_id, "allday1"),
                 "start": {"date": "2026-11-21"}, "end": {"date": "2026-11-22"}}  # fmt: skip
    store.put_event(calendar_box, cal_id, moved_day)
    replica.sync(source, [calendar])
    assert "single1" not in replica.events
    assert replica.events["allday1"].start_at == dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
    assert len(replica.events) == 4

    # The window is fixed by the first call; after a month the stream is restarted.
    cursor = replica.cursors[calendar][0]
    assert cursor is not None
    clock["now"] = T0 + dt.timedelta(days=31)
    with pytest.raises(CursorExpired):
        source.fetch_page(calendar, cursor=cursor, backfill_cursor=None)
    clock["now"] = T0 + dt.timedelta(days=1)
    assert source.fetch_page(calendar, cursor=cursor, backfill_cursor=None).changes == []

    # Live Graph sends occurrences sparsely; their master is fetched once when not on the page.
    sparse = {"id": "occ", "type": "occurrence", "seriesMasterId": "series1"}
    masters = source._missing_masters([sparse])
    assert masters["series1"]["organizer"]["emailAddress"]["address"] == "ada@example.org"
    assert source._missing_masters([{**sparse, "seriesMasterId": "gone"}]) == {}

    store.expire_cursors(calendar_box)
    with pytest.raises(CursorExpired):
        source.fetch_page(calendar, cursor=cursor, backfill_cursor=None)


def test_sparse_occurrences_borrow_from_their_master() -> None:
    from connectors.microsoft.calendar import map_delta_items

    master = {
        "id": "M", "type": "seriesMaster", "iCalUId": "uid-M", "isOrganizer": False,
        "responseStatus": {"response": "declined"},
        "organizer": {"emailAddress": {"name": "Ada", "address": "ada@example.org"}},
        "attendees": [{"type": "required", "status": {"response": "accepted"},
                       "emailAddress": {"name": "me@x.test", "address": "me@x.test"}}],
    }  # fmt: skip
    # What live Graph sends for an occurrence in calendarView delta (docs issue 22197).
    sparse = {
        "id": "O1", "type": "occurrence", "seriesMasterId": "M",
        "start": {"dateTime": "2026-11-02T09:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-11-02T09:30:00.0000000", "timeZone": "UTC"},
    }  # fmt: skip
    removed = {"id": "O2", "@removed": {"reason": "deleted"}}
    changes = map_delta_items(
        [sparse, master, removed], calendar_id="C", owner_addresses=["ME@x.test"]
    )
    assert len(changes) == 2
    occurrence, gone = changes
    assert isinstance(occurrence, EventRecord)
    assert occurrence.organizer == Address("ada@example.org", "Ada")
    assert occurrence.self_response == "declined"
    assert occurrence.ical_uid == "uid-M"
    assert occurrence.attendees[0].is_self
    assert occurrence.attendees[0].name is None  # Graph repeats the address as the name
    assert occurrence.start_at == dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC)
    assert gone == EventDeleted("C", "O2")


def test_windows_time_zone_names_are_read_in_their_zone(sandbox: Any, calendar_box: str) -> None:
    """Graph may answer in the mailbox's Windows zone ("W. Europe Standard Time") whatever we
    asked for (dateTimeTimeZone allows Windows names): meeting times must still be right."""
    sandbox.state.config["graph_ignore_timezone_preference"] = True
    source = make_source(sandbox, calendar_box, now=lambda: T0)
    calendar = next(s for s in source.list_streams() if s.startswith("calendar:"))
    replica = Replica()
    replica.sync(source, [calendar])

    def utc(*args: int) -> dt.datetime:
        return dt.datetime(*args, tzinfo=dt.UTC)

    assert sorted((e.start_at, e.end_at, e.is_all_day) for e in replica.events.values()) == [
        (utc(2026, 11, 2, 9, 0), utc(2026, 11, 2, 9, 30), False),
        (utc(2026, 11, 4, 12, 0), utc(2026, 11, 4, 13, 0), False),
        (utc(2026, 11, 9, 14, 0), utc(2026, 11, 9, 14, 30), False),
        # all-day: the date as the calendar shows it, whatever zone the answer is in
        (utc(2026, 11, 20), utc(2026, 11, 21), True),
        (utc(2026, 11, 23, 9, 0), utc(2026, 11, 23, 9, 30), False),
    ]


def test_zone_names_the_connector_cannot_place_fall_back_to_utc() -> None:
    from connectors.microsoft.calendar import parse_event_time

    wall = "2019-03-15T12:00:00.0000000"
    assert parse_event_time({"dateTime": wall, "timeZone": "Pacific Standard Time"}) == (
        dt.datetime(2019, 3, 15, 19, 0, tzinfo=dt.UTC)  # PDT, UTC-7
    )
    assert parse_event_time({"dateTime": wall, "timeZone": "Europe/Paris"}) == dt.datetime(
        2019, 3, 15, 11, 0, tzinfo=dt.UTC
    )
    assert parse_event_time({"dateTime": wall, "timeZone": "Customized Time Zone"}) == (
        dt.datetime(2019, 3, 15, 12, 0, tzinfo=dt.UTC)
    )
    assert parse_event_time({"dateTime": wall, "timeZone": "w. europe standard time"}) == (
        dt.datetime(2019, 3, 15, 11, 0, tzinfo=dt.UTC)
    )
    assert parse_event_time({"dateTime": wall, "timeZone": "Nowhere Standard Time"}) == (
        dt.datetime(2019, 3, 15, 12, 0, tzinfo=dt.UTC)
    )


def test_sparse_delta_rows_are_reread_and_never_blank_what_is_stored(
    sandbox: Any, https_session: Any, make_mailbox: Callable[..., str]
) -> None:
    """Delta may send an update as its id and changed fields only (delta-query-overview):
    participants, subjects and times stay right, removals between delta and re-read are seen."""
    mailbox = make_mailbox("microsoft", messages=60)
    store = sandbox.state.store
    ids = folder_ids(sandbox, https_session, mailbox)
    source = make_source(sandbox, mailbox)
    streams = source.list_streams()
    replica = Replica()
    replica.sync(source, streams)
    assert_replica_matches_store(sandbox, mailbox, replica, ids)

    sandbox.state.config["graph_sparse_delta_updates"] = True
    rows = [
        row
        for folder in SYNCED_WELL_KNOWN
        for row in store.list_messages(mailbox, folder=folder, page_size=100)[0]
    ]
    assert len(rows) > 22
    for row in rows[:21]:  # more than one $batch of re-reads
        store.set_read(mailbox, row["id"], is_read=not row["is_read"])
    moved = next(r for r in rows[21:] if r["folder"] != "archive")
    store.move_message(mailbox, moved["id"], folder="archive")  # arrives sparse there
    events = {e.provider_event_id: e for e in replica.events.values() if not e.recurring_event_id}
    event_id, before = next(iter(events.items()))
    cal_id = before.provider_calendar_id
    body = store.get_event(mailbox, cal_id, event_id)
    later = {k: dict(v) for k, v in (("start", body["start"]), ("end", body["end"]))}
    for point in later.values():
        if "date_time" in point:
            shifted = dt.datetime.fromisoformat(point["date_time"]) + dt.timedelta(hours=1)
            point["date_time"] = shifted.isoformat()
        else:
            point["date"] = (
                dt.date.fromisoformat(point["date"]) + dt.timedelta(days=1)
            ).isoformat()
    store.put_event(mailbox, cal_id, {**body, **later, "summary": "Moved"})

    pacer_units = RecordingPacer()
    fresh = make_source(sandbox, mailbox, pacer=pacer_units)
    replica.sync(fresh, fresh.list_streams())
    assert_replica_matches_store(sandbox, mailbox, replica, ids)
    assert any(units > 1 for units, _ in pacer_units.acquired), "re-read in $batch"
    after = replica.events[event_id]
    shift = dt.timedelta(days=1) if before.is_all_day else dt.timedelta(hours=1)
    assert (after.start_at, after.end_at) == (before.start_at + shift, before.end_at + shift)  # type: ignore[operator]
    assert (after.organizer, after.attendees, after.self_response) == (
        before.organizer,
        before.attendees,
        before.self_response,
    )


def test_a_sparse_row_gone_before_its_reread_is_a_removal(sandbox: Any, box: str) -> None:
    source = make_source(sandbox, box)
    stream = source.list_streams()[1]  # Inbox
    folder_id = stream.removeprefix("mail:")
    first = source.fetch_page(stream, cursor=None, backfill_cursor=None)
    gone = first.changes[0].provider_message_id  # type: ignore[union-attr]
    sparse = [{"id": gone, "isRead": True}, {"id": "AAMkADnot0there", "isRead": False}]
    changes = source._message_changes(sparse, source._discover_folders()[folder_id])
    assert [type(c).__name__ for c in changes] == ["MessageRecord", "MessageDeleted"]
    sandbox.state.store.delete_message(box, gone)
    changes = source._message_changes(sparse[:1], source._discover_folders()[folder_id])
    assert changes == [MessageDeleted(gone, folder=folder_id)]


# -- calendars without delta, refused resources, discovery ----------------------------------


def test_calendars_without_delta_are_listed_and_their_deletions_swept(
    browser: Any, make_mailbox: Callable[..., str], settings: Any, sandbox: Any
) -> None:
    """v1.0 documents calendarView delta for the default calendar only: under a Graph that
    routes nothing else, the default calendar and another owned one both sync, and an event
    deleted from the other one disappears on the next run (a listing + the engine's sweep)."""
    from sqlalchemy import select

    from core.models import CalendarEvent, SyncStream
    from tests.functional.syncing import factory_for, make_all_due, sync_until_idle

    sandbox.state.config["graph_documented_routes_only"] = True
    mailbox = make_mailbox("microsoft", messages=10)
    store = sandbox.state.store
    calendars = store.list_calendars(mailbox)
    default = next(c["id"] for c in calendars if c["is_primary"])
    side = next(c["id"] for c in calendars if c["summary"] == "Side project")
    soon = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=2)
    for cal_id, event_id in ((default, "meet-default"), (side, "meet-side")):
        store.put_event(mailbox, cal_id, {
            "id": event_id, "status": "confirmed", "summary": "Planning",
            "start": {"date_time": soon.isoformat(), "time_zone": "UTC"},
            "end": {"date_time": (soon + dt.timedelta(hours=1)).isoformat(), "time_zone": "UTC"},
            "organizer": {"email": "ada@example.org", "name": "Ada"},
            "attendees": [{"email": mailbox, "name": "Me", "response": "accepted"}],
        })  # fmt: skip
    status, _ = browser.connect("microsoft", mailbox)
    assert status == 302
    [account] = browser.client.get("/api/v1/accounts").get_json()["accounts"]
    account_id = uuid.UUID(account["id"])

    def stored() -> set[tuple[str, str]]:
        with factory_for(settings)() as session:
            rows = session.scalars(
                select(CalendarEvent).where(CalendarEvent.account_id == account_id)
            ).all()
            return {(e.provider_calendar_id, e.provider_event_id) for e in rows}

    sync_until_idle(settings, account_id)
    first = stored()
    assert {(default, "meet-default"), (side, "meet-side")} <= first
    with factory_for(settings)() as session:
        cursor = session.scalars(
            select(SyncStream.cursor).where(
                SyncStream.account_id == account_id, SyncStream.stream == f"calendar:{side}"
            )
        ).one()
    assert '"mode":"list"' in (cursor or "")

    store.delete_event(mailbox, side, "meet-side")
    sandbox.state.controls.reset_counters()
    make_all_due(settings, account_id)
    sync_until_idle(settings, account_id)
    assert stored() == first - {(side, "meet-side")}
    counters = sandbox.state.controls.counters(mailbox)
    # Remembered in the cursor: no refused delta probe per round, only the default's deltaLink.
    assert counters[("graph", "calendarView.delta")]["requests"] == 1
    assert counters[("graph", "calendarView.list")]["requests"] >= 1


def test_the_calendar_listing_follows_next_links(sandbox: Any, calendar_box: str) -> None:
    owned = [f"AAMkADown{n:03d}" for n in range(101)]  # past one page of the listing
    for calendar_id in owned:
        sandbox.state.store.upsert_calendar(
            calendar_box, id=calendar_id, summary=calendar_id, time_zone="UTC"
        )
    streams = make_source(sandbox, calendar_box).list_streams()
    calendars = [s for s in streams if s.startswith("calendar:")]
    assert calendars[0] == "calendar:AAMkADcal0"  # the default first
    assert sorted(calendars[1:]) == [f"calendar:{c}" for c in owned]


def test_one_refused_folder_rejects_that_stream_not_the_account(
    browser: Any, make_mailbox: Callable[..., str], settings: Any, sandbox: Any
) -> None:
    """A 403 ErrorAccessDenied on one folder's delta (a resource-level denial) backs that
    stream off; the account is not parked as needing a new sign-in."""
    from core.models import AccountState, ConnectedAccount
    from sandbox.errors import GraphError
    from tests.functional.syncing import (
        assert_same_messages,
        factory_for,
        run_once,
        sandbox_messages,
        stored_messages,
        sync_until_idle,
    )

    mailbox = make_mailbox("microsoft", messages=30)
    status, _ = browser.connect("microsoft", mailbox)
    assert status == 302
    [account] = browser.client.get("/api/v1/accounts").get_json()["accounts"]
    account_id = uuid.UUID(account["id"])
    denied = GraphError(
        403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
    )
    sandbox.state.controls.fail_next(
        denied, service="graph", mailbox=mailbox, method="messages.delta"
    )
    result = run_once(settings, account_id)
    assert "ProviderRejected" in result.errors
    assert result.state == "active"
    with factory_for(settings)() as session:
        assert session.get(ConnectedAccount, account_id).state is AccountState.ACTIVE
    sync_until_idle(settings, account_id)
    assert_same_messages(
        stored_messages(settings, account_id),
        sandbox_messages(sandbox, mailbox, "microsoft"),
        "microsoft",
    )


def test_403_is_reauth_only_for_account_level_requests(sandbox: Any, box: str) -> None:
    from sandbox.errors import GraphError

    source = make_source(sandbox, box)
    stream = source.list_streams()[0]
    controls = sandbox.state.controls

    def denied() -> GraphError:
        return GraphError(403, "ErrorAccessDenied", "Access is denied.")

    controls.fail_next(denied(), service="graph", mailbox=box, method="messages.delta")
    with pytest.raises(ProviderRejected) as raised:
        source.fetch_page(stream, cursor=None, backfill_cursor=None)
    assert raised.value.status == 403
    controls.fail_next(denied(), service="graph", mailbox=box, method="calendars.list")
    with pytest.raises(ReauthRequired):
        make_source(sandbox, box).list_streams()
    controls.fail_next(denied(), service="graph", mailbox=box, method="mailFolders.list")
    with pytest.raises(ReauthRequired):
        make_source(sandbox, box).list_streams()
    assert isinstance(
        graph_error(403, {"error": {"code": "ErrorAccessDenied"}}, {}, account_level=False),
        ProviderRejected,
    )


def test_well_known_folders_a_mailbox_lacks_do_not_fail_discovery(sandbox: Any, box: str) -> None:
    from sandbox.errors import GraphError

    controls = sandbox.state.controls
    # A consumer mailbox refusing a well-known name it does not have: that folder is absent.
    controls.fail_next(
        GraphError(400, "ErrorInvalidRequest", "The specified folder could not be found."),
        service="graph",
        mailbox=box,
        method="mailFolders.get",
    )
    streams = make_source(sandbox, box).list_streams()
    assert len([s for s in streams if s.startswith("mail:")]) >= 3
    # An outage of one item still fails discovery, to be retried.
    controls.fail_next("500", service="graph", mailbox=box, method="mailFolders.get")
    with pytest.raises(ProviderUnavailable):
        make_source(sandbox, box).list_streams()


def test_links_with_or_without_the_default_port_are_the_same_origin() -> None:
    from connectors.microsoft.graph import GraphClient

    for root in ("https://graph.microsoft.com/v1.0", "https://graph.microsoft.com:443/v1.0"):
        config = MicrosoftConfig(client_id="c", client_secret="s", graph_root=root)
        graph = GraphClient(config, token=lambda force=False: "t", pacer=RecordingPacer())
        for link in (
            "https://graph.microsoft.com/v1.0/me/messages?$skiptoken=x",
            "https://GRAPH.microsoft.com:443/v1.0/me/messages?$skiptoken=x",
        ):
            assert graph.url(link) == link
        for foreign in (
            "https://graph.microsoft.com:8443/v1.0/me",
            "http://graph.microsoft.com/v1.0/me",
            "https://graph.microsoft.com.evil.test/v1.0/me",
            "https://graph.microsoft.com:99999/v1.0/me",
        ):
            with pytest.raises(ProviderRejected):
                graph.url(foreign)
