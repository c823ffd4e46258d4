"""Ground truth per contact, computed from the generator's facts joined with current store rows.

It never parses headers: who a sender is and which counterparties a message has were recorded by
``generate.py`` in ``fact_*`` tables; where a message *is now* (deleted, labels, folder) and what
the calendars hold *now* come from the store, so truth follows every later mutation.

Readings of /work/shared/DEFINITIONS.md (each one is the rule as this module applies it):

* Contact key: canonical address = lower-cased addr-spec, IDN domain as U-label. A person's
  several addresses are separate contacts grouped by ``person_id``.
* The user is never a contact: the primary address, every alias the mailbox reports, and
  plus-addresses of those (``local+tag@domain``).
* Not people: mailing lists, bulk senders, auto-generated/no-reply senders, calendar
  notification senders and group names. They are listed in ``non_person_addresses``.
* A message counts only while it exists and is outside spam/trash/drafts, read from the
  provider's own view: Gmail labels SPAM/TRASH/DRAFT for Google mailboxes, Graph folders
  junkemail/deleteditems/drafts for Microsoft ones (the store keeps both coherent).
* Outbound: the user sent it (From is one of the user's addresses) and C is in To, Cc or Bcc;
  once per message per contact. A sent message later moved to another folder (archive, a custom
  folder) still counts: the user did write to C. Pure mail to yourself counts for no one.
* Inbound: C is From, C is a person, and the user is a recipient (To/Cc, plus-address, alias, or
  Bcc-only delivery). Reply-To and Sender never count. List mail the user merely received does
  not count. An automatic reply (Auto-Submitted: auto-replied) from a person's address is an
  auto-generated message, not the person writing: it does not count.
* Message time is internal_ms (Gmail internalDate / Graph receivedDateTime), never Date.
* ``awaiting_reply_from`` is ``'me'`` when last_inbound_at > last_outbound_at (or there is only
  inbound), ``'them'`` otherwise when any mail exists (a tie is ``'them'``), None without mail.
* Meetings: an occurrence qualifies when it is on a calendar the user owns (access_role owner;
  a shared calendar the user only reads does not count), neither the event nor the occurrence
  is cancelled, it is not all-day, the user organised it or accepted, and the contact organised
  it or accepted. Tentative, needsAction and declined do not count; resources are not contacts.
  Recurring series are expanded (RRULE in the event's time zone, wall-clock preserving); an
  exception row replaces its occurrence at its actual (moved) time or cancels it.
* ``past_meetings``: qualifying occurrences with end <= now; ``last_meeting_at``: the latest
  such occurrence's start. ``next_meeting_at``: the earliest qualifying start > now. A meeting in
  progress is neither past nor next.
* ``first_contact_at`` / ``last_contact_at``: earliest / latest counted mail or past meeting
  (meeting time = its start); future meetings are not contact yet.
* A contact appears in ``contacts`` when it has any counted mail or any qualifying meeting.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TypedDict
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

from sandbox.generate import NON_PERSON_KINDS, canonical_address
from sandbox.store import Store

__all__ = ["ContactTruth", "ground_truth"]

_MAIL_SELECT = (
    "SELECT p.address, p.direction, count(*), min(m.internal_ms), max(m.internal_ms) "
    "FROM fact_party p JOIN message m ON m.mailbox = p.mailbox AND m.id = p.message_id "
    "WHERE p.mailbox = ? AND m.is_deleted = 0 AND "
)
# Spam/trash/drafts never count, read from the provider's own view (DEFINITIONS.md).
_MAIL_SQL = {
    "google": _MAIL_SELECT + "m.labels NOT LIKE '% SPAM %' AND m.labels NOT LIKE '% TRASH %' "
    "AND m.labels NOT LIKE '% DRAFT %' GROUP BY p.address, p.direction",
    "microsoft": _MAIL_SELECT
    + "m.folder NOT IN ('junkemail', 'deleteditems', 'drafts') GROUP BY p.address, p.direction",
}
_EXPAND_AHEAD_MS = 400 * 86_400_000  # how far into the future a series is expanded


class ContactTruth(TypedDict):
    """Expected derived fields of one contact (times epoch ms UTC)."""

    inbound_count: int
    outbound_count: int
    first_contact_at: int | None
    last_contact_at: int | None
    last_inbound_at: int | None
    last_outbound_at: int | None
    awaiting_reply_from: str | None
    past_meetings: int
    last_meeting_at: int | None
    next_meeting_at: int | None
    person_id: str
    is_person: bool


def _blank(person_id: str) -> dict:
    return {
        "inbound_count": 0,
        "outbound_count": 0,
        "first_contact_at": None,
        "last_contact_at": None,
        "last_inbound_at": None,
        "last_outbound_at": None,
        "awaiting_reply_from": None,
        "past_meetings": 0,
        "last_meeting_at": None,
        "next_meeting_at": None,
        "person_id": person_id,
        "is_person": True,
        "_first_in": None,
        "_first_out": None,
        "_first_meeting": None,
    }


def _ms(point: dict) -> int:
    dt = datetime.fromisoformat(point["date_time"])
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo(point.get("time_zone") or "UTC"))
    return int(dt.timestamp() * 1000)


class _People:
    """Who is who, from fact_person/fact_address plus the mailbox's aliases."""

    def __init__(self, store: Store, email: str, aliases: list[dict]) -> None:
        conn = store.connection()
        self.kind: dict[str, str] = {}
        self.person_of: dict[str, str] = {}
        kinds = dict(
            conn.execute(
                "SELECT person_id, kind FROM fact_person WHERE mailbox = ?", (email,)
            ).fetchall()
        )
        for addr, pid in conn.execute(
            "SELECT address, person_id FROM fact_address WHERE mailbox = ?", (email,)
        ):
            self.person_of[addr] = pid
            self.kind[addr] = kinds.get(pid, "person")
        self.user = {canonical_address(a["email"]) for a in aliases}
        self.user.add(email)
        self.user |= {a for a, pid in self.person_of.items() if pid == "me"}

    def is_user(self, addr: str) -> bool:
        local, _, domain = addr.partition("@")
        return addr in self.user or f"{local.split('+', 1)[0]}@{domain}" in self.user

    def is_person(self, addr: str) -> bool:
        return not self.is_user(addr) and self.kind.get(addr, "person") not in (
            *NON_PERSON_KINDS,
            "self",
        )


