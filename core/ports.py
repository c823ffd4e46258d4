"""What core needs from a provider, as Protocols and plain records (dependency inversion).

`connectors/` implements these; `core/` and the sync engine never import a connector, and
`server/`/`workers/` wire the concrete ones in at start.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from core.models import Provider
from core.records import Page


@dataclass(frozen=True)
class Identity:
    """Who signed in, as the provider vouches for it (verified id_token claims)."""

    provider: Provider
    provider_account_id: str  # Google `sub`; Microsoft `<oid>.<tid>`
    email: str
    display_name: str | None = None


@dataclass(frozen=True)
class AuthorizationStart:
    """Where to send the browser, and what the callback will need (kept server-side)."""

    url: str
    state: str
    secret_payload: dict[str, object] = field(repr=False)  # PKCE verifier / msal flow


@dataclass(frozen=True)
class Grant:
    """The result of a completed authorization: identity plus the credential to keep."""

    identity: Identity
    granted_scopes: tuple[str, ...]
    credential: bytes = field(repr=False)  # opaque to core: connector-serialized, to encrypt
    access_expires_at: dt.datetime | None = None


@dataclass(frozen=True)
class AccessToken:
    token: str = field(repr=False)
    expires_at: dt.datetime | None
    credential: bytes | None = field(default=None, repr=False)  # updated credential to store


class OAuthProvider(Protocol):
    """The authorization half of a provider connector."""

    provider: Provider

    def start_authorization(
        self, *, redirect_uri: str, login_hint: str | None = None
    ) -> AuthorizationStart:
        """Begin the auth-code flow with PKCE."""

    def complete_authorization(
        self, *, redirect_uri: str, secret_payload: dict[str, object], params: dict[str, str]
    ) -> Grant:
        """Exchange the callback's code; raise OAuthFlowError or ProviderError."""

    def refresh(self, credential: bytes, *, force: bool = False) -> AccessToken:
        """Return an access token valid for a few more minutes, refreshing it if needed
        (always, with `force`: the provider refused the one we had).

        When the stored credential changed (new access token, rotated refresh token), the
        result carries the new one to store. Raise ReauthRequired when the grant is gone.
        """

    def revoke(self, credential: bytes) -> bool:
        """Revoke the grant at the provider where it offers a way; return whether it did."""


class TokenSource(Protocol):
    """What a sync connector calls for the account's access token.

    `force=True` after the provider answered 401 to the current token: refresh it even though it
    has not expired yet (a token can be revoked early); raises ReauthRequired when the grant
    itself is gone.
    """

    def __call__(self, *, force: bool = False) -> str: ...


class Pacer(Protocol):
    """Keeps one account under its provider quota across every worker process.

    A connector calls `acquire` before each provider request (or batch) with what it will cost,
    in the provider's own units (Gmail quota units, Graph/Calendar requests); it returns when
    the request may be sent, sleeping if needed. `penalize` tells the pacer the provider still
    pushed back (429/403 rate) so everyone on this account waits.
    """

    def acquire(self, units: float, *, bucket: str) -> None: ...

    def penalize(self, retry_after_s: float, *, bucket: str) -> None: ...


class SyncSource(Protocol):
    """The sync half of a provider connector, for one connected account.

    Streams name independent cursors: Gmail uses "mail" (one history for the mailbox) and
    "calendar:<calendarId>" per calendar; Graph uses "mail:<folderId>" per mail folder and
    "calendar:<calendarId>" per owned calendar (calendarView delta, or a full listing each round
    where a calendar has no delta). Every call may raise the core.errors taxonomy.
    """

    def list_streams(self) -> list[str]:
        """Return the streams this account has now (e.g. after a folder or calendar appears)."""

    def fetch_page(self, stream: str, *, cursor: str | None, backfill_cursor: str | None) -> Page:
        """Return the next page: backfill when `cursor` is None or `backfill_cursor` is set,
        else incremental changes since `cursor`. Raise CursorExpired when the cursor is gone.
        """

    def mailbox_counts(self) -> dict[str, int]:
        """The provider's own totals, for coverage reports (e.g. {"messages": 1234})."""


@dataclass(frozen=True)
class Interval:
    """A busy span, UTC-aware, end exclusive."""

    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True)
class FollowupCalendar:
    """The calendar follow-ups are written to, and the account's time zone where known."""

    calendar_id: str
    time_zone: str | None  # IANA name of the primary calendar's zone; None if unreported


@dataclass(frozen=True)
class EventSpec:
    """One follow-up event, fixed before the first attempt so that every retry sends the same.

    `key` is the idempotency key: 32 base32hex characters (`[a-v0-9]`), valid as a Google client
    event id and as a Graph `transactionId`. Same key, same content, at most one event.
    """

    key: str
    summary: str
    description: str
    start: dt.datetime  # UTC-aware
    end: dt.datetime
    time_zone: str  # IANA; the event is shown in it
    attendees: tuple[str, ...] = ()  # invited only when the user asked (calls/meetings)
    link: str | None = None  # where the user can act on it (the sidebar)


class CalendarWriter(Protocol):
    """The calendar-writing half of a provider connector, for one connected account.

    Every call may raise the core.errors taxonomy (RateLimited, ProviderUnavailable,
    ReauthRequired, ProviderError). Writes are idempotent by construction: callers retry freely.
    """

    def ensure_calendar(self, *, known_id: str | None, name: str) -> FollowupCalendar:
        """Return the follow-ups calendar: `known_id` if it still exists, else the calendar
        named `name` that this app made earlier, else a new one."""

    def busy(
        self, *, calendar_ids: Sequence[str], start: dt.datetime, end: dt.datetime
    ) -> list[Interval] | None:
        """Busy spans of the user's primary calendar and of `calendar_ids` in [start, end), or
        None when the provider cannot answer for this kind of account (e.g. Graph getSchedule
        on a personal Microsoft account): the caller then relies on the synced events."""

    def put_event(self, calendar_id: str, spec: EventSpec, *, event_id: str | None) -> str:
        """Create the event (or, given the provider `event_id` from an earlier write, make it
        match `spec`); return the provider's event id. Retrying with the same spec never makes
        a second event."""

    def find_event(self, calendar_id: str, key: str) -> str | None:
        """The provider id of the live event written under `key`, or None: settles a write
        whose answer was lost without writing anything."""

    def remove_event(self, calendar_id: str, event_id: str) -> None:
        """Delete the event; an event already gone is not an error."""
