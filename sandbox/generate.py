"""Deterministic mailbox generator: seed -> a realistic, awkward mailbox plus calendars.

Invariants:

* Everything random comes from one ``random.Random(seed)`` (never the global generator), and
  nothing iterates a set or a hash-ordered structure, so the same (seed, now_ms, arguments)
  always writes the identical mailbox.
* Memory is bounded: messages are produced thread by thread and written in chunks of
  ``_CHUNK`` with ``executemany`` (``Store.add_messages(record_history=False)``); only the
  contact model (one object per contact) lives for the whole run.
* Both ``labels`` (Gmail) and ``folder`` (Graph) are filled on every message.
* The generator records what it *meant* in ``fact_*`` tables, so ``truth.py`` never parses
  headers: ``fact_person`` (who a sender is), ``fact_address`` (canonical address -> person),
  ``fact_party`` (message -> counterparty address and direction, written only where the message
  would count were it in a counting location) and ``fact_message`` (kind and quirk tags per
  message, for tests and the summary).
* Wire forms differ from canonical forms on purpose: mixed case, punycode or U-label IDN
  domains, RFC 2047 B/Q encoded display names, malformed neighbours, missing or absurd Date
  headers. Message time is ``internal_ms`` (Gmail internalDate / Graph receivedDateTime).
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import random
import struct
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.store import Store
from sandbox.store import now_ms as _wall_ms

__all__ = ["canonical_address", "generate_activity", "generate_mailbox"]

_CHUNK = 5000
_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000

_FACT_SCHEMA = """
CREATE TABLE IF NOT EXISTS fact_person (
  mailbox TEXT NOT NULL, person_id TEXT NOT NULL, display_name TEXT, kind TEXT NOT NULL,
  is_person INTEGER NOT NULL, PRIMARY KEY (mailbox, person_id)
);
CREATE TABLE IF NOT EXISTS fact_address (
  mailbox TEXT NOT NULL, address TEXT NOT NULL, person_id TEXT NOT NULL,
  wire TEXT NOT NULL, PRIMARY KEY (mailbox, address)
);
CREATE TABLE IF NOT EXISTS fact_party (
  mailbox TEXT NOT NULL, message_id TEXT NOT NULL, address TEXT NOT NULL,
  direction TEXT NOT NULL, PRIMARY KEY (mailbox, message_id, address, direction)
);
CREATE INDEX IF NOT EXISTS fact_party_address ON fact_party (mailbox, address);
CREATE TABLE IF NOT EXISTS fact_message (
  mailbox TEXT NOT NULL, message_id TEXT NOT NULL, thread_id TEXT NOT NULL, kind TEXT NOT NULL,
  quirks TEXT NOT NULL, subject TEXT, message_id_header TEXT,
  PRIMARY KEY (mailbox, message_id)
);
CREATE INDEX IF NOT EXISTS fact_message_thread ON fact_message (mailbox, thread_id);
"""

# Person kinds that are not relationships (DEFINITIONS.md "Who is a person").
NON_PERSON_KINDS = ("list", "bulk", "automated", "calendar", "group")

_FIRST = [
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Emma",
    "Felix",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Karin",
    "Liam",
    "Mia",
    "Noah",
    "Olga",
    "Paul",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Uwe",
    "Vera",
    "Wei",
    "Xenia",
    "Yuki",
    "Zoe",
    "Omar",
    "Priya",
    "Lars",
    "Nina",
    "José",
    "Zoë",
    "Łukasz",
    "Søren",
    "Renée",
    "Jürgen",
    "Chloé",
    "Björn",
    "太郎",
    "美咲",
]
_LAST = [
    "Smith",
    "García",
    "Nguyen",
    "Kowalski",
    "Tanaka",
    "Dubois",
    "Rossi",
    "O'Brien",
    "Johansson",
    "Khan",
    "Novák",
    "Fischer",
    "Weber",
    "Brown",
    "Lee",
    "Ivanova",
    "Patel",
    "Cohen",
    "Silva",
    "Moreau",
    "Müller",
    "Schröder",
    "Åström",
    "Núñez",
    "Ørsted",
    "山田",
]
_CORP = [
    "acme-corp.com",
    "globex.io",
    "initech.com",
    "umbrella.org",
    "hooli.com",
    "stark-industries.com",
    "wayne-enterprises.com",
    "cyberdyne.net",
    "soylent.co",
    "tyrell.com",
    "example.org",
    "contoso.com",
    "fabrikam.com",
    "northwind.example",
    "vandelay.com",
]
_FREE = ["gmail.com", "outlook.com", "yahoo.com", "web.de", "gmx.net", "icloud.com", "proton.me"]
_IDN = ["müller-bau.de", "bücher.example", "café-crème.fr", "日本語.jp", "españa.example"]
_SUBJECTS = [
    "Lunch next week?",
    "Q3 budget review",
    "Contract draft",
    "Quick question",
    "Intro: you two should talk",
    "Offsite planning",
    "Invoice 2024-117",
    "Über das Angebot",
    "Réunion de lundi",
    "Follow-up from our call",
    "Hiring plan",
    "Photos from the weekend",
    "見積もりについて",
    "Re: old thread you forgot",
    "Board deck v3",
]
_REPLY_PREFIX = ["Re: ", "Re: ", "Re: ", "RE: ", "AW: ", "Re: "]
_LISTS = [
    ("Python-Dev", "python-dev@python.org", "python-dev.python.org"),
    ("Rust Users", "users@lists.rust-lang.org", "users.lists.rust-lang.org"),
    ("Neighbourhood", "nachbarn@googlegroups.com", "nachbarn.googlegroups.com"),
    ("Team All", "all-staff@acme-corp.com", "all-staff.acme-corp.com"),
]
_BULK = [
    ("Shop News", "news@mail.shop.example"),
    ("The Weekly Digest", "digest@newsletter.example.com"),
    ("Airline Deals", "deals@fly.example"),
]
_AUTOMATED = [
    ("GitHub", "notifications@github.com"),
    ("Google", "no-reply@accounts.google.com"),
    ("Mail Delivery Subsystem", "MAILER-DAEMON@mx.example.com"),
    ("Jira", "jira-noreply@acme-corp.atlassian.net"),
    ("Bank", "donotreply@bank.example"),
]
_CALENDAR_SENDER = "calendar-notification@google.com"
_EVENT_ZONES = ["America/New_York", "Asia/Tokyo", "Europe/London"]


def canonical_address(addr: str) -> str:
    """Return the canonical form: lower-cased addr-spec with the domain as U-label."""
    local, _, domain = addr.strip().rpartition("@")
    domain = domain.lower()
    if "xn--" in domain:
        domain = domain.encode("ascii").decode("idna")
    return f"{local.lower()}@{domain}"


@dataclass
class _Person:
    person_id: str
    name: str
    kind: str  # person | list | bulk | automated | calendar | group | spammer
    addresses: list[str]  # canonical
    wires: list[str]  # the same addresses as written in headers
    wire_names: list[str]  # display names as written in headers (may be RFC 2047)
    list_id: str | None = None


@dataclass
class _Ctx:
    store: Store
    email: str
    provider: str
    rng: random.Random
    now_ms: int
    user: _Person
    user_plus: list[str]
    seq: int = 0
    thread_seq: int = 0
    msgs: list[dict] = field(default_factory=list)
    parties: list[tuple] = field(default_factory=list)
    facts: list[tuple] = field(default_factory=list)
    written: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    record_history: bool = False
    user_labels: list[str] = field(default_factory=list)
    mb_hash: bytes = b""


# -- encoding helpers ------------------------------------------------------------------------


def _b_word(text: str) -> str:
    return "=?UTF-8?B?" + base64.b64encode(text.encode()).decode() + "?="


def _q_word(text: str, charset: str = "ISO-8859-1") -> str:
    out = []
    for byte in text.encode(charset):
        ch = chr(byte)
        if ch == " ":
            out.append("_")
        elif ch.isascii() and ch.isalnum():
            out.append(ch)
        else:
            out.append(f"={byte:02X}")
    return f"=?{charset}?Q?{''.join(out)}?="


def _wire_name(rng: random.Random, name: str) -> str:
    """Render a display name as a header would carry it (quoted, RFC 2047 B or Q, raw 8-bit)."""
    if name.isascii():
        return f'"{name}"' if ("," in name or "'" in name or "." in name) else name
    roll = rng.random()
    if roll < 0.5:
        return _b_word(name)
    if roll < 0.85:
        try:
            return _q_word(name)
        except UnicodeEncodeError:
            return _b_word(name)
    return name  # raw UTF-8 in a header: common in practice, technically 8-bit


def _fmt(name: str | None, addr: str) -> str:
    return f"{name} <{addr}>" if name else addr


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def _mixed_case(rng: random.Random, addr: str) -> str:
    local, _, domain = addr.partition("@")
    local = ".".join(p.capitalize() for p in local.split("."))
    return f"{local}@{domain.upper() if rng.random() < 0.5 else domain.title()}"


# -- people ----------------------------------------------------------------------------------


def _make_people(rng: random.Random, n: int, user_domain: str) -> list[_Person]:
    """Make ``n`` correspondents, most-frequent first (Zipf rank = list index)."""
    people: list[_Person] = []
    used: dict[str, None] = {}
    for i in range(n):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        name = f"{first} {last}"
        lf, ll = _ascii(first) or f"u{i}", _ascii(last).replace("'", "") or f"p{i}"
        n_addr = 1 if rng.random() < 0.85 else rng.choice((2, 2, 3))
        addrs: list[str] = []
        wires: list[str] = []
        names: list[str] = []
        for k in range(n_addr):
            roll = rng.random()
            if roll < 0.08:
                domain = rng.choice(_IDN)
            elif roll < 0.45 or k == 1:
                domain = rng.choice(_FREE)
            elif roll < 0.55:
                domain = user_domain  # colleagues
            else:
                domain = rng.choice(_CORP)
            local = rng.choice((f"{lf}.{ll}", f"{lf[0]}{ll}", lf, f"{lf}_{ll}{i}"))
            addr = f"{local}@{domain}"
            while addr in used:
                addr = f"{local}{rng.randrange(10, 99)}@{domain}"
            used[addr] = None
            local = addr.rpartition("@")[0]  # the wire form must name the same mailbox
            wire = addr
            if not domain.isascii():
                # Some mailers write the A-label, others the U-label (RFC 6532).
                if rng.random() < 0.6:
                    wire = f"{local}@{domain.encode('idna').decode()}"
            elif rng.random() < 0.1:
                wire = _mixed_case(rng, addr)
            variant = rng.choice((name, name, f"{last}, {first}", f"{first[0]}. {last}", ""))
            addrs.append(addr)
            wires.append(wire)
            names.append(_wire_name(rng, variant) if variant else "")
        people.append(_Person(f"p{i:06d}", name, "person", addrs, wires, names))
    return people


def _fixed_senders() -> list[_Person]:
    out = []
    for i, (name, addr, list_id) in enumerate(_LISTS):
        out.append(_Person(f"l{i}", name, "list", [addr], [addr], [name], list_id=list_id))
    for i, (name, addr) in enumerate(_BULK):
        out.append(_Person(f"b{i}", name, "bulk", [addr], [addr], [name]))
    for i, (name, addr) in enumerate(_AUTOMATED):
        out.append(_Person(f"a{i}", name, "automated", [addr.lower()], [addr], [name]))
    out.append(
        _Person("c0", "Google Calendar", "calendar", [_CALENDAR_SENDER], [_CALENDAR_SENDER], [""])
    )
    out.append(
        _Person("g0", "undisclosed-recipients", "group", ["undisclosed-recipients"], [""], [""])
    )
    return out


class _Zipf:
    """Rank sampler with P(rank k) ~ 1 / (k+1)^s over ``n`` ranks."""

    def __init__(self, n: int, s: float = 1.1) -> None:
        total, cum = 0.0, []
        for k in range(n):
            total += 1.0 / (k + 1) ** s
            cum.append(total)
        self.cum, self.total = cum, total

    def pick(self, rng: random.Random) -> int:
        return bisect.bisect_left(self.cum, rng.random() * self.total)


# -- ids -------------------------------------------------------------------------------------


def _message_id(ctx: _Ctx, ms: int) -> str:
    ctx.seq += 1
    if ctx.provider == "google":
        # Gmail ids are 16 hex digits that grow with time; the low 20 bits keep them unique
        # (seq < 2**20 for every supported size, so (ms, seq) never collides).
        return f"{((ms << 20) | (ctx.seq & 0xFFFFF)) & 0xFFFFFFFFFFFFFFFF:016x}"
    # Graph immutable ids: long base64url with '-', '_' and '=' (Graph docs: immutable ids).
    h = ctx.mb_hash
    raw = b"\x00\x00\x00\x00" + h + b"\x46\x00" + h + b"\x07\x00" + h
    raw += struct.pack(">QI", ctx.seq, ms & 0xFFFFFFFF) + h + h + h[:13]
    return base64.urlsafe_b64encode(raw).decode()  # 113 bytes -> 152 chars ending in "="


def _conversation_id(ctx: _Ctx, first_id: str) -> str:
    if ctx.provider == "google":
        return first_id  # Gmail threadId = id of the thread's first message
    ctx.thread_seq += 1
    raw = b"\x00\x00\x10\x00" + ctx.mb_hash + struct.pack(">I", ctx.thread_seq)
    return base64.urlsafe_b64encode(raw).decode()


def _folder_for(labels: list[str], label_folder: dict[str, str]) -> str:
    for label, folder in (
        ("TRASH", "deleteditems"),
        ("SPAM", "junkemail"),
        ("DRAFT", "drafts"),
        ("SENT", "sentitems"),
        ("INBOX", "inbox"),
    ):
        if label in labels:
            return folder
    for label in labels:
        if label in label_folder:
            return label_folder[label]
    return "archive"


def _custom_folder_id(mb_hash: bytes, n: int) -> str:
    return base64.urlsafe_b64encode(b"\x00\x00\x01\x00" + mb_hash + bytes([n])).decode()


# -- message emission ------------------------------------------------------------------------


def _emit(
    ctx: _Ctx,
    *,
    ms: int,
    thread_id: str | None,
    msg_id: str,
    headers: list[list[str]],
    labels: list[str],
    kind: str,
    quirks: list[str],
    parties: list[tuple[str, str]],
    subject: str,
    mid_header: str,
    label_folder: dict[str, str],
) -> str:
    tid = thread_id or _conversation_id(ctx, msg_id)
    ctx.msgs.append(
        {
            "id": msg_id,
            "thread_id": tid,
            "internal_ms": ms,
            "labels": labels,
            "folder": _folder_for(labels, label_folder),
            "headers": headers,
            "size_estimate": 1800 + ctx.rng.randrange(60_000),
            "is_read": "UNREAD" not in labels,
        }
    )
    seen: dict[tuple[str, str], None] = {}
    for addr, direction in parties:
        if (addr, direction) not in seen:
            seen[(addr, direction)] = None
            ctx.parties.append((ctx.email, msg_id, addr, direction))
    ctx.facts.append((ctx.email, msg_id, tid, kind, " ".join(quirks), subject, mid_header))
    ctx.kinds[kind] = ctx.kinds.get(kind, 0) + 1
    if len(ctx.msgs) >= _CHUNK:
        _flush(ctx)
    return tid


def _flush(ctx: _Ctx) -> None:
    if not ctx.msgs:
        return
    ctx.store.add_messages(ctx.email, ctx.msgs, record_history=ctx.record_history)
    with ctx.store.transaction() as conn:
        conn.executemany("INSERT OR REPLACE INTO fact_party VALUES (?,?,?,?)", ctx.parties)
        conn.executemany("INSERT OR REPLACE INTO fact_message VALUES (?,?,?,?,?,?,?)", ctx.facts)
    ctx.written += len(ctx.msgs)
    ctx.msgs, ctx.parties, ctx.facts = [], [], []


def _date_header(ctx: _Ctx, ms: int, quirks: list[str]) -> list[list[str]]:
    roll = ctx.rng.random()
    if roll < 0.01:
        quirks.append("missing_date")
        return []
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC) - timedelta(seconds=ctx.rng.randrange(90))
    if roll < 0.02:
        quirks.append("date_off")
        dt = dt.replace(year=ctx.rng.choice((1970, 1999, 2099)))
    elif roll < 0.025:
        quirks.append("date_garbage")
        return [["Date", "Someday, 32 Foo 20xx 25:61:00 +9999"]]
    zone = ZoneInfo(ctx.rng.choice(("Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC")))
    return [["Date", format_datetime(dt.astimezone(zone))]]


def _new_mid(ctx: _Ctx, addr_wire: str) -> str:
    domain = addr_wire.rpartition("@")[2] or "localhost"
    return f"<{ctx.rng.getrandbits(64):016x}.{ctx.rng.getrandbits(24):x}@{domain}>"


@dataclass
class _Thread:
    """Reply chain state of one thread while it is being generated."""

    subject: str
    wire_subject: str
    tid: str | None = None
    refs: list[str] = field(default_factory=list)


def _subject_line(ctx: _Ctx, th: _Thread, idx: int, quirks: list[str]) -> str:
    if idx == 0:
        return th.wire_subject
    return ctx.rng.choice(_REPLY_PREFIX) + th.wire_subject


def _chain(headers: list[list[str]], th: _Thread, mid: str) -> None:
    if th.refs:
        headers.append(["In-Reply-To", th.refs[-1]])
        headers.append(["References", " ".join(th.refs[-10:])])
    th.refs.append(mid)


def _user_from(ctx: _Ctx, quirks: list[str]) -> str:
    u = ctx.user
    if len(u.wires) > 1 and ctx.rng.random() < 0.25:
        quirks.append("alias_from")
        k = ctx.rng.randrange(1, len(u.wires))
        return _fmt(u.wire_names[0], u.wires[k])
    return _fmt(u.wire_names[0], u.wires[0])


def _user_recipient(ctx: _Ctx, quirks: list[str]) -> str | None:
    """How the user appears as recipient of inbound mail; None = Bcc-only delivery."""
    roll = ctx.rng.random()
    u = ctx.user
    if roll < 0.05:
        quirks.append("bcc_only")
        return None
    if roll < 0.13 and ctx.user_plus:
        quirks.append("plus_address")
        return ctx.rng.choice(ctx.user_plus)
    if roll < 0.25 and len(u.wires) > 1:
        quirks.append("alias_to")
        return u.wires[ctx.rng.randrange(1, len(u.wires))]
    return _fmt(u.wire_names[0], u.wires[0])


def _pick_addr(ctx: _Ctx, p: _Person) -> tuple[str, str, str]:
    """Return (canonical, wire, wire_name) of one of a person's addresses."""
    k = (
        0
        if len(p.addresses) == 1 or ctx.rng.random() < 0.6
        else ctx.rng.randrange(len(p.addresses))
    )
    return p.addresses[k], p.wires[k], p.wire_names[k]


