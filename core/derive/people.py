"""Who is a person: own addresses, automated senders, lists, companies, identity merge.

Pure rules (no I/O). Each reads DEFINITIONS.md ("Who is a person", "Which messages count"):

* **Own addresses.** The user is never a contact: every address the providers report (primary,
  Gmail sendAs, Graph proxyAddresses) and plus-addresses of those (`me+tag@x.org`). Gmail's
  dot rule applies only where it truly holds — gmail.com / googlemail.com mailboxes, where
  `a.da@gmail.com` *is* `ada@gmail.com`; a corporate `a.da@acme.com` is somebody else.
* **Automated addresses** (not people, whoever writes to them): no-reply / donotreply /
  mailer-daemon / postmaster / bounce / notification(s) / calendar-notification style local
  parts, and group names such as `undisclosed-recipients`. Matched on the local part's words, so
  `jira-noreply@…` is automated but `noreen@…` is not.
* **List addresses**: the address a List-Id names (RFC 2919 ids are conventionally the list
  address with `@` written as `.`: `python-dev.python.org` ↔ `python-dev@python.org`).
* **Bulk / auto-generated senders** (a reading where DEFINITIONS.md is silent on *addresses*,
  it only names headers): an address the user has never written to, every one of whose
  messages carried Precedence bulk/junk, List-Unsubscribe without addressing the user, or
  Auto-Submitted other than `no` / `auto-replied`. An out-of-office reply (`auto-replied`) from
  a colleague does not make the colleague a robot; it only keeps that one message from counting.
* **Counting messages** (`counts_as_inbound`): a message from a person counts as inbound unless
  it is auto-generated (any Auto-Submitted other than `no`, including auto-replies — a robot
  wrote it), bulk (Precedence bulk/junk), or list mail the user merely received: List-Id or
  Precedence list, or List-Unsubscribe, *unless the user is personally addressed* in To/Cc —
  a colleague's reply-all that reaches you through a group still is them writing to you.
* **Company**: the registrable-looking domain (last two labels, three under a two-letter
  second-level such as `co.uk`), never a free-mail or ISP domain.
* **Identity merge**: two addresses are one person when the evidence is strong — they appear in
  the same thread *and* carry the same normalised display name of at least two words ("Lovelace,
  Ada" = "ada  LOVELACE"). Merged addresses keep their own contact rows (DEFINITIONS.md keys a
  contact by address) and share a `person_key`: the smallest address of the group.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})

FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "hotmail.co.uk",
        "hotmail.de", "hotmail.fr", "live.com", "live.de", "msn.com", "yahoo.com",
        "yahoo.co.uk", "yahoo.de", "yahoo.fr", "yahoo.co.jp", "ymail.com", "rocketmail.com",
        "aol.com", "icloud.com", "me.com", "mac.com", "proton.me", "protonmail.com", "pm.me",
        "gmx.de", "gmx.net", "gmx.com", "web.de", "t-online.de", "freenet.de", "posteo.de",
        "mailbox.org", "orange.fr", "free.fr", "laposte.net", "wanadoo.fr", "sfr.fr",
        "libero.it", "virgilio.it", "mail.ru", "yandex.ru", "yandex.com", "qq.com",
        "163.com", "126.com", "naver.com", "hanmail.net", "zoho.com", "fastmail.com",
        "fastmail.fm", "hey.com", "tutanota.com", "tuta.io", "comcast.net", "verizon.net",
        "att.net", "btinternet.com", "sky.com", "bigpond.com", "shaw.ca", "rogers.com",
        "seznam.cz", "wp.pl", "o2.pl", "interia.pl", "bluewin.ch", "telenet.be", "ziggo.nl",
        "kpnmail.nl", "uol.com.br", "bol.com.br", "terra.com.br", "rediffmail.com",
        "yahoo.co.in", "outlook.de", "outlook.fr", "live.co.uk", "googlegroups.com",
    }
)  # fmt: skip

# Words that mark a local part as a machine. Split on . - _ + so `jira-noreply` matches.
_AUTOMATED_WORDS = frozenset(
    {
        "noreply", "no-reply", "no_reply", "donotreply", "do-not-reply", "do_not_reply",
        "mailer-daemon", "mailerdaemon", "postmaster", "bounce", "bounces", "notification",
        "notifications", "notify", "calendar-notification", "autoreply", "auto-reply",
        "daemon", "undisclosed-recipients", "undisclosed", "unsubscribe",
    }
)  # fmt: skip
_AUTOMATED_JOINED = ("noreply", "donotreply", "mailerdaemon", "calendarnotification")
_SPLIT = re.compile(r"[.+_\-]+")
_TWO_LETTER_SLD = frozenset({"co", "com", "org", "net", "ac", "gov", "edu", "ne", "or", "go"})

PERSON = "person"
LIST = "list"
AUTOMATED = "automated"


# Own addresses


def mailbox_key(address: str) -> str:
    """Return the key under which the provider delivers to `address` (plus tag and, on Gmail,
    dots removed); two addresses with the same key reach the same mailbox."""
    local, _, domain = address.rpartition("@")
    local = local.split("+", 1)[0] or local
    if domain in GMAIL_DOMAINS:
        local = local.replace(".", "") or local
        domain = "gmail.com"
    return f"{local}@{domain}"


@dataclass(frozen=True)
class OwnAddresses:
    """The user's own addresses across all connected accounts."""

    keys: frozenset[str]

    @classmethod
    def of(cls, addresses: Iterable[str | None]) -> OwnAddresses:
        return cls(frozenset(mailbox_key(a.strip().lower()) for a in addresses if a and "@" in a))

    def __contains__(self, address: object) -> bool:
        return isinstance(address, str) and "@" in address and mailbox_key(address) in self.keys


