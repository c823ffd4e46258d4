"""Gmail API v1 stand-in: the read side Warmline uses, plus watch/stop and batch.

Routes (``userId`` is ``me`` or the mailbox's own address):

- ``GET  /gmail/v1/users/{userId}/profile``                 users.getProfile
- ``GET  /gmail/v1/users/{userId}/labels``                  users.labels.list
- ``GET  /gmail/v1/users/{userId}/labels/{id}``             users.labels.get
- ``GET  /gmail/v1/users/{userId}/messages``                users.messages.list
- ``GET  /gmail/v1/users/{userId}/messages/{id}``           users.messages.get
- ``GET  /gmail/v1/users/{userId}/threads``                 users.threads.list
- ``GET  /gmail/v1/users/{userId}/threads/{id}``            users.threads.get
- ``GET  /gmail/v1/users/{userId}/history``                 users.history.list
- ``GET  /gmail/v1/users/{userId}/settings/sendAs``         users.settings.sendAs.list
- ``POST /gmail/v1/users/{userId}/watch`` / ``.../stop``    users.watch / users.stop
- ``POST /batch`` and ``/batch/gmail/v1``                   batch (``batch.py``), ≤ 100 parts

Every call authenticates (``oauth.authenticate`` with the method's discovery-doc scopes), then
passes ``state.controls.call(service="gmail", ...)`` (quota, concurrency, latency, faults).

Provider quirks reproduced:

- Scopes per method are the discovery doc's ``scopes`` arrays (google-api-python-client's bundled
  ``discovery_cache/documents/gmail.v1.json``, revision 20261005; PROVIDERS.md §1.3).
  ``settings.sendAs.list`` is *not* allowed under gmail.metadata alone.
- gmail.metadata forbids ``q`` and ``format=full|raw``, **even if the token also carries
  gmail.readonly or gmail.modify** (PROVIDERS.md §1.3 Gotcha 2;
  https://github.com/googleapis/google-api-python-client/issues/582). Bodies: 403
  "Metadata scope does not support 'q' parameter" and "Metadata scope doesn't allow format FULL"
  (https://github.com/dacastro4/laravel-gmail/issues/50, .../issues/90).
- ``messages.get`` defaults to ``format=full``.
- ``format=metadata`` returns id, threadId, labelIds, snippet, historyId, internalDate (ms as a
  string), sizeEstimate and ``payload{mimeType, headers}``; ``metadataHeaders`` filters
  case-insensitively and keeps the message's order and spelling. ``minimal`` drops the payload.
- JSON follows proto3 mapping: int64 fields (historyId, internalDate, expiration) are strings,
  empty/false/zero fields are omitted (e.g. no ``messages`` key on an empty list page).
- An unknown or deleted id answers 404 "Requested entity was not found." (notFound).
- ``history.list`` with a ``startHistoryId`` older than the mailbox's floor answers 404; the
  response ``historyId`` is always the mailbox's current one
  (https://developers.google.com/gmail/api/guides/sync).
- ``maxResults`` above 500 is capped at 500 (discovery doc: "maximum 500").
- Knob ``state.config["gmail_history_empty_first_page"]`` (off): a history.list call without a
  ``pageToken`` that has records to give answers a page with a ``nextPageToken`` and no
  ``history``, as Gmail can when ``historyTypes``/``labelId`` filter out every record of a page
  it has already cut; clients must follow the token (users.history.list reference,
  https://developers.google.com/gmail/api/reference/rest/v1/users.history/list).
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from sandbox.errors import GoogleError
from sandbox.google import batch
from sandbox.google.oauth import authenticate
from sandbox.state import get_state
from sandbox.store import StaleCursorError

bp = Blueprint("gmail", __name__)

_G = "https://www.googleapis.com/auth/"
MAIL = "https://mail.google.com/"
METADATA = _G + "gmail.metadata"
READONLY = _G + "gmail.readonly"
MODIFY = _G + "gmail.modify"
COMPOSE = _G + "gmail.compose"
LABELS = _G + "gmail.labels"
SETTINGS_BASIC = _G + "gmail.settings.basic"
_ADDONS = (
    _G + "gmail.addons.current.message.action",
    _G + "gmail.addons.current.message.metadata",
    _G + "gmail.addons.current.message.readonly",
)

# Discovery doc `scopes` arrays (gmail.v1.json, revision 20261005): the token needs any one.
SCOPES: dict[str, frozenset[str]] = {
    "getProfile": frozenset({MAIL, COMPOSE, METADATA, MODIFY, READONLY}),
    "labels.list": frozenset({MAIL, LABELS, METADATA, MODIFY, READONLY}),
    "labels.get": frozenset({MAIL, LABELS, METADATA, MODIFY, READONLY}),
    "messages.list": frozenset({MAIL, METADATA, MODIFY, READONLY}),
    "messages.get": frozenset({MAIL, METADATA, MODIFY, READONLY, *_ADDONS}),
    "threads.list": frozenset({MAIL, METADATA, MODIFY, READONLY}),
    "threads.get": frozenset({MAIL, METADATA, MODIFY, READONLY, *_ADDONS}),
    "history.list": frozenset({MAIL, METADATA, MODIFY, READONLY}),
    "sendAs.list": frozenset({MAIL, MODIFY, READONLY, SETTINGS_BASIC}),
    "watch": frozenset({MAIL, METADATA, MODIFY, READONLY}),
    "stop": frozenset({MAIL, METADATA, MODIFY, READONLY}),
}

DEFAULT_PAGE = 100
MAX_PAGE = 500
MAX_BATCH_PARTS = 100  # https://developers.google.com/gmail/api/guides/batch
WATCH_TTL_MS = 7 * 24 * 3600 * 1000  # "re-call watch at least every 7 days" (PROVIDERS.md §1.4)

# Gmail's system labels as labels.list returns them
# (listing copied from a real response in https://github.com/googleworkspace/php-samples/issues/123).
_SYSTEM_LABELS = (
    "CHAT", "SENT", "INBOX", "IMPORTANT", "TRASH", "DRAFT", "SPAM", "CATEGORY_FORUMS",
    "CATEGORY_UPDATES", "CATEGORY_PERSONAL", "CATEGORY_PROMOTIONS", "CATEGORY_SOCIAL",
    "STARRED", "UNREAD",
)  # fmt: skip
# Labels the Gmail UI hides from the label list / message list; Google returns these
# visibility fields only on the labels below (the others omit them).
_SYSTEM_VISIBILITY: dict[str, dict[str, str]] = {
    "SENT": {"messageListVisibility": "hide", "labelListVisibility": "labelShow"},
    "INBOX": {"messageListVisibility": "hide", "labelListVisibility": "labelShow"},
    "TRASH": {"messageListVisibility": "hide", "labelListVisibility": "labelHide"},
    "DRAFT": {"messageListVisibility": "hide", "labelListVisibility": "labelShow"},
    "SPAM": {"messageListVisibility": "hide", "labelListVisibility": "labelHide"},
    "STARRED": {"messageListVisibility": "hide", "labelListVisibility": "labelShow"},
    "UNREAD": {"messageListVisibility": "hide", "labelListVisibility": "labelShow"},
    "IMPORTANT": {"messageListVisibility": "hide", "labelListVisibility": "labelShow"},
}
_HISTORY_TYPES = ("messageAdded", "messageDeleted", "labelAdded", "labelRemoved")
_ID_RE = re.compile(r"^[0-9a-fA-F]{1,16}$")


# --------------------------------------------------------------------------------------------
# request plumbing
# --------------------------------------------------------------------------------------------


def _authorize(user_id: str, method: str) -> dict[str, Any]:
    """Authenticate for ``method`` and resolve ``userId`` to the token's mailbox."""
    info = authenticate(SCOPES[method])
    mailbox = info["mailbox"]
    if user_id != "me" and user_id.lower() != mailbox:
        # Asking for another user's mailbox without domain-wide delegation.
        raise GoogleError(403, f"Delegation denied for {mailbox}", reason="forbidden")
    return info


