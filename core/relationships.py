"""The relationships page: every person the user has a relationship with, ranked by strength.

`list_relationships(session, user_id=…, now=…, filter=…, q=…, cursor=…, limit=…)` answers one
page of it. Read only; never commits. Invalid input raises `InvalidRequest` (a ValueError whose
message names the parameter), which the API answers with 400.

Readings (where DEFINITIONS.md is silent):

* **Who is listed.** A relationship is a *ranked* contact: `kind` person with a strength.
  Mailing lists, automated senders and rows without a strength are not relationships, never
  listed, and take no part in the rules below.
* **One row per person.** A person's addresses share `person_key` (core/derive/people.py). The
  person is listed once, under their *strongest* address (highest strength, then highest id:
  the page's own order), because that is where they rank — the smallest address, which names
  the key, may be an old one they no longer use. The row's numbers are the person's: message
  counts and past meetings summed over their addresses, first contact the earliest, last
  contact the latest, next meeting the soonest; `other_addresses` names the rest. Strength and
  its reasons are the strongest address's. A row without a key (derivation always writes one;
  only rows from before keys existed lack it, until the next rebuild) is a person of its own,
  which the filters and searches that go through keys (suggestions, another address) miss.
* **Order and paging.** Strength descending, then id descending, so equal strengths still have
  one order; keyset pagination on that pair through `ix_contacts_user_strength`, so page 400
  costs what page 1 does. The cursor is opaque (base64url JSON of the last row's position) and
  is a position in the ranking, valid with any filter. A page never repeats a person an earlier
  page showed unless derivation changed their strength in between.
* **Filters** are about the person (any of their addresses), and combine with `q`:
  `going_quiet` / `waiting_on_you` — an *open* suggestion (status open or accepted) of that kind;
  `never_met` — no past meeting and none planned; `new_this_month` — the strongest address was
  first contacted on or after 00:00 on the 1st of the current month in the user's time zone
  (`User.preferences["time_zone"]`, an IANA name; UTC when unset or unknown) and no address of
  theirs earlier.
* **Search** (`q`): a case-insensitive prefix of one of the person's addresses, of their display
  name, or of a word in it (`love` finds Ada Lovelace). Addresses are found through the
  (user_id, address) index; names cannot be (a word prefix), so a search walks the ranking
  until its page is full — a rare prefix reads every ranked row once.
* **Suggestion**: the person's open suggestion (under any of their addresses) of highest
  priority: the kind order of core/followups/rules.py `PRIORITY` (someone waiting on you first),
  then the earliest due, then the lowest id — the order the follow-up list uses.
* **Words**: `last_contact_words` / `ago_words` of core/context.py, in calendar days of the
  user's time zone.

Queries per page, whatever `limit`: the page itself (limit + 1 rows in index order), every
ranked row of the page's people (`ix_contacts_user_person_key`) and their open suggestions
(`ix_followups_user_status`) — no query per row. Sparse filters start from the small side: the
people with an open suggestion of the kind, the contacts active this month.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import unicodedata
import uuid
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select, tuple_
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import ColumnElement

from core.context import ago_words, last_contact_words
from core.derive import people
from core.followups.rules import PRIORITY
from core.models import Contact, Followup, FollowupKind, FollowupStatus, User

FILTERS = ("going_quiet", "waiting_on_you", "never_met", "new_this_month")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_QUERY_CHARS = 320
MAX_CURSOR_CHARS = 200
REASONS_SHOWN = 2
OPEN_STATUSES = (FollowupStatus.OPEN, FollowupStatus.ACCEPTED)
KIND_PRIORITY = {kind: rank for rank, kind in enumerate(PRIORITY)}
_FILTER_KINDS = {
    "going_quiet": FollowupKind.GOING_QUIET,
    "waiting_on_you": FollowupKind.WAITING_ON_YOU,
}
_DENSE = (None, "never_met")
_CHUNK = 500
# One alias per role in a correlated subquery, made once: an alias costs more to build than
# the query it serves.
_STRONGER = aliased(Contact, name="stronger")
_SAME_PERSON = aliased(Contact, name="same_person")
_SUGGESTED = aliased(Contact, name="suggested")
_BY_ADDRESS = aliased(Contact, name="by_address")
# What a row of the page is made of (one person may have several).
_MEMBER = (
    Contact.id,
    Contact.address,
    Contact.display_name,
    Contact.company,
    Contact.person_key,
    Contact.strength,
    Contact.strength_reasons,
    Contact.inbound_count,
    Contact.outbound_count,
    Contact.past_meetings,
    Contact.first_contact_at,
    Contact.last_contact_at,
    Contact.last_inbound_at,
    Contact.last_outbound_at,
    Contact.last_meeting_at,
    Contact.next_meeting_at,
)
_SUGGESTION = (
    Followup.id,
    Followup.address,
    Followup.kind,
    Followup.reason,
    Followup.due_at,
    Followup.status,
)


class InvalidRequest(ValueError):
    """A filter, query, cursor or limit this page cannot answer; the message names it."""


@dataclass(frozen=True)
class Page:
    """One page of relationships, strongest first."""

    items: list[dict[str, Any]]
    next_cursor: str | None  # None on the last page
    filter: str | None


# Entry point


def list_relationships(
    session: Session,
    *,
    user_id: uuid.UUID,
    now: dt.datetime,
    filter: str | None = None,
    q: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page:
    """Return one page of the user's relationships, ranked by strength, filtered and searched."""
    if filter is not None and filter not in FILTERS:
        raise InvalidRequest(f"filter must be one of {', '.join(FILTERS)}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be an integer from 1 to {MAX_LIMIT}")
    after = decode_cursor(cursor) if cursor else None
    text = _search_text(q)
    zone = user_time_zone(session, user_id=user_id)
    local_now = now.astimezone(zone)

    # Dense cases walk ix_contacts_user_strength in page order and stop after limit + 1 rows.
    # A sparse filter starts from its own small set instead and sorts it: `+ 0` (see _ranked)
    # takes the strength index, and the order it would give for free, out of the running.
    walk = filter in _DENSE
    query = select(Contact.id, Contact.person_key, Contact.strength).where(
        Contact.user_id == user_id, _ranked(Contact, probe=not walk)
    )
    strength = Contact.strength if walk else Contact.strength + 0
    if after is not None:
        query = query.where(tuple_(strength, Contact.id) < tuple_(*after))
    if filter is not None:
        query = query.where(*_filter_terms(filter, user_id=user_id, now=local_now))
    if text is not None:
        dialect = session.get_bind().dialect.name
        query = query.where(_search_terms(user_id, text, dialect=dialect))
    # Last: a correlated probe per candidate, cheapest once the other terms have narrowed them.
    query = query.where(_is_strongest_of_person(user_id))
    query = query.order_by(strength.desc(), Contact.id.desc()).limit(limit + 1)
    rows = session.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = _items(session, user_id=user_id, page=rows, now=local_now)
    last = rows[-1] if rows else None
    next_cursor = encode_cursor(last.strength or 0, last.id) if more and last else None
    return Page(items=items, next_cursor=next_cursor, filter=filter)


