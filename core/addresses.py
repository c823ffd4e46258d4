"""Canonical addresses (DEFINITIONS.md, "Who is a person").

The canonical form of an address is its addr-spec with local part and domain lower-cased,
surrounding whitespace and angle brackets removed, and an internationalised domain stored in one
form — the Unicode (U-label) form — whether the header carried `xn--` punycode or Unicode.
Display names, comments and quoting are not part of it. Gmail's dot/plus rules are *not* applied
here: they hold only for gmail.com mailboxes and only for matching, never for storage.
Anything that is not an address (`undisclosed-recipients:;`, a bare word) canonicalises to None.
"""

from __future__ import annotations

import contextlib
import encodings.idna
import unicodedata

MAX_ADDRESS_LENGTH = 254


def canonical_address(raw: str | None) -> str | None:
    """Return the canonical form of one addr-spec, or None if it is not an address."""
    if not raw:
        return None
    value = unicodedata.normalize("NFC", raw).strip().strip("<>").strip()
    if value.lower().startswith("mailto:"):
        value = value[7:]
    local, at, domain = value.rpartition("@")
    domain = domain.rstrip(".")
    quoted = len(local) >= 2 and local.startswith('"') and local.endswith('"')
    if not at or not local or not domain or any(ch.isspace() for ch in domain):
        return None
    if not quoted and any(ch.isspace() for ch in local):
        return None  # a quoted local part ("Ann Smith"@x.org) may hold spaces; nothing else
    if "." not in domain:
        return None  # no dotless hostnames in mail between people
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        return None  # a control character (NUL, ...) is damage, not an address
    address = f"{local.lower()}@{_domain_ulabel(domain)}"
    # RFC 5321 §4.5.3.1.3: a path holds at most 256 octets, so an address at most 254.
    return address if len(address) <= MAX_ADDRESS_LENGTH else None


def _domain_ulabel(domain: str) -> str:
    labels = []
    for label in domain.lower().split("."):
        if label.startswith("xn--"):
            with contextlib.suppress(UnicodeError):  # invalid punycode stays as written
                label = encodings.idna.ToUnicode(label)
        labels.append(label)
    return ".".join(labels)


def domain_of(address: str) -> str:
    return address.rpartition("@")[2]