_MALFORMED = [
    "undisclosed-recipients:;",
    "bob@",
    "<@nowhere>",
    "Broken Name <broken@example.com",
    "not an address at all",
    '"Quote Unterminated <q@example.com>',
]


def _person_thread(
    ctx: _Ctx,
    people: list[_Person],
    zipf: _Zipf,
    start_ms: int,
    budget: int,
    label_folder: dict[str, str],
    force: str | None = None,
) -> int:
    """Write one conversation with 1-3 correspondents; return how many messages it used."""
    rng = ctx.rng
    main = people[zipf.pick(rng)]
    group = [main]
    if rng.random() < 0.18 or force == "group":
        for _ in range(rng.choice((1, 1, 2, 3))):
            other = people[zipf.pick(rng)]
            if other not in group:
                group.append(other)
    n = min(budget, 1 + min(int(rng.expovariate(0.55)), 11))
    subject = rng.choice(_SUBJECTS)
    wire_subject = subject if subject.isascii() or rng.random() < 0.3 else _b_word(subject)
    th = _Thread(subject, wire_subject)
    inbound = rng.random() < 0.55 if force is None else force not in ("bcc_sent", "mass")
    recent = ctx.now_ms - start_ms < 30 * _DAY_MS
    archived = not recent and rng.random() < 0.55
    user_label = rng.choice(ctx.user_labels) if ctx.user_labels and rng.random() < 0.12 else None
    ms = start_ms
    used = 0
    for idx in range(n):
        quirks: list[str] = []
        headers: list[list[str]] = []
        parties: list[tuple[str, str]] = []
        if len(group) > 1:
            quirks.append("group")
        if inbound:
            sender = group[0] if idx == 0 or len(group) == 1 else rng.choice(group)
            s_addr, s_wire, s_name = _pick_addr(ctx, sender)
            if len(sender.addresses) > 1:
                quirks.append("multi_address")
            if s_wire != s_addr:
                quirks.append("idn_punycode" if "xn--" in s_wire else "mixed_case")
            elif not s_addr.isascii():
                quirks.append("idn_ulabel")
            if s_name.startswith("=?UTF-8?B?"):
                quirks.append("rfc2047_b")
            elif s_name.startswith("=?ISO-8859-1?Q?"):
                quirks.append("rfc2047_q")
            headers.append(["From", _fmt(s_name, s_wire)])
            me = _user_recipient(ctx, quirks)
            others = [
                _fmt(nm, w) for p in group if p is not sender for _, w, nm in [_pick_addr(ctx, p)]
            ]
            if me is None:
                headers.append(["To", rng.choice(("undisclosed-recipients:;", *others[:1]))])
                headers.append(["Delivered-To", ctx.user.wires[0]])
            else:
                headers.append(["To", ", ".join([me, *others[:1]])])
                if others[1:]:
                    headers.append(["Cc", ", ".join(others[1:])])
            parties.append((s_addr, "in"))
            labels = ["CATEGORY_PERSONAL"]
            if recent and rng.random() < 0.35:
                labels.append("UNREAD")
            if not archived or (idx == n - 1 and recent):
                labels.insert(0, "INBOX")
            else:
                quirks.append("archived")
            if rng.random() < 0.03:
                quirks.append("reply_to")
                headers.append(["Reply-To", "assistant.desk@" + s_addr.rpartition("@")[2]])
            if rng.random() < 0.02:
                quirks.append("sender")
                headers.append(["Sender", "delegate@" + s_addr.rpartition("@")[2]])
            kind = "person_in"
        else:
            headers.append(["From", _user_from(ctx, quirks)])
            to, cc = [], []
            for j, p in enumerate(group):
                c, w, nm = _pick_addr(ctx, p)
                (to if j == 0 else cc).append(_fmt(nm, w))
                parties.append((c, "out"))
            headers.append(["To", ", ".join(to)])
            if cc:
                headers.append(["Cc", ", ".join(cc)])
            if rng.random() < 0.08 or force == "bcc_sent":
                extra = people[zipf.pick(rng)]
                c, w, nm = _pick_addr(ctx, extra)
                headers.append(["Bcc", _fmt(nm, w)])
                parties.append((c, "out"))
                quirks.append("bcc_sent")
            if force == "mass" and idx == 0:
                quirks.append("mass")
                extra_cc = []
                for p in people[: min(len(people), 60)]:
                    c, w, nm = _pick_addr(ctx, p)
                    extra_cc.append(_fmt(nm, w))
                    parties.append((c, "out"))
                headers.append(["Cc", ", ".join(extra_cc)])
            labels = ["SENT"]
            kind = "person_out"
        if rng.random() < 0.02:
            quirks.append("malformed_addr")
            headers.append(["Cc", rng.choice(_MALFORMED)])
        if user_label:
            labels.append(user_label)
            quirks.append("user_label")
        headers.append(["Subject", _subject_line(ctx, th, idx, quirks)])
        if th.wire_subject.startswith("=?"):
            quirks.append("encoded_subject")
        if rng.random() < 0.01:
            # Undecodable or unusual encoded words: the product must survive, not understand.
            quirks.append("odd_encoding")
            headers[-1][1] = rng.choice(
                (
                    "=?unknown-8bit?Q?caf=E9?=",
                    "=?UTF-8?B?!!notbase64?=",
                    "=?utf-8?q?Caf=C3=A9_=3F?=",
                    "=?windows-1252?Q?=93quoted=94?=",
                    "CafÃ© mojibake",
                )
            )
        headers += _date_header(ctx, ms, quirks)
        mid = _new_mid(ctx, headers[0][1].rpartition("<")[2].rstrip(">"))
        headers.append(["Message-ID", mid])
        _chain(headers, th, mid)
        roll = rng.random()
        if roll < 0.015:
            labels = [x for x in labels if x != "INBOX"] + ["TRASH"]
            quirks.append("trash")
        elif roll < 0.02 and inbound:
            labels = [x for x in labels if x != "INBOX"] + ["SPAM"]
            quirks.append("spam")
        elif roll < 0.03 and not inbound and idx == n - 1:
            labels = ["DRAFT"]
            quirks.append("draft")
        msg_id = _message_id(ctx, ms)
        th.tid = _emit(
            ctx,
            ms=ms,
            thread_id=th.tid,
            msg_id=msg_id,
            headers=headers,
            labels=labels,
            kind=kind,
            quirks=quirks,
            parties=parties,
            subject=th.subject,
            mid_header=mid,
            label_folder=label_folder,
        )
        used += 1
        if "draft" in quirks:
            break
        ms += int(rng.expovariate(1 / (10 * _HOUR_MS))) + 60_000
        if ms >= ctx.now_ms:  # a conversation cannot run into the future: it ends here
            break
        if rng.random() < 0.8:
            inbound = not inbound
    return used