# Cursor, time zone, search


def encode_cursor(strength: int, contact_id: int) -> str:
    """Return the opaque cursor for the position just after (strength, id)."""
    raw = json.dumps({"s": strength, "i": contact_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[int, int]:
    """Return the (strength, id) position a cursor names; raise InvalidRequest otherwise."""
    problem = InvalidRequest("cursor is not one this API gave out")
    if len(cursor) > MAX_CURSOR_CHARS:
        raise problem
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        data = json.loads(raw)
    except (ValueError, binascii.Error):  # UnicodeError and JSONDecodeError are ValueErrors
        raise problem from None
    if not isinstance(data, dict) or set(data) != {"s", "i"}:
        raise problem
    strength, contact_id = data["s"], data["i"]
    if type(strength) is not int or type(contact_id) is not int:
        raise problem
    if not 0 <= strength <= 100 or contact_id < 0:
        raise problem
    return strength, contact_id


def time_zone_of(preferences: object) -> dt.tzinfo:
    """Return the zone `preferences["time_zone"]` names, or UTC when unset or unknown."""
    name = preferences.get("time_zone") if isinstance(preferences, dict) else None
    if isinstance(name, str) and name:
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    return dt.UTC


def user_time_zone(session: Session, *, user_id: uuid.UUID) -> dt.tzinfo:
    """Return the user's time zone (the signed-in user is usually in the session already)."""
    user = session.get(User, user_id)
    return time_zone_of(user.preferences if user is not None else None)


def month_start(now: dt.datetime) -> dt.datetime:
    """Return 00:00 on the 1st of `now`'s month in `now`'s time zone, in UTC."""
    return dt.datetime(now.year, now.month, 1, tzinfo=now.tzinfo).astimezone(dt.UTC)


def _search_text(q: str | None) -> str | None:
    if q is None:
        return None
    text = " ".join(q.split()).lower()
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidRequest(f"q must be at most {MAX_QUERY_CHARS} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise InvalidRequest("q must not contain control characters")
    return text or None


def _search_terms(user_id: uuid.UUID, text: str, *, dialect: str) -> ColumnElement[bool]:
    # The name is matched on the listed row (a person's addresses are merged only when they
    # carry the same name); any of the person's addresses may match, through their key.
    pattern = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    other = _BY_ADDRESS
    by_address = [other.user_id == user_id, other.address.like(pattern, escape="\\")]
    if dialect == "sqlite":
        # Byte order: every address starting with `text` lies in this range, which the
        # (user_id, address) index answers; LIKE alone would read every contact row.
        by_address += [other.address >= text, other.address < text + "\U0010ffff"]
    name = func.lower(Contact.display_name)
    return or_(
        name.like(pattern, escape="\\"),
        name.like("% " + pattern, escape="\\"),
        Contact.address.like(pattern, escape="\\"),
        Contact.person_key.in_(select(other.person_key).where(*by_address)),
    )


# Conditions


def _ranked(c: Any, *, probe: bool = False) -> ColumnElement[bool]:
    # In a probe of one person's rows, `+ 0` keeps the database from answering `strength IS NOT
    # NULL` with a range over ix_contacts_user_strength (every ranked row of the user) instead
    # of the person's few rows through ix_contacts_user_person_key.
    strength = c.strength + 0 if probe else c.strength
    return and_(c.kind == people.PERSON, strength.is_not(None))


def _is_strongest_of_person(user_id: uuid.UUID) -> ColumnElement[bool]:
    """No other ranked row of the same person comes before this one in the page's order."""
    other = _STRONGER
    strength = other.strength + 0  # see _ranked: through the person's key, not by strength
    return ~(
        select(other.id)
        .where(
            other.user_id == user_id,
            other.person_key == Contact.person_key,
            _ranked(other, probe=True),
            or_(
                strength > Contact.strength,
                and_(strength == Contact.strength, other.id > Contact.id),
            ),
        )
        .exists()
    )


def _no_row_of_person(user_id: uuid.UUID, condition: Any) -> ColumnElement[bool]:
    """No other ranked row of this row's person meets `condition` (this row is checked apart)."""
    other = _SAME_PERSON
    return ~(
        select(other.id)
        .where(
            other.user_id == user_id,
            other.person_key == Contact.person_key,
            _ranked(other, probe=True),
            condition(other),
        )
        .exists()
    )


def _filter_terms(name: str, *, user_id: uuid.UUID, now: dt.datetime) -> list[Any]:
    if name in _FILTER_KINDS:
        other = _SUGGESTED
        open_of_kind = and_(
            Followup.user_id == user_id,
            Followup.status.in_(OPEN_STATUSES),
            Followup.kind == _FILTER_KINDS[name],
        )
        # A suggestion names one of the person's addresses (core/followups/store keeps it
        # under the person key, the smallest of them): that address's row names the key.
        keys = (
            select(other.person_key)
            .join(
                Followup, and_(Followup.user_id == other.user_id, Followup.address == other.address)
            )
            .where(open_of_kind, other.user_id == user_id)
        )
        return [Contact.person_key.in_(keys)]
    if name == "never_met":

        def met(c: Any) -> ColumnElement[bool]:
            return or_(c.past_meetings > 0, c.next_meeting_at.is_not(None))

        return [
            Contact.past_meetings == 0,
            Contact.next_meeting_at.is_(None),
            _no_row_of_person(user_id, met),
        ]
    # new_this_month. A first contact this month means a last contact this month too: that
    # term lets the database start from ix_contacts_user_last_contact (those active lately).
    start = month_start(now)
    return [
        Contact.last_contact_at >= start,
        Contact.first_contact_at >= start,
        # coalesce(x, x): the probe goes through the person's key even where an index on
        # first contact exists (a range over it would read every earlier contact).
        _no_row_of_person(
            user_id, lambda c: func.coalesce(c.first_contact_at, c.first_contact_at) < start
        ),
    ]


# Items


def _items(
    session: Session, *, user_id: uuid.UUID, page: Sequence[Any], now: dt.datetime
) -> list[dict[str, Any]]:
    if not page:
        return []
    keys = sorted({r.person_key for r in page if r.person_key is not None})
    keyless = [r.id for r in page if r.person_key is None]
    members: dict[str, list[Any]] = {}
    lookups = [Contact.person_key.in_(keys[i : i + _CHUNK]) for i in range(0, len(keys), _CHUNK)]
    if keyless:
        lookups.append(Contact.id.in_(keyless))
    for lookup in lookups:
        for row in session.execute(
            select(*_MEMBER).where(Contact.user_id == user_id, lookup, _ranked(Contact, probe=True))
        ):
            members.setdefault(row.person_key or f"id:{row.id}", []).append(row)
    groups = {r.id: members.get(r.person_key or f"id:{r.id}", []) for r in page}
    # A suggestion is stored under one of the person's addresses, usually the key.
    owner = {c.address: r.id for r in page for c in groups[r.id]}
    owner.update({r.person_key: r.id for r in page if r.person_key is not None})
    best: dict[int, Any] = {}
    addresses = sorted(owner)
    for i in range(0, len(addresses), _CHUNK):
        for suggestion in session.execute(
            select(*_SUGGESTION).where(
                Followup.user_id == user_id,
                Followup.status.in_(OPEN_STATUSES),
                Followup.address.in_(addresses[i : i + _CHUNK]),
            )
        ):
            row_id = owner[suggestion.address]
            held = best.get(row_id)
            if held is None or _priority(suggestion) < _priority(held):
                best[row_id] = suggestion
    items = []
    for r in page:
        group = groups[r.id]
        row = next((c for c in group if c.id == r.id), None)
        if row is not None:  # else derivation rewrote it a moment ago: the next page load shows it
            items.append(_item(row, group, best.get(r.id), now=now))
    return items


def _priority(f: Any) -> tuple[int, dt.datetime, int]:
    return KIND_PRIORITY.get(f.kind, len(KIND_PRIORITY)), f.due_at, f.id


def _latest(values: Sequence[dt.datetime | None]) -> dt.datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _earliest(values: Sequence[dt.datetime | None]) -> dt.datetime | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _item(row: Any, group: Sequence[Any], suggestion: Any, *, now: dt.datetime) -> dict[str, Any]:
    named = [c for c in group if c.display_name]
    last_inbound = _latest([c.last_inbound_at for c in group])
    last_outbound = _latest([c.last_outbound_at for c in group])
    last_meeting = _latest([c.last_meeting_at for c in group])
    last_contact = _latest([c.last_contact_at for c in group])
    next_meeting = _earliest([c.next_meeting_at for c in group])
    return {
        "address": row.address,
        "display_name": row.display_name or (named[0].display_name if named else None),
        "company": row.company,
        "other_addresses": sorted(c.address for c in group if c.address != row.address),
        "strength": row.strength,
        "strength_reasons": list(row.strength_reasons or [])[:REASONS_SHOWN],
        "first_contact_at": _earliest([c.first_contact_at for c in group]),
        "last_contact_at": last_contact,
        "last_contact_words": last_contact_words(
            last_contact_at=last_contact,
            last_inbound_at=last_inbound,
            last_outbound_at=last_outbound,
            last_meeting_at=last_meeting,
            now=now,
        ),
        "inbound_count": sum(c.inbound_count for c in group),
        "outbound_count": sum(c.outbound_count for c in group),
        "past_meetings": sum(c.past_meetings for c in group),
        "next_meeting_at": next_meeting,
        "next_meeting_words": ago_words(next_meeting, now=now) if next_meeting else None,
        "suggestion": (
            {
                "id": suggestion.id,
                "kind": suggestion.kind.value,
                "reason": suggestion.reason,
                "due_at": suggestion.due_at,
                "status": suggestion.status.value,
            }
            if suggestion is not None
            else None
        ),
    }
