"""Derivation against a real database: rows written the way sync writes them (apply_changes)."""

from __future__ import annotations

import datetime as dt
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import make_session_factory
from core.derive import rebuild_user, touched_addresses, update_contacts
from core.mailstore import apply_changes
from core.models import AccountAddress, ConnectedAccount, Contact, Provider, User
from core.records import (
    Address,
    Attendee,
    Change,
    EventDeleted,
    EventRecord,
    LabelsChanged,
    MessageDeleted,
    MessageRecord,
)

NOW = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)
ME = "me@acme.com"


def at(days_ago: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days_ago)


def make_user(session: Session, *emails: str) -> tuple[uuid.UUID, list[uuid.UUID]]:
    user = User(email=emails[0])
    session.add(user)
    session.flush()
    accounts = []
    for n, email in enumerate(emails):
        account = ConnectedAccount(
            user_id=user.id, provider=Provider.GOOGLE, provider_account_id=f"{user.id}-{n}",
            email=email,
        )  # fmt: skip
        session.add(account)
        session.flush()
        session.add(AccountAddress(account_id=account.id, address=email, is_primary=True))
        accounts.append(account.id)
    session.flush()
    return user.id, accounts


def msg(pid: str, days_ago: float, frm: str, to: tuple[str, ...] = (ME,), **kw: object):
    return MessageRecord(
        provider_message_id=pid,
        received_at=at(days_ago),
        provider_thread_id=kw.pop("thread", "t-" + pid),  # type: ignore[arg-type]
        internet_message_id=kw.pop("mid", f"<{pid}@x>"),  # type: ignore[arg-type]
        from_=(Address(frm, kw.pop("name", None)),),  # type: ignore[arg-type]
        to=tuple(Address(a) for a in to),
        labels=kw.pop("labels", ("SENT",) if frm.startswith("me") else ("INBOX",)),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def contacts(session: Session, user_id: uuid.UUID) -> dict[str, Contact]:
    session.expire_all()
    rows = session.scalars(select(Contact).where(Contact.user_id == user_id))
    return {c.address: c for c in rows}


def snapshot(session: Session, user_id: uuid.UUID) -> dict[str, tuple[object, ...]]:
    out = {}
    for address, c in contacts(session, user_id).items():
        out[address] = tuple(
            getattr(c, name)
            for name in Contact.__table__.columns.keys()  # noqa: SIM118
            if name not in ("id", "updated_at", "user_id")
        )
    return out


def test_rebuild_derives_the_contract_fields(session: Session) -> None:
    user_id, (account, _) = make_user(session, ME, "me@gmail.com")
    session.add(AccountAddress(account_id=account, address="me.alias@acme.com"))
    changes: list[Change] = [
        msg("1", 10, "Ada@Example.ORG", name="Ada Lovelace", thread="ta"),
        msg("2", 9, ME, ("ada@example.org", "bob@corp.io"), thread="ta"),
        msg("3", 8, "ada@example.org", ("me+news@acme.com",), thread="ta"),  # plus-address
        msg(
            "4", 7, "me.alias@acme.com", ("ada@example.org",), labels=(), thread="ta"
        ),  # alias, archived
        msg("5", 6, "ada@example.org", ("someone@else.org",), is_spam=True),  # spam: never
        msg("6", 5, "ada@example.org", auto_submitted="auto-replied"),  # OOO: not her writing
        msg("7", 4, "poster@corp.io", ("dev@lists.corp.io",), list_id="Dev <dev.lists.corp.io>"),
        msg("8", 3, ME, ("dev@lists.corp.io",)),  # writing to a list is no relationship
        msg("9", 3, "news@shop.example", precedence="bulk", has_list_unsubscribe=True),
        msg("10", 2, "no-reply@accounts.example.com"),
        msg("11", 2, ME, ("me@gmail.com", "m.e+x@gmail.com")),  # mail to yourself
        msg("12", 1, "carol@gmail.com", bcc=(), to=("undisclosed-recipients:;",)),  # Bcc-only
    ]
    apply_changes(session, account_id=account, changes=changes, generation=1)
    rebuild_user(session, user_id=user_id, now=NOW)
    got = contacts(session, user_id)

    assert {a for a, c in got.items() if c.kind == "person"} == {
        "ada@example.org",
        "bob@corp.io",
        "carol@gmail.com",
    }
    ada = got["ada@example.org"]
    assert (ada.inbound_count, ada.outbound_count) == (2, 2)
    assert ada.last_inbound_at == at(8)
    assert ada.last_outbound_at == at(7)
    assert ada.first_contact_at == at(10)
    assert ada.last_contact_at == at(7)
    assert ada.awaiting_reply_from == "them"
    assert ada.display_name == "Ada Lovelace"
    assert ada.company == "example.org"
    assert ada.my_reply_median_s == 86400
    assert ada.their_reply_median_s == 86400
    assert 0 < (ada.strength or 0) <= 100
    assert ada.strength_reasons
    assert got["carol@gmail.com"].company is None  # free mail is no company
    assert got["carol@gmail.com"].awaiting_reply_from == "me"
    assert got["bob@corp.io"].inbound_count == 0
    assert got["bob@corp.io"].outbound_count == 1
    assert "poster@corp.io" not in got  # list mail the user merely received
    assert got["dev@lists.corp.io"].kind == "list"
    assert got["news@shop.example"].kind == "list"
    assert got["news@shop.example"].strength is None
    assert got["no-reply@accounts.example.com"].kind == "automated"
    assert not any(a.startswith("me") and a.endswith(("acme.com", "gmail.com")) for a in got)


def test_same_message_in_two_accounts_counts_once(session: Session) -> None:
    user_id, (a1, a2) = make_user(session, ME, "me@gmail.com")
    same = msg("x", 3, "dan@corp.io", (ME, "me@gmail.com"), mid="<same@corp.io>")
    apply_changes(session, account_id=a1, changes=[same], generation=1)
    apply_changes(session, account_id=a2, changes=[same], generation=1)
    rebuild_user(session, user_id=user_id, now=NOW)
    assert contacts(session, user_id)["dan@corp.io"].inbound_count == 1


def event(eid: str, days: float, *attendees: Attendee, **kw: object) -> EventRecord:
    start = NOW + dt.timedelta(days=days)
    return EventRecord(
        provider_calendar_id="primary", provider_event_id=eid, start_at=start,
        end_at=start + dt.timedelta(hours=1), attendees=attendees, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_meetings_count_only_what_happened(session: Session) -> None:
    user_id, (account, _) = make_user(session, ME, "me@gmail.com")
    me = Attendee(ME, response="accepted", is_self=True)
    eve = Attendee("eve@corp.io", response="accepted")
    changes: list[Change] = [
        event("a", -10, me, eve, organizer=Address(ME)),
        event("b", -5, me, eve, Attendee("fay@corp.io", response="declined")),
        event("c", -4, me, eve, is_cancelled=True),
        event("d", -3, me, eve, is_all_day=True),
        event("e", -2, Attendee(ME, response="declined", is_self=True), eve),
        event("f", -1, me, Attendee("eve@corp.io", response="tentative")),
        event("g", 3, me, eve),
        event("h", 9, me, eve),
        event("i", 0, me, eve, Attendee("room@corp.io", response="accepted", is_resource=True)),
    ]
    apply_changes(session, account_id=account, changes=changes, generation=1)
    rebuild_user(session, user_id=user_id, now=NOW)
    got = contacts(session, user_id)
    eve_row = got["eve@corp.io"]
    assert eve_row.past_meetings == 2  # a and b; i is in progress (started now, ends later)
    assert eve_row.one_to_one_meetings == 1
    assert eve_row.group_meetings == 1
    assert eve_row.last_meeting_at == NOW - dt.timedelta(days=5)
    assert eve_row.next_meeting_at == NOW + dt.timedelta(days=3)
    assert eve_row.first_contact_at == NOW - dt.timedelta(days=10)
    assert "fay@corp.io" not in got
    assert "room@corp.io" not in got


def test_addresses_of_one_person_share_a_person_key(session: Session) -> None:
    user_id, (account, _) = make_user(session, ME, "me@gmail.com")
    changes: list[Change] = [
        msg("1", 5, "grace@corp.io", name="Grace Hopper", thread="t"),
        msg("2", 4, "grace.h@gmail.com", name="Hopper, Grace", thread="t"),
        msg("3", 3, "grace.other@corp.io", name="Grace Hopper", thread="elsewhere"),
    ]
    apply_changes(session, account_id=account, changes=changes, generation=1)
    rebuild_user(session, user_id=user_id, now=NOW)
    got = contacts(session, user_id)
    assert got["grace@corp.io"].person_key == got["grace.h@gmail.com"].person_key
    assert got["grace.other@corp.io"].person_key == "grace.other@corp.io"  # no shared thread


def test_touched_addresses_sees_what_a_delete_removes(session: Session) -> None:
    user_id, (account, _) = make_user(session, ME, "me@gmail.com")
    apply_changes(session, account_id=account, changes=[msg("1", 2, "ivy@corp.io")], generation=1)
    rebuild_user(session, user_id=user_id, now=NOW)
    page: list[Change] = [MessageDeleted("1")]
    touched = touched_addresses(session, account_id=account, changes=page)
    assert "ivy@corp.io" in touched
    apply_changes(session, account_id=account, changes=page, generation=1)
    update_contacts(session, user_id=user_id, addresses=touched, now=NOW)
    assert "ivy@corp.io" not in contacts(session, user_id)


def test_text_with_nul_is_stored_without_it(session: Session) -> None:
    # `=?utf-8?q?Q3=00plan?=` decodes to a NUL, which PostgreSQL text cannot hold: the page
    # must still be stored, not fail on every retry.
    from core.models import Message

    _, (account, _) = make_user(session, ME, "me@gmail.com")
    record = msg("1", 1, "ivy@corp.io", subject="Q3\x00plan", name="Ivy\x00 Lee")
    apply_changes(session, account_id=account, changes=[record], generation=1)
    stored = session.scalars(select(Message)).one()
    assert stored.subject == "Q3plan"
    assert [p.display_name for p in stored.participants if p.address == "ivy@corp.io"] == [
        "Ivy Lee"
    ]


def test_a_meeting_with_hidden_guests_is_a_group_meeting(session: Session) -> None:
    user_id, (account, _) = make_user(session, ME, "me@gmail.com")
    me = Attendee(ME, response="accepted", is_self=True)
    host = Address("host@vendor.example")
    changes: list[Change] = [
        event("w", -3, me, organizer=host, attendees_omitted=True),
        event("c", -2, me, Attendee("host@vendor.example", response="accepted"), organizer=host),
    ]
    apply_changes(session, account_id=account, changes=changes, generation=1)
    rebuild_user(session, user_id=user_id, now=NOW)
    row = contacts(session, user_id)["host@vendor.example"]
    assert row.past_meetings == 2
    assert row.group_meetings == 1  # the webinar: its guest list was hidden
    assert row.one_to_one_meetings == 1  # the call


def test_deleting_a_series_deletes_its_stored_occurrences(session: Session) -> None:
    # Google lists cancelled instances of a deleted series only for a limited horizon; the
    # occurrences it does not list must not stay behind as Kim's "next meeting".
    user_id, (account, _) = make_user(session, ME, "me@gmail.com")
    me = Attendee(ME, response="accepted", is_self=True)
    kim = Attendee("kim@corp.io", response="accepted")
    weekly = [event(f"s1_{k}", -14 + 7 * k, me, kim, recurring_event_id="s1") for k in range(6)]
    one_off = event("x", -30, me, kim)
    apply_changes(session, account_id=account, changes=[*weekly, one_off], generation=1)
    rebuild_user(session, user_id=user_id, now=NOW)
    assert contacts(session, user_id)["kim@corp.io"].next_meeting_at == NOW + dt.timedelta(days=7)

    page: list[Change] = [EventDeleted("primary", "s1")]
    touched = touched_addresses(session, account_id=account, changes=page)
    assert "kim@corp.io" in touched
    applied = apply_changes(session, account_id=account, changes=page, generation=1)
    assert applied.events_deleted == 6
    update_contacts(session, user_id=user_id, addresses=touched, now=NOW)
    kim_row = contacts(session, user_id)["kim@corp.io"]
    assert kim_row.next_meeting_at is None
    assert kim_row.past_meetings == 1  # the one-off meeting stays


# Property: any sequence of incremental pages leaves what a full rebuild leaves.

PEOPLE = ["ann@corp.io", "ann.b@gmail.com", "ben@corp.io", "no-reply@corp.io", "list@l.org"]
NAMES = [None, "Ann Bee", "Bee, Ann", "Ben"]
OWN = [ME, "me+tag@acme.com", "me@gmail.com"]


@st.composite
def a_change(draw: st.DrawFn) -> Change:
    pid = str(draw(st.integers(0, 7)))
    kind = draw(st.sampled_from(["msg", "msg", "msg", "del", "labels", "event", "event_del"]))
    if kind == "del":
        return MessageDeleted(pid)
    if kind == "labels":
        return LabelsChanged(pid, added=(draw(st.sampled_from(["TRASH", "SENT", "INBOX"])),))
    if kind == "event_del":
        return EventDeleted("primary", pid)
    if kind == "event":
        who = draw(st.lists(st.sampled_from(PEOPLE + OWN), max_size=3))
        return event(
            pid, draw(st.integers(-20, 20)),
            *[Attendee(a, response=draw(st.sampled_from(["accepted", "declined", None])),
                       is_self=a in OWN) for a in who],
            organizer=Address(draw(st.sampled_from(PEOPLE + OWN))),
            is_cancelled=draw(st.booleans()),
        )  # fmt: skip
    sender = draw(st.sampled_from(PEOPLE + OWN))
    return MessageRecord(
        provider_message_id=pid,
        received_at=at(draw(st.integers(0, 30))),
        provider_thread_id=draw(st.sampled_from(["t1", "t2", None])),
        internet_message_id=draw(st.sampled_from([None, f"<{pid}@x>", "<dup@x>"])),
        from_=(Address(sender, draw(st.sampled_from(NAMES))),),
        to=tuple(Address(a, draw(st.sampled_from(NAMES))) for a in draw(
            st.lists(st.sampled_from(PEOPLE + OWN + ["bogus"]), max_size=3))),
        is_sent=sender in OWN and draw(st.booleans()),
        list_id=draw(st.sampled_from([None, "<list.l.org>"])),
        auto_submitted=draw(st.sampled_from([None, "auto-replied", "auto-generated"])),
        labels=tuple(draw(st.lists(st.sampled_from(["INBOX", "SPAM", "SENT"]), max_size=2))),
    )  # fmt: skip


def _item_key(change: Change) -> str:
    # One change per message / event within a page keeps the generated pages realistic (a
    # provider reports an item's latest state once per page).
    key = getattr(change, "provider_message_id", None)
    return f"m{key}" if key is not None else f"e{getattr(change, 'provider_event_id', '')}"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pages=st.lists(
        st.lists(a_change(), min_size=1, max_size=5, unique_by=_item_key), min_size=1, max_size=5
    )
)
def test_incremental_pages_equal_a_full_rebuild(engine, pages: list[list[Change]]) -> None:  # type: ignore[no-untyped-def]
    connection = engine.connect()
    transaction = connection.begin()
    session = make_session_factory(engine)(bind=connection)
    try:
        user_id, (account, other) = make_user(session, ME, "me@gmail.com")
        session.add(AccountAddress(account_id=account, address="me.alias@acme.com"))
        for n, page in enumerate(pages):
            target = account if n % 2 == 0 else other
            touched = touched_addresses(session, account_id=target, changes=page)
            apply_changes(session, account_id=target, changes=page, generation=1)
            update_contacts(session, user_id=user_id, addresses=touched, now=NOW)
        incremental = snapshot(session, user_id)
        rebuild_user(session, user_id=user_id, now=NOW)
        assert snapshot(session, user_id) == incremental
    finally:
        session.close()
        transaction.rollback()
        connection.close()
