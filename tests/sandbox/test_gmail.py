"""The sandbox's Gmail API, driven through google-api-python-client like Warmline's connector.

Tokens come from the sandbox's own /token endpoint (auto-consent), the service is built from the
bundled static discovery document with ``api_endpoint`` pointed at the sandbox, and batches use
``BatchHttpRequest(batch_uri=...)`` because the client ignores ``api_endpoint`` for batches
(PROVIDERS.md §1.5).
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httplib2
import pytest
import requests
from google.auth.exceptions import RefreshError
from google.oauth2.credentials import Credentials
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from sandbox.controls import GMAIL_2026_COSTS, QuotaProfile

CLIENT_ID = "warmline-sandbox"
CLIENT_SECRET = "sandbox-secret"
REDIRECT_URI = "http://127.0.0.1:9/cb"
G = "https://www.googleapis.com/auth/"
METADATA = G + "gmail.metadata"
READONLY = G + "gmail.readonly"
SETTINGS = G + "gmail.settings.basic"

NOT_FOUND = {
    "error": {
        "code": 404,
        "message": "Requested entity was not found.",
        "errors": [
            {"message": "Requested entity was not found.", "domain": "global", "reason": "notFound"}
        ],
        "status": "NOT_FOUND",
    }
}


# -- fixtures ---------------------------------------------------------------------------------


def _message(i: int, *, base_ms: int = 1_700_000_000_000) -> dict[str, Any]:
    labels = ["INBOX", "UNREAD"] if i % 3 else ["SENT"]
    if i % 7 == 0:
        labels.append("Label_1")
    if i % 11 == 0:
        labels = ["SPAM"]
    return {
        "id": f"{0x18B0000000000000 + i:016x}",
        "thread_id": f"{0x18B0000000000000 + i - i % 2:016x}",
        # Several messages share a timestamp: ordering must fall back to the id.
        "internal_ms": base_ms + (i // 2) * 60_000,
        "labels": labels,
        "headers": [
            ["Delivered-To", "ada@example.com"],
            ["From", f"Bob {i} <bob{i}@example.org>"],
            ["To", "Ada <ada@example.com>"],
            ["Subject", f"=?UTF-8?Q?Hello_{i}?="],
            ["Date", "Tue, 14 Nov 2023 22:13:20 +0000"],
            ["Message-ID", f"<m{i}@example.org>"],
            ["Content-Type", "multipart/alternative; boundary=x"],
        ],
        "size_estimate": 1000 + i,
    }


def seed_mailbox(sandbox: Any, n: int, *, record_history: bool = False) -> str:
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    store = sandbox.state.store
    store.create_mailbox(
        email,
        provider="google",
        display_name="Ada Lovelace",
        aliases=[
            {"email": email, "display_name": "Ada Lovelace", "is_primary": True},
            {"email": "ada@alias.example", "display_name": "Ada", "treat_as_alias": True},
        ],
        time_zone="Europe/London",
    )
    store.put_label(email, id="Label_1", name="Clients")
    store.add_messages(email, (_message(i) for i in range(n)), record_history=record_history)
    return email


def grant(sandbox: Any, email: str, scopes: list[str]) -> Credentials:
    """Get tokens from the sandbox's own OAuth endpoints (auto-consent)."""
    sandbox.state.config["auto_consent"] = True
    try:
        auth = requests.get(
            sandbox.http_url + "/o/oauth2/v2/auth",
            params={
                "client_id": CLIENT_ID,
                "redirect_uri": REDIRECT_URI,
                "response_type": "code",
                "scope": " ".join(scopes),
                "access_type": "offline",
                "prompt": "consent",
                "login_hint": email,
            },
            allow_redirects=False,
            timeout=10,
        )
    finally:
        sandbox.state.config["auto_consent"] = False
    code = parse_qs(urlsplit(auth.headers["Location"]).query)["code"][0]
    token = requests.post(
        sandbox.http_url + "/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    ).json()
    return Credentials(
        token=token["access_token"],
        refresh_token=token.get("refresh_token"),
        token_uri=sandbox.http_url + "/token",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        scopes=token["scope"].split(),
    )


def gmail(sandbox: Any, creds: Credentials) -> Any:
    return build(
        "gmail",
        "v1",
        credentials=creds,
        static_discovery=True,
        client_options={"api_endpoint": sandbox.http_url + "/"},
    )


@pytest.fixture(scope="module")
def box(sandbox: Any) -> str:
    """A 230-message mailbox shared by the module's read-only tests."""
    return seed_mailbox(sandbox, 230)


@pytest.fixture(autouse=True)
def _quotas_off_for_box(sandbox: Any, box: str) -> None:
    # The shared mailbox takes many calls; conftest resets controls after every test.
    sandbox.state.controls.configure(box, enabled=False)


@pytest.fixture(scope="module")
def meta(sandbox: Any, box: str) -> Any:
    return gmail(sandbox, grant(sandbox, box, [METADATA]))


@pytest.fixture(scope="module")
def readonly(sandbox: Any, box: str) -> Any:
    return gmail(sandbox, grant(sandbox, box, [READONLY]))


def _reason(exc: HttpError) -> tuple[int, str, str]:
    body = json.loads(exc.content)["error"]
    return exc.resp.status, body["errors"][0]["reason"], body["message"]


# -- listing ----------------------------------------------------------------------------------


def _store_ids(sandbox: Any, email: str, **filters: Any) -> list[str]:
    ids: list[str] = []
    after = None
    while True:
        rows, after = sandbox.state.store.list_messages(
            email, page_size=1000, after=after, **filters
        )
        ids += [r["id"] for r in rows]
        if after is None:
            return ids


def test_messages_list_pages_match_the_store_newest_first(sandbox: Any, box: str, meta: Any):
    seen: list[str] = []
    request = meta.users().messages().list(userId="me", maxResults=37)
    pages = 0
    while request is not None:
        page = request.execute()
        pages += 1
        assert all(set(m) == {"id", "threadId"} for m in page["messages"])
        seen += [m["id"] for m in page["messages"]]
        request = meta.users().messages().list_next(request, page)
    expected = _store_ids(sandbox, box)
    assert seen == expected
    assert len(seen) == 230 - 21  # spam hidden by default
    assert pages == -(-len(expected) // 37)
    times = [sandbox.state.store.get_message(box, i)["internal_ms"] for i in seen]
    assert times == sorted(times, reverse=True)

    both = meta.users().messages().list(userId="me", labelIds=["INBOX", "Label_1"]).execute()
    ids = [m["id"] for m in both["messages"]]
    assert ids == _store_ids(sandbox, box, label_ids=["INBOX", "Label_1"])
    assert both["resultSizeEstimate"] == len(ids)

    with_spam = meta.users().messages().list(userId="me", includeSpamTrash=True, maxResults=500)
    assert len(with_spam.execute()["messages"]) == 230

    none = meta.users().messages().list(userId="me", labelIds=["STARRED"]).execute()
    assert none == {"resultSizeEstimate": 0}


def test_generated_mailbox_pages_match_the_store(sandbox: Any, make_mailbox: Any):
    email = make_mailbox(messages=120)
    service = gmail(sandbox, grant(sandbox, email, [METADATA]))
    seen: list[str] = []
    request = service.users().messages().list(userId="me", maxResults=50, includeSpamTrash=True)
    while request is not None:
        page = request.execute()
        seen += [m["id"] for m in page.get("messages", [])]
        request = service.users().messages().list_next(request, page)
    assert seen == _store_ids(sandbox, email, include_spam_trash=True)
    first = (
        service.users()
        .messages()
        .get(userId="me", id=seen[0], format="metadata", metadataHeaders=["From", "To", "Date"])
        .execute()
    )
    names = [h["name"].lower() for h in first["payload"]["headers"]]
    assert set(names) <= {"from", "to", "date"}
    assert "from" in names


def test_max_results_is_capped_at_500(sandbox: Any, box: str, meta: Any):
    page = meta.users().messages().list(userId="me", maxResults=5000, includeSpamTrash=True)
    assert len(page.execute()["messages"]) == 230


def test_q_is_forbidden_under_metadata_even_with_readonly(sandbox: Any, box: str):
    both = gmail(sandbox, grant(sandbox, box, [METADATA, READONLY]))
    with pytest.raises(HttpError) as exc:
        both.users().messages().list(userId="me", q="in:inbox").execute()
    assert _reason(exc.value) == (403, "forbidden", "Metadata scope does not support 'q' parameter")


def test_q_label_terms_work_with_readonly(sandbox: Any, box: str, readonly: Any):
    page = readonly.users().messages().list(userId="me", q="in:inbox label:Label_1").execute()
    assert [m["id"] for m in page["messages"]] == _store_ids(
        sandbox, box, label_ids=["INBOX", "Label_1"]
    )


# -- messages.get -----------------------------------------------------------------------------


def test_get_metadata_filters_headers_case_insensitively(sandbox: Any, box: str, meta: Any):
    stored = _message(4)
    msg = (
        meta.users()
        .messages()
        .get(userId="me", id=stored["id"], format="metadata", metadataHeaders=["subject", "FROM"])
        .execute()
    )
    row = sandbox.state.store.get_message(box, stored["id"])
    assert msg == {
        "id": stored["id"],
        "threadId": stored["thread_id"],
        "labelIds": ["INBOX", "UNREAD"],
        "sizeEstimate": 1004,
        "historyId": str(row["history_id"]),
        "internalDate": str(stored["internal_ms"]),
        "payload": {
            "mimeType": "multipart/alternative",
            # message order and original spelling, RFC 2047 word untouched
            "headers": [
                {"name": "From", "value": "Bob 4 <bob4@example.org>"},
                {"name": "Subject", "value": "=?UTF-8?Q?Hello_4?="},
            ],
        },
    }
    minimal = meta.users().messages().get(userId="me", id=stored["id"], format="minimal")
    assert "payload" not in minimal.execute()


def test_default_format_full_is_refused_under_metadata(box: str, meta: Any, readonly: Any):
    mid = _message(5)["id"]
    with pytest.raises(HttpError) as exc:
        meta.users().messages().get(userId="me", id=mid).execute()
    assert _reason(exc.value) == (403, "forbidden", "Metadata scope doesn't allow format FULL")
    with pytest.raises(HttpError) as exc:
        meta.users().messages().get(userId="me", id=mid, format="raw").execute()
    assert exc.value.resp.status == 403

    full = readonly.users().messages().get(userId="me", id=mid).execute()
    assert len(full["payload"]["headers"]) == 7


def test_unknown_or_deleted_message_is_404(sandbox: Any, box: str, meta: Any):
    with pytest.raises(HttpError) as exc:
        meta.users().messages().get(userId="me", id="ffffffffffffffff", format="minimal").execute()
    assert exc.value.resp.status == 404
    assert json.loads(exc.value.content) == NOT_FOUND


# -- profile, labels, threads, sendAs ---------------------------------------------------------


def test_profile_labels_and_threads(sandbox: Any, box: str, meta: Any):
    profile = meta.users().getProfile(userId="me").execute()
    assert profile["emailAddress"] == box
    assert profile["messagesTotal"] == 230
    assert profile["threadsTotal"] == 115
    assert profile["historyId"] == str(sandbox.state.store.get_mailbox(box)["history_id"])

    labels = {x["id"]: x for x in meta.users().labels().list(userId="me").execute()["labels"]}
    assert labels["INBOX"]["type"] == "system"
    assert labels["Label_1"] == {
        "id": "Label_1",
        "name": "Clients",
        "messageListVisibility": "show",
        "labelListVisibility": "labelShow",
        "type": "user",
    }

    threads = meta.users().threads().list(userId="me", maxResults=10).execute()
    assert len(threads["threads"]) == 10
    assert "nextPageToken" in threads
    first = threads["threads"][0]["id"]
    thread = (
        meta.users()
        .threads()
        .get(userId="me", id=first, format="metadata", metadataHeaders=["Message-ID"])
        .execute()
    )
    dates = [int(m["internalDate"]) for m in thread["messages"]]
    assert dates == sorted(dates)
    assert all(len(m["payload"]["headers"]) == 1 for m in thread["messages"])


def test_send_as_needs_more_than_metadata(sandbox: Any, box: str, meta: Any):
    with pytest.raises(HttpError) as exc:
        meta.users().settings().sendAs().list(userId="me").execute()
    status, reason, message = _reason(exc.value)
    assert (status, reason) == (403, "insufficientPermissions")
    assert message == "Request had insufficient authentication scopes."

    settings = gmail(sandbox, grant(sandbox, box, [SETTINGS]))
    send_as = settings.users().settings().sendAs().list(userId="me").execute()["sendAs"]
    assert send_as[0] == {
        "sendAsEmail": box,
        "displayName": "Ada Lovelace",
        "isPrimary": True,
        "isDefault": True,
    }
    assert send_as[1]["treatAsAlias"] is True
    assert send_as[1]["verificationStatus"] == "accepted"


def test_missing_scope_in_the_newer_error_shape(sandbox: Any, box: str, meta: Any):
    sandbox.state.config["google_scope_error_style"] = "details"
    with pytest.raises(HttpError) as exc:
        meta.users().settings().sendAs().list(userId="me").execute()
    assert exc.value.resp.status == 403
    assert json.loads(exc.value.content) == {
        "error": {
            "code": 403,
            "message": "Request had insufficient authentication scopes.",
            "status": "PERMISSION_DENIED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                    "domain": "googleapis.com",
                    "metadata": {"service": "gmail.googleapis.com"},
                }
            ],
        }
    }
    assert 'error="insufficient_scope"' in exc.value.resp["www-authenticate"]


