"""The sandbox's Microsoft Graph v1.0, driven over HTTPS with requests (as Warmline's connector
does): delta paging and resync, calendarView delta, events and transactionId, getSchedule,
$batch limits and per-item throttling, the 4-concurrent cap, subscription handshakes.

Mailboxes are written straight into the store so every expectation is computed from what the
store holds. Access tokens are minted with the identity module (test_microsoft_identity.py
covers getting them through msal).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

ALL = ["User.Read", "Mail.ReadBasic", "Calendars.ReadWrite"]
IMMUTABLE = {"Prefer": 'IdType="ImmutableId"'}
FOLDERS = ("inbox", "sentitems", "archive", "junkemail")
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _message(n: int, folder: str, me: str) -> dict[str, Any]:
    sender = "=?utf-8?q?J=C3=B6rg_M=C3=BCller?= <jorg@example.org>" if n % 2 else f"<{me}>"
    return {
        "id": f"AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A{n:04d}{uuid.uuid4().hex[:10]}",
        "thread_id": f"t{n // 2}",
        "internal_ms": _ms(T0) + n * 60_000,
        "labels": [],
        "folder": folder,
        "headers": [
            ["From", sender],
            ["To", f"Grace Hopper <{me}>, bob@example.org"],
            ["Cc", '"Lovelace, Ada" <ada@example.org>'],
            ["Subject", f"=?utf-8?q?Gr=C3=BC=C3=9Fe_{n}?="],
            ["Date", "Mon, 02 Nov 2026 09:00:00 +0000"],
            ["Message-ID", f"<m{n}@example.org>"],
        ],
        "size_estimate": 1000,
        "is_read": n % 3 == 0,
        "snippet": f"preview {n}",
    }


@pytest.fixture
def box(sandbox: Any) -> Iterator[str]:
    """A Microsoft mailbox with messages in four folders and a calendar with a series."""
    store = sandbox.state.store
    email = f"grace-{uuid.uuid4().hex[:8]}@contoso.test"
    store.create_mailbox(
        email, provider="microsoft", display_name="Grace Hopper",
        aliases=[{"email": "g.hopper@contoso.test", "display_name": "Grace", "is_primary": False,
                  "treat_as_alias": True}],
        time_zone="Europe/Berlin",
    )  # fmt: skip
    store.add_messages(email, [_message(n, FOLDERS[n % 4], email) for n in range(23)])
    cal = store.upsert_calendar(
        email, id="AAMkADcal0", summary="Calendar", time_zone="Europe/Berlin", is_primary=True
    )
    people = [
        {"email": email, "name": "Grace", "response": "accepted"},
        {"email": "ada@example.org", "name": "Ada", "response": "tentative", "optional": True},
    ]
    series = {
        "id": "series1", "status": "confirmed", "summary": "Weekly 1:1",
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
        "organizer": {"email": email, "name": "Grace"}, "attendees": people[1:],
    }  # fmt: skip
    for body in (series, moved, cancelled, single):
        store.put_event(email, cal["id"], body)
    yield email
    store.delete_mailbox(email)


def token(sandbox: Any, email: str, scopes: list[str] = ALL, ttl_s: int = 3600) -> str:
    from sandbox.microsoft.identity import access_token

    with sandbox.app.app_context():
        mailbox = sandbox.state.store.get_mailbox(email)
        return access_token(mailbox, "warmline-sandbox", scopes, ttl_s)


class Graph:
    """A tiny Graph client over requests (HTTPS, the sandbox CA only)."""

    def __init__(self, sandbox: Any, session: requests.Session, bearer: str) -> None:
        self.base = sandbox.https_url + "/v1.0"
        self.session = session
        self.headers = {"Authorization": f"Bearer {bearer}"}

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("https://") else self.base + path
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.session.get(url, headers=headers, timeout=15, **kwargs)

    def send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.session.request(method, self.base + path, headers=headers, timeout=15, **kwargs)

    def delta(self, first: str, headers: dict[str, str]) -> tuple[list[dict], str, int]:
        """Follow nextLinks until the deltaLink; return (items, deltaLink, pages)."""
        items: list[dict] = []
        url, pages = first, 0
        while True:
            answer = self.get(url, headers=headers)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            pages += 1
            items += body["value"]
            if "@odata.deltaLink" in body:
                return items, body["@odata.deltaLink"], pages
            url = body["@odata.nextLink"]
            assert url.startswith(self.base), "links stay on the host the request came to"
            assert "$skiptoken=" in url


@pytest.fixture
def graph(sandbox: Any, https_session: requests.Session, box: str) -> Graph:
    return Graph(sandbox, https_session, token(sandbox, box))


def test_auth_errors_and_permissions(sandbox: Any, https_session: Any, box: str) -> None:
    anonymous = Graph(sandbox, https_session, "")
    anonymous.headers = {}
    answer = anonymous.get("/me")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert set(answer.json()["error"]["innerError"]) >= {"date", "request-id"}
    assert Graph(sandbox, https_session, "garbage").get("/me").status_code == 401
    expired = Graph(sandbox, https_session, token(sandbox, box, ttl_s=-10)).get("/me")
    assert expired.status_code == 401
    assert "expired" in expired.json()["error"]["message"]

    mail_only = Graph(sandbox, https_session, token(sandbox, box, ["Mail.ReadBasic"]))
    assert mail_only.get("/me").json()["error"]["code"] == "Authorization_RequestDenied"
    denied = mail_only.get("/me/calendars")
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "ErrorAccessDenied"


def test_me_and_proxy_addresses(graph: Graph, box: str) -> None:
    me = graph.get("/me").json()
    assert me["userPrincipalName"] == box
    assert me["mail"] == box
    assert me["displayName"] == "Grace Hopper"
    assert "proxyAddresses" not in me
    picked = graph.get("/me", params={"$select": "id,proxyAddresses"}).json()
    assert picked["proxyAddresses"] == [f"SMTP:{box}", "smtp:g.hopper@contoso.test"]
    bad = graph.get("/me", params={"$select": "nope"})
    assert bad.status_code == 400


def test_mail_folders_and_counts(sandbox: Any, graph: Graph, box: str) -> None:
    store = sandbox.state.store
    listed = graph.get("/me/mailFolders").json()
    names = {f["displayName"]: f for f in listed["value"]}
    assert {"Inbox", "Sent Items", "Archive", "Junk Email", "Deleted Items", "Drafts"} <= set(names)
    inbox = graph.get("/me/mailFolders/inbox").json()
    assert inbox["id"] == names["Inbox"]["id"]
    assert inbox["totalItemCount"] == store.count_messages(box, folder="inbox")
    assert inbox["unreadItemCount"] == store.count_messages(box, folder="inbox", unread_only=True)
    assert "wellKnownName" not in inbox  # beta-only property
    assert graph.get(f"/me/mailFolders/{inbox['id']}").json()["id"] == inbox["id"]
    assert graph.get("/me/mailFolders/nope").status_code == 404


def test_full_delta_per_folder_matches_store(sandbox: Any, graph: Graph, box: str) -> None:
    store = sandbox.state.store
    headers = {"Prefer": 'odata.maxpagesize=2, IdType="ImmutableId"'}
    for folder in FOLDERS:
        items, delta_link, pages = graph.delta(f"/me/mailFolders/{folder}/messages/delta", headers)
        expected, _ = store.list_messages(box, folder=folder, page_size=100)
        assert {i["id"] for i in items} == {m["id"] for m in expected}
        assert pages == max(1, -(-len(expected) // 2))
        assert "$deltatoken=" in delta_link

    first = graph.get("/me/mailFolders/inbox/messages/delta", headers=headers)
    assert "odata.maxpagesize=2" in first.headers["Preference-Applied"]
    message = next(m for m in first.json()["value"] if m["from"]["emailAddress"]["name"] != "")
    row = store.get_message(box, message["id"])
    assert message["subject"] == "Grüße " + message["internetMessageId"][2:-13]
    assert message["receivedDateTime"] == dt.datetime.fromtimestamp(
        row["internal_ms"] / 1000, dt.UTC
    ).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert message["isRead"] is row["is_read"]
    assert message["toRecipients"] == [
        {"emailAddress": {"name": "Grace Hopper", "address": box}},
        {"emailAddress": {"name": "bob@example.org", "address": "bob@example.org"}},
    ]
    assert message["ccRecipients"][0]["emailAddress"]["name"] == "Lovelace, Ada"
    # Mail.ReadBasic: no body in the default set, and asking for it is refused
    assert "body" not in message
    assert "bodyPreview" not in message
    refused = graph.get("/me/mailFolders/inbox/messages/delta", params={"$select": "body"})
    assert refused.status_code == 403


def test_select_is_kept_in_the_links(graph: Graph) -> None:
    headers = {"Prefer": "odata.maxpagesize=1"}
    first = graph.get(
        "/me/mailFolders/sentitems/messages/delta",
        params={"$select": "subject,from,internetMessageHeaders"},
        headers=headers,
    ).json()
    second = graph.get(first["@odata.nextLink"], headers=headers).json()
    (item,) = second["value"]
    assert set(item) == {"id", "subject", "from", "internetMessageHeaders", "@odata.etag",
                         "@odata.type"}  # fmt: skip
    names = [h["name"] for h in item["internetMessageHeaders"]]
    assert names == ["From", "To", "Cc", "Subject", "Date", "Message-ID"]


def test_delta_filter_and_top_last_the_whole_round(sandbox: Any, graph: Graph, box: str) -> None:
    bound = (T0 + dt.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    items, _, pages = graph.delta(
        f"/me/mailFolders/inbox/messages/delta?$filter=receivedDateTime ge {bound}&$top=1",
        IMMUTABLE,
    )
    expected, _ = sandbox.state.store.list_messages(box, folder="inbox", page_size=100)
    wanted = {m["id"] for m in expected if m["internal_ms"] >= _ms(T0) + 600_000}
    assert {i["id"] for i in items} == wanted
    assert pages >= len(wanted)
    bad = graph.get("/me/mailFolders/inbox/messages/delta", params={"$filter": "subject eq 'x'"})
    assert bad.status_code == 400


def test_incremental_delta_after_new_deleted_moved(sandbox: Any, graph: Graph, box: str) -> None:
    store = sandbox.state.store
    inbox_items, inbox_link, _ = graph.delta("/me/mailFolders/inbox/messages/delta", IMMUTABLE)
    _, archive_link, _ = graph.delta("/me/mailFolders/archive/messages/delta", IMMUTABLE)
    deleted, moved = inbox_items[0]["id"], inbox_items[1]["id"]
    new = _message(99, "inbox", box)
    store.add_messages(box, [new])
    store.delete_message(box, deleted)
    store.move_message(box, moved, folder="archive")

    changes, inbox_link2, _ = graph.delta(inbox_link, IMMUTABLE)
    by_id = {c["id"]: c for c in changes}
    assert by_id[deleted]["@removed"] == {"reason": "deleted"}
    assert by_id[moved]["@removed"] == {"reason": "changed"}
    assert "@removed" not in by_id[new["id"]]
    assert len(changes) == 3
    archive_changes, _, _ = graph.delta(archive_link, IMMUTABLE)
    assert [c["id"] for c in archive_changes] == [moved]
    # Nothing new since: an empty page with a fresh deltaLink.
    again, _, _ = graph.delta(inbox_link2, IMMUTABLE)
    assert again == []


def test_rest_ids_change_on_move_immutable_ids_do_not(sandbox: Any, graph: Graph, box: str) -> None:
    rest_id = graph.get("/me/mailFolders/inbox/messages/delta").json()["value"][0]["id"]
    assert graph.get(f"/me/messages/{rest_id}").status_code == 200
    immutable_id = graph.get(f"/me/messages/{rest_id}", headers=IMMUTABLE).json()["id"]
    assert immutable_id != rest_id
    sandbox.state.store.move_message(box, immutable_id, folder="archive")
    assert graph.get(f"/me/messages/{rest_id}").status_code == 404
    moved = graph.get(f"/me/messages/{immutable_id}", headers=IMMUTABLE)
    assert moved.status_code == 200
    assert moved.json()["id"] == immutable_id
    assert moved.json()["parentFolderId"] == graph.get("/me/mailFolders/archive").json()["id"]
    assert moved.headers["Preference-Applied"] == 'IdType="ImmutableId"'


@pytest.mark.parametrize("style", ["default", "location"])
def test_stale_delta_token_is_410(sandbox: Any, graph: Graph, box: str, style: str) -> None:
    if style == "location":
        sandbox.state.config["graph_resync_style"] = "location"
    _, link, _ = graph.delta(
        "/me/mailFolders/inbox/messages/delta?$select=subject", {"Prefer": "odata.maxpagesize=50"}
    )
    first = graph.get(
        "/me/mailFolders/inbox/messages/delta", headers={"Prefer": "odata.maxpagesize=1"}
    ).json()
    sandbox.state.store.expire_cursors(box)
    for url in (link, first["@odata.nextLink"]):
        gone = graph.get(url)
        assert gone.status_code == 410
        if style == "default":
            assert gone.json()["error"]["code"] == "SyncStateNotFound"
            assert "sync state generation is not found" in gone.json()["error"]["message"]
        else:
            assert gone.json()["error"]["code"] == "resyncRequired"
            assert (
                gone.headers["Location"]
                .split("?")[0]
                .endswith("/me/mailFolders/inbox/messages/delta")
            )
    # A fresh round works again.
    items, _, _ = graph.delta("/me/mailFolders/inbox/messages/delta", IMMUTABLE)
    assert items


def test_calendar_view_delta(sandbox: Any, graph: Graph, box: str) -> None:
    query = "startDateTime=2026-11-01T00:00:00Z&endDateTime=2026-12-01T00:00:00Z"
    headers = {"Prefer": 'odata.maxpagesize=2, outlook.timezone="Pacific Standard Time"'}
    missing = graph.get("/me/calendarView/delta")
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "ErrorInvalidParameter"
    first = graph.get(f"/me/calendarView/delta?{query}", headers=headers)
    assert 'outlook.timezone="Pacific Standard Time"' in first.headers["Preference-Applied"]
    items, link, pages = graph.delta(f"/me/calendarView/delta?{query}", headers)
    kinds = sorted(i["type"] for i in items)
    # 4 weekly slots, one moved (exception) and one cancelled; plus the single event
    assert kinds == ["exception", "occurrence", "occurrence", "singleInstance"]
    assert pages >= 2  # maxpagesize=2 over four items
    exception = next(i for i in items if i["type"] == "exception")
    assert exception["start"] == {"dateTime": "2026-11-09T06:00:00.0000000",
                                  "timeZone": "Pacific Standard Time"}  # fmt: skip
    assert exception["seriesMasterId"] == "series1"
    assert exception["originalStart"] == "2026-11-09T09:00:00Z"
    lunch = next(i for i in items if i["type"] == "singleInstance")
    assert lunch["isOrganizer"] is True
    assert lunch["responseStatus"]["response"] == "organizer"
    assert lunch["attendees"] == [
        {"type": "optional", "status": {"response": "tentativelyAccepted",
                                        "time": "0001-01-01T00:00:00Z"},
         "emailAddress": {"name": "Ada", "address": "ada@example.org"}}
    ]  # fmt: skip
    occurrence = next(i for i in items if i["type"] == "occurrence")
    assert occurrence["responseStatus"]["response"] == "accepted"
    assert occurrence["isOrganizer"] is False
    assert graph.get(f"/me/events/{occurrence['id']}").json()["id"] == occurrence["id"]

    # Delete the single event and one occurrence: both come back as @removed.
    assert graph.send("DELETE", f"/me/events/{lunch['id']}").status_code == 204
    assert graph.send("DELETE", f"/me/events/{occurrence['id']}").status_code == 204
    changes, _, _ = graph.delta(link, {})
    removed = {c["id"] for c in changes if "@removed" in c}
    assert removed == {lunch["id"], occurrence["id"]}
    assert graph.get(f"/me/events/{lunch['id']}").status_code == 404


def test_documented_routes_only_refuses_delta_of_other_calendars(
    sandbox: Any, graph: Graph, box: str
) -> None:
    query = "startDateTime=2026-11-01T00:00:00Z&endDateTime=2026-12-01T00:00:00Z"
    assert graph.get(f"/me/calendars/AAMkADcal0/calendarView/delta?{query}").status_code == 200
    sandbox.state.config["graph_documented_routes_only"] = True
    for path in ("/me/calendars/AAMkADcal0/calendarView/delta", "/me/calendar/calendarView/delta"):
        refused = graph.get(f"{path}?{query}")
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert (error["code"], error["message"]) == (
            "BadRequest",
            "Resource not found for the segment 'delta'.",
        )
        assert error["innerError"]["request-id"]
    items, _, _ = graph.delta(f"/me/calendarView/delta?{query}", {})  # documented: still served
    assert len(items) == 4


def test_sparse_delta_updates(sandbox: Any, graph: Graph, box: str) -> None:
    store = sandbox.state.store
    sandbox.state.config["graph_sparse_delta_updates"] = True
    unread = {**_message(97, "inbox", box), "labels": ["INBOX", "UNREAD"], "is_read": False}
    store.add_messages(box, [unread])
    select = "?$select=subject,from,receivedDateTime,isRead"
    items, link, _ = graph.delta(f"/me/mailFolders/inbox/messages/delta{select}", IMMUTABLE)
    assert all("subject" in i for i in items), "the initial round is full"
    store.set_read(box, unread["id"], is_read=True)
    new = {**_message(98, "inbox", box), "internal_ms": _ms(dt.datetime.now(dt.UTC)) + 60_000}
    store.add_messages(box, [new])
    changes, _, _ = graph.delta(link, IMMUTABLE)
    by_id = {c["id"]: c for c in changes}
    assert by_id[unread["id"]] == {
        "@odata.type": "#microsoft.graph.message",
        "@odata.etag": by_id[unread["id"]]["@odata.etag"],
        "id": unread["id"],
        "isRead": True,
    }
    assert by_id[new["id"]]["subject"] == "Grüße 98", "new mail comes in full"

    query = "startDateTime=2026-11-01T00:00:00Z&endDateTime=2026-12-01T00:00:00Z"
    _, cal_link, _ = graph.delta(f"/me/calendarView/delta?{query}", {})
    lunch = store.get_event(box, "AAMkADcal0", "single1")
    store.put_event(box, "AAMkADcal0", {**lunch, "summary": "Long lunch"})
    store.put_event(box, "AAMkADcal0", {**lunch, "id": "single2", "created_ms": None})
    changes, _, _ = graph.delta(cal_link, {})
    by_id = {c["id"]: c for c in changes}
    assert "organizer" not in by_id["single1"]
    assert {"id", "changeKey"} <= set(by_id["single1"])
    assert by_id["single2"]["organizer"]["emailAddress"]["address"] == box, "new event: full"


def test_timezone_preference_can_be_ignored(sandbox: Any, graph: Graph, box: str) -> None:
    sandbox.state.config["graph_ignore_timezone_preference"] = True
    answer = graph.get("/me/events/single1", headers={"Prefer": 'outlook.timezone="UTC"'})
    assert answer.json()["start"] == {
        "dateTime": "2026-11-04T13:00:00.0000000",  # 12:00 UTC in Berlin
        "timeZone": "W. Europe Standard Time",
    }
    assert "outlook.timezone" not in answer.headers.get("Preference-Applied", "")


def test_duplicate_transaction_status_switch(sandbox: Any, graph: Graph, box: str) -> None:
    sandbox.state.config["graph_duplicate_transaction_status"] = 409
    event = {
        "subject": "Follow up with Ada",
        "start": {"dateTime": "2026-11-20T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-11-20T09:15:00", "timeZone": "UTC"},
        "transactionId": "wl-409",
    }
    assert graph.send("POST", "/me/events", json=event).status_code == 201
    again = graph.send("POST", "/me/events", json=event)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "ErrorDuplicateTransactionId"


def test_calendars_listing_pages(sandbox: Any, graph: Graph, box: str) -> None:
    for n in range(11):
        sandbox.state.store.upsert_calendar(
            box, id=f"AAMkADextra{n:02d}", summary=f"Extra {n}", time_zone="UTC"
        )
    first = graph.get("/me/calendars", params={"$select": "id,name"}).json()
    assert len(first["value"]) == 10  # Outlook's default page
    assert set(first["value"][0]) == {"id", "name"}
    rest = graph.get(first["@odata.nextLink"]).json()
    assert "@odata.nextLink" not in rest
    assert len(first["value"]) + len(rest["value"]) == 12  # the primary calendar and 11 more


def test_calendars_and_events_with_transaction_id(sandbox: Any, graph: Graph, box: str) -> None:
    made = graph.send("POST", "/me/calendars", json={"name": "Warmline follow-ups"})
    assert made.status_code == 201
    cal = made.json()
    assert cal["name"] == "Warmline follow-ups"
    assert cal["isDefaultCalendar"] is False
    dup = graph.send("POST", "/me/calendars", json={"name": "Warmline follow-ups"})
    assert dup.status_code == 409
    assert dup.json()["error"]["code"] == "ErrorFolderExists"
    names = [c["name"] for c in graph.get("/me/calendars").json()["value"]]
    assert names.count("Warmline follow-ups") == 1

    event = {
        "subject": "Follow up with Ada",
        "start": {"dateTime": "2026-11-20T09:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2026-11-20T09:15:00", "timeZone": "W. Europe Standard Time"},
        "transactionId": "wl-7f3c",
    }
    first = graph.send("POST", f"/me/calendars/{cal['id']}/events", json=event)
    again = graph.send("POST", f"/me/calendars/{cal['id']}/events", json=event)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["transactionId"] == "wl-7f3c"
    rows, _ = sandbox.state.store.list_events(box, cal["id"], page_size=50)
    assert len(rows) == 1
    other = graph.send(
        "POST", f"/me/calendars/{cal['id']}/events", json={**event, "subject": "Other"}
    )
    assert other.status_code == 400
    assert other.json()["error"]["code"] == "ErrorDuplicateTransactionId"

    event_id = first.json()["id"]
    patched = graph.send("PATCH", f"/me/events/{event_id}", json={"subject": "Follow up!"})
    assert patched.status_code == 200
    assert patched.json()["subject"] == "Follow up!"
    fetched = graph.get(f"/me/events/{event_id}").json()
    assert fetched["start"] == {"dateTime": "2026-11-20T08:00:00.0000000", "timeZone": "UTC"}
    assert graph.send("DELETE", f"/me/events/{event_id}").status_code == 204
    assert graph.get(f"/me/events/{event_id}").status_code == 404


def test_get_calendar_list_events_and_calendar_view(graph: Graph, box: str) -> None:
    made = graph.send("POST", "/me/calendars", json={"name": "Follow-ups"}).json()
    got = graph.get(f"/me/calendars/{made['id']}", params={"$select": "id,name"})
    assert got.status_code == 200
    assert (got.json()["id"], got.json()["name"]) == (made["id"], "Follow-ups")
    missing = graph.get("/me/calendars/AAMkADnotthere")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "ErrorItemNotFound"

    for n in range(3):
        event = {
            "subject": f"Follow up {n}",
            "start": {"dateTime": f"2026-11-2{n}T09:00:00", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": f"2026-11-2{n}T09:15:00", "timeZone": "W. Europe Standard Time"},
            "transactionId": f"txn{n}",
        }
        assert graph.send("POST", f"/me/calendars/{made['id']}/events", json=event).ok

    # Plain listing: $select, $top and an @odata.nextLink with $skip (Graph's paging).
    first = graph.get(
        f"/me/calendars/{made['id']}/events", params={"$select": "id,transactionId", "$top": "2"}
    ).json()
    assert [sorted(k for k in item if k[0] != "@") for item in first["value"]] == [
        ["id", "transactionId"]
    ] * 2
    rest = graph.get(first["@odata.nextLink"]).json()
    assert "@odata.nextLink" not in rest
    seen = {i["transactionId"] for i in first["value"] + rest["value"]}
    assert seen == {"txn0", "txn1", "txn2"}

    # calendarView: the window is required; items overlap it, by start, in the Prefer zone.
    assert graph.get(f"/me/calendars/{made['id']}/calendarView").status_code == 400
    view = graph.get(
        f"/me/calendars/{made['id']}/calendarView",
        params={
            "startDateTime": "2026-11-21T00:00:00Z",
            "endDateTime": "2026-11-30T00:00:00Z",
            "$select": "subject,start,end,showAs",
        },
        headers={"Prefer": 'outlook.timezone="UTC"'},
    ).json()
    assert [i["subject"] for i in view["value"]] == ["Follow up 1", "Follow up 2"]
    assert view["value"][0]["start"] == {
        "dateTime": "2026-11-21T08:00:00.0000000",
        "timeZone": "UTC",
    }
    assert view["value"][0]["showAs"] == "busy"

    # The primary calendar's series is expanded (occurrences, the moved exception).
    primary = graph.get(
        "/me/calendar/calendarView",
        params={"startDateTime": "2026-11-01T00:00:00Z", "endDateTime": "2026-11-12T00:00:00Z"},
    ).json()
    kinds = sorted(i["type"] for i in primary["value"])
    assert kinds == ["exception", "occurrence", "singleInstance"]


def test_get_schedule(graph: Graph, box: str) -> None:
    answer = graph.send(
        "POST",
        "/me/calendar/getSchedule",
        json={
            "schedules": [box, "stranger@example.org"],
            "startTime": {"dateTime": "2026-11-04T11:00:00", "timeZone": "UTC"},
            "endTime": {"dateTime": "2026-11-04T14:00:00", "timeZone": "UTC"},
            "availabilityViewInterval": 60,
        },
    )
    assert answer.status_code == 200, answer.text
    mine, stranger = answer.json()["value"]
    assert mine["availabilityView"] == "020"
    assert mine["scheduleItems"][0]["subject"] == "Lunch"
    # A Windows zone name, as in the getSchedule reference example ("Pacific Standard Time").
    assert mine["workingHours"]["timeZone"] == {"name": "W. Europe Standard Time"}
    assert stranger["error"]["responseCode"] == "ErrorMailRecipientNotFound"


def test_batch_limits_and_per_item_throttling(sandbox: Any, graph: Graph, box: str) -> None:
    many = [{"id": str(i), "method": "GET", "url": "/me"} for i in range(21)]
    too_many = graph.send("POST", "/$batch", json={"requests": many})
    assert too_many.status_code == 400
    assert too_many.json()["error"]["code"] == "BadRequest"

    sandbox.state.controls.configure(mailbox=box, graph_limit=2)
    requests_ = [
        {"id": "1", "method": "GET", "url": "/me"},
        {"id": "2", "method": "GET", "url": "me/mailFolders/inbox"},
        {"id": "3", "method": "GET", "url": "/me/mailFolders"},
        {"id": "4", "method": "GET", "url": "/me", "dependsOn": ["3"]},
    ]
    answer = graph.send("POST", "/$batch", json={"requests": requests_})
    assert answer.status_code == 200
    by_id = {r["id"]: r for r in answer.json()["responses"]}
    assert by_id["1"]["status"] == 200
    assert by_id["1"]["body"]["userPrincipalName"] == box
    assert by_id["2"]["status"] == 200
    assert by_id["3"]["status"] == 429
    assert int(by_id["3"]["headers"]["Retry-After"]) >= 1
    assert by_id["4"]["status"] == 424


class _Receiver(BaseHTTPRequestHandler):
    """A subscriber endpoint: echoes validationToken (optionally slowly or wrongly)."""

    delay_s = 0.0
    wrong = False

    def do_POST(self) -> None:
        token = parse_qs(urlsplit(self.path).query).get("validationToken", [""])[0]
        time.sleep(self.delay_s)
        body = (token + "x" if self.wrong else token).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Handler", (_Receiver,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    server.shutdown()
    server.server_close()


def _subscription(url: str, minutes: int = 60, **extra: Any) -> dict[str, Any]:
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)
    return {
        "changeType": "created,updated,deleted",
        "notificationUrl": url,
        "resource": "me/mailFolders('Inbox')/messages",
        "expirationDateTime": expires.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
        "clientState": "secret",
        **extra,
    }


def test_subscription_handshake(graph: Graph, receiver: tuple[str, Any]) -> None:
    url, handler = receiver
    made = graph.send("POST", "/subscriptions", json=_subscription(url))
    assert made.status_code == 201, made.text
    sub = made.json()
    assert sub["clientState"] == "secret"
    assert sub["applicationId"] == "warmline-sandbox"
    renewed = graph.send(
        "PATCH", f"/subscriptions/{sub['id']}",
        json={"expirationDateTime": _subscription(url, 600)["expirationDateTime"]},
    )  # fmt: skip
    assert renewed.status_code == 200
    assert renewed.json()["expirationDateTime"] > sub["expirationDateTime"]
    assert graph.send("DELETE", f"/subscriptions/{sub['id']}").status_code == 204
    assert graph.send("DELETE", f"/subscriptions/{sub['id']}").status_code == 404

    too_long = graph.send("POST", "/subscriptions", json=_subscription(url, 10_081))
    assert too_long.status_code == 400
    state = graph.send("POST", "/subscriptions", json=_subscription(url, clientState="x" * 129))
    assert state.status_code == 400
    handler.wrong = True
    wrong = graph.send("POST", "/subscriptions", json=_subscription(url))
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "ValidationError"


def test_four_concurrent_requests_per_mailbox(graph: Graph, receiver: tuple[str, Any]) -> None:
    url, handler = receiver
    handler.delay_s = 1.0  # each subscription create holds a slot during its handshake
    with ThreadPoolExecutor(4) as pool:
        slow = [pool.submit(graph.send, "POST", "/subscriptions", json=_subscription(url))
                for _ in range(4)]  # fmt: skip
        time.sleep(0.5)
        refused = graph.get("/me")
        results = [f.result() for f in slow]
    assert [r.status_code for r in results] == [201] * 4
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert graph.get("/me").status_code == 200


def test_subscription_needs_the_resource_permission(
    sandbox: Any, https_session: Any, box: str, receiver: tuple[str, Any]
) -> None:
    calendar_only = Graph(sandbox, https_session, token(sandbox, box, ["Calendars.Read"]))
    denied = calendar_only.send("POST", "/subscriptions", json=_subscription(receiver[0]))
    assert denied.status_code == 403
    events = _subscription(receiver[0], resource="me/events")
    assert calendar_only.send("POST", "/subscriptions", json=events).status_code == 201


def test_mangled_tokens_are_400(graph: Graph) -> None:
    for path in (
        "/me/mailFolders/inbox/messages/delta?$skiptoken=bm9wZQ",
        "/me/mailFolders/inbox/messages/delta?$deltatoken=e30",
        "/me/calendarView/delta?$deltatoken=%%%",
    ):
        answer = graph.get(path)
        assert answer.status_code == 400, path
        assert answer.json()["error"]["code"] == "ErrorInvalidUrlQuery"
