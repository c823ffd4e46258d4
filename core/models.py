"""Warmline's storage model (SQLAlchemy 2.0, typed).

Ownership runs one way: a `User` owns `ConnectedAccount`s; an account owns its `SyncStream`s,
`Message`s (with `MessageParticipant`s) and `CalendarEvent`s (with `EventAttendee`s); `Contact`s
belong to the user, derived across all of the user's accounts. Every child row cascades on delete,
so disconnecting an account or deleting a user leaves nothing of theirs behind.

Natural-key unique constraints (`account_id` + provider id) make every sync write an idempotent
upsert: a replayed page changes nothing. Addresses are stored canonical (see DEFINITIONS.md);
message bodies are never stored — there is no column for them.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from sqlalchemy import (
    JSON,
    Boolean,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base, BigIntPK, UTCDateTime, utcnow


def _enum(cls: type[enum.Enum]) -> Enum:
    # Stored as plain strings with a CHECK, so PostgreSQL needs no enum type migrations.
    return Enum(cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


class Provider(enum.StrEnum):
    GOOGLE = "google"
    MICROSOFT = "microsoft"


class AccountState(enum.StrEnum):
    """Lifecycle of a connected account; see core/sync for the per-stream state machine."""

    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"  # the grant was revoked or expired: stop syncing, ask the user
    DISABLED = "disabled"


class SyncPhase(enum.StrEnum):
    INITIAL = "initial"
    INCREMENTAL = "incremental"


class ParticipantRole(enum.StrEnum):
    FROM = "from"
    SENDER = "sender"
    REPLY_TO = "reply_to"
    TO = "to"
    CC = "cc"
    BCC = "bcc"


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Follow-up preferences (core/followups/policy.py validates and defaults them): time zone,
    # working hours and days, auto-scheduling, which account's calendar gets the events.
    preferences: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    # SHA-256 of the secret in the user's ICS feed URL; None when no feed is enabled.
    ics_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)

    accounts: Mapped[list[ConnectedAccount]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )


class ConnectedAccount(Base):
    """One mailbox + calendar at one provider, connected by one user."""

    __tablename__ = "connected_accounts"
    __table_args__ = (UniqueConstraint("user_id", "provider", "provider_account_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    provider: Mapped[Provider] = mapped_column(_enum(Provider))
    provider_account_id: Mapped[str] = mapped_column(String(256))  # Google `sub`, Entra `oid`
    email: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(256))
    state: Mapped[AccountState] = mapped_column(_enum(AccountState), default=AccountState.ACTIVE)
    granted_scopes: Mapped[str] = mapped_column(Text, default="")
    # Fernet ciphertext of the refresh token / msal cache; never plaintext (core/vault).
    token_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    token_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    # One sync of an account at a time, across all workers: a lease that expires if its holder
    # dies. `sync_due_at` is when the account next needs a worker (the earliest due stream).
    sync_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    sync_lease_owner: Mapped[str | None] = mapped_column(String(128))
    sync_lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Last reconciliation against the provider's own totals (see core/coverage).
    coverage: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    # The "Warmline follow-ups" calendar made in this account, and the time zone of the account's
    # primary calendar as the provider reports it (None where it does not say).
    followups_calendar_id: Mapped[str | None] = mapped_column(String(512))
    calendar_time_zone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    user: Mapped[User] = relationship(back_populates="accounts")
    addresses: Mapped[list[AccountAddress]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )


class AccountAddress(Base):
    """An address that is the account owner: primary, aliases (sendAs, proxyAddresses)."""

    __tablename__ = "account_addresses"
    __table_args__ = (UniqueConstraint("account_id", "address"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("connected_accounts.id", ondelete="CASCADE")
    )
    address: Mapped[str] = mapped_column(String(320))
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)


class SyncStream(Base):
    """Durable sync state of one stream of an account (Gmail, a calendar, a Graph folder).

    The database, not the broker, holds what work is due (`due_at`) and where it stands: each
    page commits with its cursor, so any worker resumes from the last committed page. Who holds
    the account is its lease (`ConnectedAccount.sync_lease_*`). `generation` counts full
    listings: rows a full listing did not see again are swept when it completes.
    """

    __tablename__ = "sync_streams"
    __table_args__ = (
        UniqueConstraint("account_id", "stream"),
        Index("ix_sync_streams_due", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("connected_accounts.id", ondelete="CASCADE")
    )
    stream: Mapped[str] = mapped_column(String(512))  # e.g. "gmail", "calendar:<id>", "mail:<id>"
    phase: Mapped[SyncPhase] = mapped_column(_enum(SyncPhase), default=SyncPhase.INITIAL)
    cursor: Mapped[str | None] = mapped_column(Text)  # historyId, syncToken or deltaLink
    backfill_cursor: Mapped[str | None] = mapped_column(Text)  # page token mid initial sync
    items_seen: Mapped[int] = mapped_column(Integer, default=0)
    items_total_estimate: Mapped[int | None] = mapped_column(Integer)
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    cursor_updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Message(Base):
    """Metadata of one message as one account sees it. No body, ever."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("account_id", "provider_message_id"),
        Index("ix_messages_account_received", "account_id", "received_at"),
        Index("ix_messages_internet_message_id", "internet_message_id"),
        # Derivation walks threads (reply times, identity evidence) per account.
        Index("ix_messages_account_thread", "account_id", "provider_thread_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("connected_accounts.id", ondelete="CASCADE")
    )
    provider_message_id: Mapped[str] = mapped_column(String(512))
    provider_thread_id: Mapped[str | None] = mapped_column(String(512))
    internet_message_id: Mapped[str | None] = mapped_column(String(998))
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    # Provider delivery time (Gmail internalDate, Graph receivedDateTime): what counts.
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # The Date header as parsed, when it parses: informative only.
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)  # Gmail label ids
    folder: Mapped[str | None] = mapped_column(String(256))  # Graph folder (well-known name/id)
    is_sent: Mapped[bool] = mapped_column(Boolean, default=False)
    is_inbox: Mapped[bool] = mapped_column(Boolean, default=False)
    is_excluded: Mapped[bool] = mapped_column(Boolean, default=False)  # spam, trash or draft
    list_id: Mapped[str | None] = mapped_column(String(998))
    has_list_unsubscribe: Mapped[bool] = mapped_column(Boolean, default=False)
    precedence: Mapped[str | None] = mapped_column(String(64))
    auto_submitted: Mapped[str | None] = mapped_column(String(64))
    recipient_count: Mapped[int] = mapped_column(Integer, default=0)
    sync_generation: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    participants: Mapped[list[MessageParticipant]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="MessageParticipant.position"
    )


