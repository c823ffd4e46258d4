"""The sandbox's Google Calendar v3, driven through google-api-python-client over loopback.

Mailboxes are built with store calls (exact, hand-written events) so each assertion names the
behaviour it checks; one test syncs a generated mailbox end to end. Tokens are minted straight
from the store (a grant + an access token), the way the OAuth flow would leave them.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

AUTH = "https://www.googleapis.com/auth/"
CALENDAR = AUTH + "calendar"
READONLY = AUTH + "calendar.readonly"
APP_CREATED = AUTH + "calendar.app.created"
TZ = "America/New_York"
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
_numbers = itertools.count(1)


# ---------------------------------------------------------------------------------------------
# helpers


def at(local: str) -> dict[str, str]:
    """A neutral New York time from 'YYYY-MM-DDTHH:MM' (offset computed by zoneinfo)."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    when = dt.datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(TZ))
    return {"date_time": when.isoformat(), "time_zone": TZ}


def event(event_id: str, start: str, end: str, *, me: str, **extra: Any) -> dict[str, Any]:
    """A neutral event body (DESIGN.md `event` table) organised by `me`, with one guest."""
    body: dict[str, Any] = {
        "id": event_id,
        "ical_uid": f"{event_id}@sandbox",
        "status": "confirmed",
        "summary": f"Meeting {event_id}",
        "start": at(start),
        "end": at(end),
        "is_all_day": False,
        "organizer": {"email": me, "name": "Ada"},
        "attendees": [
            {"email": me, "name": "Ada", "response": "accepted", "is_organizer": True},
            {"email": "bob@example.org", "name": "Bob", "response": "accepted"},
        ],
    }
    body.update(extra)
    return body


class Box:
    """A test mailbox with a primary calendar, and shortcuts to its store and API."""

    def __init__(self, sandbox: Any, email: str) -> None:
        self.sandbox = sandbox
        self.email = email
        self.store = sandbox.state.store

    def put(self, body: dict[str, Any], calendar_id: str | None = None) -> None:
        with self.sandbox.state.lock:
            self.store.put_event(self.email, calendar_id or self.email, body)

    def token(self, *scopes: str) -> str:
        grant = self.store.create_grant(
            provider="google", mailbox=self.email, client_id="warmline-sandbox",
            scopes=" ".join(scopes),
        )  # fmt: skip
        return self.store.issue_access_token(grant["id"], " ".join(scopes), 3600)

    def service(self, *scopes: str) -> Any:
        creds = Credentials(token=self.token(*(scopes or (CALENDAR,))))
        return build(
            "calendar",
            "v3",
            credentials=creds,
            static_discovery=True,
            # servicePath is calendar/v3/ and method paths are relative (PROVIDERS.md §1.5).
            client_options={"api_endpoint": self.sandbox.http_url + "/calendar/v3/"},
        )


@pytest.fixture
def box(sandbox: Any) -> Iterator[Box]:
    email = f"cal-{next(_numbers)}@sandbox-gmail.test"
    store = sandbox.state.store
    with sandbox.state.lock:
        store.create_mailbox(email, provider="google", display_name="Ada", aliases=[], time_zone=TZ)
        store.upsert_calendar(email, id=email, summary=email, time_zone=TZ, is_primary=True)
    yield Box(sandbox, email)
    with sandbox.state.lock:
        store.delete_mailbox(email)


def error_of(exc: HttpError) -> dict[str, Any]:
    return json.loads(exc.content)["error"]


def list_all(events: Any, **params: Any) -> tuple[list[dict[str, Any]], str, int]:
    """Follow nextPageToken to the end; return (items, nextSyncToken, pages)."""
    items: list[dict[str, Any]] = []
    token = None
    pages = 0
    while True:
        page = events.list(calendarId="primary", pageToken=token, **params).execute()
        pages += 1
        items.extend(page["items"])
        token = page.get("nextPageToken")
        if token is None:
            return items, page["nextSyncToken"], pages
        # Google: nextSyncToken only on the last page.
        assert "nextSyncToken" not in page


