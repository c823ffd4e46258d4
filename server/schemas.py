"""Request and response bodies of the JSON API, as pydantic models.

One source for three uses: the OpenAPI document (server/openapi.py turns `model_json_schema()`
into `components.schemas`), request validation (`parse_body`), and response checks — the
context views serialize through their model, and the tests validate every documented response
against the served document. Models forbid unknown fields, so a field added to a view without
its schema fails the tests instead of going undocumented.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from core.context import MAX_BATCH


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Errors and health


class ErrorDetail(Schema):
    code: int = Field(description="HTTP status code.")
    status: str = Field(description="Status as a slug, e.g. `not_found`.")
    message: str = Field(description="What went wrong, for a person.")


class Error(Schema):
    """Every 4xx and 5xx answer (server/errors.py)."""

    error: ErrorDetail


class Health(Schema):
    status: Literal["ok"]


class Ready(Schema):
    status: Literal["ready", "not_ready"]
    checks: dict[str, dict[str, Any]] = Field(
        description="`database`, `broker` and, with `?deep=1`, `worker`: each `{ok, ...}`."
    )


# Me, accounts, tokens (server/api.py)


class Me(Schema):
    id: uuid.UUID
    email: str
    display_name: str | None
    connect_urls: dict[str, str] = Field(description="Provider name → URL that connects one.")


class StreamStatus(Schema):
    stream: str
    phase: Literal["initial", "incremental"]
    items_seen: int
    items_total_estimate: int | None
    generation: int
    due_at: str | None
    last_success_at: str | None
    last_error: str | None


class AccountSync(Schema):
    phase: Literal["initial", "incremental"]
    percent: int | None = Field(description="Initial sync progress; 100 once incremental.")
    messages_seen: int
    messages_estimate: int | None
    cursor_age_s: int | None
    last_error: str | None
    coverage: dict[str, Any]
    streams: list[StreamStatus]


class Account(Schema):
    id: uuid.UUID
    provider: Literal["google", "microsoft"]
    email: str
    display_name: str | None
    state: Literal["active", "needs_reauth", "disabled"]
    needs_reauth: bool
    reconnect_url: str
    granted_scopes: list[str]
    last_error: str | None
    connected_at: dt.datetime
    sync: AccountSync


class AccountList(Schema):
    accounts: list[Account]


class Disconnected(Schema):
    disconnected: bool
    revoked_at_provider: bool
    revoke_error: str | None


class Token(Schema):
    id: uuid.UUID
    name: str
    prefix: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked: bool


class TokenCreated(Token):
    token: str = Field(description="The secret, shown this once: `Authorization: Bearer wl_...`.")


class TokenList(Schema):
    tokens: list[Token]


class TokenCreate(Schema):
    name: StrictStr = Field(min_length=1, max_length=128)


# Contact context (core/context.py)


class ContactIdentity(Schema):
    address: str | None = Field(description="Canonical address; null when not an address.")
    display_name: str | None
    company: str | None
    kind: Literal["person", "list", "automated"] | None
    person_key: str | None = Field(description="Shared by every address of one person.")
    other_addresses: list[str] = Field(description="The same person's other addresses.")


class EmailHistory(Schema):
    inbound_count: int
    outbound_count: int
    first_contact_at: dt.datetime | None
    last_contact_at: dt.datetime | None
    last_inbound_at: dt.datetime | None
    last_outbound_at: dt.datetime | None
    awaiting_reply_from: Literal["me", "them"] | None
    my_reply_median_s: int | None
    their_reply_median_s: int | None
    threads_together: int


class RecentThread(Schema):
    account_id: uuid.UUID
    provider: Literal["google", "microsoft"] | None
    thread_id: str
    subject: str | None
    last_message_at: dt.datetime
    last_direction: Literal["in", "out"]
    message_count: int


class NextMeeting(Schema):
    start_at: dt.datetime
    end_at: dt.datetime
    is_group: bool
    words: str = Field(description='When, in words: "tomorrow", "in 3 days".')


class Meetings(Schema):
    past_count: int
    one_to_one: int
    group: int
    last_meeting_at: dt.datetime | None
    last_meeting_words: str | None
    last_meeting_is_group: bool | None
    next_meeting: NextMeeting | None


class TimelineMonth(Schema):
    month: str = Field(pattern=r"^\d{4}-\d{2}$", description="UTC month, `YYYY-MM`.")
    inbound: int
    outbound: int
    meetings: int


class AccountSyncState(Schema):
    account_id: uuid.UUID
    provider: Literal["google", "microsoft"]
    email: str
    state: Literal["active", "needs_reauth", "disabled"]
    needs_reauth: bool
    phase: Literal["initial", "incremental"]
    percent: int | None
    reconnect_url: str


class SyncState(Schema):
    syncing: bool = Field(description="Some account is still in its initial sync.")
    percent: int | None = Field(description="Progress of the slowest syncing account.")
    needs_reauth: bool = Field(description="Some account must be reconnected.")
    accounts: list[AccountSyncState]


class ScheduledSlot(Schema):
    start_at: dt.datetime
    end_at: dt.datetime
    written: bool = Field(description="The event is in the provider's calendar.")


class FollowUp(Schema):
    """A suggested follow-up (core/followups/rules.py says when each kind applies)."""

    id: int
    address: str = Field(description="The person (their person key: one of their addresses).")
    display_name: str | None
    kind: Literal["waiting_on_you", "no_reply", "after_meeting", "going_quiet", "off_screen"]
    status: Literal["open", "accepted", "snoozed", "done", "dismissed", "resolved"]
    reason: str = Field(description='Why, in words: "Ada wrote 4 days ago; you have not replied."')
    due_at: dt.datetime
    snoozed_until: dt.datetime | None
    invite: bool = Field(description="The contact is invited to the call (accepted with invite).")
    scheduled: ScheduledSlot | None = Field(description="Its slot in the calendar, if planned.")
    calendar_error: str | None


class FollowUpList(Schema):
    follow_ups: list[FollowUp]


class AcceptRequest(Schema):
    invite: bool = Field(
        default=False, description="Invite the contact (call/meeting suggestions only)."
    )


class SnoozeRequest(Schema):
    until: dt.datetime = Field(description="When it comes back (with a time zone), ≤ 1 year.")


class Preferences(Schema):
    time_zone: str | None = Field(
        default=None, description="IANA zone; null: the calendar's zone, else the server default."
    )
    work_start: str = Field(default="09:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    work_end: str = Field(default="17:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    working_days: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        default=[0, 1, 2, 3, 4], min_length=1, max_length=7, description="Monday is 0."
    )
    auto_schedule: bool = Field(
        default=False, description="Put every suggestion in the calendar, not only accepted ones."
    )
    calendar_account_id: str | None = Field(
        default=None, description="Whose calendar gets the events; null: the first connected."
    )


class PreferencesUpdate(Schema):
    time_zone: str | None = None
    work_start: str | None = Field(default=None, pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    work_end: str | None = Field(default=None, pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    working_days: list[Annotated[int, Field(ge=0, le=6)]] | None = Field(
        default=None, min_length=1, max_length=7
    )
    auto_schedule: bool | None = None
    calendar_account_id: str | None = None


class CalendarFeed(Schema):
    url: str = Field(description="Secret ICS URL; shown once. Making a new one revokes this.")


class ContactContext(Schema):
    """Who this person is to the signed-in user."""

    query: str = Field(description="The address as sent.")
    address: str | None
    known: bool = Field(description="False for unknown, malformed or own addresses.")
    reason: Literal["not_an_address", "yourself", "no_history"] | None
    contact: ContactIdentity
    email: EmailHistory
    last_contact_words: str | None = Field(description='e.g. "3 weeks ago, you wrote".')
    recent_threads: list[RecentThread] = Field(max_length=10)
    meetings: Meetings
    strength: int | None = Field(ge=0, le=100)
    strength_reasons: list[str]
    cadence_days: float | None = Field(description="Median days between interaction days.")
    timeline: list[TimelineMonth] = Field(
        min_length=12, max_length=12, description="The last 12 months, oldest first."
    )
    follow_ups: list[FollowUp] = Field(description="Open, accepted and snoozed follow-ups.")


class ContactContextWithSync(ContactContext):
    sync: SyncState


class ContextsRequest(Schema):
    emails: list[Annotated[StrictStr, Field(max_length=998)]] = Field(
        max_length=MAX_BATCH,
        description=f"At most {MAX_BATCH} addresses; duplicates answer once.",
    )


class ContextsResponse(Schema):
    contexts: list[ContactContext]
    sync: SyncState


# Relationships (core/relationships.py)


class RelationshipSuggestion(Schema):
    """The person's most pressing open suggestion (core/followups)."""

    id: int
    kind: Literal["waiting_on_you", "no_reply", "after_meeting", "going_quiet", "off_screen"]
    reason: str
    due_at: dt.datetime
    status: Literal["open", "accepted"]