def _simple(
    ctx: _Ctx,
    sender: _Person,
    ms: int,
    kind: str,
    label_folder: dict[str, str],
    *,
    poster: _Person | None = None,
) -> None:
    """One non-conversation message: list post, bulk, automated, invite, spam, self, OOO."""
    rng = ctx.rng
    quirks: list[str] = [kind]
    me = _fmt(ctx.user.wire_names[0], ctx.user.wires[0])
    headers: list[list[str]]
    labels = ["INBOX"]
    parties: list[tuple[str, str]] = []
    if kind == "list":
        p = poster or sender
        _, w, nm = _pick_addr(ctx, p)
        subject = f"[{sender.name}] " + rng.choice(("Release notes", "Proposal", "Meetup"))
        headers = [
            ["From", _fmt(nm, w)],
            ["To", sender.wires[0]],
            ["List-Id", f"{sender.name} <{sender.list_id}>"],
            ["List-Unsubscribe", f"<mailto:leave-{sender.wires[0]}>"],
            ["Precedence", "list"],
        ]
        labels = ["CATEGORY_FORUMS"] + (["INBOX"] if rng.random() < 0.3 else [])
    elif kind == "bulk":
        subject = rng.choice(("Your weekly deals", "Don't miss out", "Newsletter #42"))
        headers = [
            ["From", _fmt(sender.wire_names[0], sender.wires[0])],
            ["To", me],
            ["List-Unsubscribe", f"<https://{sender.wires[0].rpartition('@')[2]}/u?x=1>"],
            ["Precedence", "bulk"],
        ]
        labels = ["CATEGORY_PROMOTIONS"] + (["INBOX"] if rng.random() < 0.4 else [])
    elif kind == "automated":
        subject = rng.choice(("[repo] PR #12 merged", "Security alert", "Undeliverable: Hi"))
        headers = [
            ["From", _fmt(sender.wire_names[0], sender.wires[0])],
            ["To", me],
            ["Auto-Submitted", "auto-generated"],
        ]
        labels = ["CATEGORY_UPDATES", "INBOX"]
    elif kind == "invite":
        who = poster or sender
        when = datetime.fromtimestamp(ms / 1000 + 3 * 86400, tz=UTC)
        subject = f"Invitation: Sync @ {when:%a %b %d, %Y %I%p} (UTC) ({ctx.user.wires[0]})"
        headers = [
            ["From", f'"{who.name} (Google Calendar)" <{_CALENDAR_SENDER}>'],
            ["Reply-To", who.wires[0]],
            ["To", ctx.user.wires[0]],
            ["Content-Type", 'multipart/mixed; boundary="x"'],
        ]
        labels = ["INBOX", "CATEGORY_PERSONAL"]
    elif kind == "ooo":
        _, w, nm = _pick_addr(ctx, sender)
        subject = "Automatic reply: " + rng.choice(_SUBJECTS)
        headers = [["From", _fmt(nm, w)], ["To", me], ["Auto-Submitted", "auto-replied"]]
    elif kind == "self":
        subject = rng.choice(("note to self", "todo", "backup of passport scan"))
        to = rng.choice([*ctx.user.wires, *ctx.user_plus])
        headers = [["From", _user_from(ctx, quirks)], ["To", to]]
        labels = ["INBOX", "SENT"]
    elif kind == "list_reply":
        subject = f"Re: [{sender.name}] Proposal"
        headers = [["From", _user_from(ctx, quirks)], ["To", sender.wires[0]]]
        labels = ["SENT"]
    else:  # spam
        subject = rng.choice(("You won!!!", "=?UTF-8?B?8J+SsCBDYXNo?=", "Re: invoice"))
        headers = [["From", f"Prize Desk <{sender.wires[0]}>"], ["To", me]]
        labels = ["SPAM"]
    headers.append(["Subject", subject])
    headers += _date_header(ctx, ms, quirks)
    mid = _new_mid(ctx, headers[0][1].rpartition("<")[2].rstrip(">"))
    headers.append(["Message-ID", mid])
    if rng.random() < 0.3 and kind not in ("spam", "self", "list_reply"):
        labels.append("UNREAD")
    _emit(
        ctx,
        ms=ms,
        thread_id=None,
        msg_id=_message_id(ctx, ms),
        headers=headers,
        labels=labels,
        kind=kind,
        quirks=quirks,
        parties=parties,
        subject=subject,
        mid_header=mid,
        label_folder=label_folder,
    )