# ---------------------------------------------------------------------------------------------
# sync


def test_full_sync_pages_then_incremental_sees_add_change_and_delete(box: Box) -> None:
    for i in range(7):
        box.put(event(f"ev{i}", f"2026-03-0{i + 1}T09:00", f"2026-03-0{i + 1}T10:00", me=box.email))
    events = box.service().events()

    items, sync_token, pages = list_all(events, maxResults=3)
    assert pages == 3
    assert sorted(i["id"] for i in items) == [f"ev{i}" for i in range(7)]

    box.put(event("added", "2026-03-10T09:00", "2026-03-10T10:00", me=box.email))
    box.put(event("ev1", "2026-03-02T11:00", "2026-03-02T12:00", me=box.email, summary="moved"))
    with box.sandbox.state.lock:
        assert box.store.delete_event(box.email, box.email, "ev2")

    changed = events.list(calendarId="primary", syncToken=sync_token).execute()
    by_id = {i["id"]: i for i in changed["items"]}
    assert set(by_id) == {"added", "ev1", "ev2"}
    assert by_id["ev1"]["summary"] == "moved"
    assert by_id["ev1"]["start"]["dateTime"] == "2026-03-02T11:00:00-05:00"
    assert by_id["ev2"]["status"] == "cancelled"
    assert "nextPageToken" not in changed

    again = events.list(calendarId="primary", syncToken=changed["nextSyncToken"]).execute()
    assert again["items"] == []


def test_expired_sync_token_is_410_and_a_full_resync_recovers(box: Box) -> None:
    box.put(event("one", "2026-03-02T09:00", "2026-03-02T10:00", me=box.email))
    events = box.service().events()
    _, sync_token, _ = list_all(events)

    with box.sandbox.state.lock:
        box.store.expire_cursors(box.email)
    with pytest.raises(HttpError) as caught:
        events.list(calendarId="primary", syncToken=sync_token).execute()
    assert caught.value.status_code == 410
    err = error_of(caught.value)
    assert err["code"] == 410
    assert err["message"] == "Sync token is no longer valid, a full sync is required."
    assert err["errors"] == [
        {
            "domain": "calendar",
            "reason": "fullSyncRequired",
            "message": "Sync token is no longer valid, a full sync is required.",
            "locationType": "parameter",
            "location": "syncToken",
        }
    ]

    items, fresh_token, _ = list_all(events)
    assert [i["id"] for i in items] == ["one"]
    box.put(event("two", "2026-03-03T09:00", "2026-03-03T10:00", me=box.email))
    changed = events.list(calendarId="primary", syncToken=fresh_token).execute()
    assert [i["id"] for i in changed["items"]] == ["two"]

    with pytest.raises(HttpError) as garbage:
        events.list(calendarId="primary", syncToken="not-a-token").execute()
    assert garbage.value.status_code == 410


@pytest.mark.parametrize(
    "param",
    [
        {"timeMin": "2026-03-01T00:00:00Z"},
        {"timeMax": "2026-03-01T00:00:00Z"},
        {"q": "meeting"},
        {"orderBy": "updated"},
        {"updatedMin": "2026-03-01T00:00:00Z"},
        {"iCalUID": "x@sandbox"},
        {"showDeleted": False},
    ],
)
def test_sync_token_with_a_restricting_parameter_is_400(box: Box, param: dict) -> None:
    events = box.service().events()
    _, sync_token, _ = list_all(events)
    with pytest.raises(HttpError) as caught:
        events.list(calendarId="primary", syncToken=sync_token, **param).execute()
    assert caught.value.status_code == 400


