"""Follow-up evaluation against a real database: rows written the way sync writes them,
contacts derived, suggestions reconciled — aliases, lists, Cc, and every status transition."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.derive import rebuild_user
from core.followups import actions
from core.followups.rules import Thresholds
from core.followups.slots import WorkingTime
from core.followups.store import evaluate_user
from core.mailstore import apply_changes
from core.models import AccountAddress, Followup, FollowupKind, FollowupStatus
from core.records import Address
from tests.unit.test_derive_store import ME, NOW, make_user, msg

WORKING = WorkingTime("Europe/Berlin")
LIMITS = Thresholds()


def evaluate(session: Session, user_id: uuid.UUID, now: dt.datetime = NOW) -> None:
    rebuild_user(session, user_id=user_id, now=now)
    evaluate_user(session, user_id=user_id, now=now, working=WORKING, limits=LIMITS)


def live(session: Session, user_id: uuid.UUID) -> dict[tuple[str, FollowupKind], Followup]:
    session.expire_all()
    rows = session.scalars(
        select(Followup).where(Followup.user_id == user_id, Followup.status.in_(actions.LIVE))
    )
    return {(r.address, r.kind): r for r in rows}


def add(session: Session, account: uuid.UUID, *changes: object) -> None:
    apply_changes(session, account_id=account, changes=list(changes), generation=1)


def test_a_reply_from_my_alias_answers_them(session: Session) -> None:
    user_id, (account,) = make_user(session, ME)
    session.add(AccountAddress(account_id=account, address="me.alias@acme.com"))
    add(session, account, msg("1", 6, "ada@example.org", name="Ada", thread="t"))
    evaluate(session, user_id)
    row = live(session, user_id)[("ada@example.org", FollowupKind.WAITING_ON_YOU)]
    assert row.reason.startswith("Ada wrote")

    add(session, account, msg("2", 1, "me.alias@acme.com", ("ada@example.org",), labels=()))
    evaluate(session, user_id)
    assert ("ada@example.org", FollowupKind.WAITING_ON_YOU) not in live(session, user_id)
    session.refresh(row)
    assert row.status is FollowupStatus.RESOLVED


def test_cc_only_and_list_mail_ask_nothing_of_me(session: Session) -> None:
    user_id, (account,) = make_user(session, ME)
    add(
        session,
        account,
        msg("1", 6, "bob@corp.io", ("team@corp.io",), cc=(Address(ME),)),  # Cc only
        msg("2", 6, "poster@corp.io", ("dev@lists.corp.io",), list_id="Dev <dev.lists.corp.io>"),
        # My mail to Carol and a list together: no nudge for Carol.
        msg("3", 9, "poster@corp.io", ("dev@lists.corp.io",), list_id="Dev <dev.lists.corp.io>"),
        msg("4", 8, ME, ("carol@gmail.com", "dev@lists.corp.io")),
        msg("5", 8, ME, ("dan@gmail.com",)),  # a personal mail to Dan: nudge
    )
    evaluate(session, user_id)
    assert set(live(session, user_id)) == {("dan@gmail.com", FollowupKind.NO_REPLY)}


def test_dismissed_never_returns_for_the_same_cause_but_a_new_message_is_a_new_cause(
    session: Session,
) -> None:
    user_id, (account,) = make_user(session, ME)
    add(session, account, msg("1", 6, "ada@example.org"))
    evaluate(session, user_id)
    row = live(session, user_id)[("ada@example.org", FollowupKind.WAITING_ON_YOU)]
    actions.dismiss(session, user_id=user_id, followup_id=row.id, now=NOW)
    evaluate(session, user_id, NOW + dt.timedelta(hours=1))
    assert live(session, user_id) == {}

    add(session, account, msg("2", 5, "ada@example.org"))  # she writes again
    evaluate(session, user_id, NOW + dt.timedelta(hours=2))
    again = live(session, user_id)[("ada@example.org", FollowupKind.WAITING_ON_YOU)]
    assert again.id != row.id
    assert again.status is FollowupStatus.OPEN


def test_accepted_follows_a_new_cause_and_snoozed_returns_when_due(session: Session) -> None:
    user_id, (account,) = make_user(session, ME)
    add(session, account, msg("1", 6, "ada@example.org"), msg("2", 7, "bob@corp.io"))
    evaluate(session, user_id)
    rows = live(session, user_id)
    ada = rows[("ada@example.org", FollowupKind.WAITING_ON_YOU)]
    bob = rows[("bob@corp.io", FollowupKind.WAITING_ON_YOU)]
    actions.accept(session, user_id=user_id, followup_id=ada.id, invite=False, now=NOW)
    until = NOW + dt.timedelta(days=2)
    actions.snooze(session, user_id=user_id, followup_id=bob.id, until=until, now=NOW)

    add(session, account, msg("3", 5.5, "ada@example.org"))  # Ada adds a line: new cause
    evaluate(session, user_id, NOW + dt.timedelta(days=1))
    rows = live(session, user_id)
    assert rows[("ada@example.org", FollowupKind.WAITING_ON_YOU)].status is FollowupStatus.ACCEPTED
    assert rows[("bob@corp.io", FollowupKind.WAITING_ON_YOU)].status is FollowupStatus.SNOOZED

    evaluate(session, user_id, until + dt.timedelta(minutes=1))
    assert live(session, user_id)[("bob@corp.io", FollowupKind.WAITING_ON_YOU)].status is (
        FollowupStatus.OPEN
    )


def test_actions_are_idempotent_scoped_and_final_states_conflict(session: Session) -> None:
    user_id, (account,) = make_user(session, ME)
    other_id, _ = make_user(session, "other@acme.com")
    add(session, account, msg("1", 6, "ada@example.org"))
    evaluate(session, user_id)
    (row,) = live(session, user_id).values()
    try:
        actions.done(session, user_id=other_id, followup_id=row.id, now=NOW)
        raise AssertionError("another user's follow-up must be not found")
    except actions.NotFound:
        pass
    actions.done(session, user_id=user_id, followup_id=row.id, now=NOW)
    actions.done(session, user_id=user_id, followup_id=row.id, now=NOW)  # again: fine
    try:
        actions.dismiss(session, user_id=user_id, followup_id=row.id, now=NOW)
        raise AssertionError("a done follow-up cannot be dismissed")
    except actions.Conflict:
        pass
    try:
        actions.accept(session, user_id=user_id, followup_id=row.id, invite=True, now=NOW)
        raise AssertionError("a done follow-up cannot be accepted")
    except actions.Conflict:
        pass


def test_two_addresses_of_one_person_get_one_suggestion(session: Session) -> None:
    user_id, (account,) = make_user(session, ME)
    add(
        session,
        account,
        msg("1", 20, "ada@example.org", name="Ada Lovelace", thread="ta"),
        msg("2", 19, ME, ("ada@example.org", "ada.lovelace@gmail.com"), thread="ta"),
        msg("3", 6, "ada.lovelace@gmail.com", name="Ada Lovelace", thread="ta"),
    )
    evaluate(session, user_id)
    (key,) = live(session, user_id)
    assert key[1] is FollowupKind.WAITING_ON_YOU
    assert key[0] in {"ada@example.org", "ada.lovelace@gmail.com"}


def test_auto_scheduling_puts_only_the_most_pressing_few_in_the_calendar() -> None:
    from core.followups.calendar import AUTO_LIMIT, scheduled
    from core.followups.policy import Preferences

    def row(n: int, kind: FollowupKind, status: FollowupStatus) -> Followup:
        return Followup(id=n, kind=kind, status=status, due_at=NOW - dt.timedelta(days=n))

    rows = [row(n, FollowupKind.GOING_QUIET, FollowupStatus.OPEN) for n in range(20)]
    rows += [row(100, FollowupKind.WAITING_ON_YOU, FollowupStatus.OPEN)]
    rows += [row(200, FollowupKind.OFF_SCREEN, FollowupStatus.ACCEPTED)]
    assert scheduled(rows, Preferences()) == {200}  # only what the user accepted
    auto = scheduled(rows, Preferences(auto_schedule=True))
    assert len(auto) == AUTO_LIMIT + 1
    assert {100, 200} <= auto  # the pressing kind first; accepted always
    assert 19 in auto  # then the longest overdue


def test_my_answer_ends_an_exchange_but_my_question_gets_a_nudge(session: Session) -> None:
    user_id, (account,) = make_user(session, ME)
    add(
        session,
        account,
        msg("1", 12, "ada@example.org", thread="ta"),
        msg("2", 8, ME, ("ada@example.org",), thread="ta"),  # my answer to Ada: "thanks, will do"
        msg("3", 8, ME, ("bob@corp.io",), thread="tb"),  # a new question to Bob
        msg("4", 14, ME, ("carol@gmail.com",), thread="tc"),
        msg("5", 8, ME, ("carol@gmail.com",), thread="tc"),  # asking Carol again
    )
    evaluate(session, user_id)
    assert set(live(session, user_id)) == {
        ("bob@corp.io", FollowupKind.NO_REPLY),
        ("carol@gmail.com", FollowupKind.NO_REPLY),
    }
