"""Database adapter of derivation: load a user's facts with streaming SQL, write `Contact` rows.

Two entry points, both computing a contact from the database alone, so that any sequence of
incremental updates leaves exactly what a full rebuild would (tests/unit/test_derive_store.py):

* `rebuild_user(session, user_id=…, now=…)`: every contact of the user. The mailbox is never
  held in memory: SQL joins, filters and deduplicates (GROUP BY address, message key) and
  streams one row per (contact, counted message) ordered by address; Python folds one contact at
  a time (core/derive/history.py). Only per-contact summaries and calendar rows are kept.
* `update_contacts(session, user_id=…, addresses=…, now=…)`: the same computation restricted to
  the given addresses, widened to what can change with them: every address of a merged person
  (old and new grouping, see core/derive/people.py). Rows of addresses that no longer qualify
  are deleted.
* `touched_addresses(session, account_id=…, changes=…)`: call *before* `apply_changes` of a page:
  the addresses of everything the page upserts or deletes, including the participants of stored
  messages/events it deletes or relabels (after the delete they are gone from the tables).

Which rows are read (DEFINITIONS.md "Which messages count"): messages of the user's accounts
that are not spam, trash or drafts (`is_excluded`, and Graph folders junkemail / deleteditems /
drafts as a second guard). A message is the user's (outbound) when it is flagged sent *or* its
From is one of the user's addresses — a sent message later moved to an archive folder is still
the user writing. The same message through two accounts or two folders counts once: messages are
keyed by Message-ID (`internet_message_id`), falling back to the row id, and its time is the
earliest delivery time among the copies.

Writes never commit: the caller's transaction (the sync page commit, the CLI) owns the boundary.
`now` is a parameter; strength decays with time, so a periodic rebuild (e.g. nightly) keeps the
scores of contacts no page touched current.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    String,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import Select

from core.addresses import canonical_address
from core.derive import people
from core.derive.history import History, MailItem, MeetingItem, summarise
from core.derive.strength import score
from core.models import (
    AccountAddress,
    CalendarEvent,
    ConnectedAccount,
    Contact,
    EventAttendee,
    Message,
    MessageParticipant,
    ParticipantRole,
)
from core.records import (
    Change,
    EventDeleted,
    EventRecord,
    LabelsChanged,
    MessageDeleted,
    MessageRecord,
)

EXCLUDED_FOLDERS = ("junkemail", "deleteditems", "drafts")
RECIPIENT_ROLES = (ParticipantRole.TO, ParticipantRole.CC, ParticipantRole.BCC)
_CHUNK = 500  # bound parameters per IN list: far below SQLite's limit
_STREAM_ROWS = 5000


@dataclass(frozen=True)
class DeriveResult:
    contacts_written: int
    contacts_deleted: int


@dataclass
class UserContext:
    user_id: uuid.UUID
    account_ids: list[uuid.UUID]
    own: people.OwnAddresses


@dataclass
class _Facts:
    """Everything about the addresses in scope except their mail rows (streamed)."""

    names: dict[str, dict[str, int]] = field(default_factory=dict)
    lists: set[str] = field(default_factory=set)
    meetings: dict[str, list[MeetingItem]] = field(default_factory=dict)
    person_key: dict[str, str] = field(default_factory=dict)


# Entry points


def rebuild_user(session: Session, *, user_id: uuid.UUID, now: dt.datetime) -> DeriveResult:
    """Recompute every contact of the user from the stored mail and calendars."""
    ctx = user_context(session, user_id)
    all_names = _names(session, ctx, scope=None)
    own_variants = sorted(a for a in all_names if a in ctx.own)
    facts = _Facts(names=all_names)
    facts.lists = _list_addresses(session, ctx, scope=None)
    facts.meetings = qualifying_meetings(session, ctx, scope=None)
    facts.person_key = _person_keys_all(session, ctx, all_names)
    derived = dict(_derive(session, ctx, facts, own_variants, scope=None, now=now))
    return _write(session, ctx, derived, scope=None)


def update_contacts(
    session: Session, *, user_id: uuid.UUID, addresses: Iterable[str], now: dt.datetime
) -> DeriveResult:
    """Recompute exactly the contacts whose facts `addresses` can change (see module doc)."""
    ctx = user_context(session, user_id)
    touched = {a for a in (canonical_address(x) for x in addresses) if a and a not in ctx.own}
    if not touched:
        return DeriveResult(0, 0)
    scope, person_key, names = _merge_scope(session, ctx, touched)
    facts = _Facts(names=names, person_key=person_key)
    facts.lists = _list_addresses(session, ctx, scope=scope)
    facts.meetings = qualifying_meetings(session, ctx, scope=scope)
    own_variants = _own_variants_near(session, ctx, scope)
    derived = dict(_derive(session, ctx, facts, own_variants, scope=scope, now=now))
    return _write(session, ctx, derived, scope=scope)


def touched_addresses(
    session: Session, *, account_id: uuid.UUID, changes: Sequence[Change]
) -> set[str]:
    """Return the canonical addresses a page of changes can affect; call before applying it."""
    found: set[str] = set()
    message_ids: list[str] = []
    events: list[tuple[str, str]] = []
    for change in changes:
        if isinstance(change, MessageRecord):
            message_ids.append(change.provider_message_id)
            for group in (change.from_, change.to, change.cc, change.bcc):
                found.update(a for a in (canonical_address(x.address) for x in group) if a)
        elif isinstance(change, MessageDeleted | LabelsChanged):
            message_ids.append(change.provider_message_id)
        elif isinstance(change, EventRecord):
            events.append((change.provider_calendar_id, change.provider_event_id))
            people_in = [a.address for a in change.attendees]
            if change.organizer is not None:
                people_in.append(change.organizer.address)
            found.update(a for a in (canonical_address(x) for x in people_in) if a)
        elif isinstance(change, EventDeleted):
            events.append((change.provider_calendar_id, change.provider_event_id))
    # What the stored copies involve now (a delete or relabel leaves no other trace).
    for chunk in _chunks(sorted(set(message_ids))):
        found.update(
            session.scalars(
                select(MessageParticipant.address)
                .join(Message, Message.id == MessageParticipant.message_id)
                .where(Message.account_id == account_id, Message.provider_message_id.in_(chunk))
            )
        )
    for chunk in _chunks(sorted(set(events))):
        # An event, or (a deleted series) its occurrences: see core/mailstore.py _delete_event.
        keys = [
            and_(
                CalendarEvent.provider_calendar_id == c,
                or_(CalendarEvent.provider_event_id == e, CalendarEvent.recurring_event_id == e),
            )
            for c, e in chunk
        ]
        rows = session.execute(
            select(EventAttendee.address, CalendarEvent.organizer_address)
            .select_from(CalendarEvent)
            .outerjoin(EventAttendee, EventAttendee.event_id == CalendarEvent.id)
            .where(CalendarEvent.account_id == account_id, or_(*keys))
        )
        for attendee, organizer in rows:
            found.update(a for a in (attendee, organizer) if a)
    return found


# Context


def user_context(session: Session, user_id: uuid.UUID) -> UserContext:
    """The user's accounts and own addresses, as every derivation query needs them."""
    accounts = session.execute(
        select(ConnectedAccount.id, ConnectedAccount.email).where(
            ConnectedAccount.user_id == user_id
        )
    ).all()
    account_ids = [row.id for row in accounts]
    own = [canonical_address(row.email) for row in accounts]
    if account_ids:
        own += [
            canonical_address(a)
            for a in session.scalars(
                select(AccountAddress.address).where(AccountAddress.account_id.in_(account_ids))
            )
        ]
    return UserContext(user_id, account_ids, people.OwnAddresses.of(own))


