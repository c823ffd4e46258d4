"""Who is this person to me? The context the sidebar shows beside a message.

`contact_context(session, user_id=…, email=…, now=…)` answers for one address and
`contacts_context(…, emails=[…])` for all participants of a message (at most `MAX_BATCH`
addresses, deduplicated by canonical address). Both read only; they never commit.

Readings (where DEFINITIONS.md is silent):

* **Unknown or malformed input is an answer, not an error.** Anything that is not an address,
  one of the user's own addresses, or an address with no derived contact answers with
  `known: false`, a `reason` (`not_an_address`, `yourself`, `no_history`) and the same shape as
  a known contact (zero counts, empty lists, twelve empty months) — a sidebar renders it as is.
* **Scope.** Every row read belongs to the user: `Contact.user_id`, or messages and events of
  the user's own connected accounts. Nothing keyed by address alone is ever read unscoped.
* **Counts, dates, strength** are the derived `Contact` row as derivation wrote it
  (core/derive), so the sidebar and every other reader agree.
* **Recent threads**: the latest `RECENT_THREADS` conversations holding a message of the user's
  accounts, not spam/trash/draft, with the contact as From, To, Cc or Bcc, latest contact
  first. A thread is per account; threads that share a Message-ID (one conversation seen
  through two accounts, DEFINITIONS.md "Across accounts") are one conversation, shown once under
  the account and thread id of its thread with the latest message of the contact. Message count
  and last message are over the whole conversation as stored (copies of one Message-ID in two
  folders or accounts count once); the last message is `out` when the user sent it.
* **Timeline**: the current month and the eleven before it (UTC calendar months); per month the
  *counted* messages each way (the rules of core/derive: sent flag or own From is outbound;
  inbound must be the contact writing to the user) and the qualifying meetings that have ended,
  at their start. For a contact first met within the window the month sums equal the counts.
* **Last contact in words**: `last_contact_words` ("3 weeks ago, you wrote"); calendar days in
  `now`'s time zone; a last contact in the future (clock skew) reads as today.
* **Follow-ups** are a later issue: the key is there, always an empty list for now.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import uuid
from collections.abc import Iterable, Sequence
from email.utils import parseaddr
from typing import Any, Literal

from sqlalchemy import String, and_, cast, func, literal, or_, select
from sqlalchemy.orm import Session, aliased

from core.addresses import canonical_address
from core.derive import people
from core.derive.history import MeetingItem

# One home for the meeting rules (DEFINITIONS.md "Meetings"): derivation's own reader, so the
# timeline's meetings are exactly the ones `past_meetings` counted.
from core.derive.store import qualifying_meetings, user_context
from core.followups import actions as followup_actions
from core.models import (
    AccountState,
    ConnectedAccount,
    Contact,
    Message,
    MessageParticipant,
    ParticipantRole,
)
from core.status import account_sync_status

MAX_BATCH = 50
RECENT_THREADS = 10
TIMELINE_MONTHS = 12
EXCLUDED_FOLDERS = ("junkemail", "deleteditems", "drafts")  # as core/derive/store reads them
_PARTY_ROLES = (ParticipantRole.FROM, ParticipantRole.TO, ParticipantRole.CC, ParticipantRole.BCC)
_RECIPIENT_ROLES = (ParticipantRole.TO, ParticipantRole.CC, ParticipantRole.BCC)
_CHUNK = 500

Reason = Literal["not_an_address", "yourself", "no_history"]


# Entry points


def contact_context(
    session: Session, *, user_id: uuid.UUID, email: str, now: dt.datetime
) -> dict[str, Any]:
    """Return everything the sidebar shows about `email` for this user, with sync state."""
    scope = _Scope.load(session, user_id)
    answer = _one(session, scope, email, now=now)
    answer["sync"] = sync_state(session, user_id=user_id, now=now)
    return answer


def contacts_context(
    session: Session, *, user_id: uuid.UUID, emails: Sequence[str], now: dt.datetime
) -> dict[str, Any]:
    """Return the context of each distinct address in `emails` (input order) and sync state.

    Raises ValueError for more than `MAX_BATCH` addresses; callers validate before.
    """
    if len(emails) > MAX_BATCH:
        raise ValueError(f"at most {MAX_BATCH} addresses per batch")
    scope = _Scope.load(session, user_id)
    seen: set[str] = set()
    contexts = []
    for email in emails:
        key = address_of(email) or email.strip().lower()
        if key in seen:
            continue
        seen.add(key)
        contexts.append(_one(session, scope, email, now=now))
    return {"contexts": contexts, "sync": sync_state(session, user_id=user_id, now=now)}


def sync_state(session: Session, *, user_id: uuid.UUID, now: dt.datetime) -> dict[str, Any]:
    """Return the sync state of the user's accounts, summarised for "still syncing: 62%"."""
    accounts = session.scalars(
        select(ConnectedAccount)
        .where(ConnectedAccount.user_id == user_id)
        .order_by(ConnectedAccount.created_at, ConnectedAccount.email)
    ).all()
    rows = []
    for account in accounts:
        status = account_sync_status(session, account=account, now=now)
        rows.append(
            {
                "account_id": account.id,
                "provider": account.provider.value,
                "email": account.email,
                "state": account.state.value,
                "needs_reauth": account.state is AccountState.NEEDS_REAUTH,
                "phase": status["phase"],
                "percent": status["percent"],
            }
        )
    syncing = [r for r in rows if r["phase"] == "initial" and r["state"] == "active"]
    known = [r["percent"] for r in syncing if r["percent"] is not None]
    return {
        "syncing": bool(syncing),
        # The slowest account decides when the sidebar's numbers are complete.
        "percent": min(known) if known else (None if syncing else 100 if rows else None),
        "needs_reauth": any(r["needs_reauth"] for r in rows),
        "accounts": rows,
    }