# -- calendars -------------------------------------------------------------------------------


def _event_id(ctx: _Ctx) -> str:
    if ctx.provider == "google":
        # Calendar ids: base32hex (a-v, 0-9), 5-1024 chars (PROVIDERS.md §2 events.insert).
        alphabet = "0123456789abcdefghijklmnopqrstuv"
        return "".join(ctx.rng.choice(alphabet) for _ in range(26))
    raw = b"\x00\x00\x00\x00" + ctx.mb_hash + b"\x07\x00" + ctx.rng.randbytes(22)
    return base64.urlsafe_b64encode(raw).decode()


def _iso(dt: datetime) -> str:
    return dt.isoformat()


def _attendee(email: str, name: str, response: str, *, organizer: bool = False) -> dict:
    return {
        "email": email,
        "name": name,
        "response": response,
        "optional": False,
        "resource": False,
        "is_organizer": organizer,
    }


def _make_event(
    ctx: _Ctx,
    people: list[_Person],
    zipf: _Zipf,
    start: datetime,
    *,
    tz: str,
    minutes: int = 30,
    user_org: bool | None = None,
    user_resp: str = "accepted",
    their_resp: str = "accepted",
    size: int = 1,
    status: str = "confirmed",
    summary: str | None = None,
) -> dict:
    rng = ctx.rng
    guests: list[_Person] = []
    while len(guests) < size:
        p = people[zipf.pick(rng)]
        if p not in guests:
            guests.append(p)
        elif len(guests) >= len(people):
            break
    if user_org is None:
        user_org = rng.random() < 0.5
    me = (ctx.user.addresses[0], ctx.user.name)
    attendees = []
    if user_org:
        organizer = {"email": me[0], "name": me[1]}
        attendees.append(_attendee(me[0], me[1], "accepted", organizer=True))
        for g in guests:
            attendees.append(_attendee(_pick_addr(ctx, g)[1], g.name, their_resp))
    else:
        host = guests[0]
        h_addr = _pick_addr(ctx, host)[1]
        organizer = {"email": h_addr, "name": host.name}
        attendees.append(_attendee(h_addr, host.name, "accepted", organizer=True))
        for g in guests[1:]:
            attendees.append(_attendee(_pick_addr(ctx, g)[1], g.name, their_resp))
        attendees.append(_attendee(me[0], me[1], user_resp))
    if rng.random() < 0.1:
        attendees.append(
            {**_attendee("room-4.12@resource.example", "Room 4.12", "accepted"), "resource": True}
        )
    end = start + timedelta(minutes=minutes)
    created = int(start.timestamp() * 1000) - rng.randrange(1, 20) * _DAY_MS
    eid = _event_id(ctx)
    return {
        "id": eid,
        "ical_uid": f"{eid}@sandbox.invalid",
        "status": status,
        "summary": summary or rng.choice(("Sync", "1:1", "Coffee", "Project review", "Call")),
        "start": {"date_time": _iso(start), "time_zone": tz},
        "end": {"date_time": _iso(end), "time_zone": tz},
        "is_all_day": False,
        "organizer": organizer,
        "attendees": attendees,
        "recurrence": [],
        "recurring_event_id": None,
        "original_start": None,
        "created_ms": min(created, ctx.now_ms),
        "updated_ms": min(created + _HOUR_MS, ctx.now_ms),
        "transaction_id": None,
        "app_key": None,
    }


