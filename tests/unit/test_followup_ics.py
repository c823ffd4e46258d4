"""The follow-ups ICS feed: what a subscribed calendar reads back (pure)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar, Event

from core.followups.ics import PRODID, FeedEvent, render_feed

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 23, 8, tzinfo=UTC)


def event(**changes: object) -> FeedEvent:
    base = FeedEvent(
        uid="0123456789abcdefghijklmnopqrstuv@warmline",
        summary="Reply to Ada Lovelace",
        description="She wrote 3 days ago: “Q3 plan”.",
        start=dt.datetime(2026, 11, 24, 9, tzinfo=UTC),
        end=dt.datetime(2026, 11, 24, 9, 30, tzinfo=UTC),
        time_zone="Europe/Berlin",
        url="https://warmline.example/sidebar?email=ada%40example.com&from=ics",
        updated=dt.datetime(2026, 11, 23, 7, 15, tzinfo=UTC),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def event_at(uid: str, time_zone: str, start: dt.datetime, minutes: int = 30) -> FeedEvent:
    end = start + dt.timedelta(minutes=minutes)
    return event(uid=uid, time_zone=time_zone, start=start, end=end)


def parse(feed: bytes) -> Calendar:
    return Calendar.from_ical(feed)


def unescape_text(raw: str) -> str:
    """RFC 5545 3.3.11 TEXT unescaping, in one pass (for properties icalendar leaves raw)."""
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m[1] in "nN" else m[1], raw)


def utc(value: dt.datetime) -> dt.datetime:
    # Compare instants in UTC: PEP 495 makes == between zones false inside a repeated hour.
    return value.astimezone(UTC)


def assert_round_trips(parsed: Event, sent: FeedEvent) -> None:
    assert str(parsed["UID"]) == sent.uid
    assert str(parsed["SUMMARY"]) == sent.summary
    assert str(parsed["DESCRIPTION"]) == sent.description
    assert utc(parsed.start) == utc(sent.start)
    assert utc(parsed.end) == utc(sent.end)
    assert parsed["DTSTAMP"].dt == sent.updated
    assert parsed["LAST-MODIFIED"].dt == sent.updated
    assert parsed["SEQUENCE"] == sent.sequence
    assert str(parsed["STATUS"]) == sent.status
    if sent.url is None:
        assert "URL" not in parsed
    else:
        assert str(parsed["URL"]) == sent.url


def test_every_field_round_trips() -> None:
    sent = event(sequence=3)
    cal = parse(render_feed([sent], calendar_name="Warmline follow-ups", now=NOW))
    [parsed] = cal.events
    assert_round_trips(parsed, sent)
    # Shown in the user's zone, not floating and not UTC.
    assert parsed["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert parsed["DTEND"].params["TZID"] == "Europe/Berlin"
    assert parsed.start.tzinfo == ZoneInfo("Europe/Berlin")
    assert parsed.start.replace(tzinfo=None) == dt.datetime(2026, 11, 24, 10)  # noqa: DTZ001
    assert str(parsed["TRANSP"]) == "OPAQUE"


def test_calendar_properties() -> None:
    feed = render_feed([event()], calendar_name="Warmline follow-ups", now=NOW)
    cal = parse(feed)
    assert str(cal["PRODID"]) == PRODID == "-//Warmline//Follow-ups//EN"
    assert str(cal["VERSION"]) == "2.0"
    assert str(cal["METHOD"]) == "PUBLISH"
    assert str(cal["CALSCALE"]) == "GREGORIAN"
    assert cal.refresh_interval == dt.timedelta(hours=1)
    assert b"\r\nREFRESH-INTERVAL;VALUE=DURATION:PT1H\r\n" in feed
    assert str(cal["X-PUBLISHED-TTL"]) == "PT1H"
    assert unescape_text(str(cal["X-WR-CALNAME"])) == "Warmline follow-ups"
    assert unescape_text(str(cal["NAME"])) == "Warmline follow-ups"


def test_an_empty_feed_is_a_valid_calendar() -> None:
    feed = render_feed([], calendar_name="Warmline follow-ups", now=NOW)
    assert feed.startswith(b"BEGIN:VCALENDAR\r\n")
    assert feed.endswith(b"END:VCALENDAR\r\n")
    cal = parse(feed)
    assert cal.events == []
    assert cal.timezones == []
    assert str(cal["PRODID"]) == PRODID


@pytest.mark.parametrize(
    "text",
    [
        "Zoë Ñúñez",
        "Call Grace, then Ada; maybe Bob",
        "line one\nline two\n\nline four",
        "a back\\slash, a literal \\n and \\, and a trailing \\",
        "emoji 🎉👩🏽‍💻 and CJK 漢字 and RTL שלום",
        'quotes " and colons: and TZID=Europe/Berlin;VALUE=DATE',
        "END:VEVENT",
        "",
        "tab\tinside and  double  spaces ",
        "é" * 200,  # folded across many lines, never inside a character
    ],
)
def test_text_round_trips(text: str) -> None:
    sent = event(summary=text, description=text)
    feed = render_feed([sent], calendar_name=text or "x", now=NOW)
    cal = parse(feed)
    [parsed] = cal.events
    assert_round_trips(parsed, sent)
    assert unescape_text(str(cal["X-WR-CALNAME"])) == (text or "x")
    assert unescape_text(str(cal["NAME"])) == (text or "x")


def test_carriage_returns_come_back_as_newlines() -> None:
    # iCalendar has one escape for a line break (\n); a CR can never reach the wire raw.
    sent = event(summary="a\r\nb\rc", description="x\r\ny")
    feed = render_feed([sent], calendar_name="name\r\nwith a break", now=NOW)
    assert b"\rc" not in feed
    cal = parse(feed)
    [parsed] = cal.events
    assert str(parsed["SUMMARY"]) == "a\nb\nc"
    assert str(parsed["DESCRIPTION"]) == "x\ny"
    assert unescape_text(str(cal["X-WR-CALNAME"])) == "name\nwith a break"


def test_lines_are_crlf_and_folded_at_75_octets() -> None:
    long = "Zoë " * 100 + "🎉" * 30
    feed = render_feed([event(description=long)], calendar_name="Warmline", now=NOW)
    assert feed.endswith(b"\r\n")
    lines = feed.split(b"\r\n")[:-1]
    assert all(b"\n" not in line and b"\r" not in line for line in lines)
    assert all(len(line) <= 75 for line in lines)
    assert any(line.startswith(b" ") for line in lines)  # it was folded
    for line in lines:
        line.decode("utf-8")  # no multi-byte character split across a fold
    [parsed] = parse(feed).events
    assert str(parsed["DESCRIPTION"]) == long


def test_one_vtimezone_per_zone_used_covering_the_events() -> None:
    events = [
        event(uid="a@warmline"),
        event(uid="b@warmline", time_zone="Asia/Kolkata"),
        event_at("c@warmline", "Europe/Berlin", event().start + dt.timedelta(days=1)),
        event(uid="d@warmline", time_zone="America/Los_Angeles"),
    ]
    feed = render_feed(events, calendar_name="Warmline", now=NOW)
    cal = parse(feed)
    assert [tz.tz_name for tz in cal.timezones] == [
        "America/Los_Angeles",
        "Asia/Kolkata",
        "Europe/Berlin",
    ]
    assert cal.get_missing_tzids() == set()
    assert feed.count(b"BEGIN:VTIMEZONE") == 3
    # The zones come before the events that use them.
    assert feed.index(b"END:VTIMEZONE") < feed.index(b"BEGIN:VEVENT")
    for parsed, sent in zip(
        cal.events, sorted(events, key=lambda e: (e.start, e.uid)), strict=True
    ):
        assert parsed["DTSTART"].params["TZID"] == sent.time_zone
        assert_round_trips(parsed, sent)


def test_the_vtimezone_describes_the_dst_change_inside_the_feed() -> None:
    # An event before and one after Berlin's fall back: the VTIMEZONE carries both offsets.
    before = event_at("a@warmline", "Europe/Berlin", dt.datetime(2026, 10, 20, 8, tzinfo=UTC))
    after = event_at("b@warmline", "Europe/Berlin", dt.datetime(2026, 10, 27, 9, tzinfo=UTC))
    cal = parse(render_feed([after, before], calendar_name="Warmline", now=NOW))
    [zone] = cal.timezones
    offsets = {sub["TZOFFSETTO"].to_ical() for sub in zone.subcomponents}
    assert {"+0200", "+0100"} <= offsets
    # Wall clock 10:00 both times, one hour apart in UTC.
    first, second = cal.events
    assert first.start.replace(tzinfo=None).time() == dt.time(10)
    assert second.start.replace(tzinfo=None).time() == dt.time(10)
    assert_round_trips(first, before)
    assert_round_trips(second, after)


def test_times_in_unusual_zones_round_trip() -> None:
    cases = [
        ("Asia/Kolkata", dt.datetime(2026, 11, 24, 3, 45, tzinfo=UTC)),  # 09:15 IST
        ("Asia/Kathmandu", dt.datetime(2026, 11, 24, 3, 15, tzinfo=UTC)),  # 09:00 +0545
        ("Pacific/Auckland", dt.datetime(2026, 11, 23, 20, tzinfo=UTC)),  # 09:00 next day
        ("America/Los_Angeles", dt.datetime(2026, 11, 28, 0, 30, tzinfo=UTC)),  # Friday 16:30
        # Berlin's spring-forward day: 03:00 CEST, just after the jump.
        ("Europe/Berlin", dt.datetime(2026, 3, 29, 1, tzinfo=UTC)),
    ]
    events = [event_at(f"{i}@warmline", zone, start, 60) for i, (zone, start) in enumerate(cases)]
    cal = parse(render_feed(events, calendar_name="Warmline", now=NOW))
    by_uid = {str(e["UID"]): e for e in cal.events}
    for sent in events:
        parsed = by_uid[sent.uid]
        assert parsed["DTSTART"].params["TZID"] == sent.time_zone
        assert_round_trips(parsed, sent)


def test_the_second_pass_of_a_repeated_hour_is_written_in_utc() -> None:
    # America/New_York 2026-11-01: 01:30 happens twice. Local time names the first (EDT), so
    # an event at the second (EST, 06:30 UTC) goes out in UTC; the first keeps its TZID.
    first = event(
        uid="first@warmline",
        time_zone="America/New_York",
        start=dt.datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
        end=dt.datetime(2026, 11, 1, 5, 45, tzinfo=UTC),
    )
    second = event(
        uid="second@warmline",
        time_zone="America/New_York",
        start=dt.datetime(2026, 11, 1, 6, 30, tzinfo=UTC),
        end=dt.datetime(2026, 11, 1, 7, 30, tzinfo=UTC),  # 02:30 EST would be fine alone
    )
    cal = parse(render_feed([first, second], calendar_name="Warmline", now=NOW))
    by_uid = {str(e["UID"]): e for e in cal.events}
    assert by_uid["first@warmline"]["DTSTART"].params["TZID"] == "America/New_York"
    assert "TZID" not in by_uid["second@warmline"]["DTSTART"].params
    assert "TZID" not in by_uid["second@warmline"]["DTEND"].params  # both ends in one zone
    assert by_uid["second@warmline"].start.utcoffset() == dt.timedelta(0)
    assert_round_trips(by_uid["first@warmline"], first)
    assert_round_trips(by_uid["second@warmline"], second)


def test_cancelled_events_stay_with_a_higher_sequence_and_free_their_time() -> None:
    sent = event(status="CANCELLED", sequence=4, updated=NOW)
    [parsed] = parse(render_feed([sent], calendar_name="Warmline", now=NOW)).events
    assert_round_trips(parsed, sent)
    assert str(parsed["TRANSP"]) == "TRANSPARENT"


def test_an_event_without_url_has_no_url() -> None:
    sent = event(url=None)
    [parsed] = parse(render_feed([sent], calendar_name="Warmline", now=NOW)).events
    assert_round_trips(parsed, sent)


def test_the_same_events_render_the_same_bytes() -> None:
    events = [
        event_at(f"{i}@warmline", zone, event().start + dt.timedelta(hours=i % 2))
        for i, zone in enumerate(["Europe/Berlin", "Asia/Kolkata", "UTC", "Europe/Berlin"])
    ]
    one = render_feed(events, calendar_name="Warmline", now=NOW)
    other = render_feed(reversed(events), calendar_name="Warmline", now=NOW + dt.timedelta(1))
    assert one == other


def test_aware_non_utc_inputs_are_the_same_instants() -> None:
    plus_nine = dt.timezone(dt.timedelta(hours=9))
    sent = event(
        start=dt.datetime(2026, 11, 24, 18, tzinfo=plus_nine),
        end=dt.datetime(2026, 11, 24, 18, 30, tzinfo=plus_nine),
        updated=dt.datetime(2026, 11, 23, 16, tzinfo=plus_nine),
    )
    [parsed] = parse(render_feed([sent], calendar_name="Warmline", now=NOW)).events
    assert_round_trips(parsed, sent)
    assert parsed["DTSTAMP"].to_ical() == b"20261123T070000Z"


NAIVE = dt.datetime(2026, 11, 24, 9)  # noqa: DTZ001  (the point of the test)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"start": NAIVE}, "start must be a timezone-aware"),
        ({"end": NAIVE}, "end must be a timezone-aware"),
        ({"updated": NAIVE}, "updated must be a timezone-aware"),
        ({"time_zone": "Europe/Atlantis"}, "Europe/Atlantis"),
        ({"end": dt.datetime(2026, 11, 24, 9, tzinfo=UTC)}, "must end after it starts"),
        ({"status": "MAYBE"}, "status"),
        ({"sequence": -1}, "sequence"),
        ({"uid": ""}, "uid"),
        ({"url": "https://warmline.example/\r\nX-EVIL:1"}, "CR or LF"),
    ],
)
def test_bad_events_are_rejected(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_feed([event(**changes)], calendar_name="Warmline", now=NOW)


def test_duplicate_uids_and_a_naive_now_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate uid"):
        render_feed([event(), event()], calendar_name="Warmline", now=NOW)
    with pytest.raises(ValueError, match="now must be a timezone-aware"):
        render_feed([], calendar_name="Warmline", now=NAIVE)


# Any text a user could type: letters of every script, symbols, emoji, and the characters that
# iCalendar escapes. Control characters other than tab and newline have no place in a name.
TEXT = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")) | st.sampled_from("\n\t,;:\\\"'"),
    max_size=120,
)


@settings(max_examples=75, deadline=None)
@given(summary=TEXT, description=TEXT, name=TEXT)
def test_any_text_round_trips(summary: str, description: str, name: str) -> None:
    sent = event(summary=summary, description=description)
    cal = parse(render_feed([sent], calendar_name=name, now=NOW))
    [parsed] = cal.events
    assert_round_trips(parsed, sent)
    assert unescape_text(str(cal["X-WR-CALNAME"])) == name
