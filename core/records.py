"""Provider-neutral records: what a connector hands the sync engine.

Connectors parse the provider's shapes into these and nothing else crosses the boundary. Times
are tz-aware UTC. Addresses are parsed (display name split from addr-spec, RFC 2047 decoded)
but not canonicalised: canonical form is domain logic (core/addresses).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Address:
    address: str  # the addr-spec as parsed, e.g. "Ada.L@Example.COM"; may be malformed
    name: str | None = None


@dataclass(frozen=True)
class MessageRecord:
    """Metadata of one message as the provider reports it now (an upsert)."""

    provider_message_id: str
    received_at: dt.datetime  # Gmail internalDate / Graph receivedDateTime: the time that counts
    provider_thread_id: str | None = None
    sent_at: dt.datetime | None = None  # Date header / sentDateTime, when it parses
    subject: str | None = None
    internet_message_id: str | None = None
    in_reply_to: str | None = None
    references: str | None = None
    from_: tuple[Address, ...] = ()
    sender: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    labels: tuple[str, ...] = ()  # Gmail label ids (empty for Graph)
    folder: str | None = None  # Graph folder id or well-known name (None for Gmail)
    is_sent: bool = False  # Gmail SENT label / Graph sentitems
    is_inbox: bool = False
    is_draft: bool = False
    is_spam: bool = False
    is_trash: bool = False
    list_id: str | None = None
    has_list_unsubscribe: bool = False
    precedence: str | None = None
    auto_submitted: str | None = None


@dataclass(frozen=True)
class MessageDeleted:
    """The message is gone from the mailbox (or, with `folder`, left that folder)."""

    provider_message_id: str
    folder: str | None = None  # Graph: only delete if the stored copy is still in this folder


@dataclass(frozen=True)
class LabelsChanged:
    """Gmail history label delta; applied without re-reading the message (saves quota)."""

    provider_message_id: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Attendee:
    address: str
    name: str | None = None
    response: str | None = None  # accepted | declined | tentative | needsAction
    is_organizer: bool = False
    is_self: bool = False
    is_optional: bool = False
    is_resource: bool = False


@dataclass(frozen=True)
class EventRecord:
    """One event, or one occurrence of a recurring series, as it is now (an upsert)."""

    provider_calendar_id: str
    provider_event_id: str
    start_at: dt.datetime | None
    end_at: dt.datetime | None
    is_all_day: bool = False
    is_cancelled: bool = False
    ical_uid: str | None = None
    recurring_event_id: str | None = None
    organizer: Address | None = None
    self_response: str | None = None  # the user's own response; "organizer" if they organised
    attendees: tuple[Attendee, ...] = ()
    # The provider left guests out (a hidden guest list, maxAttendees): not a one-to-one meeting
    # even when the organizer is the only other person listed.
    attendees_omitted: bool = False


@dataclass(frozen=True)
class EventDeleted:
    provider_calendar_id: str
    provider_event_id: str


Change = MessageRecord | MessageDeleted | LabelsChanged | EventRecord | EventDeleted


@dataclass(frozen=True)
class Page:
    """One page of changes and the cursor state that resumes right after it.

    The sync engine commits `changes` together with the cursor fields in one transaction, so a
    crash replays at most this page (upserts make the replay harmless).

    - `backfill_cursor`: where the initial (full) listing continues; None once it is complete.
    - `cursor`: the incremental cursor (historyId, syncToken, deltaLink) once known. During an
      initial sync a connector may set it early (Gmail captures the historyId before listing).
    - `is_complete`: the phase this page belongs to has nothing more right now; the stream
      switches to (or stays in) incremental with `cursor`.
    """

    changes: list[Change] = field(default_factory=list)
    backfill_cursor: str | None = None
    cursor: str | None = None
    is_complete: bool = False
    items_total_estimate: int | None = None
    owner_addresses: tuple[str, ...] = ()  # the user's own addresses seen (sendAs, proxyAddresses)