class Relationship(Schema):
    """One person, under their strongest address; numbers over all of their addresses."""

    address: str = Field(description="The person's strongest address (canonical).")
    display_name: str | None
    company: str | None
    other_addresses: list[str] = Field(description="The same person's other addresses.")
    strength: int = Field(ge=0, le=100)
    strength_reasons: list[str] = Field(max_length=2, description="The first two reasons.")
    first_contact_at: dt.datetime | None
    last_contact_at: dt.datetime | None
    last_contact_words: str | None = Field(description='e.g. "3 weeks ago, you wrote".')
    inbound_count: int
    outbound_count: int
    past_meetings: int
    next_meeting_at: dt.datetime | None
    next_meeting_words: str | None = Field(description='e.g. "in 3 days".')
    suggestion: RelationshipSuggestion | None


class RelationshipPage(Schema):
    items: list[Relationship] = Field(description="Strongest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")
    filter: Literal["going_quiet", "waiting_on_you", "never_met", "new_this_month"] | None


M = TypeVar("M", bound=BaseModel)


def parse_body(model: type[M], body: object) -> M:
    """Validate a JSON body; raise ValueError with a message naming each bad field."""
    try:
        return model.model_validate(body, strict=True)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        ]
        raise ValueError("; ".join(problems)) from None