def _counted_messages(ctx: UserContext, *, scoped: bool = False) -> Any:
    """WHERE clause of the messages that may count (not spam, trash, draft; user's accounts).

    `scoped`: the query also restricts participant addresses to a scope, whose messages (found
    through the participants index on address) must drive it. The account filter is then written
    as `coalesce(account_id, account_id) IN (…)`, same meaning in every database, so that no
    planner (SQLite without statistics least of all) drives the query from the account index,
    i.e. from the whole mailbox.
    """
    account = (
        func.coalesce(Message.account_id, Message.account_id) if scoped else Message.account_id
    )
    return and_(
        account.in_(ctx.account_ids),
        Message.is_excluded.is_(False),
        or_(Message.folder.is_(None), Message.folder.not_in(EXCLUDED_FOLDERS)),
    )


def _messages_of(scope: Collection[str]) -> Any:
    return select(MessageParticipant.message_id).where(MessageParticipant.address.in_(scope))


# Facts


def _names(
    session: Session, ctx: UserContext, *, scope: Collection[str] | None
) -> dict[str, dict[str, int]]:
    """Return address → {display name: times seen} (every participant role, counted mail)."""
    names: dict[str, dict[str, int]] = {}
    for chunk in _scoped(scope):
        query = (
            select(MessageParticipant.address, MessageParticipant.display_name, func.count())
            .join(Message, Message.id == MessageParticipant.message_id)
            .where(_counted_messages(ctx, scoped=chunk is not None))
            .group_by(MessageParticipant.address, MessageParticipant.display_name)
        )
        if chunk is not None:
            query = query.where(MessageParticipant.address.in_(chunk))
        for address, name, n in _stream(session, query):
            seen = names.setdefault(address, {})
            if name:
                seen[name] = seen.get(name, 0) + n
    return names