def test_list_parameter_errors(box: Box) -> None:
    events = box.service().events()
    with pytest.raises(HttpError) as order:
        events.list(calendarId="primary", orderBy="startTime").execute()
    assert order.value.status_code == 400
    assert error_of(order.value)["message"] == (
        "The requested ordering is not available for the particular query."
    )
    with pytest.raises(HttpError) as empty:
        events.list(
            calendarId="primary", timeMin="2026-03-02T00:00:00Z", timeMax="2026-03-01T00:00:00Z"
        ).execute()
    assert error_of(empty.value)["errors"][0]["reason"] == "timeRangeEmpty"
    with pytest.raises(HttpError) as missing:
        events.list(calendarId="nobody@group.calendar.google.com").execute()
    assert missing.value.status_code == 404


def test_time_window_bounds_are_exclusive(box: Box) -> None:
    # timeMin is an exclusive bound on an event's end, timeMax one on its start (events.list).
    box.put(event("ends-at-min", "2026-03-02T08:00", "2026-03-02T09:00", me=box.email))
    box.put(event("inside", "2026-03-02T09:30", "2026-03-02T10:00", me=box.email))
    box.put(event("starts-at-max", "2026-03-02T11:00", "2026-03-02T12:00", me=box.email))
    box.put(event("spans-window", "2026-03-02T08:00", "2026-03-02T12:00", me=box.email))
    page = box.service().events().list(
        calendarId="primary", timeMin="2026-03-02T09:00:00-05:00",
        timeMax="2026-03-02T11:00:00-05:00", singleEvents=True, orderBy="startTime",
    ).execute()  # fmt: skip
    assert [i["id"] for i in page["items"]] == ["spans-window", "inside"]


# ---------------------------------------------------------------------------------------------
# recurring events


def _weekly_series(box: Box) -> None:
    # Mondays 11:00 New York from 2 March 2026, across the 8 March DST change; 9 March moved to
    # Tuesday noon, 16 March cancelled.
    box.put(
        event(
            "series1", "2026-03-02T11:00", "2026-03-02T11:30", me=box.email,
            recurrence=["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=4"],
        )
    )  # fmt: skip
    box.put(
        event(
            "series1_20260309T150000Z", "2026-03-10T12:00", "2026-03-10T12:30", me=box.email,
            recurring_event_id="series1", original_start=at("2026-03-09T11:00"),
        )
    )  # fmt: skip
    box.put(
        event(
            "series1_20260316T150000Z", "2026-03-16T11:00", "2026-03-16T11:30", me=box.email,
            recurring_event_id="series1", original_start=at("2026-03-16T11:00"),
            status="cancelled",
        )
    )  # fmt: skip


def test_single_events_expands_with_moved_and_cancelled_occurrences(box: Box) -> None:
    _weekly_series(box)
    events = box.service().events()
    page = events.list(
        calendarId="primary", singleEvents=True, orderBy="startTime",
        timeMin="2026-03-01T00:00:00Z", timeMax="2026-04-01T00:00:00Z",
    ).execute()  # fmt: skip
    got = [
        (i["id"], i["start"]["dateTime"], i["originalStartTime"]["dateTime"]) for i in page["items"]
    ]
    assert got == [
        ("series1_20260302T160000Z", "2026-03-02T11:00:00-05:00", "2026-03-02T11:00:00-05:00"),
        ("series1_20260309T150000Z", "2026-03-10T12:00:00-04:00", "2026-03-09T11:00:00-04:00"),
        ("series1_20260323T150000Z", "2026-03-23T11:00:00-04:00", "2026-03-23T11:00:00-04:00"),
    ]
    assert {i["recurringEventId"] for i in page["items"]} == {"series1"}
    assert all("recurrence" not in i for i in page["items"])

    with_deleted = events.list(calendarId="primary", singleEvents=True, showDeleted=True).execute()
    cancelled = [i for i in with_deleted["items"] if i["status"] == "cancelled"]
    assert [(i["id"], i["recurringEventId"]) for i in cancelled] == [
        ("series1_20260316T150000Z", "series1")
    ]

    # Not expanded: the master, its moved instance and (a Google quirk) its cancelled instance.
    raw = events.list(calendarId="primary").execute()
    assert {(i["id"], i["status"]) for i in raw["items"]} == {
        ("series1", "confirmed"),
        ("series1_20260309T150000Z", "confirmed"),
        ("series1_20260316T150000Z", "cancelled"),
    }
    master = next(i for i in raw["items"] if i["id"] == "series1")
    assert master["recurrence"] == ["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=4"]

    instances = events.instances(calendarId="primary", eventId="series1").execute()
    assert len(instances["items"]) == 3