# Automated and list addresses


def is_automated_address(address: str) -> bool:
    """Return True for no-reply, notification, daemon and group-name style addresses."""
    local = address.rpartition("@")[0]
    if local in _AUTOMATED_WORDS:
        return True
    words = set(_SPLIT.split(local))
    if words & _AUTOMATED_WORDS:
        return True
    # `jira-noreply` splits into jira/noreply; also catch `no-reply` split into no/reply.
    joined = local.replace("-", "").replace("_", "").replace(".", "")
    return any(joined.endswith(w) or joined.startswith(w) for w in _AUTOMATED_JOINED)


def list_id_value(list_id: str | None) -> str | None:
    """Return the id of a List-Id header (`Name <id>` → `id`), lower-cased, or None."""
    if not list_id:
        return None
    value = list_id.strip()
    if "<" in value:
        value = value.rpartition("<")[2].partition(">")[0]
    value = value.strip().strip("<>").strip().lower()
    return value or None


def is_list_address(address: str, list_id: str | None) -> bool:
    """Return True when `address` is the address the List-Id header names."""
    value = list_id_value(list_id)
    if value is None or "@" not in address:
        return False
    return value == address.replace("@", ".", 1) or value == address


# Messages


def is_auto_submitted(auto_submitted: str | None) -> bool:
    """Return True for Auto-Submitted other than `no` (RFC 3834)."""
    if auto_submitted is None:
        return False
    value = auto_submitted.strip().lower().split(";", 1)[0].strip()
    return bool(value) and value != "no"


def is_bulk_precedence(precedence: str | None) -> bool:
    return (precedence or "").strip().lower() in ("bulk", "junk")


def is_list_precedence(precedence: str | None) -> bool:
    return (precedence or "").strip().lower() == "list"


@dataclass(frozen=True)
class MessageTraits:
    """The header facts of one message that decide whether it is a person writing."""

    list_id: str | None = None
    precedence: str | None = None
    auto_submitted: str | None = None
    has_list_unsubscribe: bool = False
    user_addressed: bool = False  # one of the user's addresses is in To or Cc


def counts_as_inbound(traits: MessageTraits) -> bool:
    """Return True when a message from a person is that person writing to the user."""
    if is_auto_submitted(traits.auto_submitted) or is_bulk_precedence(traits.precedence):
        return False
    listed = is_list_mail(traits) or traits.has_list_unsubscribe
    return not listed or traits.user_addressed


def is_machine_message(traits: MessageTraits) -> bool:
    """Return True when the message itself says a machine or a mass mailer sent it.

    Auto-replies are left out: a person's out-of-office says nothing about the person.
    """
    auto = (traits.auto_submitted or "").strip().lower().split(";", 1)[0].strip()
    if is_auto_submitted(auto) and auto != "auto-replied":
        return True
    return is_bulk_precedence(traits.precedence) or (
        traits.has_list_unsubscribe and not traits.user_addressed and not is_list_mail(traits)
    )


def is_list_mail(traits: MessageTraits) -> bool:
    """Return True for mail that came through a mailing list (List-Id or Precedence: list)."""
    return list_id_value(traits.list_id) is not None or is_list_precedence(traits.precedence)