def _slot(ctx: _Ctx, ms: int, tz: str) -> datetime:
    """A business-hours half-hour slot on the day of ``ms`` in ``tz``."""
    day = datetime.fromtimestamp(ms / 1000, tz=ZoneInfo(tz))
    return day.replace(
        hour=ctx.rng.randrange(8, 18), minute=ctx.rng.choice((0, 30)), second=0, microsecond=0
    )


def _generate_events(
    ctx: _Ctx, people: list[_Person], zipf: _Zipf, days: int, n_events: int, tz: str
) -> dict[str, list[dict]]:
    """Return {calendar_id: [event bodies]} for the primary, a secondary and a shared calendar."""
    rng = ctx.rng
    primary = ctx.email if ctx.provider == "google" else _custom_folder_id(ctx.mb_hash, 200)
    secondary = (
        f"c_{hashlib.sha256(ctx.mb_hash + b'2').hexdigest()[:26]}@group.calendar.google.com"
        if ctx.provider == "google"
        else _custom_folder_id(ctx.mb_hash, 201)
    )
    shared = (
        f"teammate.{hashlib.sha256(ctx.mb_hash).hexdigest()[:6]}@acme-corp.com"
        if ctx.provider == "google"
        else _custom_folder_id(ctx.mb_hash, 202)
    )
    out: dict[str, list[dict]] = {primary: [], secondary: [], shared: []}
    span = days * _DAY_MS
    # Forced cases first so even small mailboxes carry each awkward calendar case.
    plan = [
        "one_to_one",
        "group",
        "declined_by_me",
        "declined_by_them",
        "cancelled",
        "all_day",
        "other_tz",
        "future",
        "future",
        "tentative",
        "recurring",
    ]
    while len(plan) < n_events:
        plan.append(
            rng.choices(
                (
                    "one_to_one",
                    "group",
                    "declined_by_me",
                    "declined_by_them",
                    "cancelled",
                    "all_day",
                    "other_tz",
                    "future",
                    "tentative",
                    "recurring",
                    "shared",
                ),
                weights=(40, 15, 4, 4, 4, 3, 6, 8, 4, 1, 3),
            )[0]
        )
    for case in plan:
        ev_tz = rng.choice(_EVENT_ZONES) if case == "other_tz" else tz
        if case == "future":
            ms = ctx.now_ms + rng.randrange(_HOUR_MS, 45 * _DAY_MS)
        else:
            ms = ctx.now_ms - rng.randrange(_DAY_MS, span)
        start = _slot(ctx, ms, ev_tz)
        cal = secondary if rng.random() < 0.1 else primary
        kw: dict[str, Any] = {"tz": ev_tz, "minutes": rng.choice((30, 30, 45, 60, 90))}
        if case == "group":
            kw["size"] = rng.randrange(2, 6)
        elif case == "declined_by_me":
            kw.update(user_org=False, user_resp="declined")
        elif case == "declined_by_them":
            kw.update(user_org=True, their_resp="declined")
        elif case == "tentative":
            kw.update(user_org=False, user_resp="tentative")
        ev = _make_event(ctx, people, zipf, start, **kw)
        ev["summary"] += f" ({case})"
        if case == "cancelled":
            ev["status"] = "cancelled"
        if case == "all_day":
            day = start.date()
            ev.update(
                is_all_day=True,
                start={"date": day.isoformat()},
                end={"date": (day + timedelta(days=1)).isoformat()},
                summary="Offsite (all_day)",
            )
        if case == "shared":
            cal = shared  # someone else's calendar: never counts as the user's meeting
        out[cal].append(ev)
        if case == "recurring":
            out[primary] += _recurring(ctx, people, zipf, tz)
    return out


