"""Apply a page of provider changes to Warmline's copy of an account: idempotent upserts.

Keys are the provider ids (`account_id` + `provider_message_id`, `account_id` + calendar id +
event id), so replaying a page after a crash changes nothing. Participants and attendees of an
upserted row are replaced wholesale. Addresses are stored canonical (core/addresses); a
participant that is no address at all (`undisclosed-recipients:;`) is not stored.

Rows carry the stream's `sync_generation`: a full listing (initial sync or a resync after an
expired cursor) stamps every row it sees, and `sweep` then removes the rows it did not see —
mail deleted while the cursor was gone — so a resync loses nothing and keeps nothing stale.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.addresses import canonical_address
from core.models import (
    CalendarEvent,
    EventAttendee,
    Message,
    MessageParticipant,
    ParticipantRole,
)
from core.records import (
    Address,
    Change,
    EventDeleted,
    EventRecord,
    LabelsChanged,
    MessageDeleted,
    MessageRecord,
)

EXCLUDING_LABELS = {"SPAM", "TRASH", "DRAFT"}


@dataclass
class Applied:
    messages_upserted: int = 0
    messages_deleted: int = 0
    labels_changed: int = 0
    events_upserted: int = 0
    events_deleted: int = 0


def apply_changes(
    session: Session, *, account_id: uuid.UUID, changes: Sequence[Change], generation: int
) -> Applied:
    """Apply one page of changes, in order."""
    applied = Applied()
    messages = [c for c in changes if isinstance(c, MessageRecord)]
    existing = _existing_messages(session, account_id, [m.provider_message_id for m in messages])
    events = [c for c in changes if isinstance(c, EventRecord)]
    existing_events = _existing_events(session, account_id, events)
    for change in changes:
        if isinstance(change, MessageRecord):
            _upsert_message(session, account_id, change, existing, generation)
            applied.messages_upserted += 1
        elif isinstance(change, MessageDeleted):
            applied.messages_deleted += _delete_message(session, account_id, change, existing)
        elif isinstance(change, LabelsChanged):
            applied.labels_changed += _change_labels(session, account_id, change, existing)
        elif isinstance(change, EventRecord):
            _upsert_event(session, account_id, change, existing_events, generation)
            applied.events_upserted += 1
        elif isinstance(change, EventDeleted):
            applied.events_deleted += _delete_event(session, account_id, change, existing_events)
    session.flush()
    return applied


def sweep_messages(
    session: Session, *, account_id: uuid.UUID, generation: int, folder: str | None = None
) -> int:
    """Delete the account's messages a full listing of `generation` did not see."""
    query = delete(Message).where(
        Message.account_id == account_id, Message.sync_generation < generation
    )
    if folder is not None:
        query = query.where(Message.folder == folder)
    return int(session.execute(query).rowcount or 0)  # type: ignore[attr-defined]


def sweep_events(
    session: Session, *, account_id: uuid.UUID, generation: int, calendar_id: str | None = None
) -> int:
    """Delete the account's events a full listing of `generation` did not see."""
    query = delete(CalendarEvent).where(
        CalendarEvent.account_id == account_id, CalendarEvent.sync_generation < generation
    )
    if calendar_id is not None:
        query = query.where(CalendarEvent.provider_calendar_id == calendar_id)
    return int(session.execute(query).rowcount or 0)  # type: ignore[attr-defined]


# Messages


def _existing_messages(
    session: Session, account_id: uuid.UUID, ids: Iterable[str]
) -> dict[str, Message]:
    ids = list(dict.fromkeys(ids))
    found: dict[str, Message] = {}
    for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
        chunk = ids[start : start + 500]
        rows = session.scalars(
            select(Message).where(
                Message.account_id == account_id, Message.provider_message_id.in_(chunk)
            )
        )
        found.update({m.provider_message_id: m for m in rows})
    return found