# -- history ----------------------------------------------------------------------------------


def test_history_can_answer_an_empty_page_with_a_next_page_token(sandbox: Any):
    email = seed_mailbox(sandbox, 5, record_history=True)
    service = gmail(sandbox, grant(sandbox, email, [METADATA]))
    start = service.users().getProfile(userId="me").execute()["historyId"]
    sandbox.state.store.modify_labels(email, _message(2)["id"], add=["STARRED"])
    sandbox.state.config["gmail_history_empty_first_page"] = True

    first = service.users().history().list(userId="me", startHistoryId=start).execute()
    assert "history" not in first
    assert first["nextPageToken"]
    rest = (
        service.users()
        .history()
        .list(userId="me", startHistoryId=start, pageToken=first["nextPageToken"])
        .execute()
    )
    assert [r["labelsAdded"][0]["labelIds"] for r in rest["history"]] == [["STARRED"]]
    assert "nextPageToken" not in rest
    # nothing to give: an ordinary empty answer, no token
    now = rest["historyId"]
    assert "nextPageToken" not in (
        service.users().history().list(userId="me", startHistoryId=now).execute()
    )


def test_history_after_mutations_and_404_when_expired(sandbox: Any):
    email = seed_mailbox(sandbox, 5, record_history=True)
    service = gmail(sandbox, grant(sandbox, email, [METADATA]))
    start = service.users().getProfile(userId="me").execute()["historyId"]
    store = sandbox.state.store
    new = {**_message(50), "labels": ["INBOX"]}
    store.add_messages(email, [new])
    store.modify_labels(email, new["id"], add=["STARRED"], remove=["INBOX"])
    store.delete_message(email, _message(1)["id"])

    page = service.users().history().list(userId="me", startHistoryId=start).execute()
    assert page["historyId"] == str(store.get_mailbox(email)["history_id"])
    added, labelled, deleted = page["history"]
    ref = {"id": new["id"], "threadId": new["thread_id"]}
    assert added["messages"] == [ref]
    assert added["messagesAdded"] == [{"message": {**ref, "labelIds": ["INBOX"]}}]
    assert labelled["labelsAdded"] == [{"message": {**ref, "labelIds": ["STARRED"]},
                                        "labelIds": ["STARRED"]}]  # fmt: skip
    assert labelled["labelsRemoved"][0]["labelIds"] == ["INBOX"]
    assert deleted["messagesDeleted"][0]["message"]["id"] == _message(1)["id"]
    assert int(added["id"]) < int(labelled["id"]) < int(deleted["id"])

    # historyTypes filters, maxResults pages
    only_added = (
        service.users()
        .history()
        .list(userId="me", startHistoryId=start, historyTypes=["messageAdded"])
        .execute()
    )
    assert [h["id"] for h in only_added["history"]] == [added["id"]]
    request = service.users().history().list(userId="me", startHistoryId=start, maxResults=1)
    ids = []
    while request is not None:
        response = request.execute()
        ids += [h["id"] for h in response.get("history", [])]
        request = service.users().history().list_next(request, response)
    assert ids == [added["id"], labelled["id"], deleted["id"]]

    # the deleted message is gone
    with pytest.raises(HttpError) as exc:
        service.users().messages().get(
            userId="me", id=_message(1)["id"], format="minimal"
        ).execute()
    assert exc.value.resp.status == 404

    store.expire_cursors(email)
    with pytest.raises(HttpError) as exc:
        service.users().history().list(userId="me", startHistoryId=start).execute()
    assert exc.value.resp.status == 404
    assert json.loads(exc.value.content) == NOT_FOUND
    # a cursor taken after the expiry works again (after a change: the store's floor makes even
    # the current id stale right after expire_cursors, which Gmail would not do)
    store.modify_labels(email, new["id"], add=["IMPORTANT"])
    fresh = service.users().getProfile(userId="me").execute()["historyId"]
    assert (
        "history" not in service.users().history().list(userId="me", startHistoryId=fresh).execute()
    )