def _recurring(ctx: _Ctx, people: list[_Person], zipf: _Zipf, tz: str) -> list[dict]:
    """A weekly series running from ~10 weeks ago into the future, with one moved and one
    cancelled occurrence stored as exception rows (recurring_event_id + original_start)."""
    rng = ctx.rng
    first = _slot(ctx, ctx.now_ms - rng.randrange(8, 12) * 7 * _DAY_MS, tz)
    master = _make_event(
        ctx, people, zipf, first, tz=tz, minutes=30, user_org=True, summary="Weekly 1:1 (recurring)"
    )
    count = rng.randrange(16, 24)
    master["recurrence"] = [f"RRULE:FREQ=WEEKLY;COUNT={count}"]
    exceptions = []
    for k, kind in ((2, "moved"), (4, "cancelled")):
        orig = first + timedelta(weeks=k)
        orig_utc = orig.astimezone(UTC)
        if ctx.provider == "google":
            eid = f"{master['id']}_{orig_utc:%Y%m%dT%H%M%SZ}"
        else:
            eid = _event_id(ctx)
        exc = json.loads(json.dumps(master))
        exc.update(
            id=eid,
            recurrence=[],
            recurring_event_id=master["id"],
            original_start={"date_time": _iso(orig), "time_zone": tz},
        )
        if kind == "moved":
            new = orig + timedelta(days=1, hours=2)
            exc["start"] = {"date_time": _iso(new), "time_zone": tz}
            exc["end"] = {"date_time": _iso(new + timedelta(minutes=30)), "time_zone": tz}
            exc["summary"] = "Weekly 1:1 (moved)"
        else:
            exc["status"] = "cancelled"
        exceptions.append(exc)
    return [master, *exceptions]


# -- entry points ----------------------------------------------------------------------------


def _ensure_facts(store: Store) -> None:
    with store.lock:
        store.connection().executescript(_FACT_SCHEMA)


def _user(rng: random.Random, email: str, display_name: str | None) -> tuple[_Person, list[str]]:
    local, _, domain = email.partition("@")
    first, last = rng.choice(_FIRST[:30]), rng.choice(_LAST[:20])
    name = display_name or f"{first} {last}"
    personal = f"{_ascii(first)}.{_ascii(last).replace(chr(39), '')}@{rng.choice(_FREE)}"
    work_alias = f"{local}.alias@{domain}"
    addrs = [email, personal, work_alias]
    wire_name = _wire_name(rng, name)
    user = _Person("me", name, "self", addrs, list(addrs), [wire_name] * len(addrs))
    plus = [f"{local}+news@{domain}", f"{local}+Receipts@{domain}"]
    return user, plus


