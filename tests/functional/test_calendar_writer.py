"""CalendarWriter end to end: both connectors against the sandbox's Calendar v3 and Graph.

The connectors run their real client stacks (google-api-python-client/httplib2, requests) with
tokens minted by the sandbox's own OAuth machinery and carrying exactly the scopes Warmline asks
for. Expectations come from the provider's own listings (events.list, Graph events/calendars),
read here over plain HTTP, never from the connector. Faults are the sandbox's: `slow` sleeps past
the client's timeout and then performs the write anyway, which is a lost response.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from connectors.common import coalesce
from connectors.google.calendar_write import GoogleCalendarWriter
from connectors.google.config import GoogleConfig
from connectors.google.oauth import SCOPES as GOOGLE_SCOPES
from connectors.microsoft.calendar_write import MicrosoftCalendarWriter
from connectors.microsoft.config import MicrosoftConfig
from connectors.registry import calendar_writer
from core.errors import ProviderRejected, ProviderUnavailable, RateLimited
from core.models import Provider
from core.ports import CalendarWriter, EventSpec, Interval
from tests.functional.conftest import sandbox_settings
from tests.functional.fakes import RecordingPacer

NAME = "Warmline follow-ups"
ZONE = "Europe/Berlin"  # the generated mailboxes' zone
T0 = dt.datetime(2031, 3, 10, 9, 0, tzinfo=dt.UTC)  # a Monday, clear of generated one-off events
GOOGLE_WRITER_SCOPES = " ".join(s for s in GOOGLE_SCOPES if s.startswith("https://"))
GOOGLE_FULL = "https://www.googleapis.com/auth/calendar"
GRAPH_SCOPES = ["User.Read", "Mail.ReadBasic", "Calendars.ReadWrite"]


def new_key() -> str:
    """An EventSpec key: 32 base32hex characters."""
    return base64.b32hexencode(os.urandom(20)).decode().lower()


def spec(start: dt.datetime, *, minutes: int = 15, key: str | None = None, **kw: Any) -> EventSpec:
    return EventSpec(
        key=key or new_key(),
        summary=kw.pop("summary", "Get back to Ada"),
        description=kw.pop("description", "Ada wrote last; it has been two weeks."),
        start=start,
        end=start + dt.timedelta(minutes=minutes),
        time_zone=kw.pop("time_zone", ZONE),
        link=kw.pop("link", "http://127.0.0.1:8000/sidebar?email=ada%40example.org"),
        **kw,
    )


# ---------------------------------------------------------------------------------------------
# One harness per provider: a writer, and the provider's own view of the account.


@dataclass
class Harness:
    sandbox: Any
    email: str
    service: str  # the sandbox controls' service name (faults, quota)
    create_method: str  # the sandbox controls' method name of an event create
    pacer: RecordingPacer = field(default_factory=RecordingPacer)

    def writer(self, *, timeout_s: float = 10.0) -> CalendarWriter:
        raise NotImplementedError

    def calendar_names(self) -> list[str]:
        raise NotImplementedError

    def live_events(self, calendar_id: str) -> list[dict[str, Any]]:
        """The provider's listing of the calendar: [{id, start (UTC datetime), summary}]."""
        raise NotImplementedError

    def add_primary_event(self, start: dt.datetime, end: dt.datetime) -> None:
        raise NotImplementedError

    def move_event(self, event_id: str, start: dt.datetime) -> None:
        """Change an event the way the user would in their calendar app."""
        raise NotImplementedError

    def stored_events(self, calendar_id: str) -> int:
        """Live rows the sandbox holds for the calendar (to wait for a write that outran us)."""
        rows, _ = self.sandbox.state.store.list_events(self.email, calendar_id, page_size=100)
        return sum(1 for r in rows if not r["is_deleted"])