def _own_variants_near(session: Session, ctx: UserContext, scope: Collection[str]) -> list[str]:
    """Return the user's own addresses as written in the messages involving `scope`."""
    found: set[str] = set()
    for chunk in _chunks(sorted(scope)):
        found.update(
            a
            for a in session.scalars(
                select(MessageParticipant.address)
                .distinct()
                .where(MessageParticipant.message_id.in_(_messages_of(chunk)))
            )
            if a in ctx.own
        )
    return sorted(found)


def _list_addresses(
    session: Session, ctx: UserContext, *, scope: Collection[str] | None
) -> set[str]:
    found: set[str] = set()
    for chunk in _scoped(scope):
        query = (
            select(MessageParticipant.address, Message.list_id)
            .distinct()
            .join(Message, Message.id == MessageParticipant.message_id)
            .where(
                (
                    func.coalesce(Message.account_id, Message.account_id)
                    if chunk is not None
                    else Message.account_id
                ).in_(ctx.account_ids),
                Message.list_id.is_not(None),
            )
        )
        if chunk is not None:
            query = query.where(MessageParticipant.address.in_(chunk))
        found.update(
            a for a, list_id in _stream(session, query) if people.is_list_address(a, list_id)
        )
    return found


def qualifying_meetings(
    session: Session, ctx: UserContext, *, scope: Collection[str] | None
) -> dict[str, list[MeetingItem]]:
    """Return address → qualifying meeting occurrences (DEFINITIONS.md "Meetings")."""
    # Scoped: the events come from the attendee / organizer indexes, never the whole calendar.
    account = CalendarEvent.account_id
    if scope is not None:
        account = func.coalesce(CalendarEvent.account_id, CalendarEvent.account_id)
    base = and_(
        account.in_(ctx.account_ids),
        CalendarEvent.is_cancelled.is_(False),
        CalendarEvent.is_all_day.is_(False),
        CalendarEvent.start_at.is_not(None),
    )
    event_ids: list[Any] = [None]
    if scope is not None:
        ids: set[int] = set()
        for chunk in _chunks(sorted(scope)):
            ids.update(
                session.scalars(
                    select(EventAttendee.event_id).where(EventAttendee.address.in_(chunk))
                )
            )
            ids.update(
                session.scalars(
                    select(CalendarEvent.id).where(CalendarEvent.organizer_address.in_(chunk))
                )
            )
        event_ids = list(_chunks(sorted(ids)))
    seen: dict[str, dict[tuple[str, dt.datetime], MeetingItem]] = {}
    for chunk in event_ids:
        query = (
            select(
                CalendarEvent.id,
                func.coalesce(CalendarEvent.ical_uid, CalendarEvent.provider_event_id),
                CalendarEvent.start_at,
                CalendarEvent.end_at,
                CalendarEvent.organizer_address,
                CalendarEvent.self_response,
                EventAttendee.address,
                EventAttendee.response_status,
                EventAttendee.is_organizer,
                EventAttendee.is_self,
                EventAttendee.is_resource,
                CalendarEvent.recurring_event_id,
                CalendarEvent.attendees_omitted,
            )
            .select_from(CalendarEvent)
            .outerjoin(EventAttendee, EventAttendee.event_id == CalendarEvent.id)
            .where(base)
            .order_by(CalendarEvent.id)
        )
        if chunk is not None:
            query = query.where(CalendarEvent.id.in_(chunk))
        for rows in _group_by_first(_stream(session, query)):
            event = _occurrence(rows, ctx.own)
            if event is None:
                continue
            key, item, met = event
            for address in met:
                if scope is None or address in scope:
                    seen.setdefault(address, {})[key] = item
    return {a: list(items.values()) for a, items in seen.items()}