def _is_metadata_only(info: dict[str, Any]) -> bool:
    # Gotcha 2: gmail.metadata restricts the token even alongside broader scopes.
    return METADATA in info["scopes"]


def _int_param(name: str, default: int, *, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise GoogleError.bad_request(
            f"Invalid value at '{_snake(name)}' (TYPE_UINT32), \"{raw}\"", location=name
        ) from None
    if value < 0:
        raise GoogleError.bad_request(f"Invalid {name}", location=name)
    if maximum is not None:
        value = min(value, maximum)
    return value or default


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _bool_param(name: str) -> bool:
    return request.args.get(name, "false").lower() in ("true", "1")


def _page_token() -> str | None:
    return request.args.get("pageToken") or None


def _encode_token(cursor: str | None) -> str | None:
    # Gmail page tokens are opaque strings; hide the store's cursor format.
    if cursor is None:
        return None
    return base64.urlsafe_b64encode(cursor.encode()).decode().rstrip("=")


def _decode_token(token: str | None) -> str | None:
    if not token:
        return None
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise GoogleError.bad_request("Invalid pageToken", location="pageToken") from None


def _check_id(value: str) -> None:
    if not _ID_RE.match(value):
        raise GoogleError.bad_request("Invalid id value")


def _drop_empty(body: dict[str, Any]) -> dict[str, Any]:
    """Apply proto3 JSON mapping: leave out empty strings, empty lists, false and zero."""
    return {k: v for k, v in body.items() if v not in (None, "", [], {}, False, 0)}


def _call(email: str, method: str) -> Any:
    return get_state().controls.call(service="gmail", mailbox=email, method=method)


# --------------------------------------------------------------------------------------------
# resource rendering
# --------------------------------------------------------------------------------------------


def _mime_type(headers: list[list[str]]) -> str:
    for name, value in headers:
        if name.lower() == "content-type":
            return value.split(";", 1)[0].strip().lower() or "text/plain"
    return "text/plain"


def _filter_headers(headers: list[list[str]], wanted: Iterable[str] | None) -> list[dict[str, str]]:
    keep = {w.lower() for w in wanted} if wanted else None
    return [
        {"name": name, "value": value}
        for name, value in headers
        if keep is None or name.lower() in keep
    ]


def render_message(
    msg: dict[str, Any], fmt: str, metadata_headers: list[str] | None = None
) -> dict[str, Any]:
    """Render a stored message as a Gmail Message resource in the given format."""
    body: dict[str, Any] = {
        "id": msg["id"],
        "threadId": msg["thread_id"],
        "labelIds": list(msg["labels"]),
        "snippet": msg.get("snippet") or "",
        "sizeEstimate": int(msg["size_estimate"]),
        "historyId": str(msg["history_id"]),
        "internalDate": str(msg["internal_ms"]),
    }
    headers = msg["headers"]
    if fmt == "metadata":
        body["payload"] = {
            "mimeType": _mime_type(headers),
            "headers": _filter_headers(headers, metadata_headers),
        }
    elif fmt == "full":
        # The sandbox stores no bodies: a single-part message with an empty body.
        body["payload"] = {
            "partId": "",
            "mimeType": _mime_type(headers),
            "filename": "",
            "headers": _filter_headers(headers, None),
            "body": {"size": 0},
        }
    elif fmt == "raw":
        raw = "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
        body["raw"] = base64.urlsafe_b64encode(raw.encode()).decode()
    out = _drop_empty(body)
    if "payload" in body:
        out["payload"] = body["payload"]
    return out


def _format_param(allowed: tuple[str, ...], info: dict[str, Any]) -> str:
    fmt = (request.args.get("format") or "full").lower()
    if fmt not in allowed:
        raise GoogleError.bad_request(
            f'Invalid value for "format": "{request.args.get("format")}"', location="format"
        )
    if _is_metadata_only(info) and fmt in ("full", "raw"):
        raise GoogleError(
            403, f"Metadata scope doesn't allow format {fmt.upper()}", reason="forbidden"
        )
    return fmt


def _metadata_headers() -> list[str] | None:
    # The client sends repeated params; accept comma lists too (hand-written clients do).
    values = [v for item in request.args.getlist("metadataHeaders") for v in item.split(",")]
    values = [v.strip() for v in values if v.strip()]
    return values or None


def _list_filters(info: dict[str, Any]) -> tuple[list[str], bool]:
    labels = [v for item in request.args.getlist("labelIds") for v in item.split(",") if v]
    q = request.args.get("q")
    if q is not None:
        if _is_metadata_only(info):
            raise GoogleError(
                403, "Metadata scope does not support 'q' parameter", reason="forbidden"
            )
        labels += _labels_from_query(q)
    return labels, _bool_param("includeSpamTrash")


def _labels_from_query(q: str) -> list[str]:
    """Support the ``in:``/``label:`` subset of Gmail search; refuse the rest loudly."""
    out: list[str] = []
    for term in q.split():
        key, _, value = term.partition(":")
        if key.lower() in ("in", "label", "is") and value:
            out.append(value.upper() if value.lower() in _LOWER_SYSTEM else value)
        else:
            raise GoogleError.bad_request(
                f"Sandbox Gmail supports only in:/label:/is: terms in q, not {term!r}",
                location="q",
            )
    return out


_LOWER_SYSTEM = {name.lower() for name in _SYSTEM_LABELS}


# --------------------------------------------------------------------------------------------
# users.getProfile / labels.list / settings.sendAs.list
# --------------------------------------------------------------------------------------------

_USERS = "/gmail/v1/users/<user_id>"


@bp.get(f"{_USERS}/profile")
def get_profile(user_id: str) -> Response:
    """users.getProfile: address, totals and the current historyId."""
    info = _authorize(user_id, "getProfile")
    email = info["mailbox"]
    with _call(email, "getProfile"):
        store = get_state().store
        box = store.get_mailbox(email)
        if box is None:
            raise GoogleError.not_found()
        return jsonify(
            {
                "emailAddress": email,
                "messagesTotal": store.count_messages(email),
                "threadsTotal": store.count_threads(email),
                "historyId": str(box["history_id"]),
            }
        )


@bp.get(f"{_USERS}/labels")
def list_labels(user_id: str) -> Response:
    """users.labels.list: system labels plus the mailbox's user labels."""
    info = _authorize(user_id, "labels.list")
    email = info["mailbox"]
    with _call(email, "labels.list"):
        labels: list[dict[str, Any]] = []
        stored = {row["id"]: row for row in get_state().store.list_labels(email)}
        for label_id in _SYSTEM_LABELS:
            name = stored.pop(label_id, {}).get("name") or label_id
            labels.append(
                {"id": label_id, "name": name, **_SYSTEM_VISIBILITY.get(label_id, {}),
                 "type": "system"}
            )  # fmt: skip
        for label_id, row in stored.items():
            if row.get("type") == "system":
                labels.append({"id": label_id, "name": row["name"], "type": "system"})
                continue
            labels.append(
                {
                    "id": label_id,
                    "name": row["name"],
                    "messageListVisibility": "show",
                    "labelListVisibility": "labelShow",
                    "type": "user",
                }
            )
        return jsonify({"labels": labels})


@bp.get(f"{_USERS}/labels/<label_id>")
def get_label(user_id: str, label_id: str) -> Response:
    """users.labels.get: one label with its message and thread totals.

    Only labels.get carries the counts; labels.list omits them.
    https://developers.google.com/gmail/api/reference/rest/v1/users.labels/get
    """
    info = _authorize(user_id, "labels.get")
    email = info["mailbox"]
    with _call(email, "labels.get"):
        store = get_state().store
        stored = {row["id"]: row for row in store.list_labels(email)}
        if label_id not in _SYSTEM_LABELS and label_id not in stored:
            raise GoogleError.not_found()
        row = stored.get(label_id, {})
        is_system = label_id in _SYSTEM_LABELS or row.get("type") == "system"
        return jsonify(
            {
                "id": label_id,
                "name": row.get("name") or label_id,
                "type": "system" if is_system else "user",
                "messagesTotal": store.count_messages(email, label_id=label_id),
                "messagesUnread": store.count_messages(email, label_id=label_id, unread_only=True),
                "threadsTotal": store.count_threads(email, label_id=label_id),
                "threadsUnread": 0,
            }
        )


@bp.get(f"{_USERS}/settings/sendAs")
def list_send_as(user_id: str) -> Response:
    """users.settings.sendAs.list: the primary address and the mailbox's aliases."""
    info = _authorize(user_id, "sendAs.list")
    email = info["mailbox"]
    with _call(email, "sendAs.list"):
        box = get_state().store.get_mailbox(email)
        if box is None:
            raise GoogleError.not_found()
        aliases = list(box.get("aliases") or [])
        if not any(a.get("email", "").lower() == email for a in aliases):
            aliases.insert(
                0, {"email": email, "display_name": box.get("display_name"), "is_primary": True}
            )
        items = []
        for alias in aliases:
            primary = bool(alias.get("is_primary")) or alias.get("email", "").lower() == email
            item = {
                "sendAsEmail": alias["email"],
                "displayName": alias.get("display_name") or "",
                "replyToAddress": "",
                "signature": "",
                "isPrimary": primary,
                "isDefault": primary,
                "treatAsAlias": bool(alias.get("treat_as_alias")),
                # The primary address carries no verificationStatus; aliases are "accepted".
                "verificationStatus": "" if primary else "accepted",
            }
            items.append(_drop_empty(item))
        return jsonify({"sendAs": items})


# --------------------------------------------------------------------------------------------
# messages / threads
# --------------------------------------------------------------------------------------------


@bp.get(f"{_USERS}/messages")
def list_messages(user_id: str) -> Response:
    """users.messages.list: ids newest first, labelIds AND-ed, spam/trash hidden by default."""
    return _list_page(
        user_id,
        "messages.list",
        key="messages",
        item=lambda r: {"id": r["id"], "threadId": r["thread_id"]},
    )


def _list_page(
    user_id: str, method: str, *, key: str, item: Callable[[dict[str, Any]], dict[str, Any]]
) -> Response:
    """One page of messages.list or threads.list: same filters, paging and estimate."""
    info = _authorize(user_id, method)
    email = info["mailbox"]
    labels, include_spam_trash = _list_filters(info)
    page_size = _int_param("maxResults", DEFAULT_PAGE, maximum=MAX_PAGE)
    after = _decode_token(_page_token())
    with _call(email, method):
        store = get_state().store
        lister = store.list_messages if key == "messages" else store.list_threads
        try:
            rows, cursor = lister(
                email,
                label_ids=labels,
                include_spam_trash=include_spam_trash,
                page_size=page_size,
                after=after,
            )
        except ValueError:
            raise GoogleError.bad_request("Invalid pageToken", location="pageToken") from None
        body: dict[str, Any] = {}
        if rows:
            body[key] = [item(r) for r in rows]
        token = _encode_token(cursor)
        if token:
            body["nextPageToken"] = token
        # "Estimated total number of results": exact for one label, the page when it is the
        # last; `_page_token()` tells a first page apart from a later one.
        if cursor is None and not _page_token():
            body["resultSizeEstimate"] = len(rows)
        else:
            count = store.count_messages if key == "messages" else store.count_threads
            body["resultSizeEstimate"] = count(email, label_id=labels[0] if labels else None)
        return jsonify(body)


@bp.get(f"{_USERS}/messages/<message_id>")
def get_message(user_id: str, message_id: str) -> Response:
    """users.messages.get in minimal, metadata, full or raw format."""
    info = _authorize(user_id, "messages.get")
    email = info["mailbox"]
    fmt = _format_param(("minimal", "metadata", "full", "raw"), info)
    wanted = _metadata_headers() if fmt == "metadata" else None
    _check_id(message_id)
    with _call(email, "messages.get"):
        msg = get_state().store.get_message(email, message_id)
        if msg is None:
            raise GoogleError.not_found()
        return jsonify(render_message(msg, fmt, wanted))


@bp.get(f"{_USERS}/threads")
def list_threads(user_id: str) -> Response:
    """users.threads.list: threads newest first by their latest message."""
    return _list_page(
        user_id,
        "threads.list",
        key="threads",
        item=lambda r: {"id": r["id"], "historyId": str(r["history_id"])},
    )


@bp.get(f"{_USERS}/threads/<thread_id>")
def get_thread(user_id: str, thread_id: str) -> Response:
    """users.threads.get: every live message of the thread, oldest first."""
    info = _authorize(user_id, "threads.get")
    email = info["mailbox"]
    fmt = _format_param(("minimal", "metadata", "full"), info)
    wanted = _metadata_headers() if fmt == "metadata" else None
    _check_id(thread_id)
    with _call(email, "threads.get"):
        messages = get_state().store.get_thread(email, thread_id)
        if not messages:
            raise GoogleError.not_found()
        return jsonify(
            {
                "id": thread_id,
                "historyId": str(max(m["history_id"] for m in messages)),
                "messages": [render_message(m, fmt, wanted) for m in messages],
            }
        )


# --------------------------------------------------------------------------------------------
# history
# --------------------------------------------------------------------------------------------


@bp.get(f"{_USERS}/history")
def list_history(user_id: str) -> Response:
    """users.history.list: change records after startHistoryId, oldest first."""
    info = _authorize(user_id, "history.list")
    email = info["mailbox"]
    raw_start = request.args.get("startHistoryId")
    if not raw_start:
        raise GoogleError.bad_request(
            "Required parameter: startHistoryId", location="startHistoryId", reason="required"
        )
    try:
        start = int(raw_start)
    except ValueError:
        raise GoogleError.bad_request(
            f"Invalid value at 'start_history_id' (TYPE_UINT64), \"{raw_start}\"",
            location="startHistoryId",
        ) from None
    types = [v for item in request.args.getlist("historyTypes") for v in item.split(",") if v]
    for kind in types:
        if kind not in _HISTORY_TYPES:
            raise GoogleError.bad_request(
                f'Invalid value for "historyTypes": "{kind}"', location="historyTypes"
            )
    label_id = request.args.get("labelId") or None
    page_size = _int_param("maxResults", DEFAULT_PAGE, maximum=MAX_PAGE)
    page_token = _page_token()
    if page_token and not page_token.isdigit():
        raise GoogleError.bad_request("Invalid pageToken", location="pageToken")
    with _call(email, "history.list"):
        store = get_state().store
        box = store.get_mailbox(email)
        if box is None:
            raise GoogleError.not_found()
        try:
            rows, cursor = store.list_history(
                email,
                start_history_id=start,
                history_types=types,
                label_id=label_id,
                page_size=page_size,
                after=page_token,
            )
        except StaleCursorError:
            # "an invalid or out of date startHistoryId typically returns an HTTP 404"
            # (https://developers.google.com/gmail/api/guides/sync#limitations).
            raise GoogleError.not_found() from None
        body: dict[str, Any] = {}
        if rows and not page_token and get_state().config.get("gmail_history_empty_first_page"):
            # The knob in the module doc; the token resumes at the same place.
            return jsonify({"nextPageToken": str(start), "historyId": str(box["history_id"])})
        records = _history_records(email, rows)
        if records:
            body["history"] = records
        if cursor:
            body["nextPageToken"] = cursor
        body["historyId"] = str(box["history_id"])
        return jsonify(body)


def _history_records(email: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group store rows into Gmail History resources (one per history id)."""
    store = get_state().store
    records: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    labels_now: dict[str, list[str] | None] = {}

    def message_ref(row: dict[str, Any], labels: list[str] | None) -> dict[str, Any]:
        ref: dict[str, Any] = {"id": row["message_id"], "threadId": row["thread_id"]}
        if labels:
            ref["labelIds"] = list(labels)
        return ref

    def current_labels(message_id: str) -> list[str] | None:
        if message_id not in labels_now:
            msg = store.get_message(email, message_id)
            labels_now[message_id] = msg["labels"] if msg else None
        return labels_now[message_id]

    for row in rows:
        if current is None or current["id"] != str(row["history_id"]):
            current = {"id": str(row["history_id"]), "messages": []}
            records.append(current)
        plain = {"id": row["message_id"], "threadId": row["thread_id"]}
        if plain not in current["messages"]:
            current["messages"].append(plain)
        kind = row["kind"]
        if kind == "messageAdded":
            current.setdefault("messagesAdded", []).append(
                {"message": message_ref(row, row["label_ids"])}
            )
        elif kind == "messageDeleted":
            current.setdefault("messagesDeleted", []).append(
                {"message": message_ref(row, row["label_ids"])}
            )
        elif kind in ("labelAdded", "labelRemoved"):
            key = "labelsAdded" if kind == "labelAdded" else "labelsRemoved"
            current.setdefault(key, []).append(
                {
                    "message": message_ref(row, current_labels(row["message_id"])),
                    "labelIds": list(row["label_ids"]),
                }
            )
    return records


# --------------------------------------------------------------------------------------------
# watch / stop
# --------------------------------------------------------------------------------------------

_TOPIC_RE = re.compile(r"^projects/[^/]+/topics/[^/]+$")


@bp.post(f"{_USERS}/watch")
def watch(user_id: str) -> Response:
    """users.watch: store a push subscription; answer {historyId, expiration}."""
    info = _authorize(user_id, "watch")
    email = info["mailbox"]
    payload = request.get_json(silent=True) or {}
    topic = payload.get("topicName") or ""
    if not _TOPIC_RE.match(topic):
        raise GoogleError.bad_request(
            "Invalid topicName does not match projects/SOME-PROJECT/topics/SOME-TOPIC"
        )
    behaviour = payload.get("labelFilterBehavior") or payload.get("labelFilterAction") or ""
    with _call(email, "watch"):
        store = get_state().store
        box = store.get_mailbox(email)
        if box is None:
            raise GoogleError.not_found()
        expiration_ms = int(time.time() * 1000) + WATCH_TTL_MS
        # One watch per user: a new call replaces the previous one.
        store.create_subscription(
            email,
            id=f"gmail-watch:{email}",
            provider="google",
            resource="gmail",
            notification_url=topic,
            client_state=None,
            expiration_ms=expiration_ms,
            body={
                "topicName": topic,
                "labelIds": list(payload.get("labelIds") or []),
                "labelFilterBehavior": behaviour.lower(),
                "historyId": str(box["history_id"]),
                "clientId": info.get("client_id"),
            },
        )
        return jsonify({"historyId": str(box["history_id"]), "expiration": str(expiration_ms)})


@bp.post(f"{_USERS}/stop")
def stop(user_id: str) -> Response:
    """users.stop: drop the push subscription; empty 204 like Google."""
    info = _authorize(user_id, "stop")
    email = info["mailbox"]
    with _call(email, "stop"):
        get_state().store.delete_subscription(f"gmail-watch:{email}")
        return Response(status=204)


# --------------------------------------------------------------------------------------------
# batch
# --------------------------------------------------------------------------------------------


@bp.post("/batch")
@bp.post("/batch/gmail/v1")
def gmail_batch() -> Response:
    """Batch endpoint: dispatch each part through the app, at most 100 parts."""
    return batch.handle_batch(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        max_parts=MAX_BATCH_PARTS,
        path_prefixes=("/gmail/v1/",),
    )