class GoogleHarness(Harness):
    def token(self, scopes: str) -> str:
        store = self.sandbox.state.store
        with self.sandbox.state.lock:
            grant = store.create_grant(
                provider="google", mailbox=self.email, client_id="warmline-sandbox", scopes=scopes
            )
            return str(store.issue_access_token(grant["id"], scopes, 3600))

    def writer(self, *, timeout_s: float = 10.0) -> CalendarWriter:
        bearer = self.token(GOOGLE_WRITER_SCOPES)
        config = GoogleConfig(
            client_id="warmline-sandbox",
            client_secret="sandbox-secret",
            calendar_root=self.sandbox.http_url + "/",
            timeout_s=timeout_s,
        )
        return GoogleCalendarWriter(config, token=lambda force=False: bearer, pacer=self.pacer)

    def _get(self, path: str, **params: Any) -> dict[str, Any]:
        answer = requests.get(
            f"{self.sandbox.http_url}/calendar/v3/{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.token(GOOGLE_FULL)}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def calendar_names(self) -> list[str]:
        return [c["summary"] for c in self._get("users/me/calendarList")["items"]]

    def live_events(self, calendar_id: str) -> list[dict[str, Any]]:
        items = self._get(f"calendars/{calendar_id}/events", maxResults=2500)["items"]
        return [
            {
                "id": i["id"],
                "start": dt.datetime.fromisoformat(i["start"]["dateTime"]).astimezone(dt.UTC),
                "summary": i.get("summary"),
            }
            for i in items
        ]

    def _send(self, method: str, path: str, body: dict[str, Any]) -> None:
        answer = requests.request(
            method,
            f"{self.sandbox.http_url}/calendar/v3/{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token(GOOGLE_FULL)}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text

    def add_primary_event(self, start: dt.datetime, end: dt.datetime) -> None:
        self._send(
            "POST",
            "calendars/primary/events",
            {
                "summary": "Dentist",
                "start": {"dateTime": start.isoformat()},
                "end": {"dateTime": end.isoformat()},
            },
        )

    def move_event(self, event_id: str, start: dt.datetime) -> None:
        raise NotImplementedError  # not needed: Google's 409 path reads the event first


class MicrosoftHarness(Harness):
    def __init__(self, *args: Any, session: requests.Session, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session = session

    def token(self) -> str:
        from sandbox.microsoft.identity import access_token

        with self.sandbox.app.app_context():
            box = self.sandbox.state.store.get_mailbox(self.email)
            return access_token(box, "warmline-sandbox", GRAPH_SCOPES, 3600)

    def writer(self, *, timeout_s: float = 10.0) -> CalendarWriter:
        bearer = self.token()
        config = MicrosoftConfig(
            client_id="warmline-sandbox",
            client_secret="sandbox-secret",
            authority=f"{self.sandbox.https_url}/common",
            graph_root=f"{self.sandbox.https_url}/v1.0",
            ca_bundle=self.sandbox.ca_path,
            timeout_s=timeout_s,
        )
        return MicrosoftCalendarWriter(config, token=lambda force=False: bearer, pacer=self.pacer)

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = path if path.startswith("https://") else f"{self.sandbox.https_url}/v1.0/{path}"
        answer = self.session.request(
            method,
            url,
            headers={"Authorization": f"Bearer {self.token()}", "Prefer": 'outlook.timezone="UTC"'},
            timeout=10,
            **kwargs,
        )
        assert answer.status_code < 300, answer.text
        return dict(answer.json())

    def calendar_names(self) -> list[str]:
        return [c["name"] for c in self._call("GET", "me/calendars")["value"]]

    def live_events(self, calendar_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        link: str | None = f"me/calendars/{calendar_id}/events?$top=100"
        while link:
            body = self._call("GET", link)
            out += [
                {
                    "id": i["id"],
                    "start": dt.datetime.fromisoformat(i["start"]["dateTime"][:19]).replace(
                        tzinfo=dt.UTC
                    ),
                    "summary": i.get("subject"),
                }
                for i in body["value"]
            ]
            link = body.get("@odata.nextLink")
        return out

    def add_primary_event(self, start: dt.datetime, end: dt.datetime) -> None:
        fmt = "%Y-%m-%dT%H:%M:%S"
        self._call(
            "POST",
            "me/events",
            json={
                "subject": "Dentist",
                "start": {"dateTime": start.strftime(fmt), "timeZone": "UTC"},
                "end": {"dateTime": end.strftime(fmt), "timeZone": "UTC"},
            },
        )

    def move_event(self, event_id: str, start: dt.datetime) -> None:
        fmt = "%Y-%m-%dT%H:%M:%S"
        end = start + dt.timedelta(minutes=15)
        self._call(
            "PATCH",
            f"me/events/{event_id}",
            json={
                "start": {"dateTime": start.strftime(fmt), "timeZone": "UTC"},
                "end": {"dateTime": end.strftime(fmt), "timeZone": "UTC"},
            },
        )


@pytest.fixture(params=["google", "microsoft"])
def harness(
    request: pytest.FixtureRequest,
    sandbox: Any,
    make_mailbox: Callable[..., str],
    https_session: requests.Session,
) -> Iterator[Harness]:
    provider = str(request.param)
    email = make_mailbox(provider, messages=5)
    if provider == "google":
        yield GoogleHarness(sandbox, email, service="calendar", create_method="events.insert")
    else:
        yield MicrosoftHarness(
            sandbox, email, service="graph", create_method="events.create", session=https_session
        )


def wait_until(check: Callable[[], bool], *, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the sandbox never finished the write"
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# ensure_calendar


def test_ensure_calendar_creates_once_and_finds_it_again(harness: Harness) -> None:
    writer = harness.writer()
    first = writer.ensure_calendar(known_id=None, name=NAME)
    # The account's zone: Google's primary calendar; Graph's working hours (work/school).
    assert first.time_zone == ZONE
    again = writer.ensure_calendar(known_id=None, name=NAME)
    assert again.calendar_id == first.calendar_id
    assert writer.ensure_calendar(known_id=first.calendar_id, name=NAME) == first
    # A stale id (another account's, a calendar deleted long ago) falls back to the name.
    stale = writer.ensure_calendar(known_id="AAMkADstale0calendar", name=NAME)
    assert stale.calendar_id == first.calendar_id
    assert harness.calendar_names().count(NAME) == 1


# ---------------------------------------------------------------------------------------------
# put_event / remove_event


def test_put_is_idempotent_update_moves_and_remove_is_forgiving(harness: Harness) -> None:
    writer = harness.writer()
    calendar_id = writer.ensure_calendar(known_id=None, name=NAME).calendar_id
    first = spec(T0)
    event_id = writer.put_event(calendar_id, first, event_id=None)
    # The same spec again (a retry whose caller never learnt the id): still one event.
    assert writer.put_event(calendar_id, first, event_id=None) == event_id
    events = harness.live_events(calendar_id)
    assert [(e["id"], e["start"], e["summary"]) for e in events] == [
        (event_id, T0, "Get back to Ada")
    ]

    # Update through the provider's id: the event moves, nothing new appears.
    later = spec(T0 + dt.timedelta(days=1, hours=2), key=first.key, summary="Call Ada")
    assert writer.put_event(calendar_id, later, event_id=event_id) == event_id
    assert writer.put_event(calendar_id, later, event_id=event_id) == event_id
    events = harness.live_events(calendar_id)
    assert [(e["id"], e["start"], e["summary"]) for e in events] == [
        (event_id, later.start, "Call Ada")
    ]

    writer.remove_event(calendar_id, event_id)
    writer.remove_event(calendar_id, event_id)  # already gone: fine
    assert harness.live_events(calendar_id) == []
    assert writer.find_event(calendar_id, first.key) is None

    fresh = spec(T0 + dt.timedelta(days=2))
    new_id = writer.put_event(calendar_id, fresh, event_id=None)
    assert new_id != event_id
    assert [e["id"] for e in harness.live_events(calendar_id)] == [new_id]


def test_a_lost_response_is_retried_without_a_second_event(harness: Harness) -> None:
    writer = harness.writer()
    calendar_id = writer.ensure_calendar(known_id=None, name=NAME).calendar_id
    controls = harness.sandbox.state.controls
    controls.configure(slow_s=2.0)
    controls.fail_next(
        "slow", service=harness.service, mailbox=harness.email, method=harness.create_method
    )
    event = spec(T0, attendees=("ada@example.org",))
    with pytest.raises(ProviderUnavailable):
        harness.writer(timeout_s=1.0).put_event(calendar_id, event, event_id=None)
    # The provider went on and made the event after we stopped listening.
    wait_until(lambda: harness.stored_events(calendar_id) == 1)

    # Looking the key up finds the event without writing anything.
    found = writer.find_event(calendar_id, event.key)
    assert found is not None
    assert writer.find_event(calendar_id, new_key()) is None
    event_id = writer.put_event(calendar_id, event, event_id=None)
    assert event_id == found
    assert [e["id"] for e in harness.live_events(calendar_id)] == [event_id]
    # The retry found the event as specified and rewrote nothing: no second invitation.
    rewrite = "events.patch" if isinstance(harness, GoogleHarness) else "events.update"
    assert (harness.service, rewrite) not in harness.sandbox.state.controls.counters(harness.email)


def test_a_key_whose_event_was_changed_or_deleted_still_makes_one_event(
    harness: Harness,
) -> None:
    writer = harness.writer()
    calendar_id = writer.ensure_calendar(known_id=None, name=NAME).calendar_id
    event = spec(T0)
    event_id = writer.put_event(calendar_id, event, event_id=None)
    if isinstance(harness, MicrosoftHarness):
        # The user moved it: a create with the same transactionId now differs in content, which
        # Graph refuses (ErrorDuplicateTransactionId); the writer finds it and puts it back.
        harness.move_event(event_id, T0 + dt.timedelta(hours=5))
    else:
        # Deleted since: Google keeps the id reserved (409); the writer restores the event.
        writer.remove_event(calendar_id, event_id)
    assert writer.put_event(calendar_id, event, event_id=None) == event_id
    events = harness.live_events(calendar_id)
    assert [(e["id"], e["start"]) for e in events] == [(event_id, T0)]


def test_graph_answering_409_to_a_repeated_transaction_id_still_makes_one_event(
    sandbox: Any, make_mailbox: Callable[..., str], https_session: requests.Session
) -> None:
    """The event doc promises no status for a repeated transactionId: a 409 (to a retry of the
    same create, or to one whose event was changed since) still settles on the one event."""
    from sandbox.errors import GraphError

    harness = MicrosoftHarness(
        sandbox,
        make_mailbox("microsoft", messages=5),
        service="graph",
        create_method="events.create",
        session=https_session,
    )
    writer = harness.writer()
    calendar_id = writer.ensure_calendar(known_id=None, name=NAME).calendar_id
    event = spec(T0)
    event_id = writer.put_event(calendar_id, event, event_id=None)
    sandbox.state.config["graph_duplicate_transaction_status"] = 409
    assert writer.put_event(calendar_id, event, event_id=None) == event_id  # a lost answer
    harness.move_event(event_id, T0 + dt.timedelta(hours=5))
    assert writer.put_event(calendar_id, event, event_id=None) == event_id
    assert [(e["id"], e["start"]) for e in harness.live_events(calendar_id)] == [(event_id, T0)]

    # A refusal of a key that made no event is the request's own fault: it stands.
    sandbox.state.controls.fail_next(
        GraphError(400, "ErrorInvalidRequest", "Invalid request."),
        service="graph",
        mailbox=harness.email,
        method="events.create",
    )
    with pytest.raises(ProviderRejected) as raised:
        writer.put_event(calendar_id, spec(T0 + dt.timedelta(days=1)), event_id=None)
    assert raised.value.status == 400
    assert len(harness.live_events(calendar_id)) == 1


def test_an_update_of_an_event_gone_for_good_creates_it(harness: Harness) -> None:
    writer = harness.writer()
    calendar_id = writer.ensure_calendar(known_id=None, name=NAME).calendar_id
    event_id = writer.put_event(calendar_id, spec(T0), event_id="AAMkADgone0event0id")
    assert [e["id"] for e in harness.live_events(calendar_id)] == [event_id]


# ---------------------------------------------------------------------------------------------
# busy


def test_busy_covers_the_primary_calendar_and_the_followups_calendar(harness: Harness) -> None:
    writer = harness.writer()
    calendar_id = writer.ensure_calendar(known_id=None, name=NAME).calendar_id
    start, end = T0 - dt.timedelta(hours=3), T0 + dt.timedelta(hours=9)
    before = writer.busy(calendar_ids=[calendar_id], start=start, end=end)
    assert before is not None

    dentist = (T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2))
    harness.add_primary_event(*dentist)
    followup = spec(T0 + dt.timedelta(hours=4), minutes=30)
    writer.put_event(calendar_id, followup, event_id=None)
    # Straddling the window's end: clipped to it.
    late = spec(end - dt.timedelta(minutes=10), minutes=60)
    writer.put_event(calendar_id, late, event_id=None)

    after = writer.busy(calendar_ids=[calendar_id, "AAMkADno0such0calendar"], start=start, end=end)
    expected = coalesce(
        [
            *((i.start, i.end) for i in before),
            dentist,
            (followup.start, followup.end),
            (late.start, late.end),
        ],
        start,
        end,
    )
    assert after == expected
    assert any(i.start <= followup.start and followup.end <= i.end for i in after)
    assert after[-1] == Interval(late.start, end)
    assert writer.busy(calendar_ids=[], start=end, end=start) == []


def test_busy_is_none_for_a_personal_microsoft_account(
    sandbox: Any, https_session: requests.Session
) -> None:
    from sandbox.microsoft.common import CONSUMERS_TENANT_ID

    email = f"personal-{new_key()[:8]}@outlook.com"
    store = sandbox.state.store
    with sandbox.state.lock:
        store.create_mailbox(
            email,
            provider="microsoft",
            display_name="Pat",
            aliases=[],
            time_zone=ZONE,
            tenant_id=CONSUMERS_TENANT_ID,
        )
    try:
        harness = MicrosoftHarness(
            sandbox, email, service="graph", create_method="events.create", session=https_session
        )
        writer = harness.writer()
        followups = writer.ensure_calendar(known_id=None, name=NAME)
        assert followups.time_zone is None  # getSchedule is the only zone source, and refused
        day = (T0, T0 + dt.timedelta(days=1))
        assert writer.busy(calendar_ids=[followups.calendar_id], start=day[0], end=day[1]) is None
        # Writing works as for any account.
        assert writer.put_event(followups.calendar_id, spec(T0), event_id=None)
    finally:
        with sandbox.state.lock:
            store.delete_mailbox(email)


# ---------------------------------------------------------------------------------------------
# error mapping


@pytest.mark.parametrize(("fault", "error"), [(429, RateLimited), (503, ProviderUnavailable)])
def test_throttling_and_outages_map_to_the_taxonomy(
    harness: Harness, fault: int, error: type[Exception]
) -> None:
    writer = harness.writer()
    calendar_id = writer.ensure_calendar(known_id=None, name=NAME).calendar_id
    controls = harness.sandbox.state.controls
    controls.fail_next(fault, service=harness.service, mailbox=harness.email)
    with pytest.raises(error) as raised:
        writer.put_event(calendar_id, spec(T0), event_id=None)
    if fault == 429:
        assert isinstance(raised.value, RateLimited)
        assert raised.value.retry_after_s is not None
        # Every worker on the account is told to wait.
        assert [bucket for bucket, _ in harness.pacer.penalties] == [
            "calendar" if isinstance(harness, GoogleHarness) else "graph"
        ]
    controls.fail_next(fault, service=harness.service, mailbox=harness.email)
    with pytest.raises(error):
        writer.busy(calendar_ids=[calendar_id], start=T0, end=T0 + dt.timedelta(hours=1))
    assert harness.live_events(calendar_id) == []
    # Once the provider recovers, the same call goes through; every request was paced.
    assert writer.put_event(calendar_id, spec(T0), event_id=None)
    assert harness.pacer.acquired


def test_registry_builds_the_writer_for_each_provider(sandbox: Any, tmp_path: Any) -> None:
    settings = sandbox_settings(sandbox, tmp_path)
    pacer = RecordingPacer()

    def token(force: bool = False) -> str:
        return "unused"

    google = calendar_writer(settings, Provider.GOOGLE, token=token, pacer=pacer)
    microsoft = calendar_writer(settings, Provider.MICROSOFT, token=token, pacer=pacer)
    assert isinstance(google, GoogleCalendarWriter)
    assert isinstance(microsoft, MicrosoftCalendarWriter)
