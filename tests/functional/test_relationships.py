"""The relationships page and its API over a real (migrated) database, with contacts and
suggestions written as derivation and the follow-up rules write them.

Core-level tests call `list_relationships` with a fixed `now` (month boundaries in the user's
time zone); API tests go through the Flask app with API tokens and a browser session, and check
every answer against the served OpenAPI document.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

import migrations
from core import auth
from core.db import transaction, utcnow
from core.models import Contact, Followup, FollowupKind, FollowupStatus, User
from core.relationships import InvalidRequest, list_relationships, month_start
from server.app import create_app
from tests.functional.test_context_api import Spec
from tests.support import make_settings

NOW = dt.datetime(2026, 11, 17, 15, 0, tzinfo=dt.UTC)
API = "/api/v1/relationships"
_numbers = itertools.count(1)


# Fixtures and builders


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One migrated database for the module; every test makes its own users."""
    with pytest.MonkeyPatch.context() as env:
        for name in list(os.environ):
            if name.startswith("WARMLINE_"):
                env.delenv(name)
        data: Path = tmp_path_factory.mktemp("relationships") / "data"
        settings = make_settings(data)
        data.mkdir(parents=True)
        migrations.upgrade(settings.effective_database_url)
        app = create_app(settings)
    yield app
    app.extensions["warmline"]["engine"].dispose()


@pytest.fixture
def factory(app: Flask) -> sessionmaker[Session]:
    return app.extensions["warmline"]["session_factory"]  # type: ignore[no-any-return]


@pytest.fixture
def spec(app: Flask) -> Spec:
    return Spec(app.test_client())


def make_user(factory: sessionmaker[Session], *, time_zone: str | None = None) -> uuid.UUID:
    with transaction(factory) as session:
        user = User(
            email=f"me{next(_numbers)}@warmline.test",
            preferences={"time_zone": time_zone} if time_zone else {},
        )
        session.add(user)
        session.flush()
        return user.id


def person(address: str, strength: int | None, **values: Any) -> dict[str, Any]:
    """A derived contact row; unmerged (its own person key) unless `person_key` is given."""
    last = values.pop("last_contact_at", NOW - dt.timedelta(days=10))
    row: dict[str, Any] = {
        "address": address,
        "display_name": values.pop("display_name", address.split("@")[0].title()),
        "company": "example.org",
        "kind": "person",
        "inbound_count": 3,
        "outbound_count": 2,
        "first_contact_at": NOW - dt.timedelta(days=200),
        "last_contact_at": last,
        "last_inbound_at": last,
        "last_outbound_at": last - dt.timedelta(days=1),
        "past_meetings": 0,
        "strength": strength,
        "strength_reasons": ["writes often", "you reply fast", "met recently"],
        "person_key": address,
    }
    row.update(values)
    return row


def add(factory: sessionmaker[Session], user_id: uuid.UUID, *rows: dict[str, Any]) -> None:
    with transaction(factory) as session:
        for row in rows:
            session.add(Contact(user_id=user_id, **row))


def suggest(
    factory: sessionmaker[Session],
    user_id: uuid.UUID,
    address: str,
    kind: FollowupKind,
    status: FollowupStatus = FollowupStatus.OPEN,
    *,
    due_in_days: float = 1,
    reason: str | None = None,
) -> int:
    with transaction(factory) as session:
        row = Followup(
            user_id=user_id,
            address=address,
            kind=kind,
            cause_key=f"cause-{next(_numbers)}",
            status=status,
            reason=reason or f"{kind.value} for {address}",
            due_at=NOW + dt.timedelta(days=due_in_days),
        )
        session.add(row)
        session.flush()
        return row.id


def page_of(
    factory: sessionmaker[Session], user_id: uuid.UUID, *, now: dt.datetime = NOW, **kw: Any
) -> Any:
    with factory() as session:
        return list_relationships(session, user_id=user_id, now=now, **kw)