# Words


def ago_words(at: dt.datetime, *, now: dt.datetime) -> str:
    """Return when `at` was (or will be) relative to `now`, in words: "3 weeks ago", "tomorrow".

    Days are calendar days in `now`'s time zone; "today" holds whatever the hour.
    """
    local = at.astimezone(now.tzinfo)
    days = (now.date() - local.date()).days
    if days == 0:
        return "today"
    if days == 1:
        return "yesterday"
    if days == -1:
        return "tomorrow"
    future = days < 0
    early, late = (now.date(), local.date()) if future else (local.date(), now.date())
    span = abs(days)
    months = (late.year - early.year) * 12 + late.month - early.month
    if late.day < early.day:
        months -= 1
    if span < 7:
        amount = _count(span, "day")
    elif months < 1:
        amount = _count(span // 7, "week")
    elif months < 12:
        amount = _count(months, "month")
    else:
        amount = _count(months // 12, "year")
    return f"in {amount}" if future else f"{amount} ago"


def last_contact_words(
    *,
    last_contact_at: dt.datetime | None,
    last_inbound_at: dt.datetime | None,
    last_outbound_at: dt.datetime | None,
    last_meeting_at: dt.datetime | None,
    now: dt.datetime,
) -> str | None:
    """Return "3 weeks ago, you wrote" / "yesterday, they wrote" / "today, you met", or None.

    Who made the last contact is whichever of the last message each way or the last meeting is
    the latest (a meeting wins a tie: it is the stronger contact); a time after `now` (clock
    skew) counts as now.
    """
    candidates = [
        (t, rank, verb)
        for t, rank, verb in (
            (last_inbound_at, 0, "they wrote"),
            (last_outbound_at, 1, "you wrote"),
            (last_meeting_at, 2, "you met"),
        )
        if t is not None
    ]
    if not candidates:
        if last_contact_at is None:
            return None
        return ago_words(min(last_contact_at, now), now=now)
    at, _, verb = max(candidates, key=lambda c: (c[0], c[1]))
    return f"{ago_words(min(at, now), now=now)}, {verb}"


def _count(n: int, unit: str) -> str:
    if n == 1:
        return f"an {unit}" if unit == "hour" else f"a {unit}"
    return f"{n} {unit}s"


# One address


class _Scope:
    """The user's accounts and own addresses, loaded once per request."""

    def __init__(self, user_id: uuid.UUID, derive_ctx: Any, providers: dict[uuid.UUID, str]):
        self.user_id = user_id
        self.derive_ctx = derive_ctx
        self.account_ids: list[uuid.UUID] = list(derive_ctx.account_ids)
        self.own: people.OwnAddresses = derive_ctx.own
        self.providers = providers

    @classmethod
    def load(cls, session: Session, user_id: uuid.UUID) -> _Scope:
        providers = {
            row.id: row.provider.value
            for row in session.execute(
                select(ConnectedAccount.id, ConnectedAccount.provider).where(
                    ConnectedAccount.user_id == user_id
                )
            )
        }
        return cls(user_id, user_context(session, user_id), providers)


def address_of(raw: str) -> str | None:
    """Return the canonical address in `raw`, a bare address or a header's `Name <addr>`."""
    address = canonical_address(raw)
    if address is None and "<" in raw:
        address = canonical_address(parseaddr(raw)[1])
    return address


def _one(session: Session, scope: _Scope, email: str, *, now: dt.datetime) -> dict[str, Any]:
    address = address_of(email)
    months = timeline_months(now)
    if address is None:
        return _empty(email, None, "not_an_address", months)
    if address in scope.own:
        return _empty(email, address, "yourself", months)
    contact = session.scalars(
        select(Contact).where(Contact.user_id == scope.user_id, Contact.address == address)
    ).one_or_none()
    if contact is None:
        return _empty(email, address, "no_history", months)
    meetings = qualifying_meetings(session, scope.derive_ctx, scope={address}).get(address, [])
    timeline = _timeline(session, scope, contact, meetings, months=months, now=now)
    upcoming = sorted((m for m in meetings if m.start_at > now), key=lambda m: m.start_at)
    past = sorted((m for m in meetings if m.end_at <= now), key=lambda m: m.start_at)
    next_meeting = upcoming[0] if upcoming else None
    last_meeting = past[-1] if past else None
    return {
        "query": email,
        "address": address,
        "known": True,
        "reason": None,
        "contact": {
            "address": address,
            "display_name": contact.display_name,
            "company": contact.company,
            "kind": contact.kind,
            "person_key": contact.person_key,
            "other_addresses": _other_addresses(session, scope, contact),
        },
        "email": {
            "inbound_count": contact.inbound_count,
            "outbound_count": contact.outbound_count,
            "first_contact_at": contact.first_contact_at,
            "last_contact_at": contact.last_contact_at,
            "last_inbound_at": contact.last_inbound_at,
            "last_outbound_at": contact.last_outbound_at,
            "awaiting_reply_from": contact.awaiting_reply_from,
            "my_reply_median_s": contact.my_reply_median_s,
            "their_reply_median_s": contact.their_reply_median_s,
            "threads_together": contact.threads_together,
        },
        "last_contact_words": last_contact_words(
            last_contact_at=contact.last_contact_at,
            last_inbound_at=contact.last_inbound_at,
            last_outbound_at=contact.last_outbound_at,
            last_meeting_at=contact.last_meeting_at,
            now=now,
        ),
        "recent_threads": _recent_threads(session, scope, address),
        "meetings": {
            "past_count": contact.past_meetings,
            "one_to_one": contact.one_to_one_meetings,
            "group": contact.group_meetings,
            "last_meeting_at": contact.last_meeting_at,
            "last_meeting_words": (
                ago_words(contact.last_meeting_at, now=now) if contact.last_meeting_at else None
            ),
            "last_meeting_is_group": last_meeting.is_group if last_meeting else None,
            "next_meeting": (
                {
                    "start_at": next_meeting.start_at,
                    "end_at": next_meeting.end_at,
                    "is_group": next_meeting.is_group,
                    "words": ago_words(next_meeting.start_at, now=now),
                }
                if next_meeting
                else None
            ),
        },
        "strength": contact.strength,
        "strength_reasons": list(contact.strength_reasons or []),
        "cadence_days": contact.cadence_days,
        "timeline": timeline,
        "follow_ups": _follow_ups(session, scope, contact, now=now),
    }


def _follow_ups(
    session: Session, scope: _Scope, contact: Contact, *, now: dt.datetime
) -> list[dict[str, Any]]:
    """The person's live suggestions (stored under their person key, core/followups/store)."""
    rows = followup_actions.list_followups(
        session, user_id=scope.user_id, addresses={contact.person_key or contact.address}
    )
    return followup_actions.as_json(session, rows, now=now)


def _empty(email: str, address: str | None, reason: Reason, months: list[str]) -> dict[str, Any]:
    return {
        "query": email,
        "address": address,
        "known": False,
        "reason": reason,
        "contact": {
            "address": address,
            "display_name": None,
            "company": people.company_of(address) if address else None,
            "kind": None,
            "person_key": None,
            "other_addresses": [],
        },
        "email": {
            "inbound_count": 0,
            "outbound_count": 0,
            "first_contact_at": None,
            "last_contact_at": None,
            "last_inbound_at": None,
            "last_outbound_at": None,
            "awaiting_reply_from": None,
            "my_reply_median_s": None,
            "their_reply_median_s": None,
            "threads_together": 0,
        },
        "last_contact_words": None,
        "recent_threads": [],
        "meetings": {
            "past_count": 0,
            "one_to_one": 0,
            "group": 0,
            "last_meeting_at": None,
            "last_meeting_words": None,
            "last_meeting_is_group": None,
            "next_meeting": None,
        },
        "strength": None,
        "strength_reasons": [],
        "cadence_days": None,
        "timeline": [{"month": m, "inbound": 0, "outbound": 0, "meetings": 0} for m in months],
        "follow_ups": [],
    }


def _other_addresses(session: Session, scope: _Scope, contact: Contact) -> list[str]:
    if contact.person_key is None:
        return []
    return list(
        session.scalars(
            select(Contact.address)
            .where(
                Contact.user_id == scope.user_id,
                Contact.person_key == contact.person_key,
                Contact.address != contact.address,
            )
            .order_by(Contact.address)
        )
    )


# Threads


def _counted(scope: _Scope) -> Any:
    # coalesce() keeps the planner from starting at the account index (every message of the
    # mailbox): these queries must start from the contact's or the thread's own index.
    return and_(
        func.coalesce(Message.account_id, Message.account_id).in_(scope.account_ids),
        Message.is_excluded.is_(False),
        or_(Message.folder.is_(None), Message.folder.not_in(EXCLUDED_FOLDERS)),
    )


def _thread_key() -> Any:
    return func.coalesce(
        Message.provider_thread_id,
        Message.internet_message_id,
        literal("id:") + cast(Message.id, String),
    )


def _recent_threads(session: Session, scope: _Scope, address: str) -> list[dict[str, Any]]:
    if not scope.account_ids:
        return []
    # A conversation seen through n accounts is up to n threads: enough of them that after
    # merging there are still RECENT_THREADS conversations whenever there are that many.
    heads = _thread_heads(session, scope, address, limit=RECENT_THREADS * len(scope.account_ids))
    if not heads:
        return []
    rows = _thread_rows(session, scope, heads)
    senders = _participants(session, [r.id for r in rows], roles=(ParticipantRole.FROM,))
    threads: dict[tuple[uuid.UUID, str], list[Any]] = {}
    for row in rows:  # rows ascend in time
        threads.setdefault((row.account_id, row.thread), []).append(row)
    answer = []
    for members in _conversations(heads, threads):
        account_id, key = members[0]
        messages = sorted(
            (row for member in members for row in threads[member]),
            key=lambda r: (r.received_at, r.id),
        )
        last = messages[-1]
        subjects = [r.subject.strip() for r in messages if r.subject and r.subject.strip()]
        outbound = last.is_sent or any(a in scope.own for _, a in senders.get(last.id, ()))
        answer.append(
            {
                "account_id": account_id,
                "provider": scope.providers.get(account_id),
                "thread_id": key,
                "subject": subjects[-1] if subjects else None,
                "last_message_at": last.received_at,
                "last_direction": "out" if outbound else "in",
                "message_count": len({r.internet_message_id or f"id:{r.id}" for r in messages}),
            }
        )
        if len(answer) == RECENT_THREADS:
            break
    return answer


def _thread_heads(
    session: Session, scope: _Scope, address: str, *, limit: int
) -> list[tuple[uuid.UUID, str]]:
    """Return (account id, thread key) of the contact's latest threads, latest first."""
    # Group on a labelled column: PostgreSQL will not match a repeated bound expression.
    parts = (
        select(Message.account_id, _thread_key().label("thread"), Message.received_at)
        .join(MessageParticipant, MessageParticipant.message_id == Message.id)
        .where(
            _counted(scope),
            MessageParticipant.address == address,
            MessageParticipant.role.in_(_PARTY_ROLES),
        )
        .subquery()
    )
    latest = func.max(parts.c.received_at)
    heads = session.execute(
        select(parts.c.account_id, parts.c.thread)
        .group_by(parts.c.account_id, parts.c.thread)
        .order_by(latest.desc(), parts.c.thread, parts.c.account_id)
        .limit(limit)
    ).all()
    return [(account_id, thread) for account_id, thread in heads]


def _thread_rows(session: Session, scope: _Scope, heads: Sequence[tuple[uuid.UUID, str]]) -> Any:
    """Return the counted messages of these threads (all of them, not only the contact's)."""
    wanted = set(heads)
    keys = sorted({key for _, key in heads})
    accounts = sorted({account_id for account_id, _ in heads})
    row_ids = [int(k[3:]) for k in keys if k.startswith("id:") and k[3:].isdigit()]
    # Reach the rows through the indexes the key is made of, one lookup each: the key expression
    # cannot use an index, and an OR of the lookups makes SQLite scan the whole mailbox. Then
    # keep exactly the wanted keys.
    lookups = [
        and_(Message.account_id.in_(accounts), Message.provider_thread_id.in_(keys)),
        Message.internet_message_id.in_(keys),
    ]
    if row_ids:
        lookups.append(Message.id.in_(row_ids))
    found: dict[int, Any] = {}
    for lookup in lookups:
        for row in session.execute(
            select(
                Message.id,
                Message.account_id,
                _thread_key().label("thread"),
                Message.internet_message_id,
                Message.received_at,
                Message.subject,
                Message.is_sent,
            ).where(_counted(scope), lookup)
        ):
            if (row.account_id, row.thread) in wanted:
                found[row.id] = row
    return sorted(found.values(), key=lambda r: (r.received_at, r.id))


def _conversations(
    heads: Sequence[tuple[uuid.UUID, str]], threads: dict[tuple[uuid.UUID, str], list[Any]]
) -> list[list[tuple[uuid.UUID, str]]]:
    """Group threads sharing a Message-ID into conversations, each at its first head's place."""
    parent = list(range(len(heads)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_seen: dict[str, int] = {}
    for i, head in enumerate(heads):
        for row in threads.get(head, ()):
            if row.internet_message_id:
                a, b = root(first_seen.setdefault(row.internet_message_id, i)), root(i)
                parent[max(a, b)] = min(a, b)  # the earlier head leads
    groups: dict[int, list[tuple[uuid.UUID, str]]] = {}
    for i, head in enumerate(heads):
        if head in threads:
            groups.setdefault(root(i), []).append(head)
    return list(groups.values())


def _participants(
    session: Session, message_ids: Sequence[int], *, roles: Iterable[ParticipantRole]
) -> dict[int, list[tuple[ParticipantRole, str]]]:
    found: dict[int, list[tuple[ParticipantRole, str]]] = {}
    wanted = tuple(roles)
    for start in range(0, len(message_ids), _CHUNK):
        chunk = list(message_ids[start : start + _CHUNK])
        for message_id, role, address in session.execute(
            select(
                MessageParticipant.message_id, MessageParticipant.role, MessageParticipant.address
            ).where(MessageParticipant.message_id.in_(chunk), MessageParticipant.role.in_(wanted))
        ):
            found.setdefault(message_id, []).append((role, address))
    return found


# Timeline


def timeline_months(now: dt.datetime) -> list[str]:
    """Return the `TIMELINE_MONTHS` UTC months ending with now's, oldest first ("2026-01")."""
    utc = now.astimezone(dt.UTC)
    index = utc.year * 12 + utc.month - 1
    return [
        f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(index - TIMELINE_MONTHS + 1, index + 1)
    ]


def _month_start(month: str) -> dt.datetime:
    year, number = (int(p) for p in month.split("-"))
    return dt.datetime(year, number, 1, tzinfo=dt.UTC)


def _timeline(
    session: Session,
    scope: _Scope,
    contact: Contact,
    meetings: list[MeetingItem],
    *,
    months: list[str],
    now: dt.datetime,
) -> list[dict[str, Any]]:
    buckets = [{"month": m, "inbound": 0, "outbound": 0, "meetings": 0} for m in months]
    # Month i is [bounds[i], bounds[i + 1]): a bisection per message, not a formatted month.
    bounds = [_month_start(m) for m in months]
    last = bounds[-1]
    bounds.append(dt.datetime(last.year + last.month // 12, last.month % 12 + 1, 1, tzinfo=dt.UTC))

    def bucket(at: dt.datetime) -> dict[str, Any] | None:
        i = bisect.bisect_right(bounds, at) - 1
        return buckets[i] if 0 <= i < len(buckets) else None

    for at, direction in _counted_mail_since(session, scope, contact, since=bounds[0]):
        found = bucket(at)
        if found is not None:
            found["inbound" if direction == "in" else "outbound"] += 1
    for meeting in meetings:
        if meeting.end_at <= now:
            found = bucket(meeting.start_at)
            if found is not None:
                found["meetings"] += 1
    return buckets


def _counted_mail_since(
    session: Session, scope: _Scope, contact: Contact, *, since: dt.datetime
) -> list[tuple[dt.datetime, str]]:
    """Return (time, "in"|"out") of each message counted with the contact since `since`.

    The rules of core/derive/store.py `_mail_query` and people.counts_as_inbound, applied to one
    contact: outbound when sent (flag or own From) with the contact as a recipient; inbound when
    the contact is From, the user did not send it, and (for a person) it is them writing to the
    user. One message seen through two accounts or folders counts once, at its earliest time.
    """
    if not scope.account_ids:
        return []
    # Each row carries one From address of the message (an outer join, one index seek): an own
    # From makes the message outbound, with no second query over every message's participants.
    sender = aliased(MessageParticipant, name="sender")
    rows = session.execute(
        select(
            Message.id,
            Message.internet_message_id,
            Message.received_at,
            Message.is_sent,
            Message.list_id,
            Message.precedence,
            Message.auto_submitted,
            Message.has_list_unsubscribe,
            MessageParticipant.role,
            sender.address.label("sender"),
        )
        .join(MessageParticipant, MessageParticipant.message_id == Message.id)
        .outerjoin(
            sender, and_(sender.message_id == Message.id, sender.role == ParticipantRole.FROM)
        )
        .where(
            _counted(scope),
            Message.received_at >= since,
            MessageParticipant.address == contact.address,
            MessageParticipant.role.in_(_PARTY_ROLES),
        )
    ).all()
    own_cache: dict[str, bool] = {}

    def is_own(address: str) -> bool:
        if address not in own_cache:
            own_cache[address] = address in scope.own
        return own_cache[address]

    from_own = {row[0] for row in rows if row[-1] is not None and is_own(row[-1])}
    is_person = contact.kind == people.PERSON
    counted: dict[tuple[str, str], dt.datetime] = {}

    def keep(message_id: int, message_key: str | None, at: dt.datetime, direction: str) -> None:
        key = (message_key or f"id:{message_id}", direction)
        if key not in counted or at < counted[key]:
            counted[key] = at

    # A person's list mail counts only when the user is in To or Cc too: decided after the loop.
    undecided: list[tuple[int, str | None, dt.datetime]] = []
    # Rows are unpacked, not read by attribute: this loop sees every message of a busy contact.
    # A message with several From rows repeats here; keep() makes that harmless.
    for message_id, message_key, at, is_sent, *traits, unsubscribe, role, _ in rows:
        outbound = is_sent or message_id in from_own
        if outbound and role in _RECIPIENT_ROLES:
            keep(message_id, message_key, at, "out")
        elif not outbound and role is ParticipantRole.FROM:
            if is_person:
                verdict = _counts_as_inbound(*traits, bool(unsubscribe))
                if verdict is None:
                    undecided.append((message_id, message_key, at))
                if not verdict:
                    continue
            keep(message_id, message_key, at, "in")
    if undecided:
        addressed = _participants(
            session,
            sorted({message_id for message_id, _, _ in undecided}),
            roles=(ParticipantRole.TO, ParticipantRole.CC),
        )
        for message_id, message_key, at in undecided:
            if any(is_own(a) for _, a in addressed.get(message_id, ())):
                keep(message_id, message_key, at, "in")
    return [(at, direction) for (_, direction), at in counted.items()]


@functools.lru_cache(maxsize=1024)
def _counts_as_inbound(
    list_id: str | None, precedence: str | None, auto_submitted: str | None, unsubscribe: bool
) -> bool | None:
    """Return whether a person's message counts as inbound, or None when that depends on
    whether the user is in To or Cc (few header combinations occur: cached)."""
    verdicts = {
        addressed: people.counts_as_inbound(
            people.MessageTraits(list_id, precedence, auto_submitted, unsubscribe, addressed)
        )
        for addressed in (False, True)
    }
    return verdicts[False] if verdicts[False] == verdicts[True] else None
