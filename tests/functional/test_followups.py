"""Follow-ups end to end, both providers: mail and meetings in the sandbox → real sync →
derivation → suggestions → the API → events written by the real connectors into the sandbox's
calendar, in free slots only, once, and taken out again when the cause goes away.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import uuid
import zoneinfo
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import icalendar
import pytest
from sqlalchemy import select, update

from core.db import transaction
from core.followups.run import FollowupRun
from core.models import CalendarEvent, ConnectedAccount, Followup, FollowupStatus
from core.settings import Settings
from tests.functional.conftest import Browser
from tests.functional.syncing import factory_for, make_all_due, sync_until_idle
from workers.followups import followup_run

if TYPE_CHECKING:
    from sandbox.server import Sandbox

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
ZED = "zed.quill@partner.example"  # wrote, waits for a reply; the user then replies
YARA = "yara.lind@partner.example"  # wrote, waits; then they meet
XAVI = "xavi.roca@partner.example"  # wrote, waits; the user dismisses it
CALENDAR = "Warmline follow-ups"


@pytest.fixture(autouse=True)
def _fast_quota(sandbox: Sandbox) -> None:
    sandbox.state.controls.set_quota_profile("legacy")
    yield
    sandbox.state.controls.clear_faults()


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return settings.model_copy(update={"gmail_quota_profile": "legacy"})


def _ms(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)


def _message(
    mid: str,
    at: dt.datetime,
    sender: str,
    to: str,
    subject: str,
    *,
    sent: bool,
    reply_to: str | None = None,
) -> dict[str, Any]:
    labels = ["SENT"] if sent else ["INBOX"]
    extra = [["In-Reply-To", f"<{reply_to}@followups.test>"]] if reply_to else []
    return {
        "id": _hex(mid),
        "thread_id": _hex(subject),
        "internal_ms": _ms(at),
        "labels": labels,
        "folder": "sentitems" if sent else "inbox",
        "headers": [
            ["From", sender],
            ["To", to],
            ["Subject", subject],
            ["Message-ID", f"<{mid}@followups.test>"],
            ["Date", at.strftime("%a, %d %b %Y %H:%M:%S +0000")],
            *extra,
        ],
        "size_estimate": 2000,
        "is_read": True,
    }


def _hex(text: str) -> str:
    # Gmail ids are hexadecimal strings.
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _working_days_after(start: dt.date, n: int) -> list[dt.date]:
    days, day = [], start
    while len(days) < n:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            days.append(day)
    return days


def _plant(sandbox: Sandbox, mailbox: str, now: dt.datetime) -> list[dt.date]:
    """Three people wrote to the user 9 days ago; today and the next two working days are
    full. Zed has answered the user's mail at 15:10 Berlin time before."""
    store = sandbox.state.store
    wrote = now - dt.timedelta(days=9)
    messages = [
        _message(f"in-{who}", wrote, f"{name} <{who}>", mailbox, subject, sent=False)
        for who, name, subject in (
            (ZED, "Zed Quill", "Contract draft"),
            (YARA, "Yara Lind", "Workshop dates"),
            (XAVI, "Xavi Roca", "Invoice 42"),
        )
    ]
    for n, days in enumerate((40, 35, 30)):
        day = (now - dt.timedelta(days=days)).astimezone(BERLIN).date()
        asked = dt.datetime.combine(day, dt.time(10), tzinfo=BERLIN)
        answered = dt.datetime.combine(day, dt.time(15, 10), tzinfo=BERLIN)
        subject = f"Question {n}"
        messages.append(_message(f"q{n}", asked, mailbox, ZED, subject, sent=True))
        messages.append(
            _message(
                f"a{n}",
                answered,
                f"Zed Quill <{ZED}>",
                mailbox,
                f"Re: {subject}",
                sent=False,
                reply_to=f"q{n}",
            )
        )
    today = now.astimezone(BERLIN).date()
    full = [today, *_working_days_after(today, 2)]
    with sandbox.state.lock:
        store.add_messages(mailbox, messages)
        primary = store.list_calendars(mailbox)[0]
        for day in full:
            start = dt.datetime.combine(day, dt.time(8), tzinfo=BERLIN)
            end = dt.datetime.combine(day, dt.time(18), tzinfo=BERLIN)
            store.put_event(
                mailbox, primary["id"], _event(f"busy{day:%Y%m%d}", start, end, mailbox)
            )
    return full