# -- watch / stop -----------------------------------------------------------------------------


def test_watch_and_stop(sandbox: Any, box: str, meta: Any):
    answer = (
        meta.users()
        .watch(userId="me", body={"topicName": "projects/p/topics/t", "labelIds": ["INBOX"]})
        .execute()
    )
    assert answer["historyId"] == str(sandbox.state.store.get_mailbox(box)["history_id"])
    assert int(answer["expiration"]) > 0
    assert len(sandbox.state.store.list_subscriptions(box, provider="google")) == 1
    assert meta.users().stop(userId="me").execute() == ""
    assert sandbox.state.store.list_subscriptions(box, provider="google") == []


# -- batch ------------------------------------------------------------------------------------


def _batch(sandbox: Any, service: Any, ids: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}

    def collect(request_id: str, response: Any, exception: Exception | None) -> None:
        results[request_id] = exception if exception is not None else response

    batch = BatchHttpRequest(callback=collect, batch_uri=sandbox.http_url + "/batch")
    for mid in ids:
        batch.add(
            service.users()
            .messages()
            .get(userId="me", id=mid, format="metadata", metadataHeaders=["From"])
        )
    batch.execute()
    return results


def test_batch_of_100_and_101(sandbox: Any, box: str, meta: Any):
    ids = _store_ids(sandbox, box)[:100]
    sandbox.state.controls.configure(box, gmail_concurrency=100)
    try:
        results = _batch(sandbox, meta, ids)
    finally:
        sandbox.state.controls.configure(box, gmail_concurrency=50)
    assert [results[str(i + 1)]["id"] for i in range(100)] == ids
    assert all(r["payload"]["headers"][0]["name"] == "From" for r in results.values())

    with pytest.raises(HttpError) as exc:
        _batch(sandbox, meta, [*ids, ids[0]])
    assert exc.value.resp.status == 400
    assert json.loads(exc.value.content) == {
        "error": {
            "code": 400,
            "message": "Inner request count exceeds the limit. Received: 101, Limit: 100",
            "status": "INVALID_ARGUMENT",
        }
    }