def addresses(factory: sessionmaker[Session], user_id: uuid.UUID, **kw: Any) -> list[str]:
    return [item["address"] for item in page_of(factory, user_id, **kw).items]


def bearer(factory: sessionmaker[Session], user_id: uuid.UUID) -> dict[str, str]:
    with transaction(factory) as session:
        _, raw = auth.create_api_token(session, user_id=user_id, name="test", now=utcnow())
    return {"Authorization": f"Bearer {raw}"}


def signed_in(app: Flask, factory: sessionmaker[Session], user_id: uuid.UUID) -> FlaskClient:
    """A browser with a session cookie for this user."""
    with transaction(factory) as session:
        raw = auth.create_web_session(session, user_id=user_id, now=utcnow())
    client = app.test_client()
    with client.session_transaction() as cookie:
        cookie["sid"] = raw
    return client


# Ranking, one row per person, the numbers of a row


def test_people_ranked_by_strength_one_row_each_with_their_numbers(
    factory: sessionmaker[Session],
) -> None:
    user_id = make_user(factory)
    key = "ada@home.org"  # the smallest address names Ada's key; her work address is stronger
    add(
        factory,
        user_id,
        person("bob@example.org", 70),
        person("cy@example.org", 40, last_contact_at=NOW - dt.timedelta(days=21)),
        person(
            key,
            30,
            display_name="Ada Lovelace",
            person_key=key,
            inbound_count=4,
            outbound_count=1,
            past_meetings=2,
            first_contact_at=NOW - dt.timedelta(days=900),
            last_meeting_at=NOW - dt.timedelta(days=1, hours=2),
            last_contact_at=NOW - dt.timedelta(days=1, hours=2),
        ),
        person(
            "ada@work.com",
            90,
            display_name="Ada Lovelace",
            person_key=key,
            inbound_count=10,
            outbound_count=12,
            next_meeting_at=NOW + dt.timedelta(days=3),
        ),
        # Not relationships: a list, a robot, a person without a strength.
        person("news@lists.example.org", 99, kind="list"),
        person("noreply@example.org", 98, kind="automated"),
        person("unranked@example.org", None),
    )
    page = page_of(factory, user_id)
    assert [i["address"] for i in page.items] == [
        "ada@work.com",
        "bob@example.org",
        "cy@example.org",
    ]
    assert page.next_cursor is None
    assert page.filter is None
    ada = page.items[0]
    assert ada["display_name"] == "Ada Lovelace"
    assert ada["other_addresses"] == [key]
    assert ada["strength"] == 90
    assert ada["strength_reasons"] == ["writes often", "you reply fast"]  # the first two
    # The person's numbers: summed, earliest, latest, soonest over both addresses.
    assert (ada["inbound_count"], ada["outbound_count"], ada["past_meetings"]) == (14, 13, 2)
    assert ada["first_contact_at"] == NOW - dt.timedelta(days=900)
    assert ada["last_contact_at"] == NOW - dt.timedelta(days=1, hours=2)
    assert ada["last_contact_words"] == "yesterday, you met"
    assert ada["next_meeting_at"] == NOW + dt.timedelta(days=3)
    assert ada["next_meeting_words"] == "in 3 days"
    assert ada["suggestion"] is None
    assert page.items[2]["last_contact_words"] == "3 weeks ago, they wrote"


def test_equal_strengths_keep_one_order_and_the_stronger_address_wins_ties(
    factory: sessionmaker[Session],
) -> None:
    user_id = make_user(factory)
    add(factory, user_id, person("a@x.org", 50), person("b@x.org", 50), person("c@x.org", 50))
    first = addresses(factory, user_id)
    assert sorted(first) == ["a@x.org", "b@x.org", "c@x.org"]
    assert addresses(factory, user_id) == first  # the same order every time (id breaks ties)
    # One person at two addresses of equal strength: listed once.
    add(
        factory,
        user_id,
        person("d1@x.org", 60, person_key="d1@x.org"),
        person("d2@x.org", 60, person_key="d1@x.org"),
    )
    listed = addresses(factory, user_id)
    assert len([a for a in listed if a.startswith("d")]) == 1


