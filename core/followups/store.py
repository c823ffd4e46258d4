"""Database adapter of the follow-up rules: gather each person's facts, keep `followups` rows.

`evaluate_user` runs the pure rules (core/followups/rules.py) over the user's people and
reconciles the result with the stored suggestions:

* a suggestion that holds and is new becomes an `open` row (or `accepted`, when the user had
  accepted the same kind for this person and only the cause moved on, e.g. they wrote again);
* a stored `open`/`accepted`/`snoozed` row whose rule no longer holds becomes `resolved` — its
  condition went away (a reply, a meeting, or it aged out);
* `done` and `dismissed` rows are final: the same cause never comes back;
* a `snoozed` row past its date is `open` again if it still holds.

People, not addresses: contacts that derivation grouped under one `person_key` are one person;
their facts are combined and the suggestion is stored under the person key.

Only people who could match a rule are read: kind `person` and either some contact in the
longest window a rule looks at, or strong enough to go quiet. The latest message each way is
read only for people whose exchange is open and recent. Writes never commit.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from core.derive.store import (
    RECIPIENT_ROLES,
    UserContext,
    _counted_messages,
    qualifying_meetings,
    user_context,
)
from core.followups.rules import Mail, Meeting, PersonFacts, Suggestion, Thresholds, suggest
from core.followups.slots import WorkingTime
from core.models import (
    Contact,
    Followup,
    FollowupStatus,
    Message,
    MessageParticipant,
    ParticipantRole,
)

LIVE = (FollowupStatus.OPEN, FollowupStatus.ACCEPTED, FollowupStatus.SNOOZED)
FINAL = (FollowupStatus.DONE, FollowupStatus.DISMISSED)


@dataclass(frozen=True)
class EvaluateResult:
    people: int
    opened: int
    resolved: int
    reopened: int


def evaluate_user(
    session: Session,
    *,
    user_id: uuid.UUID,
    now: dt.datetime,
    working: WorkingTime,
    limits: Thresholds,
) -> EvaluateResult:
    """Recompute the user's suggestions and reconcile the `followups` rows (no commit)."""
    ctx = user_context(session, user_id)
    persons = _people(session, ctx, now=now, limits=limits)
    wanted: dict[tuple[str, str, str], Suggestion] = {}
    for person in persons:
        for s in suggest(person, now=now, working=working, limits=limits):
            wanted[(person.address, s.kind.value, s.cause_key)] = s

    rows = session.scalars(
        select(Followup).where(
            Followup.user_id == user_id,
            or_(
                Followup.status.in_(LIVE),
                and_(
                    Followup.address.in_({k[0] for k in wanted} or {""}),
                    Followup.status.not_in(LIVE),
                ),
            ),
        )
    ).all()
    stored = {(r.address, r.kind.value, r.cause_key): r for r in rows}
    accepted_before = {
        (r.address, r.kind.value) for r in rows if r.status is FollowupStatus.ACCEPTED
    }
    opened = resolved = reopened = 0
    for key, row in stored.items():
        if row.status in LIVE and key not in wanted:
            row.status, row.status_at = FollowupStatus.RESOLVED, now
            resolved += 1
    for key, s in wanted.items():
        row = stored.get(key)
        if row is None:
            status = FollowupStatus.ACCEPTED if key[:2] in accepted_before else FollowupStatus.OPEN
            session.add(
                Followup(
                    user_id=user_id,
                    address=key[0],
                    kind=s.kind,
                    cause_key=s.cause_key,
                    status=status,
                    reason=s.reason,
                    facts=s.facts,
                    due_at=s.due_at,
                    created_at=now,
                    status_at=now,
                )
            )
            opened += 1
            continue
        if row.status in FINAL:
            continue
        if row.status is FollowupStatus.RESOLVED or (
            row.status is FollowupStatus.SNOOZED
            and (row.snoozed_until is None or row.snoozed_until <= now)
        ):
            row.status, row.status_at, row.snoozed_until = FollowupStatus.OPEN, now, None
            reopened += 1
        row.reason, row.facts = s.reason, s.facts
    session.flush()
    return EvaluateResult(len(persons), opened, resolved, reopened)