def _event(
    eid: str, start: dt.datetime, end: dt.datetime, mailbox: str, guest: str | None = None
) -> dict[str, Any]:
    attendees = [
        {
            "email": mailbox,
            "name": "Me",
            "response": "accepted",
            "optional": False,
            "resource": False,
            "is_organizer": True,
        }
    ]
    if guest:
        attendees.append(
            {
                "email": guest,
                "name": "Guest",
                "response": "accepted",
                "optional": False,
                "resource": False,
                "is_organizer": False,
            }
        )
    return {
        "id": eid,
        "ical_uid": f"{eid}@sandbox.invalid",
        "status": "confirmed",
        "summary": "Blocked" if guest is None else "Workshop planning",
        "start": {"date_time": start.isoformat(), "time_zone": "Europe/Berlin"},
        "end": {"date_time": end.isoformat(), "time_zone": "Europe/Berlin"},
        "is_all_day": False,
        "organizer": {"email": mailbox, "name": "Me"},
        "attendees": attendees,
        "recurrence": [],
        "recurring_event_id": None,
        "original_start": None,
        "transaction_id": None,
        "app_key": None,
    }


def _followups(settings: Settings, user_id: uuid.UUID) -> FollowupRun:
    """What the worker's follow-up task does, in-process."""
    return followup_run(settings, factory_for(settings), user_id)


def _until_written(settings: Settings, user_id: uuid.UUID, runs: int = 40) -> FollowupRun:
    """Run follow-ups until a run ends without a provider error (faults may stop a run)."""
    for _ in range(runs):
        result = _followups(settings, user_id)
        if result.calendar.error is None:
            return result
    raise AssertionError(f"calendar writes did not settle: {result}")


def _calendar_events(sandbox: Sandbox, mailbox: str) -> list[dict[str, Any]]:
    store = sandbox.state.store
    [calendar] = [c for c in store.list_calendars(mailbox) if c["summary"] == CALENDAR]
    rows, _ = store.list_events(mailbox, calendar["id"], page_size=1000)
    return [r["body"] for r in rows if not r["is_deleted"]]


def _live(browser: Browser) -> dict[str, dict[str, Any]]:
    body = browser.client.get("/api/v1/followups").get_json()
    return {f["address"]: f for f in body["follow_ups"]}


def _post(browser: Browser, path: str, body: dict[str, Any] | None = None) -> Any:
    return browser.client.post(path, json=body or {}, headers={"X-CSRF-Token": browser.csrf()})


