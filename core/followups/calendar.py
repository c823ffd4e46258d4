"""Put follow-ups into the user's calendar, and take them out again (the calendar outbox).

Which follow-ups belong in the calendar: `accepted` ones, and the most pressing `open` ones when
the user turned auto-scheduling on (`scheduled`). Everything else that has an event (done,
dismissed, snoozed, resolved) loses it — unless its slot is already over: a past event is history
and stays.

One run (`sync_user_calendar`) reconciles that wish with what was written, row by row, and is
safe to repeat or to run in two workers at once:

1. *Plan* (one short transaction): pick a free slot, then fix the event — slot, idempotency key
   (`write_seq` bumps it), content — on the row *before* calling the provider. The update is
   conditional on the row's `write_seq`, so two planners cannot both win; the loser writes the
   winner's plan.
2. *Write*: `CalendarWriter.put_event` with that key (Google: the client event id; Graph: the
   transactionId). A retry after a crash, a timeout or a lost response sends the same key and the
   same content, so the provider returns the event made the first time instead of a second one.
3. *Record* the provider's event id.

Free slots (core/followups/slots.py): working hours and days in the user's zone, busy time from
the provider (freeBusy / getSchedule) *and* from the synced calendars (getSchedule does not
answer for personal Microsoft accounts), and the other follow-ups' slots; within the first day
with room, the hour at which this person has answered mail most often.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.db import transaction
from core.derive.store import _counted_messages, user_context
from core.errors import ProviderError, ProviderRejected, RateLimited, ReauthRequired
from core.followups.policy import Preferences
from core.followups.rules import PRIORITY
from core.followups.slots import WorkingTime, find_slot, hour_histogram
from core.models import (
    AccountState,
    CalendarEvent,
    ConnectedAccount,
    Contact,
    Followup,
    FollowupKind,
    FollowupStatus,
    Message,
    MessageParticipant,
    ParticipantRole,
    User,
)
from core.ports import CalendarWriter, EventSpec
from core.tokens import AccountUnavailable

CALENDAR_NAME = "Warmline follow-ups"
HORIZON_DAYS = 14
LEAD = dt.timedelta(minutes=30)
SHORT = dt.timedelta(minutes=15)
CALL = dt.timedelta(minutes=30)  # a call or a meeting needs longer than a reply
AUTO_LIMIT = 10  # open suggestions auto-scheduled at once
# Scopes that allow writing into a calendar the app created (connectors/*/oauth.py), by their
# last path segment: Google spells scopes as URLs, Graph sometimes with its resource prefix.
WRITE_SCOPES = {"calendar.app.created", "calendar", "calendars.readwrite"}

WriterFor = Callable[[ConnectedAccount], CalendarWriter]


@dataclass
class CalendarRun:
    written: int = 0
    removed: int = 0
    pending: int = 0  # still to write when the run stopped (quota, outage)
    error: str | None = None
    retry_after_s: float | None = None


def event_key(followup_id: int, write_seq: int) -> str:
    """32 base32hex characters: a valid Google event id and Graph transactionId."""
    digest = hashlib.sha256(f"warmline-followup:{followup_id}:{write_seq}".encode()).digest()
    return base64.b32hexencode(digest[:20]).decode().lower()


def scheduled(rows: Iterable[Followup], prefs: Preferences) -> set[int]:
    """Ids of the follow-ups that belong in the calendar: every accepted one and, with
    auto-scheduling, the `AUTO_LIMIT` most pressing open ones — a calendar full of nudges is
    one the user stops reading. Open ones already written keep their place."""
    rows = list(rows)
    chosen = {r.id for r in rows if r.status is FollowupStatus.ACCEPTED}
    if prefs.auto_schedule:
        candidates = sorted(
            (r for r in rows if r.status is FollowupStatus.OPEN),
            key=lambda r: (r.event_id is None, *_urgency(r)),
        )
        chosen |= {r.id for r in candidates[:AUTO_LIMIT]}
    return chosen


def _urgency(row: Followup) -> tuple[int, dt.datetime, int]:
    return PRIORITY.index(row.kind), row.due_at, row.id


def calendar_account(session: Session, user: User, prefs: Preferences) -> ConnectedAccount | None:
    """The account whose calendar gets the events: the chosen one, else the first connected
    account that granted a calendar write scope."""
    accounts = session.scalars(
        select(ConnectedAccount)
        .where(
            ConnectedAccount.user_id == user.id,
            ConnectedAccount.state == AccountState.ACTIVE,
        )
        .order_by(ConnectedAccount.created_at, ConnectedAccount.id)
    ).all()
    able = [a for a in accounts if _can_write(a)]
    chosen = [a for a in able if a.id == prefs.calendar_account_id]
    return (chosen or able or [None])[0]


def time_zone(prefs: Preferences, account: ConnectedAccount | None, default: str) -> str:
    return prefs.time_zone or (account.calendar_time_zone if account else None) or default


def user_time_zone(session: Session, user: User, default: str) -> str:
    """The user's zone: theirs if set, else their calendar's, else the configured default."""
    prefs = Preferences.of(user.preferences)
    return time_zone(prefs, calendar_account(session, user, prefs), default)


def sync_user_calendar(
    factory: sessionmaker[Session],
    *,
    user_id: uuid.UUID,
    now: dt.datetime,
    writer_for: WriterFor,
    default_time_zone: str,
    public_url: str,
) -> CalendarRun:
    """Reconcile the user's follow-up events with their follow-ups (see the module docstring)."""
    run = CalendarRun()
    with factory() as session:
        user = session.get(User, user_id)
        if user is None:
            return run
        prefs = Preferences.of(user.preferences)
        account = calendar_account(session, user, prefs)
        rows = session.scalars(
            select(Followup).where(
                Followup.user_id == user_id,
                or_(
                    Followup.event_key.is_not(None),
                    Followup.status.in_((FollowupStatus.ACCEPTED, FollowupStatus.OPEN)),
                ),
            )
        ).all()
        wanted = scheduled(rows, prefs)
        to_remove = [
            r.id
            for r in rows
            if r.event_key is not None
            and (r.id not in wanted or account is None or r.event_account_id != account.id)
        ]
        # The most pressing first: each takes the earliest free slot left (rows come back in no
        # promised order on PostgreSQL).
        to_write = [r.id for r in sorted(rows, key=_urgency) if r.id in wanted]
        account_id = account.id if account else None
    run.pending = len(to_write)
    try:
        for followup_id in to_remove:
            run.removed += _remove(factory, followup_id, now=now, writer_for=writer_for)
        if account_id is None:
            return run
        with factory() as session:
            account = session.get(ConnectedAccount, account_id)
            assert account is not None
            writer = writer_for(account)
            known = account.followups_calendar_id
        calendar = writer.ensure_calendar(known_id=known, name=CALENDAR_NAME)
        with transaction(factory) as session:
            session.execute(
                update(ConnectedAccount)
                .where(ConnectedAccount.id == account_id)
                .values(
                    followups_calendar_id=calendar.calendar_id,
                    calendar_time_zone=calendar.time_zone,
                )
            )
        zone = prefs.time_zone or calendar.time_zone or default_time_zone
        working = prefs.working_time(zone)
        for followup_id in to_write:
            if _write(
                factory,
                followup_id,
                account_id=account_id,
                calendar_id=calendar.calendar_id,
                writer=writer,
                working=working,
                now=now,
                public_url=public_url,
            ):
                run.written += 1
            run.pending -= 1
    except RateLimited as exc:
        run.error, run.retry_after_s = "rate limited", exc.retry_after_s
    except (ReauthRequired, AccountUnavailable):
        run.error = "the calendar account needs to be reconnected"
    except ProviderError as exc:
        run.error = f"calendar provider error: {type(exc).__name__}"
    return run