def test_deleting_one_instance_reaches_incremental_sync_as_cancelled(box: Box) -> None:
    _weekly_series(box)
    events = box.service().events()
    _, sync_token, _ = list_all(events, singleEvents=True)
    events.delete(calendarId="primary", eventId="series1_20260323T150000Z").execute()

    changed = events.list(calendarId="primary", syncToken=sync_token, singleEvents=True).execute()
    assert [(i["id"], i["status"], i["recurringEventId"]) for i in changed["items"]] == [
        ("series1_20260323T150000Z", "cancelled", "series1")
    ]
    assert changed["items"][0]["originalStartTime"]["dateTime"] == "2026-03-23T11:00:00-04:00"


def test_patching_one_instance_moves_it(box: Box) -> None:
    _weekly_series(box)
    events = box.service().events()
    events.patch(
        calendarId="primary", eventId="series1_20260323T150000Z",
        body={"start": {"dateTime": "2026-03-24T15:00:00-04:00"},
              "end": {"dateTime": "2026-03-24T15:30:00-04:00"}},
    ).execute()  # fmt: skip
    page = events.list(calendarId="primary", singleEvents=True, orderBy="startTime").execute()
    last = page["items"][-1]
    assert last["id"] == "series1_20260323T150000Z"
    assert last["start"]["dateTime"] == "2026-03-24T15:00:00-04:00"
    assert last["originalStartTime"]["dateTime"] == "2026-03-23T11:00:00-04:00"


# ---------------------------------------------------------------------------------------------
# writes


def test_insert_renders_googles_event_and_a_client_id_is_idempotent(box: Box) -> None:
    events = box.service().events()
    body = {
        "id": "reminder0abc123",
        "summary": "Follow up with Bob",
        "start": {"dateTime": "2026-03-05T09:00:00", "timeZone": TZ},
        "end": {"dateTime": "2026-03-05T09:15:00", "timeZone": TZ},
        "attendees": [{"email": "bob@example.org"}],
    }
    created = events.insert(calendarId="primary", body=body, sendUpdates="none").execute()
    assert created["kind"] == "calendar#event"
    assert created["id"] == "reminder0abc123"
    assert created["status"] == "confirmed"
    assert created["organizer"] == {"email": box.email, "displayName": "Ada", "self": True}
    assert created["start"] == {"dateTime": "2026-03-05T09:00:00-05:00", "timeZone": TZ}
    assert created["attendees"] == [{"email": "bob@example.org", "responseStatus": "needsAction"}]
    assert created["iCalUID"] == "reminder0abc123@google.com"
    assert RFC3339_MS.match(created["created"])
    assert RFC3339_MS.match(created["updated"])
    assert created["htmlLink"].startswith("https://www.google.com/calendar/event?eid=")
    assert created["eventType"] == "default"
    assert created["sequence"] == 0

    with pytest.raises(HttpError) as dup:
        events.insert(calendarId="primary", body=body).execute()
    assert dup.value.status_code == 409
    assert error_of(dup.value)["errors"][0] == {
        "domain": "global",
        "reason": "duplicate",
        "message": "The requested identifier already exists.",
    }

    with pytest.raises(HttpError) as bad:
        events.insert(calendarId="primary", body={**body, "id": "UPPER-case"}).execute()
    assert bad.value.status_code == 400

    generated = events.insert(calendarId="primary", body={**body, "id": None}).execute()
    assert re.fullmatch(r"[a-v0-9]{5,1024}", generated["id"])