def test_batch_parts_fail_on_their_own(sandbox: Any):
    email = seed_mailbox(sandbox, 30)
    service = gmail(sandbox, grant(sandbox, email, [METADATA]))
    controls = sandbox.state.controls
    controls.profiles["tiny"] = QuotaProfile("tiny", 100, 60.0, dict(GMAIL_2026_COSTS))
    controls.configure(email, gmail_profile="tiny")  # 100 units = five messages.get at 20
    try:
        ids = [*_store_ids(sandbox, email)[:8], "ffffffffffffffff"]
        results = _batch(sandbox, service, ids)
    finally:
        controls.clear_overrides(email)
    ok = [k for k, v in results.items() if isinstance(v, dict)]
    limited = [k for k, v in results.items() if isinstance(v, HttpError)]
    assert ok == ["1", "2", "3", "4", "5"]
    assert [results[k].resp.status for k in limited] == [429, 429, 429, 429]
    assert _reason(results["6"])[1] == "rateLimitExceeded"


def test_batch_concurrency_cap_refuses_the_overflowing_parts(sandbox: Any):
    email = seed_mailbox(sandbox, 60)
    service = gmail(sandbox, grant(sandbox, email, [METADATA]))
    sandbox.state.controls.configure(email, enabled=True, gmail_profile="legacy")
    try:
        results = _batch(sandbox, service, _store_ids(sandbox, email, include_spam_trash=True))
    finally:
        sandbox.state.controls.clear_overrides(email)
    refused = [k for k, v in results.items() if isinstance(v, HttpError)]
    assert refused == [str(i) for i in range(51, 61)]
    assert _reason(results["51"]) == (
        429,
        "rateLimitExceeded",
        "Too many concurrent requests for user",
    )


