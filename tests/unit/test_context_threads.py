"""The context's recent threads and timeline against a real database (rows written by sync's
`apply_changes`, contacts by `rebuild_user`), for a user with two connected accounts."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.context import RECENT_THREADS, contact_context
from core.derive import rebuild_user
from core.mailstore import apply_changes
from core.models import AccountAddress, ConnectedAccount, Contact, Provider, User
from core.records import Address, MessageRecord

NOW = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)
ME, ME2 = "me@acme.com", "me@gmail.com"
ADA = "ada@example.org"


def at(days_ago: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days_ago)


def two_accounts(session: Session) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A user with a Google account (ME) and a Microsoft account (ME2)."""
    user = User(email=ME)
    session.add(user)
    session.flush()
    ids = []
    for provider, email in ((Provider.GOOGLE, ME), (Provider.MICROSOFT, ME2)):
        account = ConnectedAccount(
            user_id=user.id, provider=provider, provider_account_id=email, email=email
        )
        session.add(account)
        session.flush()
        session.add(AccountAddress(account_id=account.id, address=email, is_primary=True))
        ids.append(account.id)
    session.flush()
    return user.id, ids[0], ids[1]


def msg(
    pid: str,
    days_ago: float,
    frm: str,
    to: tuple[str, ...],
    *,
    thread: str,
    mid: str | None = None,
    **kw: Any,
) -> MessageRecord:
    return MessageRecord(
        provider_message_id=pid,
        received_at=at(days_ago),
        provider_thread_id=thread,
        internet_message_id=mid or f"<{pid}@x>",
        subject=kw.pop("subject", f"about {thread}"),
        from_=(Address(frm),),
        to=tuple(Address(a) for a in to),
        cc=tuple(Address(a) for a in kw.pop("cc", ())),
        **kw,
    )


def context(session: Session, user_id: uuid.UUID, email: str = ADA) -> dict[str, Any]:
    rebuild_user(session, user_id=user_id, now=NOW)
    return contact_context(session, user_id=user_id, email=email, now=NOW)


def test_a_conversation_seen_through_two_accounts_shows_once(session: Session) -> None:
    user_id, google, microsoft = two_accounts(session)
    # Ada writes to both of the user's addresses; the user answers from ME with ME2 in Cc, so
    # both accounts hold both messages, each under its own thread id. Ada's last message reaches
    # only the Google account; an older thread lives only in the Microsoft account.
    apply_changes(session, account_id=google, generation=1, changes=[
        msg("g1", 5, ADA, (ME, ME2), thread="ga", mid="<m1@x>", labels=("INBOX",)),
        msg("g2", 4, ME, (ADA,), cc=(ME2,), thread="ga", mid="<m2@x>", labels=("SENT",)),
        msg("g3", 3, ADA, (ME,), thread="ga", mid="<m3@x>", subject="Re: plans",
            labels=("INBOX",)),
    ])  # fmt: skip
    apply_changes(session, account_id=microsoft, generation=1, changes=[
        msg("o1", 5, ADA, (ME, ME2), thread="conv-1", mid="<m1@x>", folder="inbox"),
        msg("o2", 4, ME, (ADA,), cc=(ME2,), thread="conv-1", mid="<m2@x>", folder="inbox"),
        msg("o9", 10, ADA, (ME2,), thread="conv-9", mid="<m9@x>", folder="inbox"),
    ])  # fmt: skip

    threads = context(session, user_id)["recent_threads"]

    assert [(t["account_id"], t["thread_id"]) for t in threads] == [
        (google, "ga"),  # the thread holding Ada's latest message speaks for the conversation
        (microsoft, "conv-9"),
    ]
    shared = threads[0]
    assert shared["provider"] == "google"
    assert shared["message_count"] == 3  # m1, m2, m3: each once, whichever account held it
    assert shared["last_message_at"] == at(3)
    assert shared["last_direction"] == "in"
    assert shared["subject"] == "Re: plans"
    assert (threads[1]["message_count"], threads[1]["provider"]) == (1, "microsoft")


