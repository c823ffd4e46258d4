"""Gmail v1 under gmail.metadata: parse headers, choose the cheapest fetch, page a backfill.

Quirks this module is built around (PROVIDERS.md §1):

- gmail.metadata forbids `q` and format=full/raw (403), so we only ever ask format=metadata with
  an explicit `metadataHeaders` list, and filter listings with `labelIds` alone
  (https://developers.google.com/gmail/api/auth/scopes).
- Quota, not bandwidth, is the bottleneck: under the 2026 profile messages.get costs 20 units of
  a 6,000/min budget, threads.get 40. A threads.get(format=metadata) returns every message of the
  thread, so it wins for threads holding more than cost(threads.get)/cost(messages.get) messages
  we still need (`prefer_thread_fetch`).
- The incremental cursor is getProfile.historyId captured *before* the first listing: anything
  that changes during the backfill then arrives through history.list
  (https://developers.google.com/gmail/api/guides/sync). A message added after that capture may
  therefore be skipped by the backfill without loss.
- internalDate (epoch ms, a string) is the message time; the Date header may be missing or
  garbage and only fills `sent_at` (DEFINITIONS.md "Message time").
- Headers arrive as sent on the wire: RFC 2047 words, raw UTF-8, IDN domains in either form,
  malformed neighbours, repeated To/Cc headers. Parsing never raises; it keeps every valid
  address and drops only the unusable pieces.

Backfill cursor (a JSON string, `BackfillState`): the captured history id, the phase ("sent":
labelIds=SENT first so the sidebar knows whom the user writes to, then "all": the whole mailbox
without spam/trash), the next list page token, the ids of the current list page not fetched yet,
a bounded map of threads already fetched whole (so their older messages are not read twice), and
in the "all" phase a window of the SENT listing walked in step with the full listing: both are
newest first, so a listed id that matches the SENT window was already read in the "sent" phase.
Only exact id matches are skipped, so a miss can cost a re-read but never lose a message.
"""

from __future__ import annotations

import datetime as dt
import email.errors
import email.header
import email.utils
import inspect
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from connectors.google import quota
from connectors.google.errors import is_insufficient_permissions, is_not_found, map_error
from core.errors import CursorExpired, ProviderRejected
from core.records import Address, Change, LabelsChanged, MessageDeleted, MessageRecord, Page

if TYPE_CHECKING:
    from connectors.google.sync import Session

METADATA_HEADERS = (
    "From",
    "To",
    "Cc",
    "Bcc",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Subject",
    "List-Id",
    "List-Unsubscribe",
    "Precedence",
    "Auto-Submitted",
    "Sender",
    "Reply-To",
)
HISTORY_TYPES = ("messageAdded", "messageDeleted", "labelAdded", "labelRemoved")
LIST_PAGE_SIZE = 500  # messages.list maximum (discovery doc)
HISTORY_PAGE_SIZE = 500
BATCH_PARTS = 50  # "Sending batches larger than 50 requests is not recommended" (guides/batch)
FETCH_PARTS_PER_PAGE = 100  # two batches per Page: a crash replays at most ~2,000-4,000 units
MAX_KNOWN_THREADS = 1000  # bound on the cursor's fetched-thread map (~35 KB of JSON)
SENT_WINDOW_MIN = 50  # keep at least this many upcoming SENT ids loaded in the "all" phase
# Labels a backfill listing leaves out (includeSpamTrash=false); a message leaving them later
# must be read in full, since no listing ever gave it to us.
HIDDEN_LABELS = frozenset({"SPAM", "TRASH"})

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ADDR_SPEC = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
_BRACKETED = re.compile(r"<\s*([^<>\s]+@[^<>\s]+)\s*>")
_BARE = re.compile(r"([^\s<>\"',;:()]+@[^\s<>\"',;:()]+)")

# ---------------------------------------------------------------------------------------------
# header parsing (pure)


def _getaddresses(value: str) -> list[tuple[str, str]]:
    # Python 3.11.10+/3.12.6+ added a strict mode that returns ('', '') for the *whole* header
    # when any part looks wrong (CVE-2023-27043); we want the valid parts, so parse leniently
    # and validate each address ourselves.
    if _GETADDRESSES_HAS_STRICT:
        return email.utils.getaddresses([value], strict=False)  # type: ignore[call-arg]
    return email.utils.getaddresses([value])