def _upsert_message(
    session: Session,
    account_id: uuid.UUID,
    record: MessageRecord,
    existing: dict[str, Message],
    generation: int,
) -> None:
    message = existing.get(record.provider_message_id)
    if message is None:
        message = Message(account_id=account_id, provider_message_id=record.provider_message_id)
        session.add(message)
        existing[record.provider_message_id] = message
    message.provider_thread_id = record.provider_thread_id
    message.internet_message_id = _text(record.internet_message_id, 998)
    message.in_reply_to = _text(record.in_reply_to, 998)
    message.references = _text(record.references)
    message.subject = _text(record.subject)
    message.received_at = record.received_at
    message.sent_at = record.sent_at
    message.labels = sorted(set(record.labels))
    message.folder = _text(record.folder, 256)
    message.list_id = _text(record.list_id, 998)
    message.has_list_unsubscribe = record.has_list_unsubscribe
    message.precedence = _text(record.precedence, 64)
    message.auto_submitted = _text(record.auto_submitted, 64)
    message.recipient_count = len(record.to) + len(record.cc) + len(record.bcc)
    message.sync_generation = generation
    _set_flags(message, record)
    _merge(
        message.participants,
        _participants(record),
        key=lambda p: (p.role, p.position),
        fields=("address", "display_name"),
    )


def _set_flags(message: Message, record: MessageRecord) -> None:
    labels = set(record.labels)
    message.is_sent = record.is_sent or "SENT" in labels
    message.is_inbox = record.is_inbox or "INBOX" in labels
    message.is_excluded = (
        record.is_spam or record.is_trash or record.is_draft or bool(labels & EXCLUDING_LABELS)
    )


def _participants(record: MessageRecord) -> list[MessageParticipant]:
    rows: list[MessageParticipant] = []
    roles: tuple[tuple[ParticipantRole, tuple[Address, ...]], ...] = (
        (ParticipantRole.FROM, record.from_),
        (ParticipantRole.SENDER, record.sender),
        (ParticipantRole.REPLY_TO, record.reply_to),
        (ParticipantRole.TO, record.to),
        (ParticipantRole.CC, record.cc),
        (ParticipantRole.BCC, record.bcc),
    )
    for role, addresses in roles:
        for position, item in enumerate(addresses):
            address = canonical_address(item.address)
            if address is None or len(address) > 320:
                continue
            rows.append(
                MessageParticipant(
                    role=role,
                    position=position,
                    address=address,
                    display_name=_text(item.name, 512),
                )
            )
    return rows


def _delete_message(
    session: Session, account_id: uuid.UUID, change: MessageDeleted, existing: dict[str, Message]
) -> int:
    message = existing.pop(change.provider_message_id, None)
    if message is None:
        message = session.scalars(
            select(Message).where(
                Message.account_id == account_id,
                Message.provider_message_id == change.provider_message_id,
            )
        ).first()
    if message is None:
        return 0
    if change.folder is not None and message.folder != change.folder:
        # Graph reports a move out of a folder as a removal there; the message now lives in
        # another folder (already upserted by that folder's stream, or soon will be).
        existing[change.provider_message_id] = message
        return 0
    session.delete(message)
    # Flush now: a later record of the same id in this page must not be inserted first.
    session.flush()
    return 1


def _change_labels(
    session: Session, account_id: uuid.UUID, change: LabelsChanged, existing: dict[str, Message]
) -> int:
    message = (
        existing.get(change.provider_message_id)
        or session.scalars(
            select(Message).where(
                Message.account_id == account_id,
                Message.provider_message_id == change.provider_message_id,
            )
        ).first()
    )
    if message is None:
        return 0  # not stored (yet): its messageAdded fetch will bring the labels
    labels = (set(message.labels) | set(change.added)) - set(change.removed)
    message.labels = sorted(labels)
    message.is_sent = "SENT" in labels
    message.is_inbox = "INBOX" in labels
    message.is_excluded = bool(labels & EXCLUDING_LABELS)
    return 1


# Events


def _event_key(calendar_id: str, event_id: str) -> tuple[str, str]:
    return (calendar_id, event_id)


def _existing_events(
    session: Session, account_id: uuid.UUID, records: Sequence[EventRecord]
) -> dict[tuple[str, str], CalendarEvent]:
    found: dict[tuple[str, str], CalendarEvent] = {}
    by_calendar: dict[str, list[str]] = {}
    for record in records:
        by_calendar.setdefault(record.provider_calendar_id, []).append(record.provider_event_id)
    for calendar_id, ids in by_calendar.items():
        for start in range(0, len(ids), 500):
            rows = session.scalars(
                select(CalendarEvent).where(
                    CalendarEvent.account_id == account_id,
                    CalendarEvent.provider_calendar_id == calendar_id,
                    CalendarEvent.provider_event_id.in_(ids[start : start + 500]),
                )
            )
            found.update({_event_key(calendar_id, e.provider_event_id): e for e in rows})
    return found