def _remove(
    factory: sessionmaker[Session], followup_id: int, *, now: dt.datetime, writer_for: WriterFor
) -> int:
    with factory() as session:
        row = session.get(Followup, followup_id)
        if row is None or row.event_key is None:
            return 0
        account = (
            session.get(ConnectedAccount, row.event_account_id) if row.event_account_id else None
        )
        event_id, calendar_id, seq = row.event_id, row.event_calendar_id, row.write_seq
        past = row.slot_end is not None and row.slot_end <= now
        spec = _spec_of(row)
    removed = 0
    if account is not None and calendar_id and not past:
        writer = writer_for(account)
        if event_id is None and spec is not None:
            # The write may have reached the provider without us hearing back: look it up.
            event_id = writer.find_event(calendar_id, spec.key)
        if event_id is not None:
            writer.remove_event(calendar_id, event_id)
            removed = 1
    with transaction(factory) as session:
        session.execute(
            update(Followup)
            .where(Followup.id == followup_id, Followup.write_seq == seq)
            .values(
                event_key=None,
                event_spec=None,
                event_id=None,
                event_calendar_id=None,
                event_account_id=None,
                slot_start=None,
                slot_end=None,
                calendar_error=None,
            )
        )
    return removed


def _write(
    factory: sessionmaker[Session],
    followup_id: int,
    *,
    account_id: uuid.UUID,
    calendar_id: str,
    writer: CalendarWriter,
    working: WorkingTime,
    now: dt.datetime,
    public_url: str,
) -> bool:
    with factory() as session:
        row = session.get(Followup, followup_id)
        if row is None:
            return False
        attendees = (row.address,) if row.invite and row.kind is FollowupKind.OFF_SCREEN else ()
        spec = _spec_of(row)
        if row.event_id is not None and spec is not None:
            if tuple(spec.attendees) == attendees:
                return False  # written and current
            # The user asked to invite them (or no longer): same event, updated.
            spec = EventSpec(**{**spec.__dict__, "attendees": attendees})
            event_id = _put(writer, calendar_id, spec, row.event_id)
            _record(factory, followup_id, row.write_seq, spec, event_id)
            return True
        stale = spec is not None and spec.start < now + LEAD
        seq = row.write_seq
    if spec is not None and stale:
        # A plan whose slot passed before it was confirmed written: if the old key did reach
        # the provider, take that event out; then plan afresh.
        old = writer.find_event(calendar_id, spec.key)
        if old is not None:
            writer.remove_event(calendar_id, old)
        spec = None
    if spec is None:
        spec, seq = _plan(
            factory, followup_id, account_id, calendar_id, writer, working, now, public_url
        )
        if spec is None:
            return False
    try:
        event_id = _put(writer, calendar_id, spec, None)
    except ProviderRejected as exc:
        with transaction(factory) as session:
            row = session.get(Followup, followup_id)
            if row is not None:
                row.calendar_error = f"the calendar refused the event ({exc.status})"
            if exc.status in (404, 410):  # the follow-ups calendar was deleted: make a new one
                account = session.get(ConnectedAccount, account_id)
                if account is not None:
                    account.followups_calendar_id = None
        return False
    _record(factory, followup_id, seq, spec, event_id)
    return True