def test_merged_conversations_still_fill_the_list(session: Session) -> None:
    user_id, google, microsoft = two_accounts(session)
    total = RECENT_THREADS + 2
    for account, prefix in ((google, "g"), (microsoft, "o")):
        apply_changes(session, account_id=account, generation=1, changes=[
            msg(f"{prefix}{i}", i + 1, ADA, (ME, ME2), thread=f"{prefix}t{i}", mid=f"<c{i}@x>",
                labels=("INBOX",))
            for i in range(total)
        ])  # fmt: skip

    threads = context(session, user_id)["recent_threads"]

    assert len(threads) == RECENT_THREADS
    assert [t["last_message_at"] for t in threads] == [at(i + 1) for i in range(RECENT_THREADS)]
    assert all(t["message_count"] == 1 for t in threads)


def test_a_thread_counts_all_its_messages_once(session: Session) -> None:
    user_id, google, _ = two_accounts(session)
    apply_changes(session, account_id=google, generation=1, changes=[
        msg("1", 9, ADA, (ME,), thread="t", labels=("INBOX",)),
        # Not with Ada, but in her thread: counted in the thread, and the last message.
        msg("2", 8, "bob@corp.io", (ME,), thread="t", labels=("INBOX",), subject="Re: ours"),
        msg("3", 7, ME, ("bob@corp.io",), thread="t", labels=("SENT",), subject=" "),
        msg("4", 6, ADA, (ME,), thread="t", labels=("SPAM",)),  # spam: never
    ])  # fmt: skip

    (thread,) = context(session, user_id)["recent_threads"]

    assert thread["message_count"] == 3
    assert (thread["last_message_at"], thread["last_direction"]) == (at(7), "out")
    assert thread["subject"] == "Re: ours"  # the latest subject that is not blank


def test_timeline_counts_what_derivation_counts(session: Session) -> None:
    user_id, google, microsoft = two_accounts(session)
    apply_changes(session, account_id=google, generation=1, changes=[
        msg("1", 40, ADA, (ME,), thread="a", labels=("INBOX",)),
        msg("2", 39, ME, (ADA,), thread="a", labels=("SENT",)),
        # Through a list: hers only when the user is addressed too.
        msg("3", 20, ADA, ("team@lists.example",), thread="b", list_id="Team <team.lists.example>",
            labels=("INBOX",)),
        msg("4", 19, ADA, ("team@lists.example",), cc=(ME2,), thread="c",
            list_id="Team <team.lists.example>", labels=("INBOX",)),
        msg("5", 2, ADA, (ME,), thread="d", auto_submitted="auto-replied", labels=("INBOX",)),
    ])  # fmt: skip
    apply_changes(session, account_id=microsoft, generation=1, changes=[
        # Sent from the Google address, seen in the Microsoft inbox: the user wrote it.
        msg("o1", 10, ME, (ADA, ME2), thread="x", folder="inbox"),
        msg("o2", 40, ADA, (ME,), thread="y", mid="<1@x>", folder="inbox"),  # = message 1
    ])  # fmt: skip

    ctx = context(session, user_id)
    ada = session.scalars(
        select(Contact).where(Contact.user_id == user_id, Contact.address == ADA)
    ).one()

    sums = {k: sum(m[k] for m in ctx["timeline"]) for k in ("inbound", "outbound")}
    assert sums == {"inbound": ada.inbound_count, "outbound": ada.outbound_count}
    assert sums == {"inbound": 2, "outbound": 2}
    months = {m["month"]: (m["inbound"], m["outbound"]) for m in ctx["timeline"]}
    assert months["2026-09"] == (1, 1)  # messages 1 (once) and 2
    assert months["2026-10"] == (1, 1)  # message 4 and o1