def generate_mailbox(
    store: Store,
    *,
    email: str,
    provider: str,
    seed: int,
    messages: int,
    contacts: int | None = None,
    days: int = 730,
    now_ms: int | None = None,
    display_name: str | None = None,
    time_zone: str = "Europe/Berlin",
) -> dict:
    """Create and fill a mailbox deterministically; return a summary dict.

    ``now_ms`` defaults to the wall clock: pass it for bit-identical repeat runs.
    """
    if provider not in ("google", "microsoft"):
        raise ValueError(f"unknown provider {provider!r}")
    if messages < 1:
        raise ValueError("messages must be >= 1")
    email = email.lower()
    now = now_ms if now_ms is not None else _wall_ms()
    rng = random.Random(seed)
    _ensure_facts(store)
    user, plus = _user(rng, email, display_name)
    n_contacts = contacts if contacts is not None else max(5, min(20_000, messages // 8))
    people = _make_people(rng, n_contacts, email.partition("@")[2])
    fixed = _fixed_senders()
    aliases = [
        {"email": a, "display_name": user.name, "is_primary": i == 0, "treat_as_alias": i != 1}
        for i, a in enumerate(user.addresses)
    ]
    store.create_mailbox(
        email,
        provider=provider,
        display_name=user.name,
        aliases=aliases,
        time_zone=time_zone,
        seed=seed,
        created_ms=now - days * _DAY_MS,
    )
    mb_hash = hashlib.sha256(f"{email}|{seed}".encode()).digest()[:16]
    ctx = _Ctx(store, email, provider, rng, now, user, plus, mb_hash=mb_hash)
    _write_people(store, email, [user, *people, *fixed], plus)
    label_folder = _write_labels(ctx)

    zipf = _Zipf(len(people))
    lists = [p for p in fixed if p.kind == "list"]
    bulk = [p for p in fixed if p.kind == "bulk"]
    auto = [p for p in fixed if p.kind == "automated"]
    cal_sender = next(p for p in fixed if p.kind == "calendar")
    span = days * _DAY_MS
    # Forced kinds first so even small mailboxes show each awkward case.
    forced = [
        "person",
        "person",
        "list",
        "bulk",
        "automated",
        "invite",
        "self",
        "spam",
        "ooo",
        "mass",
        "bcc_sent",
        "group",
        "list_reply",
    ]
    kinds = ("person", "list", "bulk", "automated", "invite", "self", "spam", "ooo", "list_reply")
    weights = (62, 12, 9, 8, 2, 1, 3, 1, 1)
    remaining = messages
    spam_n = 0
    while remaining > 0:
        kind = forced.pop(0) if forced else rng.choices(kinds, weights=weights)[0]
        # Recency bias: more mail lately, like a real mailbox.
        start = now - int(span * rng.random() ** 1.4) - 60_000
        if kind in ("person", "mass", "bcc_sent", "group"):
            used = _person_thread(
                ctx,
                people,
                zipf,
                start,
                remaining,
                label_folder,
                force=None if kind == "person" else kind,
            )
        else:
            sender = {
                "list": lambda: rng.choice(lists),
                "list_reply": lambda: rng.choice(lists),
                "bulk": lambda: rng.choice(bulk),
                "automated": lambda: rng.choice(auto),
                "invite": lambda: cal_sender,
                "ooo": lambda: people[zipf.pick(rng)],
                "self": lambda: user,
            }.get(kind)
            if sender is None:
                spam_n += 1
                s = _Person(
                    f"s{spam_n}",
                    "Prize Desk",
                    "spammer",
                    [f"winner{spam_n}@prizes.example"],
                    [f"winner{spam_n}@prizes.example"],
                    [""],
                )
            else:
                s = sender()
            poster = people[zipf.pick(rng)] if kind in ("list", "invite") else None
            _simple(ctx, s, start, kind, label_folder, poster=poster)
            used = 1
        remaining -= used
    _flush(ctx)

    calendars = _write_calendars(
        ctx, people, zipf, days, max(11, min(messages // 25, 5000)), time_zone
    )
    summary = {
        "email": email,
        "provider": provider,
        "seed": seed,
        "now_ms": now,
        "messages": ctx.written,
        "contacts": n_contacts,
        "kinds": dict(sorted(ctx.kinds.items())),
        "calendars": calendars,
        "aliases": user.addresses,
        "label_folder": label_folder,
    }
    store.update_mailbox(email, generator=summary)
    mb = store.get_mailbox(email)
    assert mb is not None
    summary["history_id"] = mb["history_id"]
    summary["change_seq"] = mb["change_seq"]
    return summary


def _write_people(store: Store, email: str, people: list[_Person], plus: list[str]) -> None:
    rows_p, rows_a = [], []
    for p in people:
        is_person = p.kind in ("person", "spammer")
        rows_p.append((email, p.person_id, p.name, p.kind, int(is_person)))
        for a, w in zip(p.addresses, p.wires, strict=True):
            rows_a.append((email, a, p.person_id, w or a))
    for a in plus:
        rows_a.append((email, canonical_address(a), "me", a))
    with store.transaction() as conn:
        conn.executemany("INSERT OR REPLACE INTO fact_person VALUES (?,?,?,?,?)", rows_p)
        conn.executemany("INSERT OR REPLACE INTO fact_address VALUES (?,?,?,?)", rows_a)


def _write_labels(ctx: _Ctx) -> dict[str, str]:
    """Register system/user labels and Graph folders; return user label -> custom folder id."""
    store, email = ctx.store, ctx.email
    for lid in (
        "INBOX",
        "SENT",
        "DRAFT",
        "SPAM",
        "TRASH",
        "UNREAD",
        "IMPORTANT",
        "STARRED",
        "CATEGORY_PERSONAL",
        "CATEGORY_PROMOTIONS",
        "CATEGORY_UPDATES",
        "CATEGORY_FORUMS",
        "CATEGORY_SOCIAL",
    ):
        store.put_label(email, id=lid, name=lid, type="system")
    for fid, name in (
        ("inbox", "Inbox"),
        ("sentitems", "Sent Items"),
        ("drafts", "Drafts"),
        ("junkemail", "Junk Email"),
        ("deleteditems", "Deleted Items"),
        ("archive", "Archive"),
    ):
        store.put_folder(email, id=fid, display_name=name, well_known_name=fid)
    label_folder = {}
    for n, name in enumerate(("Projects", "Receipts", "Family", "Travel/2024", "Ärzte"), start=1):
        lid = f"Label_{n}"
        store.put_label(email, id=lid, name=name, type="user")
        fid = _custom_folder_id(ctx.mb_hash, n)
        store.put_folder(email, id=fid, display_name=name)
        label_folder[lid] = fid
        ctx.user_labels.append(lid)
    return label_folder


def _write_calendars(
    ctx: _Ctx, people: list[_Person], zipf: _Zipf, days: int, n_events: int, tz: str
) -> list[str]:
    events = _generate_events(ctx, people, zipf, days, n_events, tz)
    ids = list(events)
    roles = [
        ("Calendar" if ctx.provider == "microsoft" else ctx.email, True, "owner"),
        ("Side project", False, "owner"),
        ("Teammate", False, "reader"),
    ]
    for cal_id, (summary, primary, role) in zip(ids, roles, strict=True):
        ctx.store.upsert_calendar(
            ctx.email,
            id=cal_id,
            summary=summary,
            time_zone=tz,
            is_primary=primary,
            access_role=role,
        )
        ctx.store.put_events(ctx.email, cal_id, events[cal_id])
    return ids


# -- activity --------------------------------------------------------------------------------


def _load_people(store: Store, email: str) -> tuple[_Person, list[str], list[_Person]]:
    conn = store.connection()
    persons: dict[str, _Person] = {}
    for pid, name, kind in conn.execute(
        "SELECT person_id, display_name, kind FROM fact_person WHERE mailbox = ? "
        "ORDER BY person_id",
        (email,),
    ):
        persons[pid] = _Person(pid, name, kind, [], [], [])
    plus = []
    for addr, pid, wire in conn.execute(
        "SELECT address, person_id, wire FROM fact_address WHERE mailbox = ? ORDER BY rowid",
        (email,),
    ):
        p = persons[pid]
        if pid == "me" and "+" in addr.partition("@")[0]:
            plus.append(wire)
            continue
        p.addresses.append(addr)
        p.wires.append(wire)
        p.wire_names.append(p.name if p.name.isascii() else _b_word(p.name))
    people = [p for p in persons.values() if p.kind == "person"]
    return persons["me"], plus, people


def _pick_rows(store: Store, email: str, rng: random.Random, n: int, where: str) -> list[dict]:
    """Pick up to n distinct random live messages without listing the mailbox."""
    conn = store.connection()
    total = conn.execute(
        f"SELECT count(*) FROM message WHERE mailbox = ? AND is_deleted = 0 AND {where}",  # noqa: S608
        (email,),
    ).fetchone()[0]
    picked: dict[str, dict] = {}
    for _ in range(n * 3):
        if len(picked) >= n or total == 0:
            break
        row = conn.execute(
            f"SELECT id, thread_id, labels, folder FROM message WHERE mailbox = ? "  # noqa: S608
            f"AND is_deleted = 0 AND {where} ORDER BY internal_ms DESC, id LIMIT 1 OFFSET ?",
            (email, min(total - 1, int(total * rng.random() ** 2))),
        ).fetchone()
        if row and row[0] not in picked:
            picked[row[0]] = {
                "id": row[0],
                "thread_id": row[1],
                "labels": row[2].split(),
                "folder": row[3],
            }
    return list(picked.values())


def generate_activity(
    store: Store,
    email: str,
    *,
    seed: int,
    new: int = 0,
    deleted: int = 0,
    label_changes: int = 0,
    moved: int = 0,
    events_changed: int = 0,
    now_ms: int | None = None,
) -> dict:
    """Mutate a generated mailbox like a living one, through the store's mutation API (so
    history ids and change_seq move as they would); return what was done."""
    email = email.lower()
    mb = store.get_mailbox(email)
    if mb is None:
        raise KeyError(email)
    now = now_ms if now_ms is not None else _wall_ms()
    rng = random.Random(seed)
    user, plus, people = _load_people(store, email)
    zipf = _Zipf(max(1, len(people)))
    mb_hash = hashlib.sha256(f"{email}|{mb['seed']}|{seed}".encode()).digest()[:16]
    ctx = _Ctx(
        store, email, mb["provider"], rng, now, user, plus, mb_hash=mb_hash, record_history=True
    )
    # Continue the id sequence past existing messages so Gmail ids stay unique.
    ctx.seq = store.count_messages(email) + rng.randrange(1 << 16, 1 << 19)
    ctx.thread_seq = ctx.seq
    label_folder = dict((mb.get("generator") or {}).get("label_folder") or {})
    ctx.user_labels = list(label_folder)
    done: dict[str, Any] = {
        "new": 0,
        "deleted": [],
        "label_changes": [],
        "moved": [],
        "events_changed": [],
    }
    # New mail: about half continue an existing person thread (a new reply), half start fresh.
    while done["new"] < new:
        budget = new - done["new"]
        if rng.random() < 0.5:
            done["new"] += _reply_existing(ctx, people, zipf, label_folder)
        else:
            done["new"] += _person_thread(
                ctx,
                people,
                zipf,
                now - rng.randrange(1, 6 * _HOUR_MS),
                min(budget, 2),
                label_folder,
            )
    _flush(ctx)
    for row in _pick_rows(store, email, rng, deleted, "1"):
        store.delete_message(email, row["id"])
        done["deleted"].append(row["id"])
    for row in _pick_rows(store, email, rng, label_changes, "labels NOT LIKE '% DRAFT %'"):
        action = rng.choice(("archive", "read", "trash", "spam", "unread", "star"))
        add, remove = {
            "archive": ((), ("INBOX",)),
            "read": ((), ("UNREAD",)),
            "unread": (("UNREAD",), ()),
            "star": (("STARRED",), ()),
            "trash": (("TRASH",), ("INBOX",)),
            "spam": (("SPAM",), ("INBOX",)),
        }[action]
        store.modify_labels(email, row["id"], add=add, remove=remove)
        done["label_changes"].append([row["id"], action])
    folders = ["archive", "deleteditems", "junkemail", "inbox", *label_folder.values()]
    for row in _pick_rows(store, email, rng, moved, "folder != 'drafts'"):
        target = rng.choice([f for f in folders if f != row["folder"]])
        store.move_message(email, row["id"], folder=target)
        done["moved"].append([row["id"], target])
    if events_changed:
        done["events_changed"] = _change_events(ctx, people, zipf, events_changed)
    mb = store.get_mailbox(email)
    assert mb is not None
    done["history_id"] = mb["history_id"]
    done["change_seq"] = mb["change_seq"]
    return done


def _reply_existing(ctx: _Ctx, people: list[_Person], zipf: _Zipf, label_folder: dict) -> int:
    """Append one message to a recent person thread, both ways, keeping the reply chain."""
    conn = ctx.store.connection()
    rows = conn.execute(
        "SELECT f.thread_id, f.subject, f.message_id_header, p.address, p.direction "
        "FROM fact_message f JOIN fact_party p ON p.mailbox = f.mailbox "
        "AND p.message_id = f.message_id JOIN message m ON m.mailbox = f.mailbox "
        "AND m.id = f.message_id WHERE f.mailbox = ? AND m.is_deleted = 0 "
        "AND f.kind IN ('person_in', 'person_out') ORDER BY m.internal_ms DESC, m.id LIMIT 50",
        (ctx.email,),
    ).fetchall()
    if not rows:
        return _person_thread(ctx, people, zipf, ctx.now_ms - _HOUR_MS, 1, label_folder)
    tid, subject, last_mid, addr, direction = ctx.rng.choice(rows)
    refs = [
        r[0]
        for r in conn.execute(
            "SELECT f.message_id_header FROM fact_message f JOIN message m ON m.mailbox = "
            "f.mailbox AND m.id = f.message_id WHERE f.mailbox = ? AND f.thread_id = ? "
            "ORDER BY m.internal_ms, m.id",
            (ctx.email, tid),
        )
    ]
    wire = conn.execute(
        "SELECT wire FROM fact_address WHERE mailbox = ? AND address = ?", (ctx.email, addr)
    ).fetchone()[0]
    quirks: list[str] = ["reply_new"]
    ms = ctx.now_ms - ctx.rng.randrange(1000, _HOUR_MS)
    inbound = direction == "out"  # they answer us, or we answer them
    me = _fmt(ctx.user.wire_names[0], ctx.user.wires[0])
    if inbound:
        headers = [["From", wire], ["To", me]]
        labels = ["INBOX", "UNREAD", "CATEGORY_PERSONAL"]
        parties = [(addr, "in")]
        kind = "person_in"
    else:
        headers = [["From", _user_from(ctx, quirks)], ["To", wire]]
        labels = ["SENT"]
        parties = [(addr, "out")]
        kind = "person_out"
    headers.append(["Subject", "Re: " + (subject or "")])
    headers += _date_header(ctx, ms, quirks)
    mid = _new_mid(ctx, wire if inbound else ctx.user.wires[0])
    headers += [
        ["Message-ID", mid],
        ["In-Reply-To", refs[-1] if refs else last_mid],
        ["References", " ".join(refs[-10:])],
    ]
    _emit(
        ctx,
        ms=ms,
        thread_id=tid,
        msg_id=_message_id(ctx, ms),
        headers=headers,
        labels=labels,
        kind=kind,
        quirks=quirks,
        parties=parties,
        subject=subject or "",
        mid_header=mid,
        label_folder=label_folder,
    )
    return 1


def _change_events(ctx: _Ctx, people: list[_Person], zipf: _Zipf, n: int) -> list[list[str]]:
    """New future meetings, moved meetings, cancellations and response changes."""
    store, rng, email = ctx.store, ctx.rng, ctx.email
    cals = [c for c in store.list_calendars(email) if c["access_role"] == "owner"]
    primary = cals[0]
    done = []
    conn = store.connection()
    for _ in range(n):
        action = rng.choice(("new", "move", "cancel", "respond"))
        if action == "new":
            start = _slot(
                ctx, ctx.now_ms + rng.randrange(_HOUR_MS, 20 * _DAY_MS), primary["time_zone"]
            )
            ev = _make_event(ctx, people, zipf, start, tz=primary["time_zone"])
            store.put_event(email, primary["id"], ev, now_ms=ctx.now_ms)
            done.append([ev["id"], "new"])
            continue
        count = conn.execute(
            "SELECT count(*) FROM event WHERE mailbox = ? AND calendar_id = ? AND is_deleted = 0 "
            "AND recurring_event_id IS NULL",
            (email, primary["id"]),
        ).fetchone()[0]
        if not count:
            continue
        eid = conn.execute(
            "SELECT id FROM event WHERE mailbox = ? AND calendar_id = ? AND is_deleted = 0 "
            "AND recurring_event_id IS NULL ORDER BY start_ms DESC, id LIMIT 1 OFFSET ?",
            (email, primary["id"], rng.randrange(count)),
        ).fetchone()[0]
        body = store.get_event(email, primary["id"], eid)
        assert body is not None
        if action == "cancel":
            store.delete_event(email, primary["id"], eid, now_ms=ctx.now_ms)
        elif action == "move" and not body.get("is_all_day"):
            shift = timedelta(days=rng.choice((-2, -1, 1, 2, 7)))
            for key in ("start", "end"):
                dt = datetime.fromisoformat(body[key]["date_time"]) + shift
                body[key] = {**body[key], "date_time": dt.isoformat()}
            store.put_event(email, primary["id"], body, now_ms=ctx.now_ms)
        else:
            for att in body["attendees"]:
                if not att["is_organizer"] and not att["resource"]:
                    att["response"] = rng.choice(("accepted", "declined", "tentative"))
            store.put_event(email, primary["id"], body, now_ms=ctx.now_ms)
        done.append([eid, action])
    return done


def iter_fact_messages(store: Store, email: str, kind: str) -> Iterator[str]:
    """Yield message ids of one generated kind (tests and admin summaries)."""
    for (mid,) in store.connection().execute(
        "SELECT message_id FROM fact_message WHERE mailbox = ? AND kind = ? ORDER BY message_id",
        (email.lower(), kind),
    ):
        yield mid
