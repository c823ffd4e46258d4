"""Graph v1.0 user profile, mail folders, messages and per-folder message delta.

Provider facts this copies (PROVIDERS.md §4):

- ``GET /me``: ``User.Read``; ``proxyAddresses`` only via ``$select``
  (https://learn.microsoft.com/graph/api/user-get, default property set). A token without a
  user permission gets the directory's 403 ``Authorization_RequestDenied``.
- Mail folders: ids are opaque; well-known names (``inbox``, ``sentitems``, ``archive``,
  ``drafts``, ``junkemail``, ``deleteditems``, ``msgfolderroot``) are accepted wherever an id is
  (https://learn.microsoft.com/graph/api/resources/mailfolder#well-known-folder-names). The v1.0
  mailFolder resource has no ``wellKnownName`` property (it is beta-only), so it is not returned.
  ``GET /me/mailFolders`` pages 10 folders at a time with ``$skip`` links.
- Message delta (https://learn.microsoft.com/graph/delta-query-messages, ``message-delta``):
  per folder; query options only on the first call, encoded in ``$skiptoken``/``$deltatoken``;
  ``Prefer: odata.maxpagesize`` (default 10 here [?: undocumented; PROVIDERS.md §4], capped at
  ``MAX_PAGE``) echoed in ``Preference-Applied``; removals as
  ``{"@odata.type", "id", "@removed": {"reason": "deleted"|"changed"}}`` (``changed`` when the
  message left the folder).
- Stale tokens: Outlook answers ``410 Gone`` with code ``SyncStateNotFound`` and message
  "The sync state generation is not found; generation=N;[highest=M]..." (observed bodies:
  https://github.com/microsoftgraph/microsoft-graph-docs/issues/2350 and issue 2877). With
  ``state.config["graph_resync_style"] = "location"`` it answers the documented reset variant
  instead: 410 with a ``Location`` header holding a fresh initial query and code
  ``resyncRequired`` (https://learn.microsoft.com/graph/delta-query-overview#synchronization-reset,
  codes in https://learn.microsoft.com/graph/errors).
- ``Mail.ReadBasic`` reads everything except ``body``, ``bodyPreview``, ``uniqueBody``,
  attachments and extended properties (permissions reference). Without ``$select`` those are left
  out of the default set; asking for them by ``$select`` is refused with 403
  ``ErrorAccessDenied`` [?: unverified against live Graph, chosen so a connector that asks for
  bodies fails loudly]. ``internetMessageHeaders`` is not in the exclusion list, so it is served
  under Mail.ReadBasic [?: PROVIDERS.md §4 marks this unverified].
- Sparse updates (switch ``state.config["graph_sparse_delta_updates"]``, off by default):
  "Updated instances are represented by their id with at least the properties that have been
  updated" (https://learn.microsoft.com/graph/delta-query-overview). With the switch an
  incremental round sends a message received before the round's token (so: changed, moved in,
  not new) as ``{@odata.type, @odata.etag, id, isRead}``; new mail comes in full.
- ``Prefer: IdType="ImmutableId"``: ids stay the same when a message moves; without it the
  (REST) id encodes the folder, so moving a message changes its id
  (https://learn.microsoft.com/graph/outlook-immutable-id).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import re
from collections.abc import Callable
from email import errors, policy
from typing import Any

from flask import Response, request

from sandbox.errors import GraphError
from sandbox.microsoft.common import b64url, b64url_decode, iso_z, now_ms
from sandbox.microsoft.graphbase import (
    GRAPH,
    MAIL_READ,
    MAIL_READ_BASIC,
    USER_READ,
    Caller,
    apply_preferences,
    authenticate,
    bp,
    context_url,
    decode_token,
    encode_token,
    graph_call,
    immutable_ids,
    json_response,
    parse_select,
    prefer,
    project,
    self_link,
)
from sandbox.state import get_state
from sandbox.store import StaleCursorError

DEFAULT_PAGE = 10
MAX_PAGE = 1000
FOLDER_PAGE = 10

# Well-known folders a mailbox always has: (name, display name, is_hidden).
WELL_KNOWN = (
    ("archive", "Archive"),
    ("conversationhistory", "Conversation History"),
    ("deleteditems", "Deleted Items"),
    ("drafts", "Drafts"),
    ("inbox", "Inbox"),
    ("junkemail", "Junk Email"),
    ("outbox", "Outbox"),
    ("sentitems", "Sent Items"),
)
ROOT = "msgfolderroot"
RESTRICTED = {"body", "bodyPreview", "uniqueBody"}
MESSAGE_PROPS = {
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "uniqueBody",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
    "internetMessageHeaders",
}
# internetMessageHeaders and uniqueBody are only returned when selected
# (https://learn.microsoft.com/graph/api/resources/message#properties).
_NOT_DEFAULT = {"internetMessageHeaders", "uniqueBody"}
USER_PROPS = {
    "id",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "userPrincipalName",
    "jobTitle",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "businessPhones",
    "proxyAddresses",
    "otherMails",
    "mailboxSettings",
}
FOLDER_PROPS = {
    "id",
    "displayName",
    "parentFolderId",
    "childFolderCount",
    "unreadItemCount",
    "totalItemCount",
    "sizeInBytes",
    "isHidden",
}


# -- ids ---------------------------------------------------------------------------------------


def _opaque(email_addr: str, kind: str, key: str, prefix: str = "AAMkAD") -> str:
    digest = hashlib.sha256(f"{email_addr}|{kind}|{key}".encode()).digest()
    return prefix + b64url(digest)[:38] + "AAA="


_REST = "AAMkADsbx"


def message_id(row: dict[str, Any], folder_key: str | None = None) -> str:
    """Return the id a client sees: immutable (store id) or REST (folder-bound)."""
    if immutable_ids():
        return str(row["id"])
    key = folder_key or row["folder"]
    return _REST + b64url(f"{key}\x00{row['id']}".encode())


def store_message_id(graph_id: str) -> str:
    """Return the store id behind a REST or immutable message id."""
    if graph_id.startswith(_REST):
        try:
            _, _, sid = b64url_decode(graph_id[len(_REST) :]).decode().partition("\x00")
            if sid:
                return sid
        except (ValueError, UnicodeDecodeError):
            pass
    return graph_id


# -- folders -----------------------------------------------------------------------------------


def folders(email_addr: str) -> list[dict[str, Any]]:
    """Return the mailbox's folders: ``{key, id, displayName, parent}`` (key = store value)."""
    rows = get_state().store.list_folders(email_addr)
    out: dict[str, dict[str, Any]] = {}
    for name, display in WELL_KNOWN:
        out[name] = {
            "key": name,
            "id": _opaque(email_addr, "folder", name, "AQMkAD"),
            "displayName": display,
            "parent": ROOT,
        }
    for row in rows:
        key = row.get("well_known_name") or row["id"]
        graph_id = row["id"] if row["id"] != key else _opaque(email_addr, "folder", key, "AQMkAD")
        out[key] = {
            "key": key,
            "id": graph_id,
            "displayName": row["display_name"],
            "parent": row.get("parent_id") or ROOT,
        }
    return list(out.values())


