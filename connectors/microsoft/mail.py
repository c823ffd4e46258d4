"""Graph mail: which folders are synced, what is asked for, and Graph message → MessageRecord.

Pure functions only (no I/O); sync.py does the requests.

**Folders.** Message delta is per folder (https://learn.microsoft.com/graph/delta-query-messages:
"Delta query is a per-folder operation"), so each synced folder is its own stream
"mail:<folderId>". Synced: every folder under the mailbox root (`/me/mailFolders`, recursively
through `childFolders`) that can hold the user's real correspondence — Inbox, Sent Items,
Archive, Clutter/Scheduled and every user folder. Left out, with their whole subtrees:

- `junkemail`, `deleteditems`, `drafts`: never counted (DEFINITIONS.md "Which messages count"),
  so reading them only spends quota; a message moved out of them shows up in its new folder.
- `outbox`: unsent mail in transit; it reaches Sent Items once sent.
- `conversationhistory`: Skype/Teams conversation logs, not mail between people.
- `syncissues` (with conflicts/localfailures/serverfailures): client sync artefacts, copies.
- search folders (`searchfolders`, `@odata.type` `#microsoft.graph.mailSearchFolder`): virtual
  views of messages that live in other folders; syncing them would double-count.
Well-known names: https://learn.microsoft.com/graph/api/resources/mailfolder#well-known-folder-names.
The v1.0 mailFolder has no `wellKnownName` property (beta only), so the ids of well-known folders
are resolved by GETting `/me/mailFolders/{name}` (one `$batch`).

**What is asked for.** `$select` of metadata only — Mail.ReadBasic reads everything except
`body`, `bodyPreview`, `uniqueBody`, attachments, extensions and extended properties
(https://learn.microsoft.com/graph/permissions-reference#mailreadbasic); asking for a body is
refused (the sandbox answers 403, as a connector that asks for bodies should fail loudly).
`internetMessageHeaders` is not on that exclusion list and is served under Mail.ReadBasic by the
sandbox [?: unverified against live Graph, PROVIDERS.md §4]; live Graph returns it only for
mail that came in over SMTP — not for items in Sent Items or drafts (e.g.
https://github.com/microsoftgraph/msgraph-sdk-dotnet/issues/3025,
https://github.com/microsoftgraph/microsoft-graph-docs/issues/3066) — so every header-derived
field (In-Reply-To, References, List-Id, List-Unsubscribe, Precedence, Auto-Submitted) is
optional and None when absent.

**Page size.** `Prefer: odata.maxpagesize` (the default is 10, and `$top` is not honoured by
message delta: https://github.com/microsoftgraph/microsoft-graph-docs-contrib/issues/6457). The
maximum Outlook honours for delta is undocumented; 500 is what a large production Exchange
backup tool runs with (alcionai/corso, `src/pkg/services/m365/api/config.go`,
`maxDeltaPageSize = 500`), and the sandbox caps at 1000.

**Mapping.** `receivedDateTime` is the message time (DEFINITIONS.md), `sentDateTime` the Date
header. Graph already splits recipients into `{emailAddress: {name, address}}` and decodes
RFC 2047 names; a name still holding encoded words is decoded here, and a name that merely
repeats the address (Graph fills `name` with the address when there is none) becomes None.
Addresses are passed on as Graph spells them (mixed case, IDN): canonical form is core's job.
Graph has no labels; `folder` carries the stream's folder id.

**Sparse rows.** "Updated instances are represented by their id with at least the properties
that have been updated, but additional properties may be included"
(https://learn.microsoft.com/graph/delta-query-overview): an update such as a read flag may
come as `{id, isRead}`. Mapping it would blank the stored participants and subject, so a row
without every field a MessageRecord is made of (`needs_reread`) is re-read by id (sync.py).
`@removed` (reason `deleted`, or
`changed` when the message left the folder) becomes `MessageDeleted(id, folder)`: the store
deletes only if it still holds the message in that folder, so a move (removed here, added in the
target folder's stream, in whichever order the streams run) never loses it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.header import decode_header, make_header
from typing import Any

from core.errors import ProviderRejected
from core.records import Address, Change, MessageDeleted, MessageRecord

MESSAGE_DELTA_PAGE_SIZE = 500
MESSAGE_SELECT = (
    "id",
    "conversationId",
    "internetMessageId",
    "subject",
    "from",
    "sender",
    "replyTo",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "receivedDateTime",
    "sentDateTime",
    "parentFolderId",
    "isDraft",
    "isRead",
    "internetMessageHeaders",
)
# The fields of MESSAGE_SELECT a row must carry to be mapped as it is. Headers are optional even
# in full rows (see above); isRead and parentFolderId are not part of a MessageRecord.
MESSAGE_FIELDS = tuple(
    f
    for f in MESSAGE_SELECT
    if f not in ("id", "internetMessageHeaders", "isRead", "parentFolderId")
)
FOLDER_SELECT = ("id", "displayName", "parentFolderId", "childFolderCount", "totalItemCount")
EXCLUDED_WELL_KNOWN = (
    "junkemail",
    "deleteditems",
    "drafts",
    "outbox",
    "conversationhistory",
    "syncissues",
    "searchfolders",
)
# Well-known folders whose ids sync needs: the exclusions plus the two with meaning.
WELL_KNOWN_TO_RESOLVE = ("inbox", "sentitems", *EXCLUDED_WELL_KNOWN)
SEARCH_FOLDER_TYPE = "#microsoft.graph.mailSearchFolder"


@dataclass(frozen=True)
class Folder:
    """A mail folder as the folder listing reports it."""

    id: str
    parent_id: str | None
    total_items: int
    child_count: int
    is_search_folder: bool = False


@dataclass(frozen=True)
class SyncFolder:
    """A folder that is synced as stream "mail:<id>"."""

    id: str
    total_items: int
    is_sent: bool = False
    is_inbox: bool = False


def folder_from_graph(item: Mapping[str, Any]) -> Folder:
    """Parse one mailFolder resource."""
    return Folder(
        id=str(item["id"]),
        parent_id=item.get("parentFolderId"),
        total_items=int(item.get("totalItemCount") or 0),
        child_count=int(item.get("childFolderCount") or 0),
        is_search_folder=item.get("@odata.type") == SEARCH_FOLDER_TYPE,
    )


def select_sync_folders(
    folders: Iterable[Folder], well_known: Mapping[str, str]
) -> list[SyncFolder]:
    """Return the folders to sync, in listing order (see the module docstring for why).

    `folders` is the whole tree under the mailbox root; `well_known` maps well-known names to
    folder ids (names that do not exist in this mailbox are simply absent).
    """
    folders = list(folders)
    by_id = {f.id: f for f in folders}
    excluded = {well_known[name] for name in EXCLUDED_WELL_KNOWN if name in well_known}
    sent_id, inbox_id = well_known.get("sentitems"), well_known.get("inbox")

    def ancestors(folder: Folder) -> Iterable[str]:
        seen: set[str] = set()
        current: Folder | None = folder
        while current is not None and current.id not in seen:
            seen.add(current.id)
            yield current.id
            current = by_id.get(current.parent_id or "")

    out = []
    for folder in folders:
        chain = list(ancestors(folder))
        if folder.is_search_folder or excluded.intersection(chain):
            continue
        out.append(
            SyncFolder(
                id=folder.id,
                total_items=folder.total_items,
                # A subfolder of Sent Items holds mail the user filed there after sending it.
                is_sent=sent_id is not None and sent_id in chain,
                is_inbox=folder.id == inbox_id,
            )
        )
    return out


# -- messages ----------------------------------------------------------------------------------


def parse_graph_time(value: object) -> dt.datetime | None:
    """Parse Graph's DateTimeOffset text ("2026-11-02T09:00:00Z", 7 fraction digits) to UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    # Python 3.11 takes at most 6 fraction digits; Graph writes up to 7.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)  # Graph's DateTimeOffset values are UTC
    return moment.astimezone(dt.UTC)