def ground_truth(store: Store, email: str, *, now_ms: int) -> dict:
    """Return ``{email, now_ms, user_addresses, non_person_addresses, contacts}`` where
    contacts maps canonical address -> ContactTruth (see module docstring for the rules)."""
    email = email.lower()
    mb = store.get_mailbox(email)
    if mb is None:
        raise KeyError(email)
    people = _People(store, email, mb["aliases"])
    contacts: dict[str, dict] = {}

    def contact(addr: str) -> dict:
        if addr not in contacts:
            contacts[addr] = _blank(people.person_of.get(addr, addr))
        return contacts[addr]

    _mail(store, email, mb["provider"], people, contact)
    _meetings(store, email, now_ms, people, contact)

    for c in contacts.values():
        firsts = [
            x
            for x in (c.pop("_first_in"), c.pop("_first_out"), c.pop("_first_meeting"))
            if x is not None
        ]
        lasts = [
            x
            for x in (c["last_inbound_at"], c["last_outbound_at"], c["last_meeting_at"])
            if x is not None
        ]
        c["first_contact_at"] = min(firsts) if firsts else None
        c["last_contact_at"] = max(lasts) if lasts else None
        li, lo = c["last_inbound_at"], c["last_outbound_at"]
        if li is not None and (lo is None or li > lo):
            c["awaiting_reply_from"] = "me"
        elif lo is not None:
            c["awaiting_reply_from"] = "them"
    non_person = sorted(a for a, k in people.kind.items() if k in NON_PERSON_KINDS)
    return {
        "email": email,
        "now_ms": now_ms,
        "user_addresses": sorted(people.user),
        "non_person_addresses": non_person,
        "contacts": dict(sorted(contacts.items())),
    }


def _mail(store: Store, email: str, provider: str, people: _People, contact) -> None:
    """Aggregate counted mail per (address, direction) in SQL: bounded memory at any size."""
    rows = store.connection().execute(_MAIL_SQL[provider], (email,))
    for addr, direction, n, first, last in rows:
        if not people.is_person(addr):
            continue
        c = contact(addr)
        if direction == "in":
            c["inbound_count"], c["last_inbound_at"], c["_first_in"] = n, last, first
        else:
            c["outbound_count"], c["last_outbound_at"], c["_first_out"] = n, last, first