def root_id(email_addr: str) -> str:
    """Return the opaque id of msgfolderroot (Top of Information Store)."""
    return _opaque(email_addr, "folder", ROOT, "AQMkAD")


def resolve_folder(email_addr: str, ref: str) -> dict[str, Any]:
    """Return the folder for an id or well-known name; 404 ErrorItemNotFound otherwise."""
    ref = ref.strip()
    if ref.startswith("('") and ref.endswith("')"):
        ref = ref[2:-2]
    for folder in folders(email_addr):
        if ref.lower() == folder["key"].lower() or ref == folder["id"]:
            return folder
    raise GraphError.not_found()


def _parent_graph_id(email_addr: str, parent_key: str) -> str:
    if parent_key == ROOT:
        return root_id(email_addr)
    for folder in folders(email_addr):
        if folder["key"] == parent_key or folder["id"] == parent_key:
            return str(folder["id"])
    return root_id(email_addr)


def folder_resource(email_addr: str, folder: dict[str, Any]) -> dict[str, Any]:
    """Render a mailFolder resource."""
    store = get_state().store
    children = [f for f in folders(email_addr) if f["parent"] in (folder["key"], folder["id"])]
    return {
        "id": folder["id"],
        "displayName": folder["displayName"],
        "parentFolderId": _parent_graph_id(email_addr, folder["parent"]),
        "childFolderCount": len(children),
        "unreadItemCount": store.count_messages(email_addr, folder=folder["key"], unread_only=True),
        "totalItemCount": store.count_messages(email_addr, folder=folder["key"]),
        "sizeInBytes": 0,
        "isHidden": False,
    }