def decode_name(name: object, address: str) -> str | None:
    """Return a display name with RFC 2047 words decoded; None when it only repeats the address."""
    if not isinstance(name, str):
        return None
    text = name.strip()
    if "=?" in text:
        # A malformed encoded word stays as Graph gave it: it is still a name.
        with contextlib.suppress(ValueError, LookupError, UnicodeDecodeError):
            text = str(make_header(decode_header(text))).strip()
    if not text or text.lower() == address.strip().lower():
        return None
    return text


def parse_recipient(item: object) -> Address | None:
    """Parse one Graph recipient `{"emailAddress": {"name", "address"}}`."""
    if not isinstance(item, dict):
        return None
    email = item.get("emailAddress")
    if not isinstance(email, dict):
        return None
    address = str(email.get("address") or "").strip()
    if not address:
        return None
    return Address(address=address, name=decode_name(email.get("name"), address))


def parse_recipients(value: object) -> tuple[Address, ...]:
    """Parse a recipient, a list of them, or null."""
    items = value if isinstance(value, list) else [value]
    return tuple(a for a in (parse_recipient(i) for i in items) if a is not None)


def header_values(item: Mapping[str, Any]) -> dict[str, str]:
    """Return internetMessageHeaders as {lower-case name: first value}, unfolded."""
    out: dict[str, str] = {}
    for header in item.get("internetMessageHeaders") or []:
        if not isinstance(header, dict):
            continue
        name = str(header.get("name") or "").strip().lower()
        if name and name not in out:
            out[name] = " ".join(str(header.get("value") or "").split())
    return out