def says_about_sender(traits: MessageTraits) -> bool:
    """Return False for list mail: its From is whoever posted, a person or not, so a post
    neither makes the poster a robot nor vouches for them (unless it is also machine-sent)."""
    return is_machine_message(traits) or not is_list_mail(traits)


@dataclass
class SenderTally:
    """What one address did, for classifying it (see `classify`)."""

    sent: int = 0  # messages from it (as From) the user received, list posts aside
    machine: int = 0  # of those, how many look machine-sent (`is_machine_message`)
    auto: int = 0  # of those, how many carried Auto-Submitted (not auto-replied)
    written_to: bool = False  # the user has written to it
    is_list: bool = False  # named by a List-Id


def classify(address: str, tally: SenderTally | None = None) -> str:
    """Return `person`, `list` or `automated` for a non-own address."""
    if is_automated_address(address):
        return AUTOMATED
    tally = tally or SenderTally()
    if tally.is_list:
        return LIST
    if not tally.written_to and tally.sent > 0 and tally.machine == tally.sent:
        return AUTOMATED if tally.auto * 2 > tally.sent else LIST
    return PERSON


# Names and companies


def normalise_name(name: str | None) -> str | None:
    """Return a comparable form of a display name ("Lovelace, Ada" → "ada lovelace")."""
    if not name:
        return None
    text = unicodedata.normalize("NFKC", name).strip().strip("\"'").strip()
    if "@" in text or "=?" in text:
        return None  # an address or an undecoded encoded-word is no name
    if text.count(",") == 1:
        last, first = (p.strip() for p in text.split(","))
        text = f"{first} {last}"
    words = re.sub(r"[^\w\s'-]", " ", text.casefold()).split()
    return " ".join(words) if words else None


def is_strong_name(normalised: str | None) -> bool:
    """Return True when a name is specific enough to merge identities on (two full words)."""
    if not normalised:
        return False
    words = normalised.split()
    return len(words) >= 2 and all(len(w) >= 2 for w in words)


def best_display_name(names: Mapping[str, int]) -> str | None:
    """Return the most used usable display name (ties: the longer, then alphabetical)."""
    usable = [
        (count, name.strip())
        for name, count in names.items()
        if name and name.strip() and normalise_name(name) is not None
    ]
    if not usable:
        return None
    usable.sort(key=lambda item: (-item[0], -len(item[1]), item[1]))
    return usable[0][1]


def company_of(address: str) -> str | None:
    """Return the company a domain stands for, or None for free-mail and odd domains."""
    domain = address.rpartition("@")[2].strip(".").lower()
    if not domain or domain in FREE_MAIL_DOMAINS:
        return None
    labels = [label for label in domain.split(".") if label]
    if len(labels) < 2:
        return None
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _TWO_LETTER_SLD else 2
    registrable = ".".join(labels[-keep:])
    if registrable in FREE_MAIL_DOMAINS:
        return None
    return registrable


# Identity merge


def person_keys(
    names: Mapping[str, Iterable[str | None]], threads: Mapping[str, Iterable[object]]
) -> dict[str, str]:
    """Group addresses into persons; return address → person key (smallest address of its group).

    `names[a]` are the display names seen on address `a`; `threads[a]` the thread keys it
    appears in. Two addresses join when they share a thread and a strong normalised name.
    """
    parent: dict[str, str] = {a: a for a in names}
    parent.update({a: a for a in threads if a not in parent})

    def find(a: str) -> str:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    strong: dict[str, set[str]] = {}
    for address, seen in names.items():
        for name in seen:
            norm = normalise_name(name)
            if is_strong_name(norm):
                strong.setdefault(address, set()).add(norm)  # type: ignore[arg-type]
    by_name: dict[str, list[str]] = {}
    for address, norms in strong.items():
        for norm in norms:
            by_name.setdefault(norm, []).append(address)
    # Per name, the first address seen in each thread; every later one in that thread joins it.
    # Linear in (names x threads), not quadratic in how many people share a common name.
    thread_sets = {a: sorted(set(map(str, t))) for a, t in threads.items()}
    for norm in sorted(by_name):
        first_in_thread: dict[str, str] = {}
        for address in sorted(set(by_name[norm])):
            for thread in thread_sets.get(address, ()):
                other = first_in_thread.setdefault(thread, address)
                ra, rb = find(other), find(address)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    return {a: find(a) for a in parent}