def _occurrence(
    rows: list[Any], own: people.OwnAddresses
) -> tuple[tuple[str, dt.datetime], MeetingItem, list[str]] | None:
    """Return (dedup key, meeting, contacts met) of one event's rows, or None if not a meeting."""
    first = rows[0]
    start, end = first[2], first[3] or first[2]
    organizer = first[4]
    user_in = organizer in own or (first[5] or "").lower() in ("accepted", "organizer")
    met: list[str] = []
    invited: set[str] = set()
    if organizer and organizer not in own:
        met.append(organizer)  # the contact organised it
        invited.add(organizer)
    for row in rows:
        address, response, is_organizer, is_self, is_resource = row[6:11]
        if address is None or is_resource:
            continue
        accepted = (response or "").lower() == "accepted" or bool(is_organizer)
        if is_self or address in own:
            user_in = user_in or accepted
            continue
        invited.add(address)
        if accepted and address not in met:
            met.append(address)
    if not user_in or not met:
        return None
    item = MeetingItem(
        start_at=start,
        end_at=max(end, start),
        # A hidden guest list has at least one more person than the ones we see.
        is_group=len(invited) > 1 or bool(first[12]),
        people=len(invited) + (1 if first[12] else 0),
        recurring=first[11] is not None,
    )
    return (str(first[1]), start), item, met


def _person_keys_all(
    session: Session, ctx: UserContext, names: dict[str, dict[str, int]]
) -> dict[str, str]:
    """Return address → person key for every address (threads read only for merge candidates)."""
    by_name: dict[str, set[str]] = {}
    for address, seen in names.items():
        if address in ctx.own:
            continue
        for name in seen:
            norm = people.normalise_name(name)
            if people.is_strong_name(norm):
                by_name.setdefault(norm, set()).add(address)  # type: ignore[arg-type]
    candidates = sorted({a for group in by_name.values() if len(group) > 1 for a in group})
    threads = _threads(session, ctx, candidates)
    keys = people.person_keys({a: names.get(a, {}) for a in candidates}, threads)
    return {a: keys.get(a, a) for a in names}


def _merge_scope(
    session: Session, ctx: UserContext, touched: set[str]
) -> tuple[set[str], dict[str, str], dict[str, dict[str, int]]]:
    """Return (touched widened to whole merged persons, their person keys, their names).

    Closed under the merge relation (shared thread + shared strong name) and under the stored
    grouping, so the union-find on it equals the one a rebuild runs on everything.
    """
    scope = set(touched)
    frontier = set(touched)
    all_names: dict[str, dict[str, int]] = {}
    all_threads: dict[str, set[tuple[Any, str]]] = {}
    looked_up: set[str] = set()

    def names_of(addresses: set[str]) -> dict[str, dict[str, int]]:
        missing = addresses - looked_up
        if missing:
            all_names.update(_names(session, ctx, scope=missing))
            looked_up.update(missing)
        return {a: all_names[a] for a in addresses if a in all_names}

    while frontier:
        # Members of the persons the frontier belonged to before this page.
        old_keys = set()
        for chunk in _chunks(sorted(frontier)):
            old_keys.update(session.scalars(select(Contact.person_key).where(
                Contact.user_id == ctx.user_id, Contact.address.in_(chunk),
                Contact.person_key.is_not(None))))  # fmt: skip
        grown: set[str] = set()
        for chunk in _chunks(sorted(old_keys)):
            grown.update(session.scalars(select(Contact.address).where(
                Contact.user_id == ctx.user_id, Contact.person_key.in_(chunk))))  # fmt: skip
        # Neighbours: addresses in the same threads sharing a strong name.
        names = names_of(frontier)
        strong = {a: _strong_names(n) for a, n in names.items()}
        threads = _threads(session, ctx, sorted(a for a, s in strong.items() if s))
        all_threads.update(threads)
        neighbours = _thread_members(session, ctx, {t for ts in threads.values() for t in ts})
        neighbours = {a for a in neighbours - scope if a not in ctx.own}
        if neighbours:
            their = names_of(neighbours)
            mine = set().union(*strong.values()) if strong else set()
            grown.update(a for a, n in their.items() if _strong_names(n) & mine)
        grown = {a for a in grown if a not in ctx.own} - scope
        scope |= grown
        frontier = grown
    names = {a: all_names.get(a, {}) for a in scope}
    # Every scope address went through a frontier: its threads (if its names are strong) are known.
    threads = {a: all_threads[a] for a in scope if a in all_threads}
    keys = people.person_keys(names, threads)
    return scope, {a: keys.get(a, a) for a in scope}, names