class MessageParticipant(Base):
    __tablename__ = "message_participants"
    __table_args__ = (
        UniqueConstraint("message_id", "role", "position"),
        Index("ix_message_participants_address", "address"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    role: Mapped[ParticipantRole] = mapped_column(_enum(ParticipantRole))
    position: Mapped[int] = mapped_column(Integer, default=0)
    address: Mapped[str] = mapped_column(String(320))  # canonical
    display_name: Mapped[str | None] = mapped_column(String(512))


class CalendarEvent(Base):
    """One event or one occurrence of a recurring series, from one of the user's calendars."""

    __tablename__ = "calendar_events"
    __table_args__ = (
        UniqueConstraint("account_id", "provider_calendar_id", "provider_event_id"),
        Index("ix_calendar_events_account_start", "account_id", "start_at"),
        # Derivation finds the events a contact organised (incremental updates).
        Index("ix_calendar_events_organizer_address", "organizer_address"),
        # Deleting a recurring series deletes its stored occurrences (core/mailstore.py).
        Index("ix_calendar_events_account_recurring", "account_id", "recurring_event_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("connected_accounts.id", ondelete="CASCADE")
    )
    provider_calendar_id: Mapped[str] = mapped_column(String(512))
    provider_event_id: Mapped[str] = mapped_column(String(1024))
    ical_uid: Mapped[str | None] = mapped_column(String(1024))
    recurring_event_id: Mapped[str | None] = mapped_column(String(1024))
    is_cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    is_all_day: Mapped[bool] = mapped_column(Boolean, default=False)
    attendees_omitted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    start_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    end_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    organizer_address: Mapped[str | None] = mapped_column(String(320))
    self_response: Mapped[str | None] = mapped_column(String(32))
    sync_generation: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    attendees: Mapped[list[EventAttendee]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )


class EventAttendee(Base):
    __tablename__ = "event_attendees"
    __table_args__ = (
        UniqueConstraint("event_id", "address"),
        Index("ix_event_attendees_address", "address"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("calendar_events.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320))  # canonical
    display_name: Mapped[str | None] = mapped_column(String(512))
    response_status: Mapped[str | None] = mapped_column(String(32))
    is_organizer: Mapped[bool] = mapped_column(Boolean, default=False)
    is_self: Mapped[bool] = mapped_column(Boolean, default=False)
    is_optional: Mapped[bool] = mapped_column(Boolean, default=False)
    is_resource: Mapped[bool] = mapped_column(Boolean, default=False)


class Contact(Base):
    """A person (or, flagged, an automated sender) the user has history with.

    The derived fields follow the product contract in DEFINITIONS.md; derivation fills them.
    """

    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("user_id", "address"),
        Index("ix_contacts_user_last_contact", "user_id", "last_contact_at"),
        Index("ix_contacts_user_person_key", "user_id", "person_key"),
        # The relationships page ranks by strength, paged by keyset (strength, id).
        Index("ix_contacts_user_strength", "user_id", "strength", "id"),
        # "New this month" on the relationships page starts from the few first contacts lately.
        Index("ix_contacts_user_first_contact", "user_id", "first_contact_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320))  # canonical
    display_name: Mapped[str | None] = mapped_column(String(512))
    company: Mapped[str | None] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(32), default="person")  # person, list, automated
    inbound_count: Mapped[int] = mapped_column(Integer, default=0)
    outbound_count: Mapped[int] = mapped_column(Integer, default=0)
    first_contact_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_contact_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_inbound_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_outbound_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    awaiting_reply_from: Mapped[str | None] = mapped_column(String(8))  # "me" | "them"
    past_meetings: Mapped[int] = mapped_column(Integer, default=0)
    last_meeting_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    next_meeting_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    strength: Mapped[int | None] = mapped_column(Integer)
    strength_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    # One person, several addresses: rows of one person share this key (core/derive/people).
    person_key: Mapped[str | None] = mapped_column(String(320))
    threads_together: Mapped[int] = mapped_column(Integer, default=0)
    my_reply_median_s: Mapped[int | None] = mapped_column(Integer)
    their_reply_median_s: Mapped[int | None] = mapped_column(Integer)
    cadence_days: Mapped[float | None] = mapped_column(Float)
    one_to_one_meetings: Mapped[int] = mapped_column(Integer, default=0)
    group_meetings: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WebSession(Base):
    """A signed-in browser. The cookie holds a random id; only its hash is stored."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ApiToken(Base):
    """A personal API token for scripts and add-ons: shown once, stored hashed, revocable."""

    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists so a user can tell them apart
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class OAuthRequest(Base):
    """An authorization request in flight, from redirect to callback: single use, short-lived.

    `state` is what the provider echoes; `browser_binding` ties it to the browser that started
    it, so a callback replayed in another browser (or another user's session) is refused. The
    PKCE verifier / msal flow is stored encrypted.
    """

    __tablename__ = "oauth_requests"

    state: Mapped[str] = mapped_column(String(128), primary_key=True)
    browser_binding: Mapped[str] = mapped_column(String(64))
    provider: Mapped[Provider] = mapped_column(_enum(Provider))
    intent: Mapped[str] = mapped_column(String(16))  # signin | connect
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    payload_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class QuotaReservation(Base):
    """Quota units an account spent (or will spend) at a provider, for the sliding window.

    Shared by every worker process, so one mailbox stays under its per-user limit however many
    workers touch it (core/quota).
    """

    __tablename__ = "quota_reservations"
    __table_args__ = (Index("ix_quota_reservations_bucket_at", "account_id", "bucket", "at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("connected_accounts.id", ondelete="CASCADE")
    )
    bucket: Mapped[str] = mapped_column(String(32))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    units: Mapped[float] = mapped_column(Float)


class QuotaHold(Base):
    """The provider told us to wait (429 Retry-After): nobody calls it for this bucket before."""

    __tablename__ = "quota_holds"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("connected_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    bucket: Mapped[str] = mapped_column(String(32), primary_key=True)
    until: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class DirtyContact(Base):
    """An address whose derived contact is stale: a committed sync page touched it.

    The sync page transaction records these (cheap, idempotent); derivation drains them in
    batches, so a correspondent touched by fifty pages in a minute is recomputed once.
    """

    __tablename__ = "dirty_contacts"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    marked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Heartbeat(Base):
    """Last sign of life of each background component, for readiness and the status page."""

    __tablename__ = "heartbeats"

    component: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    detail: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)


class FollowupKind(enum.StrEnum):
    WAITING_ON_YOU = "waiting_on_you"  # they wrote, you have not replied
    NO_REPLY = "no_reply"  # you wrote, they have not answered
    AFTER_MEETING = "after_meeting"  # you met, no email followed
    GOING_QUIET = "going_quiet"  # the gap passed their usual cadence
    OFF_SCREEN = "off_screen"  # email only: suggest a call or a meeting


class FollowupStatus(enum.StrEnum):
    OPEN = "open"  # suggested; on the calendar only with auto-scheduling
    ACCEPTED = "accepted"  # the user wants it on the calendar
    SNOOZED = "snoozed"  # hidden until `snoozed_until`, then open again if it still holds
    DONE = "done"  # the user did it; never again for the same cause
    DISMISSED = "dismissed"  # never again for the same cause
    RESOLVED = "resolved"  # its condition went away (a reply, a meeting)


class Followup(Base):
    """One suggestion for one contact, for one cause (core/followups)."""

    __tablename__ = "followups"
    __table_args__ = (
        UniqueConstraint("user_id", "address", "kind", "cause_key"),
        Index("ix_followups_user_status", "user_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320))  # the contact's canonical address
    kind: Mapped[FollowupKind] = mapped_column(_enum(FollowupKind))
    # What made it true (e.g. the time of their unanswered message): a new cause is a new row,
    # so a dismissed suggestion never comes back for the same cause.
    cause_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[FollowupStatus] = mapped_column(
        _enum(FollowupStatus), default=FollowupStatus.OPEN
    )
    reason: Mapped[str] = mapped_column(Text)
    facts: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    snoozed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    invite: Mapped[bool] = mapped_column(Boolean, default=False)  # invite the contact (calls)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Calendar write state (core/followups/calendar.py). `event_key` and `event_spec` are fixed
    # before the provider is called, so a retried write sends the same id and the same content.
    event_account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("connected_accounts.id", ondelete="SET NULL")
    )
    event_calendar_id: Mapped[str | None] = mapped_column(String(512))
    event_key: Mapped[str | None] = mapped_column(String(64))
    event_spec: Mapped[dict[str, object] | None] = mapped_column(JSON)
    event_id: Mapped[str | None] = mapped_column(String(1024))  # the provider's id, once written
    write_seq: Mapped[int] = mapped_column(Integer, default=0)
    slot_start: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    slot_end: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    calendar_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