def map_message(
    item: Mapping[str, Any], *, folder_id: str, is_sent: bool = False, is_inbox: bool = False
) -> MessageRecord:
    """Map one Graph message (our `$select`) to a MessageRecord in `folder_id`."""
    received = parse_graph_time(item.get("receivedDateTime"))
    sent = parse_graph_time(item.get("sentDateTime"))
    if received is None:
        received = sent
    if received is None:
        raise ProviderRejected("Graph message without receivedDateTime")
    headers = header_values(item)
    subject = item.get("subject")
    return MessageRecord(
        provider_message_id=str(item["id"]),
        received_at=received,
        provider_thread_id=item.get("conversationId") or None,
        sent_at=sent,
        subject=subject if isinstance(subject, str) else None,
        internet_message_id=item.get("internetMessageId") or None,
        in_reply_to=headers.get("in-reply-to") or None,
        references=headers.get("references") or None,
        from_=parse_recipients(item.get("from")),
        sender=parse_recipients(item.get("sender")),
        reply_to=parse_recipients(item.get("replyTo")),
        to=parse_recipients(item.get("toRecipients")),
        cc=parse_recipients(item.get("ccRecipients")),
        bcc=parse_recipients(item.get("bccRecipients")),
        folder=folder_id,
        is_sent=is_sent,
        is_inbox=is_inbox,
        is_draft=bool(item.get("isDraft")),
        list_id=headers.get("list-id") or None,
        has_list_unsubscribe="list-unsubscribe" in headers,
        precedence=headers.get("precedence") or None,
        auto_submitted=headers.get("auto-submitted") or None,
    )


def needs_reread(item: Mapping[str, Any]) -> bool:
    """Return True for a delta row too sparse to map: re-read it by id (module docstring)."""
    if "@removed" in item:
        return False
    return any(key not in item for key in MESSAGE_FIELDS) or not has_time(item)


def has_time(item: Mapping[str, Any]) -> bool:
    """Whether a message row carries a time it can be dated by (received, else sent)."""
    times = (item.get("receivedDateTime"), item.get("sentDateTime"))
    return any(parse_graph_time(t) is not None for t in times)


def map_delta_item(
    item: Mapping[str, Any], *, folder_id: str, is_sent: bool = False, is_inbox: bool = False
) -> Change:
    """Map one message delta row: an upsert, or `@removed` → MessageDeleted for this folder."""
    if "@removed" in item:
        return MessageDeleted(provider_message_id=str(item["id"]), folder=folder_id)
    return map_message(item, folder_id=folder_id, is_sent=is_sent, is_inbox=is_inbox)


def owner_addresses(me: Mapping[str, Any]) -> tuple[str, ...]:
    """Return the user's own addresses from /me: primary first, then aliases, de-duplicated.

    `proxyAddresses` entries are "SMTP:primary@x" (upper case marks the primary) and
    "smtp:alias@x"; other types (x500:, sip:, ...) are not mail addresses
    (https://learn.microsoft.com/graph/api/resources/user#properties).
    """
    primary: list[str] = []
    others: list[str] = []
    for entry in me.get("proxyAddresses") or []:
        kind, _, address = str(entry).partition(":")
        if kind.lower() != "smtp" or "@" not in address:
            continue
        (primary if kind == "SMTP" else others).append(address.strip())
    for key in ("mail", "userPrincipalName"):
        value = me.get(key)
        # A UPN is not always a mailbox address, but for the user's own messages a false match
        # only marks their own address as theirs; one without "@" is skipped.
        if isinstance(value, str) and "@" in value:
            others.append(value.strip())
    seen: set[str] = set()
    out = []
    for address in [*primary, *others]:
        if address.lower() not in seen:
            seen.add(address.lower())
            out.append(address)
    return tuple(out)