def _folder_list(caller: Caller, parent_keys: set[str]) -> Response:
    select = parse_select(request.args.get("$select"), FOLDER_PROPS, "microsoft.graph.mailFolder")
    top = _int_arg("$top", FOLDER_PAGE)
    skip = _int_arg("$skip", 0)
    all_folders = [f for f in folders(caller.email) if f["parent"] in parent_keys]
    all_folders.sort(key=lambda f: f["displayName"].lower())
    page = all_folders[skip : skip + top]
    body: dict[str, Any] = {
        "@odata.context": context_url(f"users('{caller.oid}')/mailFolders"),
        "value": [project(folder_resource(caller.email, f), select, ("id",)) for f in page],
    }
    if skip + top < len(all_folders):
        params = {"$top": str(top), "$skip": str(skip + top)}
        if select is not None:
            params["$select"] = ",".join(select)
        body["@odata.nextLink"] = self_link(params)
    return json_response(body)


def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
        if value < 0:
            raise ValueError(name)
    except ValueError:
        raise GraphError(
            400, "BadRequest", f"Invalid value '{raw}' for query parameter '{name}'."
        ) from None
    return value


@bp.get(f"{GRAPH}/me/mailFolders")
def list_mail_folders() -> Response:
    """List the top-level mail folders."""
    with graph_call("mailFolders.list", MAIL_READ_BASIC) as caller:
        return apply_preferences(_folder_list(caller, {ROOT}), [])


@bp.get(f"{GRAPH}/me/mailFolders/<folder_ref>")
def get_mail_folder(folder_ref: str) -> Response:
    """Get one mail folder by id or well-known name."""
    with graph_call("mailFolders.get", MAIL_READ_BASIC) as caller:
        select = parse_select(
            request.args.get("$select"), FOLDER_PROPS, "microsoft.graph.mailFolder"
        )
        folder = resolve_folder(caller.email, folder_ref)
        body = {
            "@odata.context": context_url(f"users('{caller.oid}')/mailFolders/$entity"),
            **project(folder_resource(caller.email, folder), select, ("id",)),
        }
        return apply_preferences(json_response(body), [])


@bp.get(f"{GRAPH}/me/mailFolders/<folder_ref>/childFolders")
def list_child_folders(folder_ref: str) -> Response:
    """List a folder's child folders."""
    with graph_call("mailFolders.childFolders", MAIL_READ_BASIC) as caller:
        folder = resolve_folder(caller.email, folder_ref)
        return _folder_list(caller, {folder["key"], folder["id"]})


# -- /me ---------------------------------------------------------------------------------------