def _plan(
    factory: sessionmaker[Session],
    followup_id: int,
    account_id: uuid.UUID,
    calendar_id: str,
    writer: CalendarWriter,
    working: WorkingTime,
    now: dt.datetime,
    public_url: str,
) -> tuple[EventSpec | None, int]:
    end = now + dt.timedelta(days=HORIZON_DAYS + 1)
    remote = writer.busy(calendar_ids=[calendar_id], start=now, end=end)
    with factory() as session:
        row = session.get(Followup, followup_id)
        if row is None:
            return None, 0
        busy = [(i.start, i.end) for i in remote or []]
        busy += _synced_busy(session, row.user_id, now, end)
        busy += _planned(session, row.user_id, now, exclude=row.id)
        duration = CALL if row.kind is FollowupKind.OFF_SCREEN else SHORT
        preferred = hour_histogram(_their_reply_times(session, row), working.time_zone)
        slot = find_slot(
            busy=busy,
            now=now,
            working=working,
            duration=duration,
            preferred_hours=preferred,
            horizon_days=HORIZON_DAYS,
            lead=LEAD,
        )
        if slot is None:
            return None, row.write_seq
        name = session.scalar(
            select(Contact.display_name).where(
                Contact.user_id == row.user_id, Contact.address == row.address
            )
        )
        seq = row.write_seq + 1
        spec = EventSpec(
            key=event_key(row.id, seq),
            summary=_summary(row.kind, name or row.address),
            description=f"{row.reason}\n\nWarmline suggested this follow-up; mark it done, "
            "snooze or dismiss it in the sidebar.",
            start=slot[0],
            end=slot[1],
            time_zone=working.time_zone,
            attendees=(row.address,) if row.invite and row.kind is FollowupKind.OFF_SCREEN else (),
            link=f"{public_url}/sidebar?email={quote(row.address)}",
        )
        old_seq = row.write_seq
    with transaction(factory) as session:
        won = session.execute(
            update(Followup)
            .where(Followup.id == followup_id, Followup.write_seq == old_seq)
            .values(
                write_seq=seq,
                event_key=spec.key,
                event_spec=_spec_json(spec),
                event_account_id=account_id,
                event_calendar_id=calendar_id,
                slot_start=spec.start,
                slot_end=spec.end,
                calendar_error=None,
            )
        ).rowcount
    if won:
        return spec, seq
    with factory() as session:  # another worker planned it first: write its plan
        row = session.get(Followup, followup_id)
        if row is None:
            return None, 0
        return _spec_of(row), row.write_seq