# Paging


def test_paging_covers_every_person_exactly_once_even_with_equal_strengths(
    factory: sessionmaker[Session],
) -> None:
    user_id = make_user(factory)
    rows = [person(f"p{n:03d}@x.org", (n * 7) % 5 * 10 + 10) for n in range(137)]
    # Ten people with a second, weaker address: still one row each.
    rows += [person(f"q{n:03d}@x.org", 5, person_key=f"p{n:03d}@x.org") for n in range(0, 137, 14)]
    add(factory, user_id, *rows)
    for filter_name in (None, "never_met"):
        seen: list[dict[str, Any]] = []
        cursor = None
        for _ in range(50):
            page = page_of(factory, user_id, limit=10, cursor=cursor, filter=filter_name)
            assert len(page.items) == 10 or page.next_cursor is None
            seen.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        got = [i["address"] for i in seen]
        assert len(got) == len(set(got)) == 137, filter_name
        assert set(got) == {f"p{n:03d}@x.org" for n in range(137)}
        strengths = [i["strength"] for i in seen]
        assert strengths == sorted(strengths, reverse=True)
    # One page of everything gives the same order as the pages put together.
    assert addresses(factory, user_id, limit=200) == got


def test_cursor_is_a_position_valid_with_any_filter(factory: sessionmaker[Session]) -> None:
    user_id = make_user(factory)
    add(factory, user_id, *(person(f"m{n}@x.org", 90 - n) for n in range(6)))
    page = page_of(factory, user_id, limit=3)
    assert page.next_cursor
    after = page_of(factory, user_id, limit=3, cursor=page.next_cursor, filter="never_met")
    assert [i["address"] for i in after.items] == ["m3@x.org", "m4@x.org", "m5@x.org"]
    assert after.next_cursor is None


# Suggestions


def test_a_row_shows_the_persons_most_pressing_open_suggestion_only(
    factory: sessionmaker[Session],
) -> None:
    user_id = make_user(factory)
    add(
        factory,
        user_id,
        person("quiet@x.org", 80),
        person("closed@x.org", 70),
        person("alias@x.org", 60, person_key="alias@x.org"),  # the key: a weaker address
        person("main@x.org", 65, person_key="alias@x.org"),
    )
    # Only open and accepted suggestions show; the most pressing kind, then the earliest due.
    suggest(factory, user_id, "quiet@x.org", FollowupKind.GOING_QUIET, due_in_days=1)
    suggest(factory, user_id, "quiet@x.org", FollowupKind.OFF_SCREEN, due_in_days=-5)
    pressing = suggest(
        factory, user_id, "quiet@x.org", FollowupKind.WAITING_ON_YOU, FollowupStatus.ACCEPTED
    )
    suggest(factory, user_id, "quiet@x.org", FollowupKind.WAITING_ON_YOU, due_in_days=3)
    for status in (
        FollowupStatus.SNOOZED,
        FollowupStatus.DONE,
        FollowupStatus.DISMISSED,
        FollowupStatus.RESOLVED,
    ):
        suggest(factory, user_id, "closed@x.org", FollowupKind.WAITING_ON_YOU, status)
    # Stored under the person key (core/followups/store): shown on the person's row.
    keyed = suggest(factory, user_id, "alias@x.org", FollowupKind.NO_REPLY, reason="Nudge Di")
    items = {i["address"]: i for i in page_of(factory, user_id).items}
    assert set(items) == {"quiet@x.org", "closed@x.org", "main@x.org"}
    assert items["quiet@x.org"]["suggestion"] == {
        "id": pressing,
        "kind": "waiting_on_you",
        "reason": "waiting_on_you for quiet@x.org",
        "due_at": NOW + dt.timedelta(days=1),
        "status": "accepted",
    }
    assert items["closed@x.org"]["suggestion"] is None
    assert items["main@x.org"]["suggestion"]["id"] == keyed
    assert items["main@x.org"]["suggestion"]["reason"] == "Nudge Di"