def _strong_names(names: dict[str, int]) -> set[str]:
    return {n for n in map(people.normalise_name, names) if n and people.is_strong_name(n)}


def _thread_key() -> Any:
    return (
        cast(Message.account_id, String)
        + literal(":")
        + func.coalesce(
            Message.provider_thread_id, Message.internet_message_id, cast(Message.id, String)
        )
    )


def _thread_rest() -> Any:
    """The thread key without its account: provider thread, else Message-ID, else row id."""
    return func.coalesce(
        Message.provider_thread_id, Message.internet_message_id, cast(Message.id, String)
    )


def _threads(
    session: Session, ctx: UserContext, addresses: Sequence[str]
) -> dict[str, set[tuple[Any, str]]]:
    """Return address → its threads, each as (account id, `_thread_rest`)."""
    threads: dict[str, set[tuple[Any, str]]] = {}
    for chunk in _chunks(addresses):
        query = (
            select(MessageParticipant.address, Message.account_id, _thread_rest())
            .distinct()
            .join(Message, Message.id == MessageParticipant.message_id)
            .where(_counted_messages(ctx, scoped=True), MessageParticipant.address.in_(chunk))
        )
        for address, account, rest in _stream(session, query):
            threads.setdefault(address, set()).add((account, rest))
    return threads


def _thread_members(session: Session, ctx: UserContext, threads: set[tuple[Any, str]]) -> set[str]:
    """Return the addresses on counted mail of these threads.

    A thread's messages are found through indexes: by (account, provider thread id), or, for
    messages without one, by Message-ID or row id; the exact key is then compared in Python.
    """
    members: set[str] = set()
    rests = sorted({rest for _, rest in threads})
    row_ids = sorted({int(r) for r in rests if r.isdigit()})
    cols = (Message.account_id, _thread_rest(), MessageParticipant.address)
    candidates: list[Any] = []
    for account in ctx.account_ids:
        for chunk in _chunks(rests):
            candidates.append(
                select(*cols).where(
                    _counted_messages(ctx),
                    Message.account_id == account,
                    Message.provider_thread_id.in_(chunk),
                )
            )
    for chunk in _chunks(rests):
        candidates.append(select(*cols).where(
            _counted_messages(ctx, scoped=True), Message.provider_thread_id.is_(None),
            Message.internet_message_id.in_(chunk)))  # fmt: skip
    for chunk in _chunks(row_ids):
        candidates.append(select(*cols).where(
            _counted_messages(ctx, scoped=True), Message.provider_thread_id.is_(None),
            Message.internet_message_id.is_(None), Message.id.in_(chunk)))  # fmt: skip
    for query in candidates:
        query = query.join(
            MessageParticipant, MessageParticipant.message_id == Message.id
        ).distinct()
        members.update(
            address
            for account, rest, address in _stream(session, query)
            if (account, rest) in threads
        )
    return members


# Mail: one streamed row per (address, message, direction), folded per address