def _put(writer: CalendarWriter, calendar_id: str, spec: EventSpec, event_id: str | None) -> str:
    return writer.put_event(calendar_id, spec, event_id=event_id)


def _record(
    factory: sessionmaker[Session], followup_id: int, seq: int, spec: EventSpec, event_id: str
) -> None:
    with transaction(factory) as session:
        session.execute(
            update(Followup)
            .where(Followup.id == followup_id, Followup.write_seq == seq)
            .values(event_id=event_id, event_spec=_spec_json(spec), calendar_error=None)
        )


def _synced_busy(
    session: Session, user_id: uuid.UUID, start: dt.datetime, end: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime]]:
    """Busy time from the synced calendars: events the user has not declined."""
    accounts = select(ConnectedAccount.id).where(ConnectedAccount.user_id == user_id)
    rows = session.execute(
        select(CalendarEvent.start_at, CalendarEvent.end_at).where(
            CalendarEvent.account_id.in_(accounts),
            CalendarEvent.is_cancelled.is_(False),
            CalendarEvent.is_all_day.is_(False),
            CalendarEvent.start_at < end,
            CalendarEvent.end_at > start,
            or_(
                CalendarEvent.self_response.is_(None),
                CalendarEvent.self_response != "declined",
            ),
        )
    ).all()
    return [(s, e) for s, e in rows if s is not None and e is not None]


def _planned(
    session: Session, user_id: uuid.UUID, now: dt.datetime, *, exclude: int
) -> list[tuple[dt.datetime, dt.datetime]]:
    rows = session.execute(
        select(Followup.slot_start, Followup.slot_end).where(
            Followup.user_id == user_id,
            Followup.id != exclude,
            Followup.slot_end > now,
            Followup.event_key.is_not(None),
        )
    ).all()
    return [(s, e) for s, e in rows if s is not None and e is not None]


def _their_reply_times(session: Session, row: Followup) -> list[dt.datetime]:
    """When this person answered mail (their messages that reply to something), last year."""
    ctx = user_context(session, row.user_id)
    addresses = select(Contact.address).where(
        Contact.user_id == row.user_id,
        or_(Contact.person_key == row.address, Contact.address == row.address),
    )
    since = row.created_at - dt.timedelta(days=365)
    return list(
        session.scalars(
            select(Message.received_at)
            .join(MessageParticipant, MessageParticipant.message_id == Message.id)
            .where(
                _counted_messages(ctx, scoped=True),
                MessageParticipant.role == ParticipantRole.FROM,
                MessageParticipant.address.in_(addresses),
                Message.in_reply_to.is_not(None),
                Message.received_at >= since,
            )
            .order_by(Message.received_at.desc())
            .limit(500)
        )
    )


def _summary(kind: FollowupKind, name: str) -> str:
    return {
        FollowupKind.WAITING_ON_YOU: f"Reply to {name}",
        FollowupKind.NO_REPLY: f"Nudge {name}",
        FollowupKind.AFTER_MEETING: f"Follow up with {name} after your meeting",
        FollowupKind.GOING_QUIET: f"Check in with {name}",
        FollowupKind.OFF_SCREEN: f"Call {name}",
    }[kind]


def _spec_json(spec: EventSpec) -> dict[str, object]:
    return {
        "key": spec.key,
        "summary": spec.summary,
        "description": spec.description,
        "start": spec.start.isoformat(),
        "end": spec.end.isoformat(),
        "time_zone": spec.time_zone,
        "attendees": list(spec.attendees),
        "link": spec.link,
    }


def _spec_of(row: Followup) -> EventSpec | None:
    raw = row.event_spec
    if not raw or row.event_key is None:
        return None
    return EventSpec(
        key=str(raw["key"]),
        summary=str(raw["summary"]),
        description=str(raw["description"]),
        start=dt.datetime.fromisoformat(str(raw["start"])),
        end=dt.datetime.fromisoformat(str(raw["end"])),
        time_zone=str(raw["time_zone"]),
        attendees=tuple(str(a) for a in raw.get("attendees") or []),  # type: ignore[union-attr]
        link=str(raw["link"]) if raw.get("link") else None,
    )


def _can_write(account: ConnectedAccount) -> bool:
    granted = {s.rsplit("/", 1)[-1].lower() for s in (account.granted_scopes or "").split()}
    return bool(granted & WRITE_SCOPES)