def test_going_quiet_and_waiting_on_you_list_people_with_an_open_one_of_that_kind(
    factory: sessionmaker[Session],
) -> None:
    user_id = make_user(factory)
    add(
        factory,
        user_id,
        person("q1@x.org", 90),
        person("q2@x.org", 50),
        person("w1@x.org", 80),
        person("gone@x.org", 70),
        person("k@x.org", 20, person_key="k@x.org"),
        person("k-main@x.org", 60, person_key="k@x.org"),
    )
    suggest(factory, user_id, "q1@x.org", FollowupKind.GOING_QUIET)
    suggest(factory, user_id, "q2@x.org", FollowupKind.GOING_QUIET, FollowupStatus.ACCEPTED)
    suggest(factory, user_id, "w1@x.org", FollowupKind.WAITING_ON_YOU)
    suggest(factory, user_id, "w1@x.org", FollowupKind.GOING_QUIET, FollowupStatus.DISMISSED)
    suggest(factory, user_id, "gone@x.org", FollowupKind.GOING_QUIET, FollowupStatus.SNOOZED)
    suggest(factory, user_id, "k@x.org", FollowupKind.WAITING_ON_YOU)
    assert addresses(factory, user_id, filter="going_quiet") == ["q1@x.org", "q2@x.org"]
    assert addresses(factory, user_id, filter="waiting_on_you") == ["w1@x.org", "k-main@x.org"]
    other = make_user(factory)
    add(factory, other, person("q1@x.org", 90))
    assert addresses(factory, other, filter="going_quiet") == []  # A's suggestion is A's


# Never met, new this month


def test_never_met_means_no_meeting_past_or_planned_at_any_address(
    factory: sessionmaker[Session],
) -> None:
    user_id = make_user(factory)
    add(
        factory,
        user_id,
        person("never@x.org", 50),
        person("met@x.org", 60, past_meetings=1, last_meeting_at=NOW - dt.timedelta(days=9)),
        person("planned@x.org", 70, next_meeting_at=NOW + dt.timedelta(hours=2)),
        person("home@x.org", 80, person_key="home@x.org"),
        person("work@x.org", 10, person_key="home@x.org", past_meetings=3),
        person("solo1@x.org", 40, person_key="solo1@x.org"),
        person("solo2@x.org", 30, person_key="solo1@x.org"),
    )
    assert addresses(factory, user_id, filter="never_met") == ["never@x.org", "solo1@x.org"]