_GETADDRESSES_HAS_STRICT = "strict" in inspect.signature(email.utils.getaddresses).parameters


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words; return the input unchanged when they do not decode."""
    if "=?" not in value:
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (LookupError, ValueError, UnicodeError, email.errors.HeaderParseError):
        return value


def _salvage(addr: str) -> str | None:
    addr = addr.strip()
    if _ADDR_SPEC.match(addr):
        return addr
    found = _BRACKETED.search(addr) or _BARE.search(addr)
    return found.group(1) if found else None


def split_entries(header: str) -> list[str]:
    """Split an address-list header at the commas that separate entries.

    Commas inside quotes ("Smith, Ann" <ann@x>), angle brackets, comments or a group's member
    list belong to their entry. A `<` or `"` that is never closed opens nothing: it must not
    swallow the well-formed entries after it.
    """
    entries: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    angle = paren = 0
    group = False
    for i, ch in enumerate(header):
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"' and (quoted or _quote_closes(header, i)):
            quoted = not quoted
        elif not quoted:
            if ch == "<" and _closes_before_comma(header, i):
                angle += 1
            elif ch == ">" and angle:
                angle -= 1
            elif ch == "(":
                paren += 1
            elif ch == ")" and paren:
                paren -= 1
            elif ch == ":" and not angle and not paren:
                group = True
            elif ch == ";" and group:
                group = False
            elif ch == "," and not angle and not paren and not group:
                entries.append("".join(current))
                current = []
                continue
        current.append(ch)
    entries.append("".join(current))
    return [e.strip() for e in entries if e.strip()]


def _quote_closes(header: str, start: int) -> bool:
    # A quoted display name is followed by its <angle-addr> (a quoted local part by "@");
    # a quote whose next quote is not is an unterminated one, opening another entry's name.
    close = header.find('"', start + 1)
    return close != -1 and header[close + 1 :].lstrip()[:1] in ("<", "@")


def _closes_before_comma(header: str, start: int) -> bool:
    # An angle-addr holds no comma: a "<" whose ">" comes only after a comma is never closed.
    close = header.find(">", start)
    comma = header.find(",", start)
    return close != -1 and (comma == -1 or close < comma)


def is_well_formed(entry: str) -> bool:
    """True when quotes, angle brackets and comments of an entry are balanced.

    RFC 5322 has no reading for `Ann <ann@x.org` or `"Ann <ann@x.org>`: such an entry is not an
    address, and guessing one out of it would invent correspondents; the other, well-formed
    entries of the same header still count.
    """
    unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', "", entry)
    if '"' in unquoted:
        return False
    opens, closes = unquoted.count("<"), unquoted.count(">")
    if opens != closes or opens > 1 or (opens and unquoted.index("<") > unquoted.index(">")):
        return False
    return unquoted.count("(") == unquoted.count(")")


def parse_addresses(values: Iterable[str]) -> tuple[Address, ...]:
    """Parse address headers (all occurrences of one header) into addresses, in order.

    Group syntax contributes its members ("undisclosed-recipients:;" none); malformed entries
    and pieces without a usable addr-spec are dropped, the header's other entries kept; display
    names are RFC 2047 decoded; addresses keep their case and IDN form (canonicalisation is
    core's job).
    """
    out: list[Address] = []
    for value in values:
        unfolded = re.sub(r"\r?\n[ \t]*", " ", value)
        for entry in split_entries(unfolded):
            if not is_well_formed(entry):
                continue
            try:
                pairs = _getaddresses(entry)
            except Exception:  # noqa: S112 (hostile input must never stop a sync)
                continue
            for name, addr in pairs:
                spec = _salvage(addr)
                if spec is None:
                    continue
                clean = decode_words(name).strip().strip('"').strip() if name else ""
                out.append(Address(address=spec, name=clean or None))
    return tuple(out)


def parse_date(value: str | None) -> dt.datetime | None:
    """Parse a Date header to UTC; None when missing or unparseable."""
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # "-0000": no zone information; RFC 5322 says treat as UTC
        when = when.replace(tzinfo=dt.UTC)
    try:
        return when.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        return None


def ms_to_datetime(value: object) -> dt.datetime | None:
    """Convert epoch milliseconds (Gmail sends int64 as a string) to UTC; None when invalid."""
    try:
        return _EPOCH + dt.timedelta(milliseconds=int(str(value)))
    except (TypeError, ValueError, OverflowError):
        return None


def _headers(message: dict[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    payload = message.get("payload")
    items = payload.get("headers") if isinstance(payload, dict) else None
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            found.setdefault(item["name"].lower(), []).append(str(item.get("value") or ""))
    return found


def _first(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name.lower())
    if not values:
        return None
    text = " ".join(values[0].split())
    return text or None


def parse_message(message: dict[str, Any]) -> MessageRecord:
    """Turn a messages.get/threads.get format=metadata resource into a MessageRecord."""
    headers = _headers(message)
    labels = tuple(str(label) for label in message.get("labelIds") or ())
    sent_at = parse_date(_first(headers, "Date"))
    received_at = ms_to_datetime(message.get("internalDate")) or sent_at or _EPOCH
    subject = _first(headers, "Subject")
    return MessageRecord(
        provider_message_id=str(message["id"]),
        provider_thread_id=message.get("threadId"),
        received_at=received_at,
        sent_at=sent_at,
        subject=decode_words(subject) if subject else None,
        internet_message_id=_first(headers, "Message-ID"),
        in_reply_to=_first(headers, "In-Reply-To"),
        references=_first(headers, "References"),
        from_=parse_addresses(headers.get("from", ())),
        sender=parse_addresses(headers.get("sender", ())),
        reply_to=parse_addresses(headers.get("reply-to", ())),
        to=parse_addresses(headers.get("to", ())),
        cc=parse_addresses(headers.get("cc", ())),
        bcc=parse_addresses(headers.get("bcc", ())),
        labels=labels,
        is_sent="SENT" in labels,
        is_inbox="INBOX" in labels,
        is_draft="DRAFT" in labels,
        is_spam="SPAM" in labels,
        is_trash="TRASH" in labels,
        list_id=_first(headers, "List-Id"),
        has_list_unsubscribe=bool(_first(headers, "List-Unsubscribe")),
        precedence=_first(headers, "Precedence"),
        auto_submitted=_first(headers, "Auto-Submitted"),
    )


def sent_from_addresses(records: Iterable[MessageRecord]) -> set[str]:
    """The From addresses of SENT messages: the user's own addresses when sendAs is closed."""
    return {a.address for r in records if r.is_sent for a in r.from_}


# ---------------------------------------------------------------------------------------------
# fetch strategy (pure)


def prefer_thread_fetch(
    listed: int, *, avg_thread_len: float, message_cost: float, thread_cost: float
) -> bool:
    """Tell whether one threads.get is cheaper than messages.get for this thread's messages.

    `listed` is how many messages of the thread the current listing page holds that we have not
    read yet (a lower bound on what a threads.get brings); `avg_thread_len` is the mailbox's
    messagesTotal/threadsTotal, the prior for the rest. The thread wins outright when the listed
    messages alone cost at least as much (a tie still brings the thread's other messages for
    free); on the prior alone it must win strictly, since those other messages may already be
    read or hidden (spam/trash).
    """
    if listed <= 0:
        return False
    if listed * message_cost >= thread_cost:
        return True
    return avg_thread_len * message_cost > thread_cost


# ---------------------------------------------------------------------------------------------
# backfill cursor (pure)


@dataclass
class BackfillState:
    """Where a Gmail backfill continues; serialised as the Page.backfill_cursor JSON."""

    history_id: str
    phase: str = "sent"  # "sent" then "all"
    token: str | None = None  # next messages.list page token of this phase
    listed_all: bool = False  # the phase's listing has no more pages
    pending: list[list[str]] = field(default_factory=list)  # [[id, threadId]] not yet read
    threads: dict[str, int] = field(default_factory=dict)  # thread read whole -> oldest ms
    sent_window: list[str] = field(default_factory=list)  # "all": upcoming SENT ids, in order
    sent_token: str | None = None
    sent_listed_all: bool = False
    avg_thread_len: float = 1.0
    messages_total: int | None = None
    v: int = 1

    def dumps(self) -> str:
        """Return the cursor string."""
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def loads(cls, raw: str) -> BackfillState:
        """Parse a cursor string made by `dumps`; raise ValueError when it is not one."""
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("v") != 1:
                raise ValueError("not a Gmail backfill cursor")
            state = cls(**data)
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError("not a Gmail backfill cursor") from exc
        if state.phase not in ("sent", "all"):
            raise ValueError("unknown backfill phase")
        return state

    def remember_thread(self, thread_id: str, oldest_ms: int) -> None:
        """Note a thread read whole, keeping the map bounded (oldest entries leave first)."""
        self.threads.pop(thread_id, None)
        self.threads[thread_id] = oldest_ms
        while len(self.threads) > MAX_KNOWN_THREADS:
            del self.threads[next(iter(self.threads))]

    def forget_threads_newer_than(self, position_ms: int) -> None:
        """Drop threads whose every message is newer than the listing position.

        The listing is newest first, so no later page can hold one of their messages.
        """
        for thread_id in [t for t, oldest in self.threads.items() if oldest > position_ms]:
            del self.threads[thread_id]

    def take_sent_match(self, message_id: str) -> bool:
        """In the "all" phase: was this id listed under SENT (so already read)? Consumes it."""
        try:
            index = self.sent_window.index(message_id)
        except ValueError:
            return False
        # Ids before it were not in the full listing (deleted or trashed since): pass them.
        del self.sent_window[: index + 1]
        return True


def plan_fetch(
    pending: Sequence[Sequence[str]],
    *,
    avg_thread_len: float,
    message_cost: float,
    thread_cost: float,
    max_parts: int = FETCH_PARTS_PER_PAGE,
) -> tuple[list[str], list[str], list[list[str]]]:
    """Split pending [id, threadId] pairs into (thread ids, message ids, still pending).

    Counts per thread use the whole pending list (the current listing page), so a thread with
    several listed messages is read once; at most `max_parts` requests are planned.
    """
    per_thread: dict[str, int] = {}
    for _, thread_id in pending:
        per_thread[thread_id] = per_thread.get(thread_id, 0) + 1
    threads: list[str] = []
    messages: list[str] = []
    planned_threads: set[str] = set()
    rest: list[list[str]] = []
    for message_id, thread_id in pending:
        if thread_id in planned_threads:
            continue
        if len(threads) + len(messages) >= max_parts:
            rest.append([message_id, thread_id])
            continue
        if prefer_thread_fetch(
            per_thread[thread_id],
            avg_thread_len=avg_thread_len,
            message_cost=message_cost,
            thread_cost=thread_cost,
        ):
            threads.append(thread_id)
            planned_threads.add(thread_id)
        else:
            messages.append(message_id)
    rest = [pair for pair in rest if pair[1] not in planned_threads]
    return threads, messages, rest


# ---------------------------------------------------------------------------------------------
# history (pure)


def encode_history_cursor(start_history_id: str, page_token: str | None = None) -> str:
    """The incremental cursor: the historyId alone, or with the next page token between pages.

    A walk through history.list pages keeps its startHistoryId and follows nextPageToken
    (https://developers.google.com/gmail/api/reference/rest/v1/users.history/list): a page may
    hold no records yet have a next page (e.g. when historyTypes filter out all of a page), so
    the last record's id cannot tell where the next page starts.
    """
    if not page_token:
        return start_history_id
    return json.dumps({"start": start_history_id, "page": page_token}, separators=(",", ":"))


def decode_history_cursor(raw: str) -> tuple[str, str | None]:
    """Return (startHistoryId, pageToken); a cursor we cannot read means a full sync."""
    if raw.isdigit():
        return raw, None
    try:
        data = json.loads(raw)
        start, page = str(data["start"]), str(data["page"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CursorExpired("unreadable Gmail history cursor") from exc
    if not start.isdigit() or not page:
        raise CursorExpired("unreadable Gmail history cursor")
    return start, page


@dataclass
class HistoryPlan:
    """What one history.list page asks for: ids to read, and the changes in history order.

    `changes` holds records and ("read", id) placeholders that the caller replaces with the
    read message (or drops when it is gone: a later messageDeleted covers it).
    """

    to_read: list[str] = field(default_factory=list)
    changes: list[MessageDeleted | LabelsChanged | tuple[str, str]] = field(default_factory=list)


def plan_history(records: Iterable[dict[str, Any]]) -> HistoryPlan:
    """Turn History resources into reads and changes; label changes are applied, not re-read.

    A label removal of SPAM or TRASH is the exception: such a message was never listed by the
    backfill (includeSpamTrash=false), so it is read in full.
    """
    plan = HistoryPlan()
    queued: set[str] = set()

    def read(message_id: str) -> None:
        if message_id not in queued:
            queued.add(message_id)
            plan.to_read.append(message_id)
            plan.changes.append(("read", message_id))

    for record in records:
        for item in record.get("messagesAdded") or ():
            read(str(item["message"]["id"]))
        for item in record.get("messagesDeleted") or ():
            plan.changes.append(MessageDeleted(provider_message_id=str(item["message"]["id"])))
        for item in record.get("labelsAdded") or ():
            plan.changes.append(
                LabelsChanged(
                    provider_message_id=str(item["message"]["id"]),
                    added=tuple(item.get("labelIds") or ()),
                )
            )
        for item in record.get("labelsRemoved") or ():
            removed = tuple(item.get("labelIds") or ())
            message_id = str(item["message"]["id"])
            if HIDDEN_LABELS & set(removed):
                read(message_id)
            else:
                plan.changes.append(LabelsChanged(provider_message_id=message_id, removed=removed))
    return plan


# ---------------------------------------------------------------------------------------------
# I/O: one page of Gmail calls through a Session (paced, error-mapped, one Http)

MAX_LISTS_PER_PAGE = 10  # list pages skipped whole (all read already) before returning a Page


@dataclass
class Owner:
    """The user's own addresses as far as this account has shown them (cached per source)."""

    email: str | None = None
    send_as: tuple[str, ...] | None = None  # None: not asked yet or not allowed (gmail.metadata)
    send_as_checked: bool = False
    sent_from: set[str] = field(default_factory=set)  # From of SENT messages seen so far

    def addresses(self, records: Iterable[MessageRecord]) -> tuple[str, ...]:
        """sendAs when granted, else the profile address plus From of SENT messages (§1.3)."""
        found = set(self.send_as or ())
        if self.email:
            found.add(self.email)
        if self.send_as is None:
            self.sent_from |= sent_from_addresses(records)
            found |= self.sent_from
        return tuple(sorted(found))


class GmailReader:
    """Gmail's read calls for one Page; every call is paced and mapped by the Session."""

    def __init__(self, session: Session, *, profile: str) -> None:
        self.session = session
        self.profile = profile
        self.users = session.gmail().users()

    def _cost(self, method: str) -> int:
        return quota.gmail_cost(self.profile, method)

    def _call(self, request: Any, method: str, *, cursor_request: bool = False) -> dict[str, Any]:
        return self.session.execute(
            request, bucket=quota.GMAIL, cost=self._cost(method), cursor_request=cursor_request
        )

    # -- small calls ---------------------------------------------------------------------------

    def get_profile(self) -> dict[str, Any]:
        """users.getProfile: emailAddress, messagesTotal, threadsTotal, historyId."""
        return self._call(self.users.getProfile(userId="me"), "getProfile")

    def label_total(self, label_id: str) -> int:
        """users.labels.get: the label's messagesTotal (only labels.get carries counts)."""
        body = self._call(self.users.labels().get(userId="me", id=label_id), "labels.get")
        return int(body.get("messagesTotal") or 0)

    def complete_owner(self, owner: Owner) -> None:
        """Fill the owner's addresses once: sendAs if the grant allows it, and the profile."""
        if not owner.send_as_checked:
            request = self.users.settings().sendAs().list(userId="me")
            body = self.session.execute_or_none(
                request,
                bucket=quota.GMAIL,
                cost=self._cost("sendAs.list"),
                # gmail.metadata alone is not enough for sendAs.list (PROVIDERS.md §1.3).
                when=is_insufficient_permissions,
            )
            if body is not None:
                owner.send_as = tuple(
                    str(item["sendAsEmail"])
                    for item in body.get("sendAs") or ()
                    if item.get("sendAsEmail")
                )
            owner.send_as_checked = True
        if owner.email is None:
            owner.email = str(self.get_profile().get("emailAddress") or "") or None

    def list_ids(self, *, sent_only: bool, token: str | None) -> tuple[list[list[str]], str | None]:
        """One messages.list page, newest first, spam and trash left out: [[id, threadId]]."""
        params: dict[str, Any] = {
            "userId": "me",
            "maxResults": LIST_PAGE_SIZE,
            "includeSpamTrash": False,
        }
        if sent_only:
            params["labelIds"] = ["SENT"]
        if token:
            params["pageToken"] = token
        body = self._call(self.users.messages().list(**params), "messages.list")
        ids = [[str(m["id"]), str(m["threadId"])] for m in body.get("messages") or ()]
        return ids, body.get("nextPageToken") or None

    # -- batched reads -------------------------------------------------------------------------

    def read(
        self, *, thread_ids: Sequence[str] = (), message_ids: Sequence[str] = ()
    ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, Any]]]:
        """Read threads and messages (format=metadata) in batches of BATCH_PARTS.

        Returns (thread id -> its messages, message id -> message); a 404 part (deleted since it
        was listed) is left out, any other failure raises for the whole page.
        """
        headers = list(METADATA_HEADERS)
        parts: list[tuple[str, Any, float]] = []
        for thread_id in thread_ids:
            request = self.users.threads().get(
                userId="me", id=thread_id, format="metadata", metadataHeaders=headers
            )
            parts.append(("t" + thread_id, request, self._cost("threads.get")))
        for message_id in message_ids:
            request = self.users.messages().get(
                userId="me", id=message_id, format="metadata", metadataHeaders=headers
            )
            parts.append(("m" + message_id, request, self._cost("messages.get")))
        threads: dict[str, list[dict[str, Any]]] = {}
        messages: dict[str, dict[str, Any]] = {}
        for start in range(0, len(parts), BATCH_PARTS):
            chunk = parts[start : start + BATCH_PARTS]
            results = self.session.execute_batch(chunk, bucket=quota.GMAIL, service="gmail")
            for key, _, _ in chunk:
                result = results[key]
                if isinstance(result, BaseException):
                    if is_not_found(result):
                        continue
                    raise map_error(result)
                if key.startswith("t"):
                    threads[key[1:]] = list(result.get("messages") or ())
                else:
                    messages[key[1:]] = result
        return threads, messages

    # -- backfill ------------------------------------------------------------------------------

    def start_backfill(self, owner: Owner) -> BackfillState:
        """Capture the history id before any listing, and the mailbox's shape for the plan."""
        profile = self.get_profile()
        owner.email = owner.email or (str(profile.get("emailAddress") or "") or None)
        messages = int(profile.get("messagesTotal") or 0)
        threads = int(profile.get("threadsTotal") or 0)
        return BackfillState(
            history_id=str(profile["historyId"]),
            avg_thread_len=(messages / threads) if threads else 1.0,
            messages_total=messages,
        )

    def _load_sent_window(self, state: BackfillState) -> None:
        while len(state.sent_window) < SENT_WINDOW_MIN and not state.sent_listed_all:
            ids, token = self.list_ids(sent_only=True, token=state.sent_token)
            state.sent_window.extend(message_id for message_id, _ in ids)
            state.sent_token = token
            state.sent_listed_all = token is None

    def _next_list_page(self, state: BackfillState) -> None:
        ids, token = self.list_ids(sent_only=state.phase == "sent", token=state.token)
        state.token = token
        state.listed_all = token is None
        if state.phase == "sent":
            state.pending = ids
            return
        pending = []
        for message_id, thread_id in ids:
            self._load_sent_window(state)
            if not state.take_sent_match(message_id):
                pending.append([message_id, thread_id])
        state.pending = pending

    def backfill_page(self, state: BackfillState, owner: Owner) -> Page:
        """Read the next ≤ FETCH_PARTS_PER_PAGE requests' worth of the backfill."""
        lists = 0
        while True:
            state.pending = [p for p in state.pending if p[1] not in state.threads]
            if state.pending:
                break
            if state.listed_all:
                if state.phase == "all":
                    return self._page(state, [], owner, complete=True)
                state.phase, state.token, state.listed_all = "all", None, False
                continue
            if lists == MAX_LISTS_PER_PAGE:
                return self._page(state, [], owner, complete=False)
            self._next_list_page(state)
            lists += 1
        listed = {p[0] for p in state.pending}
        thread_ids, message_ids, rest = plan_fetch(
            state.pending,
            avg_thread_len=state.avg_thread_len,
            message_cost=self._cost("messages.get"),
            thread_cost=self._cost("threads.get"),
        )
        threads, messages = self.read(thread_ids=thread_ids, message_ids=message_ids)
        records: list[MessageRecord] = []
        for thread_id, thread_messages in threads.items():
            parsed = [parse_message(m) for m in thread_messages]
            if parsed:
                oldest = min(r.received_at for r in parsed)
                state.remember_thread(thread_id, _to_ms(oldest))
            # The listing leaves spam and trash out; so does a thread read (§1.3 includeSpamTrash).
            records += [r for r in parsed if not (HIDDEN_LABELS & set(r.labels))]
        records += [parse_message(messages[m]) for m in message_ids if m in messages]
        state.pending = rest
        if state.phase == "all":
            times = [_to_ms(r.received_at) for r in records if r.provider_message_id in listed]
            if times:
                state.forget_threads_newer_than(min(times))
        return self._page(state, list(records), owner, complete=False)

    def _page(
        self, state: BackfillState, changes: list[Change], owner: Owner, *, complete: bool
    ) -> Page:
        self.complete_owner(owner)
        records = [c for c in changes if isinstance(c, MessageRecord)]
        return Page(
            changes=changes,
            backfill_cursor=None if complete else state.dumps(),
            cursor=state.history_id,
            is_complete=complete,
            items_total_estimate=state.messages_total,
            owner_addresses=owner.addresses(records),
        )

    # -- incremental ---------------------------------------------------------------------------

    def history_page(self, cursor: str, owner: Owner) -> Page:
        """One history.list page since `cursor`; the new cursor once the last page is read."""
        start, page_token = decode_history_cursor(cursor)
        params: dict[str, Any] = {
            "userId": "me",
            "startHistoryId": start,
            "historyTypes": list(HISTORY_TYPES),
            "maxResults": HISTORY_PAGE_SIZE,
        }
        if page_token:
            params["pageToken"] = page_token
        request = self.users.history().list(**params)
        # A 404 means the startHistoryId is too old, with or without a page token.
        try:
            body = self._call(request, "history.list", cursor_request=True)
        except ProviderRejected as exc:
            if not page_token or exc.status != 400:
                raise
            # A page token is opaque and may go stale while a walk waits (quota, a stopped
            # worker): walk again from the same startHistoryId. Upserts make the replay harmless.
            return Page(cursor=start, is_complete=False)
        plan = plan_history(body.get("history") or ())
        _, messages = self.read(message_ids=plan.to_read)
        changes: list[Change] = []
        for change in plan.changes:
            if isinstance(change, tuple):
                if change[1] in messages:  # else deleted since: its messageDeleted follows
                    changes.append(parse_message(messages[change[1]]))
            else:
                changes.append(change)
        if body.get("nextPageToken"):
            # The page and its successor's token commit together: a crash resumes at the next
            # page, never re-reading this one.
            next_cursor = encode_history_cursor(start, str(body["nextPageToken"]))
            complete = False
        else:
            next_cursor, complete = str(body["historyId"]), True
        self.complete_owner(owner)
        records = [c for c in changes if isinstance(c, MessageRecord)]
        return Page(
            changes=changes,
            cursor=next_cursor,
            is_complete=complete,
            owner_addresses=owner.addresses(records),
        )


def _to_ms(when: dt.datetime) -> int:
    return int((when - _EPOCH) / dt.timedelta(milliseconds=1))


__all__ = [
    "BackfillState",
    "GmailReader",
    "Owner",
    "parse_addresses",
    "parse_date",
    "parse_message",
    "plan_fetch",
    "plan_history",
    "prefer_thread_fetch",
]