def _mail_query(
    ctx: UserContext, own_variants: list[str], chunk: Sequence[str] | None
) -> Select[Any]:
    # The user's addresses in From / in To or Cc of the message, as outer joins (one index seek
    # each). A message with several such rows repeats its participant rows: harmless, every
    # column below is grouped by or aggregated with min / max.
    # "" is never a canonical address (a NUL sentinel is not storable text in PostgreSQL).
    own_variants = own_variants or [""]
    own_from = aliased(MessageParticipant, name="own_from")
    own_to = aliased(MessageParticipant, name="own_to")
    outbound = or_(Message.is_sent.is_(True), own_from.id.is_not(None))
    direction = case((outbound, literal("out")), else_=literal("in")).label("direction")
    message_key = func.coalesce(
        Message.internet_message_id, literal("id:") + cast(Message.id, String)
    )
    query = (
        select(
            MessageParticipant.address,
            direction,
            func.min(Message.received_at),
            func.min(_thread_key()),
            func.max(Message.recipient_count),
            func.max(Message.list_id),
            func.max(Message.precedence),
            func.max(Message.auto_submitted),
            func.max(case((Message.has_list_unsubscribe.is_(True), 1), else_=0)),
            func.max(case((own_to.id.is_not(None), 1), else_=0)),
        )
        .select_from(MessageParticipant)
        .join(Message, Message.id == MessageParticipant.message_id)
        .outerjoin(
            own_from,
            and_(
                own_from.message_id == Message.id,
                own_from.role == ParticipantRole.FROM,
                own_from.address.in_(own_variants),
            ),
        )
        .outerjoin(
            own_to,
            and_(
                own_to.message_id == Message.id,
                own_to.role.in_((ParticipantRole.TO, ParticipantRole.CC)),
                own_to.address.in_(own_variants),
            ),
        )
        .where(
            _counted_messages(ctx, scoped=chunk is not None),
            or_(
                and_(MessageParticipant.role == ParticipantRole.FROM, not_(outbound)),
                and_(MessageParticipant.role.in_(RECIPIENT_ROLES), outbound),
            ),
        )
        .group_by(MessageParticipant.address, message_key, direction)
        .order_by(MessageParticipant.address)
    )
    if chunk is not None:
        query = query.where(MessageParticipant.address.in_(chunk))
    return query


@dataclass
class _Derived:
    kind: str
    history: History
    display_name: str | None
    person_key: str