@pytest.mark.parametrize(
    ("zone", "now", "new"),
    [
        # 23:30 on 30 November in Los Angeles is 07:30 on 1 December in UTC: still November.
        (
            "America/Los_Angeles",
            dt.datetime(2026, 12, 1, 7, 30, tzinfo=dt.UTC),
            {"b", "c", "d", "e"},
        ),
        # The same instant for a user in UTC: December has begun.
        (None, dt.datetime(2026, 12, 1, 7, 30, tzinfo=dt.UTC), {"d"}),
        # 01:00 on 1 December in Auckland (UTC+13) is still 30 November in UTC.
        ("Pacific/Auckland", dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC), {"e"}),
        # An unknown zone reads as UTC: November, from midnight on the 1st.
        ("Not/A_Zone", dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC), {"a", "b", "c", "e"}),
    ],
)
def test_new_this_month_starts_on_the_first_in_the_users_time_zone(
    factory: sessionmaker[Session], zone: str | None, now: dt.datetime, new: set[str]
) -> None:
    user_id = make_user(factory, time_zone=zone)
    firsts = {
        "a": dt.datetime(2026, 11, 1, 6, 59, tzinfo=dt.UTC),  # 31 Oct, 23:59 in Los Angeles
        "b": dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC),  # 1 Nov everywhere west of +8
        "c": dt.datetime(2026, 11, 29, 10, 0, tzinfo=dt.UTC),
        "d": dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC),  # after `now` in Auckland's case
        "e": dt.datetime(2026, 11, 30, 11, 30, tzinfo=dt.UTC),  # 1 Dec, 00:30 in Auckland
    }
    rows = [
        person(f"{name}@x.org", 50, first_contact_at=at, last_contact_at=at)
        for name, at in firsts.items()
        if at <= now
    ]
    # A person first met long ago at another address is not new, whatever this address says.
    rows += [
        person("z@x.org", 20, person_key="z@x.org", first_contact_at=NOW - dt.timedelta(400)),
        person("z-new@x.org", 90, person_key="z@x.org", first_contact_at=now, last_contact_at=now),
    ]
    add(factory, user_id, *rows)
    got = addresses(factory, user_id, now=now, filter="new_this_month")
    assert {a.split("@")[0] for a in got} == new


def test_month_start_is_midnight_on_the_first_in_the_zone_of_now() -> None:
    import zoneinfo

    la = zoneinfo.ZoneInfo("America/Los_Angeles")
    now = dt.datetime(2026, 11, 30, 23, 30, tzinfo=la)
    assert month_start(now) == dt.datetime(2026, 11, 1, 7, 0, tzinfo=dt.UTC)  # PDT ended 1 Nov
    assert month_start(dt.datetime(2026, 3, 31, tzinfo=la)) == dt.datetime(
        2026, 3, 1, 8, 0, tzinfo=dt.UTC
    )


# Search


def test_q_is_a_case_insensitive_prefix_of_an_address_a_name_or_a_word_of_it(
    factory: sessionmaker[Session],
) -> None:
    user_id = make_user(factory)
    add(
        factory,
        user_id,
        person("ada@home.org", 20, display_name="Ada Lovelace", person_key="ada@home.org"),
        person("countess@work.com", 90, display_name="Ada Lovelace", person_key="ada@home.org"),
        person("grace@navy.mil", 50, display_name="Grace Hopper"),
        person("per_cent@x.org", 40, display_name="100% Sure"),
        person("percent@x.org", 30, display_name=None),
    )
    assert addresses(factory, user_id, q="LOVE") == ["countess@work.com"]
    assert addresses(factory, user_id, q="  ada ") == ["countess@work.com"]
    assert addresses(factory, user_id, q="ada@h") == ["countess@work.com"]  # another address
    assert addresses(factory, user_id, q="grace hop") == ["grace@navy.mil"]
    assert addresses(factory, user_id, q="opper") == []  # a prefix, not a substring
    assert addresses(factory, user_id, q="per_") == ["per_cent@x.org"]  # _ is no wildcard
    assert addresses(factory, user_id, q="100%") == ["per_cent@x.org"]
    assert addresses(factory, user_id, q="") == addresses(factory, user_id)
    assert addresses(factory, user_id, q="ada", filter="never_met") == ["countess@work.com"]


# Validation


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"filter": "quiet"}, "filter must be one of"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"cursor": "not a cursor"}, "cursor"),
        ({"q": "ada\x00"}, "control characters"),
        ({"cursor": base64.urlsafe_b64encode(b'{"s": 5}').decode()}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b'{"s": "5", "i": 1}').decode()}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b'{"s": 500, "i": 1}').decode()}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b"[1, 2]").decode()}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b"\xff\xfe").decode()}, "cursor"),
        ({"q": "x" * 321}, "q must be"),
    ],
)
def test_bad_input_raises_invalid_request(
    factory: sessionmaker[Session], kw: dict[str, Any], words: str
) -> None:
    user_id = make_user(factory)
    with pytest.raises(InvalidRequest, match=words):
        page_of(factory, user_id, **kw)