def test_floating_times_knob_writes_wall_clock_time_and_its_zone(box: Box) -> None:
    box.put(event("float1", "2026-03-02T09:00", "2026-03-02T10:00", me=box.email))
    fixed = event("fixed1", "2026-03-03T09:00", "2026-03-03T10:00", me=box.email)
    fixed["start"] = {"date_time": "2026-03-03T14:00:00+00:00"}  # an offset and no zone
    fixed["end"] = {"date_time": "2026-03-03T15:00:00+00:00"}
    box.put(fixed)
    events = box.service().events()
    box.sandbox.state.config["calendar_floating_times"] = True

    items = {i["id"]: i for i in list_all(events)[0]}
    assert items["float1"]["start"] == {"dateTime": "2026-03-02T09:00:00", "timeZone": TZ}
    assert items["fixed1"]["start"] == {"dateTime": "2026-03-03T14:00:00Z"}
    got = events.get(calendarId="primary", eventId="float1").execute()
    assert got["end"] == {"dateTime": "2026-03-02T10:00:00", "timeZone": TZ}
    # asked for another zone, the offset is written
    utc = events.get(calendarId="primary", eventId="float1", timeZone="UTC").execute()
    assert utc["start"]["dateTime"] == "2026-03-02T14:00:00Z"

    box.sandbox.state.config["calendar_floating_times"] = False
    got = events.get(calendarId="primary", eventId="float1").execute()
    assert got["start"] == {"dateTime": "2026-03-02T09:00:00-05:00", "timeZone": TZ}


def test_patch_merges_update_replaces_and_delete_twice_is_410(box: Box) -> None:
    box.put(event("meet", "2026-03-02T09:00", "2026-03-02T10:00", me=box.email))
    events = box.service().events()

    patched = events.patch(
        calendarId="primary", eventId="meet", body={"summary": "Renamed"}
    ).execute()
    assert patched["summary"] == "Renamed"
    assert len(patched["attendees"]) == 2
    assert patched["sequence"] == 0

    replaced = events.update(
        calendarId="primary", eventId="meet",
        body={"summary": "Only me", "start": {"dateTime": "2026-03-02T10:00:00-05:00"},
              "end": {"dateTime": "2026-03-02T11:00:00-05:00"}},
    ).execute()  # fmt: skip
    assert "attendees" not in replaced
    assert replaced["sequence"] == 1

    assert events.delete(calendarId="primary", eventId="meet").execute() == ""
    assert events.get(calendarId="primary", eventId="meet").execute()["status"] == "cancelled"
    with pytest.raises(HttpError) as gone:
        events.delete(calendarId="primary", eventId="meet").execute()
    assert gone.value.status_code == 410
    assert error_of(gone.value)["errors"][0]["reason"] == "deleted"
    with pytest.raises(HttpError) as missing:
        events.get(calendarId="primary", eventId="neverexisted").execute()
    assert missing.value.status_code == 404


def test_a_deleted_client_id_stays_taken_and_a_patch_restores_it(box: Box) -> None:
    # Ids stay reserved after deletion (google-api-python-client issues 210/846); the organizer
    # can restore the event (Event.status: "so that they can be restored (undeleted)").
    events = box.service().events()
    body = {
        "id": "f0110a0ab0c1",
        "summary": "Follow up",
        "start": {"dateTime": "2026-03-05T09:00:00", "timeZone": TZ},
        "end": {"dateTime": "2026-03-05T09:15:00", "timeZone": TZ},
    }
    events.insert(calendarId="primary", body=body).execute()
    events.delete(calendarId="primary", eventId="f0110a0ab0c1").execute()
    with pytest.raises(HttpError) as dup:
        events.insert(calendarId="primary", body=body).execute()
    assert dup.value.status_code == 409
    assert error_of(dup.value)["errors"][0]["reason"] == "duplicate"

    restored = events.patch(
        calendarId="primary", eventId="f0110a0ab0c1", body={"status": "confirmed"}
    ).execute()
    assert restored["status"] == "confirmed"
    assert restored["summary"] == "Follow up"
    listed = events.list(calendarId="primary").execute()["items"]
    assert "f0110a0ab0c1" in {e["id"] for e in listed}