@bp.get(f"{GRAPH}/me")
def me() -> Response:
    """Return the signed-in user's profile."""
    caller = authenticate()
    with get_state().controls.call(service="graph", mailbox=caller.email, method="me.get"):
        if not caller.has_any(USER_READ):
            # /me is served by the directory, whose 403 has its own code
            # (https://learn.microsoft.com/graph/resolve-auth-errors#403-forbidden-error).
            raise GraphError(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        select = parse_select(request.args.get("$select"), USER_PROPS, "microsoft.graph.user")
        box = caller.mailbox
        name = box.get("display_name") or box["email"]
        given, _, surname = str(name).partition(" ")
        aliases = [a for a in box.get("aliases") or [] if a.get("email")]
        # proxyAddresses: "SMTP:" marks the primary address, "smtp:" the others.
        proxies = [f"SMTP:{box['email']}"] + [
            f"smtp:{a['email']}" for a in aliases if a["email"].lower() != box["email"]
        ]
        user = {
            "businessPhones": [],
            "displayName": name,
            "givenName": given or None,
            "jobTitle": None,
            "mail": box["email"],
            "mobilePhone": None,
            "officeLocation": None,
            "preferredLanguage": "en-US",
            "surname": surname or None,
            "userPrincipalName": box["email"],
            "id": caller.oid,
            "proxyAddresses": proxies,
            "otherMails": [],
        }
        if select is None:
            user.pop("proxyAddresses")
            user.pop("otherMails")
        else:
            user = {k: v for k, v in user.items() if k in select}
            # /me with $select: Graph does not add id unless selected
        suffix = "users/$entity" if select is None else f"users({','.join(select)})/$entity"
        return json_response({"@odata.context": context_url(suffix), **user})


# -- messages ----------------------------------------------------------------------------------


def _header(headers: list[list[str]], name: str) -> str | None:
    lower = name.lower()
    for key, value in headers:
        if key.lower() == lower:
            return value
    return None


def _addresses(raw: str | None) -> list[dict[str, Any]]:
    """Parse an address-list header (RFC 2047 names decoded) into Graph recipients.

    [?] An entry the parser finds broken (an unclosed `<` or quote) yields no recipient:
    Exchange's handling of such headers is undocumented, and inventing an address out of one
    would be a guess. The header's other entries still count.
    """
    out: list[dict[str, Any]] = []
    for entry in _entries(raw or ""):
        try:
            parsed = policy.default.header_factory("To", entry)
        except Exception:  # noqa: S112 (an unparseable entry is no recipient)
            continue
        if any(isinstance(d, errors.InvalidHeaderDefect) for d in parsed.defects):
            continue
        for a in parsed.addresses:  # type: ignore[attr-defined]
            if a.addr_spec and "@" in a.addr_spec:
                name = a.display_name or a.addr_spec
                out.append({"emailAddress": {"name": name, "address": a.addr_spec}})
    return out


def _entries(raw: str) -> list[str]:
    """Split a header at the commas between entries (not inside quotes, <...> or groups)."""
    parts: list[str] = []
    buf: list[str] = []
    quoted, depth, group = False, 0, False
    for ch in raw:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        elif not quoted and ch == ":" and not depth:
            group = True
        elif not quoted and ch == ";":
            group = False
        elif not quoted and ch == "," and not depth and not group:
            parts.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    parts.append("".join(buf))
    return [p.strip() for p in parts if p.strip()]


def _all_addresses(headers: list[list[str]], name: str) -> list[dict[str, Any]]:
    """Recipients from every occurrence of an address header, in order.

    [?] RFC 5322 allows one To/Cc/Bcc per message, but real mail repeats them; Exchange's
    recipient lists hold everyone the message was addressed to, so all occurrences count.
    """
    lower = name.lower()
    found: list[dict[str, Any]] = []
    for key, value in headers:
        if key.lower() == lower:
            found += _addresses(value)
    return found


def _sent_ms(headers: list[list[str]], fallback_ms: int) -> int:
    raw = _header(headers, "Date")
    if raw:
        try:
            moment = email.utils.parsedate_to_datetime(raw)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
            return int(moment.timestamp() * 1000)
        except (TypeError, ValueError, IndexError):
            pass
    return fallback_ms


def _subject(raw: str | None) -> str:
    if raw is None:
        return ""
    try:
        return str(policy.default.header_factory("Subject", raw))
    except Exception:
        return raw


def message_resource(
    email_addr: str, row: dict[str, Any], *, full_body: bool, folder_key: str | None = None
) -> dict[str, Any]:
    """Render a message resource (all properties; callers project with $select)."""
    headers = row["headers"]
    key = folder_key or row["folder"]
    change_key = "CQAAABYAAA" + b64url(f"{row['changed_seq']}".encode())
    received = iso_z(row["internal_ms"])
    sender = _addresses(_header(headers, "Sender")) or _addresses(_header(headers, "From"))
    from_ = _addresses(_header(headers, "From"))
    importance = (_header(headers, "Importance") or "normal").lower()
    item: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.message",
        "@odata.etag": f'W/"{change_key}"',
        "id": message_id(row, key),
        "createdDateTime": received,
        "lastModifiedDateTime": received,
        "changeKey": change_key,
        "categories": [],
        "receivedDateTime": received,
        "sentDateTime": iso_z(_sent_ms(headers, row["internal_ms"])),
        "hasAttachments": (_header(headers, "Content-Type") or "")
        .lower()
        .startswith("multipart/mixed"),
        "internetMessageId": _header(headers, "Message-ID"),
        "subject": _subject(_header(headers, "Subject")),
        "bodyPreview": row.get("snippet") or "",
        "importance": importance if importance in ("low", "normal", "high") else "normal",
        "parentFolderId": resolve_folder(email_addr, key)["id"],
        "conversationId": "AAQkAD" + b64url(hashlib.sha256(row["thread_id"].encode()).digest()),
        "conversationIndex": b64url(hashlib.sha256(row["id"].encode()).digest()[:22]) + "==",
        "isDeliveryReceiptRequested": False,
        "isReadReceiptRequested": False,
        "isRead": bool(row["is_read"]),
        "isDraft": key == "drafts",
        "webLink": "https://outlook.office365.com/owa/?ItemID="
        + row["id"]
        + "&exvsurl=1&viewmodel=ReadMessageItem",
        "inferenceClassification": "focused",
        "body": {"contentType": "text", "content": row.get("snippet") or ""},
        "sender": sender[0] if sender else None,
        "from": from_[0] if from_ else None,
        "toRecipients": _all_addresses(headers, "To"),
        "ccRecipients": _all_addresses(headers, "Cc"),
        "bccRecipients": _all_addresses(headers, "Bcc"),
        "replyTo": _addresses(_header(headers, "Reply-To")),
        "flag": {"flagStatus": "notFlagged"},
        "uniqueBody": {"contentType": "text", "content": row.get("snippet") or ""},
        "internetMessageHeaders": [{"name": k, "value": v} for k, v in headers],
    }
    if not full_body:
        for name in RESTRICTED:
            item.pop(name, None)
    return item