# The API


def test_api_pages_filters_and_matches_its_documented_schema(
    app: Flask, factory: sessionmaker[Session], spec: Spec
) -> None:
    user_id = make_user(factory)
    now = utcnow()
    add(
        factory,
        user_id,
        *(
            person(f"api{n:02d}@x.org", 30 + n, last_contact_at=now - dt.timedelta(days=n + 1))
            for n in range(12)
        ),
    )
    suggest(factory, user_id, "api05@x.org", FollowupKind.GOING_QUIET)
    client = app.test_client()
    headers = bearer(factory, user_id)
    seen: list[str] = []
    url = f"{API}?limit=5"
    while url:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        spec.check(API, "GET", response)
        body = response.get_json()
        assert body["filter"] is None
        seen += [i["address"] for i in body["items"]]
        url = f"{API}?limit=5&cursor={body['next_cursor']}" if body["next_cursor"] else ""
    assert seen == [f"api{n:02d}@x.org" for n in reversed(range(12))]

    quiet = client.get(f"{API}?filter=going_quiet", headers=headers)
    spec.check(API, "GET", quiet)
    body = quiet.get_json()
    assert body["filter"] == "going_quiet"
    assert [i["address"] for i in body["items"]] == ["api05@x.org"]
    assert body["items"][0]["suggestion"]["kind"] == "going_quiet"
    assert body["items"][0]["last_contact_words"] == "6 days ago, they wrote"
    # Empty parameters count as absent.
    empty = client.get(f"{API}?filter=&q=&cursor=&limit=", headers=headers)
    assert empty.status_code == 200
    assert len(empty.get_json()["items"]) == 12


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("filter=bogus", "filter must be one of going_quiet"),
        ("filter=all", "filter"),
        ("limit=0", "limit must be an integer from 1 to 200"),
        ("limit=201", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("limit=1e3", "limit"),
        ("limit=99999999999999999999", "limit"),
        ("cursor=%%%", "cursor"),
        ("cursor=eyJzIjoxfQ", "cursor"),  # {"s":1}
        (f"q={'a' * 400}", "q must be at most 320"),
    ],
)
def test_api_answers_400_json_naming_the_bad_parameter(
    app: Flask, factory: sessionmaker[Session], spec: Spec, query: str, words: str
) -> None:
    user_id = make_user(factory)
    response = app.test_client().get(f"{API}?{query}", headers=bearer(factory, user_id))
    assert response.status_code == 400
    assert response.is_json
    spec.check(API, "GET", response)
    error = response.get_json()["error"]
    assert error["status"] == "bad_request"
    assert words in error["message"]


def test_each_user_sees_only_their_own_people(app: Flask, factory: sessionmaker[Session]) -> None:
    a, b = make_user(factory), make_user(factory)
    add(factory, a, person("shared@x.org", 80), person("only-a@x.org", 70))
    add(factory, b, person("shared@x.org", 10), person("only-b@x.org", 20))
    suggest(factory, a, "shared@x.org", FollowupKind.WAITING_ON_YOU, reason="A's secret")
    client = app.test_client()
    for user_id, expected in (
        (a, ["shared@x.org", "only-a@x.org"]),
        (b, ["only-b@x.org", "shared@x.org"]),
    ):
        headers = bearer(factory, user_id)
        for query in ("", "?filter=waiting_on_you", "?q=shared", "?filter=never_met"):
            body = client.get(f"{API}{query}", headers=headers).get_json()
            got = [i["address"] for i in body["items"]]
            assert set(got) <= set(expected), (query, got)
            if user_id == b:
                assert "A's secret" not in json.dumps(body)
                assert "only-a" not in json.dumps(body)
        assert [i["address"] for i in client.get(API, headers=headers).get_json()["items"]] == (
            expected
        )
    # B's browser, and B's cursor handed to A's data: still B's rows only.
    browser = signed_in(app, factory, b)
    page = browser.get("/relationships").get_data(as_text=True)
    assert "only-b@x.org" in page
    assert "only-a@x.org" not in page
    assert "A&#39;s secret" not in page
    assert "A's secret" not in page
    # Nobody signed in.
    anonymous = app.test_client()
    assert anonymous.get(API).status_code == 401
    assert anonymous.get(API).get_json()["error"]["status"] == "unauthorized"
    answer = anonymous.get("/relationships")
    assert answer.status_code == 302
    assert answer.headers["Location"].endswith("/login")