def _start(body: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(body["start"]["date_time"])


@pytest.mark.parametrize("provider", ["google", "microsoft"])
def test_follow_ups_go_into_free_slots_once_and_leave_when_answered_met_or_dismissed(
    provider: str, browser: Browser, make_mailbox, fast: Settings, sandbox: Sandbox
) -> None:
    now = dt.datetime.now(dt.UTC)
    mailbox = make_mailbox(provider, messages=30, days=120)
    full_days = _plant(sandbox, mailbox, now)
    status, page = browser.connect(provider, mailbox)
    assert status == 302, page[:300]
    [account] = browser.client.get("/api/v1/accounts").get_json()["accounts"]
    account_id = uuid.UUID(account["id"])
    sync_until_idle(fast, account_id)
    with factory_for(fast)() as session:
        user_id = session.get(ConnectedAccount, account_id).user_id
    response = browser.client.patch(
        "/api/v1/preferences",
        json={"time_zone": "Europe/Berlin"},
        headers={"X-CSRF-Token": browser.csrf()},
    )
    assert response.status_code == 200, response.get_json()

    # Suggestions appear; nothing is written before the user accepts (auto-scheduling is off).
    _until_written(fast, user_id)
    live = _live(browser)
    for who in (ZED, YARA, XAVI):
        assert live[who]["kind"] == "waiting_on_you"
        assert live[who]["scheduled"] is None
    assert "you have not replied" in live[ZED]["reason"]

    # Accepting puts one event into a free slot: not on the two full days, inside working hours.
    for who in (ZED, YARA, XAVI):
        assert _post(browser, f"/api/v1/followups/{live[who]['id']}/accept").status_code == 200
    controls = sandbox.state.controls
    controls.configure(mailbox=mailbox, retry_after_s=1)
    controls.set_faults({"429": 0.05, "500": 0.03, "503": 0.02}, mailbox=mailbox)
    for _ in range(3):  # retries under faults, then again with nothing to do
        _until_written(fast, user_id)
    sandbox.state.controls.clear_faults()
    events = _calendar_events(sandbox, mailbox)
    assert len(events) == 3, [e["summary"] for e in events]
    assert {e["summary"] for e in events} == {
        "Reply to Zed Quill",
        "Reply to Yara Lind",
        "Reply to Xavi Roca",
    }
    busy = _busy(fast, account_id)
    slots = sorted((_start(e), dt.datetime.fromisoformat(e["end"]["date_time"])) for e in events)
    for start, end in slots:
        local = start.astimezone(BERLIN)
        assert local.date() not in full_days
        assert local.weekday() < 5
        assert dt.time(9) <= local.time()
        assert end.astimezone(BERLIN).time() <= dt.time(17)
        assert not any(s < end and start < e for s, e in busy), (start, end)
    # Zed's reply lands at the hour Zed answers mail (unless that hour is taken that day).
    [zed] = [e for e in events if e["summary"] == "Reply to Zed Quill"]
    zed_start = _start(zed).astimezone(BERLIN)
    three = dt.datetime.combine(zed_start.date(), dt.time(15), tzinfo=BERLIN)
    taken = any(s < three + dt.timedelta(hours=1) and three < e for s, e in busy)
    assert zed_start.hour == 15 or taken, zed_start
    for (_, end_a), (start_b, _) in itertools.pairwise(slots):
        assert end_a <= start_b  # follow-ups do not pile onto one slot either

    # A write whose answer was lost (the row forgot the event id) is finished, not doubled.
    with transaction(factory_for(fast)) as session:
        session.execute(update(Followup).where(Followup.address == ZED).values(event_id=None))
    _until_written(fast, user_id)
    assert len(_calendar_events(sandbox, mailbox)) == 3

    # The ICS feed shows the same three.
    feed_url = _post(browser, "/api/v1/calendar-feed").get_json()["url"]
    ics = browser.client.get(urlsplit(feed_url).path)
    assert ics.status_code == 200
    assert ics.mimetype == "text/calendar"
    calendar = icalendar.Calendar.from_ical(ics.data)
    assert sorted(str(e["SUMMARY"]) for e in calendar.walk("VEVENT")) == sorted(
        e["summary"] for e in events
    )

    # Zed gets a reply, Yara a meeting, Xavi a dismissal: each event leaves the calendar.
    store = sandbox.state.store
    with sandbox.state.lock:
        store.add_messages(
            mailbox,
            [
                _message(
                    "re-zed", now - dt.timedelta(hours=1), mailbox, ZED, "Contract draft", sent=True
                )
            ],
        )
        primary = store.list_calendars(mailbox)[0]
        met = now - dt.timedelta(hours=3)
        store.put_event(
            mailbox,
            primary["id"],
            _event("metyara", met, met + dt.timedelta(minutes=45), mailbox, YARA),
        )
    assert _post(browser, f"/api/v1/followups/{live[XAVI]['id']}/dismiss").status_code == 200
    make_all_due(fast, account_id)
    sync_until_idle(fast, account_id)
    _until_written(fast, user_id)
    with factory_for(fast)() as session:
        dump = [
            (f.address, f.status, f.event_id, f.slot_end, f.event_key)
            for f in session.scalars(select(Followup).where(Followup.user_id == user_id))
        ]
    assert _calendar_events(sandbox, mailbox) == [], dump
    with factory_for(fast)() as session:
        statuses = {
            f.address: f.status
            for f in session.scalars(select(Followup).where(Followup.user_id == user_id))
            if f.address in (ZED, YARA, XAVI)
        }
    assert statuses == {
        ZED: FollowupStatus.RESOLVED,
        YARA: FollowupStatus.RESOLVED,
        XAVI: FollowupStatus.DISMISSED,
    }
    # A dismissed suggestion never comes back for the same cause.
    _until_written(fast, user_id)
    assert XAVI not in _live(browser)


def _busy(settings: Settings, account_id: uuid.UUID) -> list[tuple[dt.datetime, dt.datetime]]:
    """Busy time as synced from the user's calendars (the follow-ups calendar excluded)."""
    with factory_for(settings)() as session:
        account = session.get(ConnectedAccount, account_id)
        rows = session.execute(
            select(CalendarEvent.start_at, CalendarEvent.end_at).where(
                CalendarEvent.account_id == account_id,
                CalendarEvent.is_cancelled.is_(False),
                CalendarEvent.is_all_day.is_(False),
                CalendarEvent.provider_calendar_id != (account.followups_calendar_id or ""),
            )
        ).all()
    return [(s, e) for s, e in rows if s and e]


def test_settings_forms_feed_lifecycle_and_bad_requests(
    browser: Browser, other_browser: Browser, make_mailbox, fast: Settings, sandbox: Sandbox
) -> None:
    mailbox = make_mailbox("google", messages=5)
    assert browser.connect("google", mailbox)[0] == 302
    token = browser.csrf()
    page = browser.client.post(
        "/settings/followups",
        data={"csrf_token": token, "auto_schedule": "1", "time_zone": "Asia/Kolkata"},
    )
    assert page.status_code == 302
    prefs = browser.client.get("/api/v1/preferences").get_json()
    assert (prefs["auto_schedule"], prefs["time_zone"]) == (True, "Asia/Kolkata")
    # The sidebar now counts days in that zone (it still answers, timeline and all).
    context = browser.client.get(f"/api/v1/contacts/{mailbox}/context").get_json()
    assert (context["reason"], len(context["timeline"])) == ("yourself", 12)
    assert browser.client.get(f"/sidebar?email={mailbox}").status_code == 200
    # A zone nobody knows is refused with a message and changes nothing.
    browser.client.post("/settings/followups", data={"csrf_token": token, "time_zone": "Mars/Base"})
    assert browser.client.get("/api/v1/preferences").get_json()["time_zone"] == "Asia/Kolkata"
    assert "Unknown time zone" in browser.client.get("/accounts").get_data(as_text=True)
    bad = browser.client.patch(
        "/api/v1/preferences", json={"work_start": "18:00", "work_end": "09:00"},
        headers={"X-CSRF-Token": token},
    )  # fmt: skip
    assert bad.status_code == 400
    assert "work_end" in bad.get_json()["error"]["message"]
    # Without the CSRF token a form post is refused.
    assert (
        browser.client.post("/settings/followups", data={"auto_schedule": "1"}).status_code == 403
    )

    # The feed: made, served, replaced (the old address dies), turned off.
    browser.client.post("/settings/calendar-feed", data={"csrf_token": token, "action": "rotate"})
    html = browser.client.get("/accounts").get_data(as_text=True)
    assert "<title>Accounts · Warmline</title>" in html
    first = urlsplit(html.split("(shown once): ", 1)[1].split("<", 1)[0].strip()).path
    assert browser.client.get(first).status_code == 200
    assert other_browser.client.get(first).status_code == 200  # the URL is the credential
    second = urlsplit(_post(browser, "/api/v1/calendar-feed").get_json()["url"]).path
    assert browser.client.get(first).status_code == 404
    assert browser.client.get(second).status_code == 200
    browser.client.post("/settings/calendar-feed", data={"csrf_token": token, "action": "revoke"})
    assert browser.client.get(second).status_code == 404

    # Unknown or someone else's follow-up: 404; bad bodies: 400; never an open redirect.
    assert _post(browser, "/api/v1/followups/999999/done").status_code == 404
    # An id past BIGINT is a row that cannot exist, not a database overflow (found by fuzzing).
    too_big = _post(browser, f"/api/v1/followups/{2**63}/dismiss")
    assert too_big.status_code == 404
    assert too_big.get_json()["error"]["code"] == 404
    assert browser.client.get("/api/v1/followups?status=bogus").status_code == 400
    snooze = _post(browser, "/api/v1/followups/1/snooze", {"until": "tomorrow"})
    assert snooze.status_code == 400
    assert snooze.get_json()["error"]["message"].startswith("until")
    gone = browser.client.post(
        "/followups/999999/done", data={"csrf_token": token, "next": "//evil.example/"}
    )
    assert gone.status_code == 404


@pytest.mark.parametrize("provider", ["google", "microsoft"])
def test_a_call_is_a_longer_slot_and_invites_the_contact_only_when_asked(
    provider: str, browser: Browser, make_mailbox, fast: Settings, sandbox: Sandbox
) -> None:
    now = dt.datetime.now(dt.UTC)
    mailbox = make_mailbox(provider, messages=5, days=30)
    olga = "olga.berg@partner.example"
    messages = []
    for n in range(12):  # three months of mail both ways, never met; I had the last word
        at = now - dt.timedelta(days=95 - 8 * n)
        subject = f"Design {n}"
        messages.append(_message(f"o{n}", at, f"Olga Berg <{olga}>", mailbox, subject, sent=False))
        messages.append(
            _message(
                f"m{n}",
                at + dt.timedelta(hours=2),
                mailbox,
                olga,
                f"Re: {subject}",
                sent=True,
                reply_to=f"o{n}",
            )
        )
    with sandbox.state.lock:
        sandbox.state.store.add_messages(mailbox, messages)
    assert browser.connect(provider, mailbox)[0] == 302
    [account] = browser.client.get("/api/v1/accounts").get_json()["accounts"]
    account_id = uuid.UUID(account["id"])
    sync_until_idle(fast, account_id)
    with factory_for(fast)() as session:
        user_id = session.get(ConnectedAccount, account_id).user_id
    _until_written(fast, user_id)
    call = _live(browser)[olga]
    assert call["kind"] == "off_screen"
    assert call["reason"].startswith("24 emails both ways since")
    assert call["reason"].endswith("never met: suggest a call.")

    assert _post(browser, f"/api/v1/followups/{call['id']}/accept").status_code == 200
    _until_written(fast, user_id)
    [event] = _calendar_events(sandbox, mailbox)
    start, end = _start(event), dt.datetime.fromisoformat(event["end"]["date_time"])
    assert end - start == dt.timedelta(minutes=30)
    assert event["summary"] == "Call Olga Berg"
    assert {a["email"] for a in event["attendees"]} <= {mailbox}  # nobody invited yet

    # The user asks to invite Olga: the same event, now with her on it.
    invited = _post(browser, f"/api/v1/followups/{call['id']}/accept", {"invite": True})
    assert invited.get_json()["invite"] is True
    _until_written(fast, user_id)
    [again] = _calendar_events(sandbox, mailbox)
    assert again["id"] == event["id"]
    assert olga in {a["email"] for a in again["attendees"]}