def test_fields_selects_a_partial_response(box: Box) -> None:
    for i in range(3):
        box.put(event(f"f{i}", f"2026-03-0{i + 1}T09:00", f"2026-03-0{i + 1}T10:00", me=box.email))
    events = box.service().events()
    page = events.list(
        calendarId="primary", maxResults=2, fields="items(id,start/dateTime)"
    ).execute()
    # Like Google: what the selector leaves out is gone, paging tokens included.
    assert page == {
        "items": [
            {"id": "f0", "start": {"dateTime": "2026-03-01T09:00:00-05:00"}},
            {"id": "f1", "start": {"dateTime": "2026-03-02T09:00:00-05:00"}},
        ]
    }
    full = events.list(
        calendarId="primary", maxResults=2, fields="nextPageToken,items/id"
    ).execute()
    assert set(full) == {"nextPageToken", "items"}


# ---------------------------------------------------------------------------------------------
# calendars, free/busy, scopes


def test_calendar_list_and_secondary_calendars(box: Box) -> None:
    service = box.service()
    entries = service.calendarList().list().execute()["items"]
    assert [(e["id"], e.get("primary"), e["accessRole"]) for e in entries] == [
        (box.email, True, "owner")
    ]
    assert service.calendarList().get(calendarId="primary").execute()["id"] == box.email

    made = service.calendars().insert(body={"summary": "Warmline", "timeZone": TZ}).execute()
    assert made["id"].endswith("@group.calendar.google.com")
    assert len(service.calendarList().list().execute()["items"]) == 2

    with pytest.raises(HttpError) as primary:
        service.calendars().delete(calendarId="primary").execute()
    assert primary.value.status_code == 400
    with box.sandbox.state.lock:
        box.store.upsert_calendar(
            box.email, id="team@example.org", summary="Team", time_zone=TZ, access_role="reader"
        )
    with pytest.raises(HttpError) as reader:
        service.events().insert(
            calendarId="team@example.org",
            body={"start": {"date": "2026-03-02"}, "end": {"date": "2026-03-03"}},
        ).execute()
    assert reader.value.status_code == 403
    assert error_of(reader.value)["errors"][0]["reason"] == "requiredAccessLevel"

    service.calendars().delete(calendarId=made["id"]).execute()
    with pytest.raises(HttpError) as gone:
        service.calendars().get(calendarId=made["id"]).execute()
    assert gone.value.status_code == 404


def test_freebusy_counts_only_busy_time_the_user_keeps(box: Box) -> None:
    me = box.email
    box.put(event("a", "2026-03-02T09:00", "2026-03-02T10:00", me=me))
    box.put(event("overlaps-a", "2026-03-02T09:30", "2026-03-02T10:30", me=me, status="tentative"))
    box.put(event("transparent", "2026-03-02T12:00", "2026-03-02T13:00", me=me,
                  transparency="transparent"))  # fmt: skip
    declined = event("declined", "2026-03-02T14:00", "2026-03-02T15:00", me=me)
    declined["organizer"] = {"email": "bob@example.org", "name": "Bob"}
    declined["attendees"] = [{"email": me, "response": "declined"}]
    box.put(declined)
    box.put(event("cancelled", "2026-03-02T16:00", "2026-03-02T17:00", me=me, status="cancelled"))
    _weekly_series(box)

    result = box.service(READONLY).freebusy().query(
        body={"timeMin": "2026-03-02T00:00:00Z", "timeMax": "2026-03-17T00:00:00Z",
              "items": [{"id": "primary"}, {"id": "stranger@example.org"}]},
    ).execute()  # fmt: skip
    assert result["kind"] == "calendar#freeBusy"
    assert result["calendars"]["primary"]["busy"] == [
        {"start": "2026-03-02T14:00:00Z", "end": "2026-03-02T15:30:00Z"},  # merged a + overlap
        {"start": "2026-03-02T16:00:00Z", "end": "2026-03-02T16:30:00Z"},  # series, 2 March
        {"start": "2026-03-10T16:00:00Z", "end": "2026-03-10T16:30:00Z"},  # moved occurrence
    ]
    assert result["calendars"]["stranger@example.org"] == {
        "errors": [{"domain": "global", "reason": "notFound"}],
        "busy": [],
    }