def _upsert_event(
    session: Session,
    account_id: uuid.UUID,
    record: EventRecord,
    existing: dict[tuple[str, str], CalendarEvent],
    generation: int,
) -> None:
    key = _event_key(record.provider_calendar_id, record.provider_event_id)
    event = existing.get(key)
    if event is None:
        event = CalendarEvent(
            account_id=account_id,
            provider_calendar_id=record.provider_calendar_id,
            provider_event_id=record.provider_event_id,
        )
        session.add(event)
        existing[key] = event
    event.ical_uid = _text(record.ical_uid, 1024)
    event.recurring_event_id = record.recurring_event_id
    event.is_cancelled = record.is_cancelled
    event.is_all_day = record.is_all_day
    event.attendees_omitted = record.attendees_omitted
    event.start_at = record.start_at
    event.end_at = record.end_at
    event.organizer_address = (
        canonical_address(record.organizer.address) if record.organizer else None
    )
    event.self_response = _text(record.self_response, 32)
    event.sync_generation = generation
    attendees: dict[str, EventAttendee] = {}
    for item in record.attendees:
        address = canonical_address(item.address)
        if address is None or address in attendees:
            continue  # one row per person, even if a provider lists them twice
        attendees[address] = EventAttendee(
            address=address,
            display_name=_text(item.name, 512),
            response_status=_text(item.response, 32),
            is_organizer=item.is_organizer,
            is_self=item.is_self,
            is_optional=item.is_optional,
            is_resource=item.is_resource,
        )
    _merge(
        event.attendees,
        list(attendees.values()),
        key=lambda a: a.address,
        fields=(
            "display_name",
            "response_status",
            "is_organizer",
            "is_self",
            "is_optional",
            "is_resource",
        ),
    )


def _delete_event(
    session: Session,
    account_id: uuid.UUID,
    change: EventDeleted,
    existing: dict[tuple[str, str], CalendarEvent],
) -> int:
    key = _event_key(change.provider_calendar_id, change.provider_event_id)
    event = (
        existing.pop(key, None)
        or session.scalars(
            select(CalendarEvent).where(
                CalendarEvent.account_id == account_id,
                CalendarEvent.provider_calendar_id == change.provider_calendar_id,
                CalendarEvent.provider_event_id == change.provider_event_id,
            )
        ).first()
    )
    # A series deleted as a whole may not list every occurrence as cancelled: Google returns
    # cancelled instances only for a limited horizon
    # (https://github.com/googleapis/google-api-ruby-client/issues/860) and a removed Graph series
    # master does not cascade. Its stored occurrences go with it, else they stay "next meeting".
    occurrences = session.scalars(
        select(CalendarEvent).where(
            CalendarEvent.account_id == account_id,
            CalendarEvent.recurring_event_id == change.provider_event_id,
            CalendarEvent.provider_calendar_id == change.provider_calendar_id,
        )
    ).all()
    doomed = [o for o in occurrences if o is not event]
    if event is not None:
        doomed.append(event)
    for row in doomed:
        existing.pop(_event_key(row.provider_calendar_id, row.provider_event_id), None)
        session.delete(row)
    if doomed:
        session.flush()  # as for messages: a re-upsert later in the page must come after
    return len(doomed)


def _merge(
    current: list[Any], wanted: list[Any], *, key: Callable[[Any], object], fields: Sequence[str]
) -> None:
    """Make the `current` child collection equal `wanted`, updating rows in place by key.

    In-place updates keep a replayed page from deleting and re-inserting identical rows (and
    from tripping the natural-key unique constraints, which the ORM would otherwise see inserted
    before the old rows are deleted).
    """
    wanted_by_key = {key(w): w for w in wanted}
    for row in list(current):
        if key(row) not in wanted_by_key:
            current.remove(row)
    have = {key(row): row for row in current}
    for k, new in wanted_by_key.items():
        row = have.get(k)
        if row is None:
            current.append(new)
        else:
            for name in fields:
                if getattr(row, name) != getattr(new, name):
                    setattr(row, name, getattr(new, name))


def _text(value: str | None, limit: int | None = None) -> str | None:
    """Provider text as stored: without NUL (PostgreSQL text cannot hold it; a decoded header
    can, e.g. `=?utf-8?q?a=00b?=`) and within its column's length."""
    if value is None:
        return None
    value = value.replace("\x00", "")
    return value[:limit] if limit is not None else value