def message_select(caller: Caller, raw: str | None) -> tuple[list[str] | None, bool]:
    """Parse $select for messages; return (select, may_read_body); 403 for bodies w/o Mail.Read."""
    select = parse_select(raw, MESSAGE_PROPS, "microsoft.graph.message")
    full = caller.has_any(MAIL_READ)
    if select is not None and not full and RESTRICTED & set(select):
        raise GraphError.access_denied()
    return select, full


def shape_message(item: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    """Apply the default property set or $select to a rendered message."""
    if select is None:
        return {k: v for k, v in item.items() if k not in _NOT_DEFAULT}
    return project(item, select, ("id",))


@bp.get(f"{GRAPH}/me/messages/<mid>")
@bp.get(f"{GRAPH}/me/mailFolders/<folder_ref>/messages/<mid>")
def get_message(mid: str, folder_ref: str | None = None) -> Response:
    """Get one message by REST or immutable id."""
    with graph_call("messages.get", MAIL_READ_BASIC) as caller:
        select, full = message_select(caller, request.args.get("$select"))
        row = get_state().store.get_message(caller.email, store_message_id(mid))
        if row is None or (mid.startswith(_REST) and not _rest_matches(mid, row)):
            raise GraphError.not_found()
        if (
            folder_ref is not None
            and resolve_folder(caller.email, folder_ref)["key"] != row["folder"]
        ):
            raise GraphError.not_found()
        item = message_resource(caller.email, row, full_body=full)
        item.pop("@odata.type", None)
        body = {
            "@odata.context": context_url(f"users('{caller.oid}')/messages/$entity"),
            **shape_message(item, select),
        }
        return apply_preferences(json_response(body), [])


def _rest_matches(mid: str, row: dict[str, Any]) -> bool:
    # A REST id names the folder the message was in when the id was minted; it stops working
    # once the message moves (that is the point of immutable ids).
    try:
        key, _, _ = b64url_decode(mid[len(_REST) :]).decode().partition("\x00")
    except (ValueError, UnicodeDecodeError):
        return False
    return bool(key == row["folder"])


# -- delta -------------------------------------------------------------------------------------


def _page_size(query: dict[str, str]) -> tuple[int, list[str]]:
    raw = prefer().get("odata.maxpagesize")
    if raw is None:
        # $top on the first call sets the page size of the whole round (it is in the tokens).
        top = query.get("$top")
        return (max(1, min(int(top), MAX_PAGE)) if top and top.isdigit() else DEFAULT_PAGE), []
    try:
        size = max(1, min(int(raw), MAX_PAGE))
    except ValueError:
        return DEFAULT_PAGE, []
    return size, [f"odata.maxpagesize={size}"]


_FILTER = re.compile(r"^\s*receivedDateTime\s+(ge|gt)\s+(\S+)\s*$", re.IGNORECASE)


def _received_filter(raw: str | None) -> Callable[[int], bool] | None:
    """Parse the only $filter message delta supports: ``receivedDateTime ge|gt {value}``.

    https://learn.microsoft.com/graph/delta-query-messages#use-query-parameters-in-a-delta-query-for-messages
    (the 5,000-message cap that applies with $filter is not modelled).
    """
    if not raw:
        return None
    match = _FILTER.match(raw)
    if match is None:
        raise GraphError(
            400, "ErrorInvalidUrlQuery",
            "The only supported $filter expressions are receivedDateTime ge|gt {value}.",
        )  # fmt: skip
    try:
        bound = dt.datetime.fromisoformat(match[2].replace("Z", "+00:00"))
    except ValueError:
        raise GraphError(
            400, "BadRequest", f"Invalid filter clause: cannot parse '{match[2]}'."
        ) from None
    if bound.tzinfo is None:
        bound = bound.replace(tzinfo=dt.UTC)
    bound_ms = int(bound.timestamp() * 1000)
    if match[1].lower() == "ge":
        return lambda ms: ms >= bound_ms
    return lambda ms: ms > bound_ms


def resync_error(initial_url: str, since: int, highest: int) -> GraphError:
    """Return the 410 a stale delta/skip token gets (see module docstring)."""
    if get_state().config.get("graph_resync_style") == "location":
        return GraphError(
            410,
            "resyncRequired",
            "Resync required. Replace any local items with the server's version (including "
            "deletes) if you're sure that the service was up to date with your local changes "
            "when you last sync'd. Upload any local changes that the server doesn't know about.",
            headers={"Location": initial_url},
        )
    return GraphError(
        410,
        "SyncStateNotFound",
        f"The sync state generation is not found; generation={since};[highest={highest}]"
        f"[{highest}].",
    )


@bp.get(f"{GRAPH}/me/mailFolders/<folder_ref>/messages/delta")
@bp.get(f"{GRAPH}/me/mailFolders/<folder_ref>/messages/microsoft.graph.delta()")
def message_delta(folder_ref: str) -> Response:
    """One page of a folder's message delta round."""
    with graph_call("messages.delta", MAIL_READ_BASIC) as caller:
        state = get_state()
        folder = resolve_folder(caller.email, folder_ref)
        skip = request.args.get("$skiptoken") or request.args.get("$skipToken")
        delta = request.args.get("$deltatoken") or request.args.get("$deltaToken")
        # "t": when this round started; "p": when the previous one did (sparse updates).
        if skip:
            tok = decode_token(skip, "$skiptoken", ("s", "h", "q"))
        elif delta:
            tok = decode_token(delta, "$deltatoken", ("s", "q"))
            tok = {
                "f": tok.get("f"),
                "s": tok["s"],
                "q": tok["q"],
                "h": state.store.current_seq(caller.email),
                "t": now_ms(),
                "p": tok.get("t"),
            }
        else:
            query = {
                k: request.args[k]
                for k in ("$select", "changeType", "$filter", "$top", "$orderby")
                if k in request.args
            }
            tok = {"s": 0, "q": query, "h": state.store.current_seq(caller.email), "t": now_ms()}
        if tok.get("f", folder["key"]) != folder["key"]:
            raise GraphError(400, "ErrorInvalidUrlQuery", "The delta token is for another folder.")
        query = tok["q"]
        initial_url = self_link(query)
        box = state.store.get_mailbox(caller.email) or {}
        floor, highest = int(box.get("token_floor", 0)), int(box.get("change_seq", 0))
        if (tok["s"] and tok["s"] < floor) or (skip and tok["h"] < floor):
            raise resync_error(initial_url, int(tok["s"] or tok["h"]), highest)
        select, full = message_select(caller, query.get("$select"))
        size, applied = _page_size(query)
        received_after = _received_filter(query.get("$filter"))
        change_type = (query.get("changeType") or "").lower()
        try:
            rows, cursor = state.store.list_folder_changes(
                caller.email, folder["key"], since_seq=tok["s"], page_size=size, after=tok.get("a")
            )
        except StaleCursorError:
            raise resync_error(initial_url, int(tok["s"]), highest) from None
        sparse_before = (
            tok.get("p") if tok["s"] and state.config.get("graph_sparse_delta_updates") else None
        )
        items = []
        for row in rows:
            if tok["s"] and row["changed_seq"] <= tok["s"]:
                continue  # seen last round (the store's bound is inclusive of since_seq)
            if row["is_deleted"]:
                if not tok["s"] or change_type in ("created", "updated"):
                    continue  # the initial round lists what exists now
                items.append(
                    {
                        "@odata.type": "#microsoft.graph.message",
                        "id": message_id(row, folder["key"]),
                        "@removed": {"reason": row.get("removed_reason") or "deleted"},
                    }
                )
                continue
            if change_type == "deleted" and tok["s"]:
                continue
            if received_after and not received_after(row["internal_ms"]):
                continue
            item = message_resource(caller.email, row, full_body=full, folder_key=folder["key"])
            if sparse_before is not None and row["internal_ms"] < sparse_before:
                items.append({k: item[k] for k in ("@odata.type", "@odata.etag", "id", "isRead")})
                continue
            items.append(shape_message(item, select))
        body: dict[str, Any] = {"@odata.context": context_url("Collection(message)")}
        if cursor:
            nxt = encode_token(
                {
                    "f": folder["key"],
                    "s": tok["s"],
                    "h": tok["h"],
                    "q": query,
                    "a": cursor,
                    "t": tok.get("t"),
                    "p": tok.get("p"),
                }
            )
            body["@odata.nextLink"] = self_link({"$skiptoken": nxt})
        else:
            dtok = encode_token({"f": folder["key"], "s": tok["h"], "q": query, "t": tok.get("t")})
            body["@odata.deltaLink"] = self_link({"$deltatoken": dtok})
        body["value"] = items
        return apply_preferences(json_response(body), applied)