# Facts


def _people(
    session: Session, ctx: UserContext, *, now: dt.datetime, limits: Thresholds
) -> list[PersonFacts]:
    window = dt.timedelta(days=max(limits.max_age_days, limits.offscreen_active_days) + 1)
    contacts = session.scalars(
        select(Contact).where(
            Contact.user_id == ctx.user_id,
            Contact.kind == "person",
            or_(
                Contact.last_contact_at >= now - window,
                and_(
                    Contact.strength >= limits.quiet_min_strength,
                    Contact.cadence_days.is_not(None),
                ),
            ),
        )
    ).all()
    if not contacts:
        return []
    # Every address of a person in scope, even one outside the window, so that facts combine.
    keys = {c.person_key or c.address for c in contacts}
    groups: dict[str, list[Contact]] = {}
    for chunk in _chunks(sorted(keys)):
        for c in session.scalars(
            select(Contact).where(
                Contact.user_id == ctx.user_id,
                Contact.kind == "person",
                or_(Contact.person_key.in_(chunk), Contact.address.in_(chunk)),
            )
        ):
            groups.setdefault(c.person_key or c.address, []).append(c)

    horizon = now - dt.timedelta(days=limits.max_age_days + 1)
    recent_meeting = [
        c.address for cs in groups.values() for c in cs if _after(c.last_meeting_at, horizon)
    ]
    meetings = (
        qualifying_meetings(session, ctx, scope=set(recent_meeting)) if recent_meeting else {}
    )
    lists = set(
        session.scalars(
            select(Contact.address).where(Contact.user_id == ctx.user_id, Contact.kind == "list")
        )
    )
    return [
        _combine(key, cs, session, ctx, meetings, lists, horizon=horizon, now=now)
        for key, cs in sorted(groups.items())
    ]


def _combine(
    key: str,
    contacts: list[Contact],
    session: Session,
    ctx: UserContext,
    meetings: dict[str, list[Any]],
    lists: set[str],
    *,
    horizon: dt.datetime,
    now: dt.datetime,
) -> PersonFacts:
    # Ties go to the first address in order, not to whichever row the database returned first.
    main = max(
        sorted(contacts, key=lambda c: c.address),
        key=lambda c: (c.strength or -1, c.inbound_count + c.outbound_count),
    )
    addresses = [c.address for c in contacts]
    li = _latest(c.last_inbound_at for c in contacts)
    lo = _latest(c.last_outbound_at for c in contacts)
    last_inbound = last_outbound = None
    # The details of the latest message each way matter only while it may still need an answer.
    if li is not None:
        last_inbound = (
            _inbound(session, ctx, addresses, li)
            if li > horizon and (lo is None or li > lo)
            else Mail(at=li)
        )
    if lo is not None:
        last_outbound = (
            _outbound(session, ctx, addresses, lo, lists)
            if lo > horizon and (li is None or lo >= li)
            else Mail(at=lo)
        )
    last_meeting = None
    last_meeting_at = _latest(c.last_meeting_at for c in contacts)
    if last_meeting_at is not None:
        ended = [m for a in addresses for m in meetings.get(a, []) if m.end_at <= now]
        latest = max(ended, key=lambda m: (m.start_at, m.end_at), default=None)
        if latest is not None and latest.start_at >= last_meeting_at:
            last_meeting = Meeting(latest.start_at, latest.end_at, latest.people, latest.recurring)
        else:  # old enough that only its date matters to the rules
            last_meeting = Meeting(last_meeting_at, last_meeting_at, people=0, recurring=False)
    nexts = [c.next_meeting_at for c in contacts if c.next_meeting_at is not None]
    return PersonFacts(
        address=key,
        name=main.display_name,
        kind="person",
        strength=max((c.strength for c in contacts if c.strength is not None), default=None),
        inbound_count=sum(c.inbound_count for c in contacts),
        outbound_count=sum(c.outbound_count for c in contacts),
        first_contact_at=min(
            (c.first_contact_at for c in contacts if c.first_contact_at), default=None
        ),
        last_contact_at=_latest(c.last_contact_at for c in contacts),
        last_inbound=last_inbound,
        last_outbound=last_outbound,
        last_meeting=last_meeting,
        past_meetings=sum(c.past_meetings for c in contacts),
        next_meeting_at=min(nexts, default=None),
        cadence_days=main.cadence_days,
    )