def test_a_page_costs_the_same_few_queries_whatever_its_size(
    app: Flask, factory: sessionmaker[Session]
) -> None:
    user_id = make_user(factory)
    rows = [person(f"n{n:03d}@x.org", 1 + n % 99) for n in range(120)]
    rows += [person(f"alt{n:03d}@y.org", 1, person_key=f"n{n:03d}@x.org") for n in range(0, 120, 3)]
    add(factory, user_id, *rows)
    for n in range(0, 120, 2):
        suggest(factory, user_id, f"n{n:03d}@x.org", FollowupKind.GOING_QUIET)
    engine = app.extensions["warmline"]["engine"]
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    counts = {}
    event.listen(engine, "before_cursor_execute", count)
    try:
        for limit in (5, 100):
            statements.clear()
            page = page_of(factory, user_id, limit=limit, filter=None)
            assert len(page.items) == limit
            assert sum(i["suggestion"] is not None for i in page.items) >= limit // 3
            counts[limit] = len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert counts[5] == counts[100] <= 4, counts


# The web page


def test_the_page_lists_people_with_tabs_search_and_a_next_page(
    app: Flask, factory: sessionmaker[Session]
) -> None:
    user_id = make_user(factory)
    now = utcnow()
    add(
        factory,
        user_id,
        person("top@x.org", 95, display_name="Top Person", last_contact_at=now - dt.timedelta(1)),
        *(person(f"row{n:02d}@x.org", 60 - n) for n in range(55)),
    )
    suggest(factory, user_id, "top@x.org", FollowupKind.WAITING_ON_YOU, reason="Top wrote; reply")
    browser = signed_in(app, factory, user_id)
    response = browser.get("/relationships")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert "<script" not in html
    assert " style=" not in html
    assert html.count('data-testid="relationship"') == 50
    assert html.split('data-address="', 1)[1].startswith('top@x.org"')  # strongest first
    assert 'href="/sidebar?email=top@x.org"' in html
    assert "Top wrote; reply" in html
    assert "Yesterday, they wrote" in html
    assert '<a href="/relationships" data-testid="tab" aria-current="page">All</a>' in html
    assert 'aria-current="page">Relationships</a>' in html  # the main navigation
    next_href = html.split('rel="next" data-testid="next-page"')[0].rsplit('href="', 1)[1]
    next_href = next_href.split('"')[0].replace("&amp;", "&")
    cursor = parse_qs(urlsplit(next_href).query)["cursor"][0]
    second = browser.get(next_href).get_data(as_text=True)
    assert second.count('data-testid="relationship"') == 6
    assert 'data-testid="next-page"' not in second
    assert 'data-testid="first-page"' in second
    assert cursor not in second  # the last page has no next cursor

    quiet = browser.get("/relationships?filter=waiting_on_you").get_data(as_text=True)
    assert quiet.count('data-testid="relationship"') == 1
    assert 'aria-current="page">Waiting on you</a>' in quiet
    nobody = browser.get("/relationships?filter=going_quiet&q=zz").get_data(as_text=True)
    assert 'data-testid="empty-state"' in nobody
    assert "Nobody matches" in nobody

    bad = browser.get("/relationships?filter=bogus")
    assert bad.status_code == 400
    assert "filter must be one of" in bad.get_data(as_text=True)