def test_app_created_scope_reaches_only_calendars_the_app_made(box: Box) -> None:
    service = box.service(APP_CREATED)
    body = {
        "summary": "Follow up",
        "start": {"dateTime": "2026-03-05T09:00:00Z"},
        "end": {"dateTime": "2026-03-05T09:15:00Z"},
    }
    with pytest.raises(HttpError) as primary:
        service.events().insert(calendarId="primary", body=body).execute()
    assert primary.value.status_code == 403
    with pytest.raises(HttpError) as listing:
        service.calendarList().list().execute()  # not among the method's scopes
    assert listing.value.status_code == 403

    own = service.calendars().insert(body={"summary": "Warmline follow-ups"}).execute()
    service.events().insert(calendarId=own["id"], body=body).execute()
    items = service.events().list(calendarId=own["id"]).execute()["items"]
    assert [i["summary"] for i in items] == ["Follow up"]
    # A full-calendar token still sees both calendars.
    assert len(box.service().calendarList().list().execute()["items"]) == 2


@pytest.mark.parametrize(
    ("status", "reason"), [(429, "rateLimitExceeded"), (403, "userRateLimitExceeded")]
)
def test_per_user_quota_refuses_past_the_limit(box: Box, status: int, reason: str) -> None:
    controls = box.sandbox.state.controls
    controls.configure(box.email, calendar_limit=2, google_quota_status=status)
    events = box.service().events()
    events.list(calendarId="primary").execute()
    events.list(calendarId="primary").execute()
    with pytest.raises(HttpError) as refused:
        events.list(calendarId="primary").execute()
    assert refused.value.status_code == status
    assert error_of(refused.value)["errors"][0]["reason"] == reason
    counts = controls.counters(mailbox=box.email)[("calendar", "events.list")]
    assert counts["requests"] == 2
    assert counts["rejected"] == 1


def test_batch_dispatches_each_part(box: Box) -> None:
    box.put(event("b1", "2026-03-02T09:00", "2026-03-02T10:00", me=box.email))
    box.put(event("b2", "2026-03-03T09:00", "2026-03-03T10:00", me=box.email))
    service = box.service()
    results: dict[str, Any] = {}

    def collect(request_id: str, response: Any, exception: Exception | None) -> None:
        results[request_id] = exception if exception is not None else response

    # Batch ignores api_endpoint, so point it at the sandbox explicitly (PROVIDERS.md §1.5).
    batch = BatchHttpRequest(
        callback=collect, batch_uri=box.sandbox.http_url + "/batch/calendar/v3"
    )
    for event_id in ("b1", "b2", "missing"):
        batch.add(service.events().get(calendarId="primary", eventId=event_id), request_id=event_id)
    batch.execute()
    assert results["b1"]["id"] == "b1"
    assert results["b2"]["id"] == "b2"
    assert isinstance(results["missing"], HttpError)
    assert results["missing"].status_code == 404


def test_generated_mailbox_syncs_fully_and_expands(
    sandbox: Any, make_mailbox: Callable[..., str]
) -> None:
    email = make_mailbox(messages=5)
    events = Box(sandbox, email).service(READONLY).events()
    raw, _, _ = list_all(events, maxResults=50)
    expanded, _, _ = list_all(events, singleEvents=True, maxResults=50)
    assert raw, "the generator fills the primary calendar"
    assert all(i["status"] != "cancelled" or i.get("recurringEventId") for i in raw)
    assert all("recurrence" not in i for i in expanded)
    assert len({i["id"] for i in expanded}) == len(expanded)