def _derive(
    session: Session,
    ctx: UserContext,
    facts: _Facts,
    own_variants: list[str],
    *,
    scope: Collection[str] | None,
    now: dt.datetime,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (address, Contact column values) for every address that is a contact."""
    done: set[str] = set()
    for chunk in _scoped(scope):
        rows = _stream(session, _mail_query(ctx, own_variants, chunk))
        for group in _group_by_first(rows):
            address = group[0][0]
            if address in ctx.own:
                continue
            done.add(address)
            values = _contact(address, group, facts, now)
            if values is not None:
                yield address, values
    # Contacts with meetings but no mail at all.
    for address in sorted(set(facts.meetings) - done):
        if address in ctx.own or (scope is not None and address not in scope):
            continue
        values = _contact(address, [], facts, now)
        if values is not None:
            yield address, values


@functools.lru_cache(maxsize=4096)
def _verdict(
    list_id: str | None, prec: str | None, auto: str | None, unsub: bool, to_own: bool
) -> tuple[bool, bool, bool, bool]:
    """(says about sender, machine-sent, auto-submitted, counts as inbound) of a message's
    headers; few distinct header combinations occur, so folding a history reuses them."""
    traits = people.MessageTraits(list_id, prec, auto, unsub, to_own)
    auto_sent = people.is_auto_submitted(auto) and (auto or "").strip().lower() != "auto-replied"
    return (
        people.says_about_sender(traits),
        people.is_machine_message(traits),
        auto_sent,
        people.counts_as_inbound(traits),
    )


def _contact(
    address: str, rows: list[Any], facts: _Facts, now: dt.datetime
) -> dict[str, Any] | None:
    tally = people.SenderTally(is_list=address in facts.lists)
    counted: list[MailItem] = []
    everything: list[MailItem] = []
    for _, direction, at, thread, recipients, list_id, prec, auto, unsub, to_own in rows:
        item = MailItem(at=at, direction=direction, thread=thread, recipient_count=recipients or 0)
        everything.append(item)
        if direction == "out":
            tally.written_to = True
            counted.append(item)
            continue
        about, machine, auto_sent, inbound = _verdict(
            list_id, prec, auto, bool(unsub), bool(to_own)
        )
        if about:
            tally.sent += 1
        if machine:
            tally.machine += 1
            tally.auto += auto_sent
        if inbound:
            counted.append(item)
    kind = people.classify(address, tally)
    if kind != people.PERSON:
        if not everything:
            return None
        history = summarise(everything, [], now=now)
        strength, reasons = None, []
        history.awaiting_reply_from = None
    else:
        history = summarise(counted, facts.meetings.get(address, []), now=now)
        if not history.has_interaction:
            return None
        strength, reasons = score(history, now=now)
    return {
        "display_name": people.best_display_name(facts.names.get(address, {})),
        "company": people.company_of(address),
        "kind": kind,
        "person_key": facts.person_key.get(address, address),
        "inbound_count": history.inbound_count,
        "outbound_count": history.outbound_count,
        "first_contact_at": history.first_contact_at,
        "last_contact_at": history.last_contact_at,
        "last_inbound_at": history.last_inbound_at,
        "last_outbound_at": history.last_outbound_at,
        "awaiting_reply_from": history.awaiting_reply_from,
        "threads_together": history.threads_together,
        "my_reply_median_s": history.my_reply_median_s,
        "their_reply_median_s": history.their_reply_median_s,
        "cadence_days": history.cadence_days,
        "past_meetings": history.past_meetings,
        "one_to_one_meetings": history.one_to_one_meetings,
        "group_meetings": history.group_meetings,
        "last_meeting_at": history.last_meeting_at,
        "next_meeting_at": history.next_meeting_at,
        "strength": strength,
        "strength_reasons": reasons,
    }


# Writing


def _write(
    session: Session,
    ctx: UserContext,
    derived: dict[str, dict[str, Any]],
    *,
    scope: Collection[str] | None,
) -> DeriveResult:
    existing: dict[str, int] = {}
    for chunk in _scoped(scope):
        query = select(Contact.address, Contact.id).where(Contact.user_id == ctx.user_id)
        if chunk is not None:
            query = query.where(Contact.address.in_(chunk))
        existing.update((row.address, row.id) for row in session.execute(query))
    stale = [cid for address, cid in existing.items() if address not in derived]
    for chunk in _chunks(sorted(stale)):
        session.execute(delete(Contact).where(Contact.id.in_(chunk)))
    updates = [{"id": existing[a], **v} for a, v in derived.items() if a in existing]
    inserts = [
        {"user_id": ctx.user_id, "address": a, **v} for a, v in derived.items() if a not in existing
    ]
    for start in range(0, len(updates), _STREAM_ROWS):
        session.execute(update(Contact), updates[start : start + _STREAM_ROWS])
    for start in range(0, len(inserts), _STREAM_ROWS):
        session.execute(insert(Contact), inserts[start : start + _STREAM_ROWS])
    return DeriveResult(contacts_written=len(derived), contacts_deleted=len(stale))


# Helpers


def _stream(session: Session, query: Any) -> Iterator[Any]:
    """Stream a column query's rows (Core execution: no ORM row processing)."""
    session.flush()  # what `session.execute` would autoflush
    result = session.connection().execute(query.execution_options(yield_per=_STREAM_ROWS))
    yield from result


def _group_by_first(rows: Iterable[Any]) -> Iterator[list[Any]]:
    """Group consecutive rows with the same first column (rows arrive ordered by it)."""
    group: list[Any] = []
    for row in rows:
        if group and row[0] != group[0][0]:
            yield group
            group = []
        group.append(row)
    if group:
        yield group


def _chunks(items: Sequence[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield list(items[start : start + _CHUNK])


def _scoped(scope: Collection[str] | None) -> Iterator[list[str] | None]:
    """Yield address chunks of a scope, or a single None meaning "everything"."""
    if scope is None:
        yield None
    else:
        yield from _chunks(sorted(scope))