def _no_refresh(sandbox: Any, token: str) -> Any:
    """A service whose transport does not refresh on 401, so the 401 itself surfaces."""
    http = AuthorizedHttp(Credentials(token=token), http=httplib2.Http(), refresh_status_codes=())
    return build(
        "gmail",
        "v1",
        http=http,
        static_discovery=True,
        client_options={"api_endpoint": sandbox.http_url + "/"},
    )


def test_revoked_token_is_401_and_batch_refresh_hits_invalid_grant(sandbox: Any, box: str):
    creds = grant(sandbox, box, [METADATA])
    revoked = requests.post(sandbox.http_url + "/revoke", data={"token": creds.token}, timeout=10)
    assert revoked.status_code == 200
    with pytest.raises(HttpError) as exc:
        _no_refresh(sandbox, creds.token).users().getProfile(userId="me").execute()
    assert _reason(exc.value)[:2] == (401, "authError")
    assert exc.value.resp["www-authenticate"].startswith(
        'Bearer realm="https://accounts.google.com/"'
    )
    # Each batch part answers 401; the client then refreshes once, and the grant is gone.
    with pytest.raises(RefreshError, match="invalid_grant"):
        _batch(sandbox, gmail(sandbox, creds), _store_ids(sandbox, box)[:2])


def test_expired_token_is_401(sandbox: Any, box: str):
    store = sandbox.state.store
    grant_row = store.create_grant(
        provider="google", mailbox=box, client_id=CLIENT_ID, scopes=METADATA
    )
    token = store.issue_access_token(grant_row["id"], METADATA, 0)
    with pytest.raises(HttpError) as exc:
        _no_refresh(sandbox, token).users().labels().list(userId="me").execute()
    assert _reason(exc.value)[:2] == (401, "authError")