def _inbound(
    session: Session, ctx: UserContext, addresses: Collection[str], at: dt.datetime
) -> Mail:
    """Their message at `at`: was it written to me (To), and to how many."""
    sender = (
        select(Message.id, Message.subject, Message.recipient_count)
        .join(MessageParticipant, MessageParticipant.message_id == Message.id)
        .where(
            _counted_messages(ctx, scoped=True),
            MessageParticipant.role == ParticipantRole.FROM,
            MessageParticipant.address.in_(addresses),
            Message.received_at == at,
        )
        .order_by(Message.id)
        .limit(1)
    )
    row = session.execute(sender).first()
    if row is None:
        return Mail(at=at)
    to_me = any(a in ctx.own for a in _recipients(session, row.id, (ParticipantRole.TO,)))
    everyone = _recipients(session, row.id, RECIPIENT_ROLES)
    return Mail(at=at, recipients=len(everyone), to_me_directly=to_me, subject=row.subject)


def _outbound(
    session: Session,
    ctx: UserContext,
    addresses: Collection[str],
    at: dt.datetime,
    lists: set[str],
) -> Mail:
    """My message at `at` to them: how many it went to, and whether a list was one of them."""
    query = (
        select(
            Message.id,
            Message.subject,
            Message.list_id,
            Message.account_id,
            Message.provider_thread_id,
        )
        .join(MessageParticipant, MessageParticipant.message_id == Message.id)
        .where(
            _counted_messages(ctx, scoped=True),
            MessageParticipant.role.in_(RECIPIENT_ROLES),
            MessageParticipant.address.in_(addresses),
            Message.received_at == at,
        )
        .order_by(Message.id)
        .limit(1)
    )
    row = session.execute(query).first()
    if row is None:
        return Mail(at=at)
    everyone = _recipients(session, row.id, RECIPIENT_ROLES)
    to_list = row.list_id is not None or any(a in lists for a in everyone)
    answers = _previous_sender(session, row, at) in set(addresses)
    return Mail(
        at=at,
        recipients=len(everyone),
        to_list=to_list,
        answers_them=answers,
        subject=row.subject,
    )


def _previous_sender(session: Session, row: Any, at: dt.datetime) -> str | None:
    """Who wrote the message before mine in the same thread (None: mine opened it)."""
    if row.provider_thread_id is None:
        return None
    # The thread's rows come from the (account, thread) index and are ordered here: with an
    # ORDER BY received_at, SQLite walks the account's mail by date instead.
    earlier = [
        (when, message_id)
        for message_id, when in session.execute(
            select(Message.id, Message.received_at).where(
                Message.account_id == row.account_id,
                Message.provider_thread_id == row.provider_thread_id,
                Message.is_excluded.is_(False),
            )
        )
        if when < at
    ]
    if not earlier:
        return None
    previous = max(earlier)[1]
    return session.scalar(
        select(MessageParticipant.address).where(
            MessageParticipant.message_id == previous,
            MessageParticipant.role == ParticipantRole.FROM,
        )
    )


def _recipients(session: Session, message_id: int, roles: Iterable[ParticipantRole]) -> set[str]:
    return set(
        session.scalars(
            select(MessageParticipant.address).where(
                MessageParticipant.message_id == message_id,
                MessageParticipant.role.in_(list(roles)),
            )
        )
    )


def _latest(values: Iterable[dt.datetime | None]) -> dt.datetime | None:
    return max((v for v in values if v is not None), default=None)


def _after(value: dt.datetime | None, bound: dt.datetime) -> bool:
    return value is not None and value >= bound


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