def _meetings(store: Store, email: str, now_ms: int, people: _People, contact) -> None:
    for cal in store.list_calendars(email):
        if cal["access_role"] != "owner":
            continue
        after = None
        while True:
            rows, after = store.list_events(
                email, cal["id"], include_deleted=True, page_size=500, after=after
            )
            for row in rows:
                body = row["body"]
                if body.get("recurring_event_id"):
                    continue  # handled with its master
                for occ in _occurrences(store, email, cal["id"], body, now_ms):
                    _count(occ, now_ms, people, contact)
            if after is None:
                break


def _occurrences(store: Store, email: str, cal_id: str, body: dict, now_ms: int):
    """Yield (event body, start_ms, end_ms) for every live occurrence of an event."""
    if (
        body.get("status") == "cancelled"
        or body.get("is_all_day")
        or "date_time" not in (body.get("start") or {})
    ):
        return
    start_ms, end_ms = _ms(body["start"]), _ms(body["end"])
    if not body.get("recurrence"):
        yield body, start_ms, end_ms
        return
    exceptions = {
        _ms(e["original_start"]): e
        for e in store.list_event_exceptions(email, cal_id, body["id"])
        if e.get("original_start") and "date_time" in e["original_start"]
    }
    tz = ZoneInfo(body["start"].get("time_zone") or "UTC")
    dtstart = datetime.fromisoformat(body["start"]["date_time"]).astimezone(tz)
    duration = timedelta(milliseconds=end_ms - start_ms)
    rule = rrulestr("\n".join(body["recurrence"]), dtstart=dtstart, forceset=True)
    horizon = now_ms + _EXPAND_AHEAD_MS
    for occ in rule:
        # Wall-clock recurrence: re-resolve the offset in the zone (DST changes it).
        occ = occ.replace(tzinfo=tz)
        occ_ms = int(occ.timestamp() * 1000)
        if occ_ms > horizon:
            break
        exc = exceptions.pop(occ_ms, None)
        if exc is None:
            yield body, occ_ms, occ_ms + int(duration.total_seconds() * 1000)
        elif exc.get("status") != "cancelled" and not exc.get("is_all_day"):
            yield exc, _ms(exc["start"]), _ms(exc["end"])
    for exc in exceptions.values():  # exceptions whose original slot the rule no longer has
        if exc.get("status") != "cancelled" and not exc.get("is_all_day"):
            yield exc, _ms(exc["start"]), _ms(exc["end"])


def _count(occ: tuple[dict, int, int], now_ms: int, people: _People, contact) -> None:
    body, start_ms, end_ms = occ
    organizer = canonical_address((body.get("organizer") or {}).get("email") or "x@invalid")
    user_in = people.is_user(organizer)
    met: dict[str, None] = {}
    if people.is_person(organizer) and "@" in organizer:
        met[organizer] = None
    for att in body.get("attendees") or []:
        addr = canonical_address(att.get("email") or "x@invalid")
        accepted = att.get("response") == "accepted" or att.get("is_organizer")
        if people.is_user(addr):
            user_in = user_in or bool(accepted)
        elif accepted and not att.get("resource") and people.is_person(addr):
            met[addr] = None
    if not user_in:
        return
    for addr in met:
        c = contact(addr)
        if end_ms <= now_ms:
            c["past_meetings"] += 1
            if c["last_meeting_at"] is None or start_ms > c["last_meeting_at"]:
                c["last_meeting_at"] = start_ms
            if c["_first_meeting"] is None or start_ms < c["_first_meeting"]:
                c["_first_meeting"] = start_ms
        elif start_ms > now_ms and (
            c["next_meeting_at"] is None or start_ms < c["next_meeting_at"]
        ):
            c["next_meeting_at"] = start_ms


def truth_json(store: Store, email: str, *, now_ms: int) -> str:
    """Return ground truth as JSON text (admin endpoint helper)."""
    return json.dumps(ground_truth(store, email, now_ms=now_ms), ensure_ascii=False)
