"""SQLite-backed store for the sandbox providers: mailboxes, messages, history, calendars, events,
OAuth grants and subscriptions.

Invariants (the endpoints rely on them; see sandbox/DESIGN.md "Store"):

* One SQLite file in WAL mode; one connection per thread (``threading.local``); every write runs
  under one lock (``self.lock``, shareable with ``SandboxState.lock``) inside ``BEGIN IMMEDIATE``.
* Memory is bounded whatever the mailbox size: list calls return one page (keyset paging on an
  index, never OFFSET), bulk inserts stream their iterable in chunks.
* All times are epoch milliseconds UTC.
* Gmail history: every message mutation allocates a new, strictly increasing ``history_id`` for
  the mailbox and writes ``history`` rows under it; ``list_history`` returns rows with
  ``history_id > start``. A start below ``history_floor`` raises :class:`StaleCursorError` (the
  Gmail view answers 404, https://developers.google.com/gmail/api/guides/sync).
* ``change_seq`` is a monotonic per-mailbox counter bumped by every message, calendar and event
  mutation and stamped on the row (``changed_seq``). Deleted rows stay as tombstones
  (``is_deleted=1``) so Graph delta and Calendar sync tokens can report deletions; a message that
  leaves a folder leaves a ``folder_departure`` row so that folder's delta reports it removed.
  A ``since_seq`` below ``token_floor`` raises :class:`StaleCursorError` (Calendar 410
  fullSyncRequired, Graph 410 syncStateNotFound; PROVIDERS.md §2, §4).
* ``labels`` (Gmail) and ``folder`` (Graph) of a message are kept coherent by every mutation, so
  one mailbox can be served by either API.
* Cursors returned by list calls are opaque strings; pass them back as ``after``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["StaleCursorError", "Store", "now_ms"]

_CHUNK = 5000  # rows per executemany; bounds memory of bulk inserts
_FAR_FUTURE_MS = 2**62

# Labels that hide a message from list calls unless includeSpamTrash is set
# (https://developers.google.com/gmail/api/reference/rest/v1/users.messages/list).
_SPAM_TRASH = ("SPAM", "TRASH")

# Graph well-known folder <-> Gmail system label, used to keep both views coherent.
_FOLDER_LABEL = {
    "inbox": "INBOX",
    "sentitems": "SENT",
    "drafts": "DRAFT",
    "junkemail": "SPAM",
    "deleteditems": "TRASH",
}
_LABEL_FOLDER = {v: k for k, v in _FOLDER_LABEL.items()}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mailbox (
  email TEXT PRIMARY KEY, provider TEXT NOT NULL, display_name TEXT, aliases TEXT NOT NULL,
  time_zone TEXT NOT NULL, user_id TEXT NOT NULL, tenant_id TEXT,
  history_id INTEGER NOT NULL, history_floor INTEGER NOT NULL,
  change_seq INTEGER NOT NULL, token_floor INTEGER NOT NULL,
  created_ms INTEGER NOT NULL, seed INTEGER NOT NULL, generator TEXT
);
CREATE TABLE IF NOT EXISTS label (
  mailbox TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
  PRIMARY KEY (mailbox, id)
);
CREATE TABLE IF NOT EXISTS folder (
  mailbox TEXT NOT NULL, id TEXT NOT NULL, display_name TEXT NOT NULL, parent_id TEXT,
  well_known_name TEXT, PRIMARY KEY (mailbox, id)
);
CREATE TABLE IF NOT EXISTS message (
  mailbox TEXT NOT NULL, id TEXT NOT NULL, thread_id TEXT NOT NULL,
  internal_ms INTEGER NOT NULL, labels TEXT NOT NULL, folder TEXT NOT NULL,
  headers TEXT NOT NULL, size_estimate INTEGER NOT NULL, is_read INTEGER NOT NULL,
  snippet TEXT NOT NULL DEFAULT '',
  history_id INTEGER NOT NULL, changed_seq INTEGER NOT NULL, is_deleted INTEGER NOT NULL,
  PRIMARY KEY (mailbox, id)
);
CREATE INDEX IF NOT EXISTS message_time ON message (mailbox, internal_ms DESC, id DESC);
CREATE INDEX IF NOT EXISTS message_thread ON message (mailbox, thread_id);
CREATE INDEX IF NOT EXISTS message_folder_seq ON message (mailbox, folder, changed_seq);
CREATE INDEX IF NOT EXISTS message_folder_time ON message (mailbox, folder, internal_ms DESC);
CREATE INDEX IF NOT EXISTS message_seq ON message (mailbox, changed_seq);
CREATE TABLE IF NOT EXISTS thread (
  mailbox TEXT NOT NULL, id TEXT NOT NULL, last_ms INTEGER NOT NULL,
  labels TEXT NOT NULL, all_labels TEXT NOT NULL, message_count INTEGER NOT NULL,
  history_id INTEGER NOT NULL, PRIMARY KEY (mailbox, id)
);
CREATE INDEX IF NOT EXISTS thread_time ON thread (mailbox, last_ms DESC, id DESC);
CREATE TABLE IF NOT EXISTS folder_departure (
  mailbox TEXT NOT NULL, folder TEXT NOT NULL, message_id TEXT NOT NULL,
  changed_seq INTEGER NOT NULL, PRIMARY KEY (mailbox, folder, changed_seq, message_id)
);
CREATE TABLE IF NOT EXISTS history (
  mailbox TEXT NOT NULL, history_id INTEGER NOT NULL, kind TEXT NOT NULL,
  message_id TEXT NOT NULL, thread_id TEXT NOT NULL, label_ids TEXT NOT NULL,
  PRIMARY KEY (mailbox, history_id, message_id, kind)
);
CREATE TABLE IF NOT EXISTS calendar (
  mailbox TEXT NOT NULL, id TEXT NOT NULL, summary TEXT NOT NULL, time_zone TEXT NOT NULL,
  is_primary INTEGER NOT NULL, access_role TEXT NOT NULL, is_app_created INTEGER NOT NULL,
  changed_seq INTEGER NOT NULL, is_deleted INTEGER NOT NULL, PRIMARY KEY (mailbox, id)
);
CREATE TABLE IF NOT EXISTS event (
  mailbox TEXT NOT NULL, calendar_id TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL,
  ical_uid TEXT, recurring_event_id TEXT, start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL,
  changed_seq INTEGER NOT NULL, is_deleted INTEGER NOT NULL,
  PRIMARY KEY (mailbox, calendar_id, id)
);
CREATE INDEX IF NOT EXISTS event_seq ON event (mailbox, calendar_id, changed_seq, id);
CREATE INDEX IF NOT EXISTS event_start ON event (mailbox, calendar_id, start_ms);
CREATE INDEX IF NOT EXISTS event_series ON event (mailbox, calendar_id, recurring_event_id);
CREATE TABLE IF NOT EXISTS "grant" (
  id TEXT PRIMARY KEY, provider TEXT NOT NULL, mailbox TEXT NOT NULL, client_id TEXT NOT NULL,
  scopes TEXT NOT NULL, refresh_token TEXT UNIQUE NOT NULL, is_revoked INTEGER NOT NULL,
  created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS grant_mailbox ON "grant" (mailbox, provider);
CREATE TABLE IF NOT EXISTS access_token (
  token TEXT PRIMARY KEY, grant_id TEXT NOT NULL, scopes TEXT NOT NULL,
  expires_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS access_token_grant ON access_token (grant_id);
CREATE TABLE IF NOT EXISTS auth_code (
  code TEXT PRIMARY KEY, provider TEXT NOT NULL, mailbox TEXT NOT NULL, client_id TEXT NOT NULL,
  redirect_uri TEXT, scopes TEXT NOT NULL, code_challenge TEXT, code_challenge_method TEXT,
  nonce TEXT, extra TEXT, created_ms INTEGER NOT NULL, is_used INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS subscription (
  id TEXT PRIMARY KEY, mailbox TEXT NOT NULL, provider TEXT NOT NULL, resource TEXT NOT NULL,
  notification_url TEXT, client_state TEXT, expiration_ms INTEGER NOT NULL, body TEXT NOT NULL
);
"""


class StaleCursorError(LookupError):
    """A history id or sync/delta sequence is older than the mailbox's floor."""


def now_ms() -> int:
    """Return the current time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def _pad(labels: Iterable[str]) -> str:
    # Stored as " A B C " so `LIKE '% A %'` matches whole label ids only.
    items = list(dict.fromkeys(x for x in labels if x))
    return " " + " ".join(items) + " " if items else " "


def _unpad(text: str) -> list[str]:
    return text.split()


def _enc(*parts: object) -> str:
    # ":" never occurs in Gmail hex ids, Graph base64url ids or Calendar base32hex ids.
    return ":".join(str(p) for p in parts)


def _dec(cursor: str) -> list[str]:
    return cursor.split(":", 1)


def _folder_for_labels(labels: list[str], current: str) -> str:
    """Pick the Graph folder that matches a Gmail label set (priority: trash, spam, draft...)."""
    for label in ("TRASH", "SPAM", "DRAFT", "INBOX", "SENT"):
        if label in labels:
            return _LABEL_FOLDER[label]
    # No system location label: a custom folder stays, anything else is archived.
    return current if current not in _FOLDER_LABEL else "archive"


def _labels_for_folder(labels: list[str], folder: str) -> list[str]:
    """Rewrite location labels to match a Graph folder; user/state labels are kept."""
    kept = [x for x in labels if x not in ("INBOX", "SPAM", "TRASH")]
    wanted = _FOLDER_LABEL.get(folder)
    if wanted and wanted not in kept:
        kept.append(wanted)
    return kept


def _event_window(body: dict) -> tuple[int, int]:
    """Return (start_ms, end_ms) of an event body; recurring masters end in the far future."""

    def point(p: dict | None) -> int:
        if not p:
            return 0
        if p.get("date_time"):
            dt = datetime.fromisoformat(p["date_time"])
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=ZoneInfo(p.get("time_zone") or "UTC"))
            return int(dt.timestamp() * 1000)
        if p.get("date"):
            d = date.fromisoformat(p["date"])
            dt = datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(p.get("time_zone") or "UTC"))
            return int(dt.timestamp() * 1000)
        return 0

    start = point(body.get("start"))
    end = point(body.get("end")) or start
    if body.get("recurrence"):
        end = _FAR_FUTURE_MS
    return start, end


def _stable_id(*parts: str, length: int = 21, digits: bool = True) -> str:
    h = hashlib.sha256("|".join(parts).encode()).digest()
    if digits:
        return "1" + str(int.from_bytes(h[:16], "big"))[: length - 1]
    return base64.urlsafe_b64encode(h).decode().rstrip("=")[:length]


class Store:
    """SQLite mailbox store shared by every sandbox endpoint (see module docstring).

    Public API (mailbox email first; pages are ``(rows, next_cursor | None)``):

    mailboxes: ``create_mailbox``, ``get_mailbox``, ``list_mailboxes``, ``update_mailbox``,
      ``delete_mailbox``, ``expire_cursors``;
    labels/folders (addition): ``put_label``, ``list_labels``, ``put_folder``, ``list_folders``;
    messages: ``add_messages``, ``get_message``, ``list_messages`` (label or folder filter, newest
      first), ``list_threads``, ``get_thread``, ``delete_message``, ``modify_labels``,
      ``move_message``, ``set_read`` (addition), ``count_messages``, ``count_threads``
      (addition), ``list_history``, ``list_folder_changes``;
    calendars/events: ``upsert_calendar``, ``get_calendar``, ``list_calendars``,
      ``delete_calendar``, ``put_event``, ``get_event``, ``delete_event``, ``list_events``
      (changed_seq order, for sync/delta), ``list_events_in_window`` and
      ``list_event_exceptions`` (additions, for expanding recurrences);
    oauth: ``create_auth_code``, ``take_auth_code``, ``create_grant``, ``get_grant``,
      ``get_grant_by_refresh_token``, ``rotate_refresh_token``, ``revoke_grant``,
      ``revoke_all_grants``, ``revoke_token``, ``issue_access_token``, ``get_access_token``;
    subscriptions: ``create_subscription``, ``get_subscription``, ``list_subscriptions``,
      ``update_subscription``, ``delete_subscription``;
    plumbing for ``fact_*`` owners (generate.py/truth.py): ``connection()``, ``transaction()``.
    """

    def __init__(self, path: str, *, lock: threading.RLock | None = None) -> None:
        self.path = path
        self.lock = lock or threading.RLock()
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        with self.lock:
            self.connection().executescript(_SCHEMA)

    # -- plumbing ---------------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """Return this thread's connection (autocommit; use ``transaction()`` to write)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA cache_size=-16000")  # 16 MB per connection: bounded memory
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the write lock and one IMMEDIATE transaction; commit on success (re-entrant)."""
        with self.lock:
            conn = self.connection()
            if conn.in_transaction:  # nested: the outer block commits
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this store opened (call once, when the sandbox stops)."""
        with self._all_lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._local = threading.local()

    def _bump(
        self, conn: sqlite3.Connection, email: str, *, history: int = 0, seq: int = 0
    ) -> tuple[int, int]:
        """Allocate ``history`` history ids and ``seq`` change seqs; return the first of each."""
        row = conn.execute(
            "SELECT history_id, change_seq FROM mailbox WHERE email = ?", (email,)
        ).fetchone()
        if row is None:
            raise KeyError(email)
        conn.execute(
            "UPDATE mailbox SET history_id = history_id + ?, change_seq = change_seq + ? "
            "WHERE email = ?",
            (history, seq, email),
        )
        return row["history_id"] + 1, row["change_seq"] + 1

    # -- mailboxes --------------------------------------------------------------------------

    def create_mailbox(
        self,
        email: str,
        *,
        provider: str,
        display_name: str | None,
        aliases: list[dict],
        time_zone: str,
        seed: int = 0,
        user_id: str | None = None,
        tenant_id: str | None = None,
        created_ms: int | None = None,
    ) -> None:
        """Create an empty mailbox; raise ValueError when it exists or provider is unknown."""
        email = email.lower()
        if provider not in ("google", "microsoft"):
            raise ValueError(f"unknown provider {provider!r}")
        if user_id is None:
            # Google `sub` is a 21-digit number; Graph object ids are GUIDs.
            user_id = (
                _stable_id("sub", email)
                if provider == "google"
                else str(uuid.UUID(bytes=hashlib.sha256(email.encode()).digest()[:16]))
            )
        if tenant_id is None and provider == "microsoft":
            domain = email.rsplit("@", 1)[-1]
            tenant_id = str(uuid.UUID(bytes=hashlib.sha256(domain.encode()).digest()[16:]))
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM mailbox WHERE email = ?", (email,)).fetchone():
                raise ValueError(f"mailbox {email} exists")
            conn.execute(
                "INSERT INTO mailbox VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    email,
                    provider,
                    display_name,
                    json.dumps(aliases),
                    time_zone,
                    user_id,
                    tenant_id,
                    # Real Gmail history ids are large numbers; starting high catches int32 bugs.
                    4_000_000_000,
                    0,
                    0,
                    0,
                    created_ms if created_ms is not None else now_ms(),
                    seed,
                    None,
                ),
            )

    def get_mailbox(self, email: str) -> dict | None:
        """Return the mailbox row (aliases/generator decoded) or None."""
        row = (
            self.connection()
            .execute("SELECT * FROM mailbox WHERE email = ?", (email.lower(),))
            .fetchone()
        )
        return _mailbox_dict(row) if row else None

    def list_mailboxes(self) -> list[dict]:
        """Return every mailbox row."""
        rows = self.connection().execute("SELECT * FROM mailbox ORDER BY email").fetchall()
        return [_mailbox_dict(r) for r in rows]

    def update_mailbox(self, email: str, **fields: Any) -> None:
        """Set display_name, aliases, time_zone, seed or generator (JSON-able dict)."""
        allowed = {"display_name", "aliases", "time_zone", "seed", "generator"}
        if not set(fields) <= allowed:
            raise ValueError(f"cannot update {set(fields) - allowed}")
        sets, args = [], []
        for key, value in fields.items():
            sets.append(f"{key} = ?")
            args.append(json.dumps(value) if key in ("aliases", "generator") else value)
        if not sets:
            return
        with self.transaction() as conn:
            conn.execute(
                f"UPDATE mailbox SET {', '.join(sets)} WHERE email = ?",  # noqa: S608 keys allowlisted
                (*args, email.lower()),
            )

    def delete_mailbox(self, email: str) -> None:
        """Delete a mailbox and every row that belongs to it, including ``fact_*`` tables."""
        email = email.lower()
        with self.transaction() as conn:
            for table in (
                "message",
                "thread",
                "history",
                "folder_departure",
                "label",
                "folder",
                "calendar",
                "event",
                "subscription",
            ):
                conn.execute(f"DELETE FROM {table} WHERE mailbox = ?", (email,))  # noqa: S608
            conn.execute(
                'DELETE FROM access_token WHERE grant_id IN (SELECT id FROM "grant" '
                "WHERE mailbox = ?)",
                (email,),
            )
            conn.execute('DELETE FROM "grant" WHERE mailbox = ?', (email,))
            conn.execute("DELETE FROM auth_code WHERE mailbox = ?", (email,))
            facts = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'fact\\_%' "
                "ESCAPE '\\'"
            ).fetchall()
            for (name,) in facts:
                cols = {c[1] for c in conn.execute(f"PRAGMA table_info({name})")}
                if "mailbox" in cols:
                    conn.execute(f"DELETE FROM {name} WHERE mailbox = ?", (email,))  # noqa: S608
            conn.execute("DELETE FROM mailbox WHERE email = ?", (email,))

    def expire_cursors(self, email: str) -> None:
        """Invalidate every history id and sync/delta token handed out so far."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE mailbox SET history_floor = history_id + 1, token_floor = change_seq + 1 "
                "WHERE email = ?",
                (email.lower(),),
            )

    # -- labels and folders -----------------------------------------------------------------

    def put_label(self, email: str, *, id: str, name: str, type: str = "user") -> None:
        """Insert or rename a Gmail label (system or user)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO label VALUES (?,?,?,?)", (email.lower(), id, name, type)
            )

    def list_labels(self, email: str) -> list[dict]:
        """Return the mailbox's labels (small: one row per label, not per message)."""
        rows = self.connection().execute(
            "SELECT id, name, type FROM label WHERE mailbox = ? ORDER BY type, id",
            (email.lower(),),
        )
        return [dict(r) for r in rows]

    def put_folder(
        self,
        email: str,
        *,
        id: str,
        display_name: str,
        parent_id: str | None = None,
        well_known_name: str | None = None,
    ) -> None:
        """Insert or rename a Graph mail folder."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO folder VALUES (?,?,?,?,?)",
                (email.lower(), id, display_name, parent_id, well_known_name),
            )

    def list_folders(self, email: str) -> list[dict]:
        """Return the mailbox's mail folders."""
        rows = self.connection().execute(
            "SELECT id, display_name, parent_id, well_known_name FROM folder WHERE mailbox = ? "
            "ORDER BY id",
            (email.lower(),),
        )
        return [dict(r) for r in rows]

    # -- messages ---------------------------------------------------------------------------

    def add_messages(
        self, email: str, messages: Iterable[dict], *, record_history: bool = True
    ) -> int:
        """Insert (or replace) messages, streaming in chunks; return how many were written.

        Keys: id, thread_id, internal_ms, labels (list), folder, headers ([[name, value]]),
        size_estimate, is_read, snippet (optional). With ``record_history`` each message gets
        its own history id and a ``messageAdded`` row; without (bulk generation) no history rows
        are written and ``history_floor`` moves past them, so older starts are refused rather
        than silently missing the messages.
        """
        email = email.lower()
        total = 0
        chunk: list[dict] = []
        for msg in messages:
            chunk.append(msg)
            if len(chunk) >= _CHUNK:
                total += self._add_chunk(email, chunk, record_history)
                chunk = []
        if chunk:
            total += self._add_chunk(email, chunk, record_history)
        return total

    def _add_chunk(self, email: str, chunk: list[dict], record_history: bool) -> int:
        with self.transaction() as conn:
            n = len(chunk)
            hid, seq = self._bump(conn, email, history=n, seq=n)
            rows = []
            hist = []
            for i, m in enumerate(chunk):
                labels = list(m.get("labels") or [])
                folder = m.get("folder") or _folder_for_labels(labels, "archive")
                rows.append(
                    (
                        email,
                        m["id"],
                        m["thread_id"],
                        int(m["internal_ms"]),
                        _pad(labels),
                        folder,
                        json.dumps(m.get("headers") or [], ensure_ascii=False),
                        int(m.get("size_estimate") or 0),
                        int(bool(m.get("is_read", "UNREAD" not in labels))),
                        m.get("snippet") or "",
                        hid + i,
                        seq + i,
                    )
                )
                if record_history:
                    hist.append(
                        (email, hid + i, "messageAdded", m["id"], m["thread_id"], _pad(labels))
                    )
            conn.executemany(
                "INSERT OR REPLACE INTO message VALUES (?,?,?,?,?,?,?,?,?,?,?,?,0)", rows
            )
            if hist:
                conn.executemany("INSERT INTO history VALUES (?,?,?,?,?,?)", hist)
            else:
                # Starts before these unrecorded additions would silently miss them; the current
                # id (what getProfile hands out) stays valid.
                conn.execute(
                    "UPDATE mailbox SET history_floor = history_id WHERE email = ?", (email,)
                )
            self._refresh_threads(conn, email, {m["thread_id"] for m in chunk})
            return n

    def _refresh_threads(self, conn: sqlite3.Connection, email: str, thread_ids: set[str]) -> None:
        """Recompute thread rows (latest time, label unions, count) from their live messages."""
        ids = list(thread_ids)
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            agg: dict[str, list] = {}
            for r in conn.execute(
                f"SELECT thread_id, internal_ms, labels, history_id FROM message "  # noqa: S608
                f"WHERE mailbox = ? AND is_deleted = 0 AND thread_id IN ({marks})",
                (email, *part),
            ):
                a = agg.setdefault(r[0], [0, {}, {}, 0, 0])
                labels = _unpad(r[2])
                a[0] = max(a[0], r[1])
                a[2].update(dict.fromkeys(labels))
                if not any(x in labels for x in _SPAM_TRASH):
                    a[1].update(dict.fromkeys(labels))
                a[3] += 1
                a[4] = max(a[4], r[3])
            conn.execute(
                f"DELETE FROM thread WHERE mailbox = ? AND id IN ({marks})",  # noqa: S608
                (email, *part),
            )
            conn.executemany(
                "INSERT INTO thread VALUES (?,?,?,?,?,?,?)",
                [(email, tid, a[0], _pad(a[1]), _pad(a[2]), a[3], a[4]) for tid, a in agg.items()],
            )

    def get_message(
        self, email: str, message_id: str, *, include_deleted: bool = False
    ) -> dict | None:
        """Return one message, or None when unknown or deleted."""
        row = (
            self.connection()
            .execute(
                "SELECT * FROM message WHERE mailbox = ? AND id = ?", (email.lower(), message_id)
            )
            .fetchone()
        )
        if row is None or (row["is_deleted"] and not include_deleted):
            return None
        return _message_dict(row)

    def list_messages(
        self,
        email: str,
        *,
        label_ids: Iterable[str] = (),
        include_spam_trash: bool = False,
        folder: str | None = None,
        page_size: int,
        after: str | None = None,
    ) -> tuple[list[dict], str | None]:
        """Page live messages newest first by (internal_ms, id); labels must ALL match.

        SPAM/TRASH are hidden unless ``include_spam_trash`` or asked for by label (Gmail
        messages.list). ``folder`` restricts to one Graph folder.
        """
        label_ids = list(label_ids)
        where = ["mailbox = ?", "is_deleted = 0"]
        args: list[Any] = [email.lower()]
        for label in label_ids:
            where.append("labels LIKE ?")
            args.append(f"% {label} %")
        if not include_spam_trash and folder is None:
            for label in _SPAM_TRASH:
                if label not in label_ids:
                    where.append("labels NOT LIKE ?")
                    args.append(f"% {label} %")
        if folder is not None:
            where.append("folder = ?")
            args.append(folder)
        if after:
            ms, mid = _dec(after)
            where.append("(internal_ms, id) < (?, ?)")
            args += [int(ms), mid]
        rows = (
            self.connection()
            .execute(
                f"SELECT * FROM message WHERE {' AND '.join(where)} "  # noqa: S608
                "ORDER BY internal_ms DESC, id DESC LIMIT ?",
                (*args, page_size + 1),
            )
            .fetchall()
        )
        page = [_message_dict(r) for r in rows[:page_size]]
        cursor = _enc(page[-1]["internal_ms"], page[-1]["id"]) if len(rows) > page_size else None
        return page, cursor

    def list_threads(
        self,
        email: str,
        *,
        label_ids: Iterable[str] = (),
        include_spam_trash: bool = False,
        page_size: int,
        after: str | None = None,
    ) -> tuple[list[dict], str | None]:
        """Page threads newest first by latest message; a thread matches a label when any of its
        live messages carries it. Rows: id, last_ms, labels, message_count, history_id."""
        label_ids = list(label_ids)
        wants_spam_trash = include_spam_trash or any(x in _SPAM_TRASH for x in label_ids)
        col = "all_labels" if wants_spam_trash else "labels"
        where = ["mailbox = ?", f"{col} != ' '"]
        args: list[Any] = [email.lower()]
        for label in label_ids:
            where.append(f"{col} LIKE ?")
            args.append(f"% {label} %")
        if after:
            ms, tid = _dec(after)
            where.append("(last_ms, id) < (?, ?)")
            args += [int(ms), tid]
        rows = (
            self.connection()
            .execute(
                f"SELECT id, last_ms, {col} AS labels, message_count, history_id "  # noqa: S608
                f"FROM thread WHERE {' AND '.join(where)} "
                "ORDER BY last_ms DESC, id DESC LIMIT ?",
                (*args, page_size + 1),
            )
            .fetchall()
        )
        page = [{**dict(r), "labels": _unpad(r["labels"])} for r in rows[:page_size]]
        cursor = _enc(page[-1]["last_ms"], page[-1]["id"]) if len(rows) > page_size else None
        return page, cursor

    def get_thread(self, email: str, thread_id: str) -> list[dict]:
        """Return a thread's live messages oldest first ([] when unknown)."""
        rows = self.connection().execute(
            "SELECT * FROM message WHERE mailbox = ? AND thread_id = ? AND is_deleted = 0 "
            "ORDER BY internal_ms, id",
            (email.lower(), thread_id),
        )
        return [_message_dict(r) for r in rows]

    def _live(self, conn: sqlite3.Connection, email: str, message_id: str) -> sqlite3.Row | None:
        return conn.execute(
            "SELECT * FROM message WHERE mailbox = ? AND id = ? AND is_deleted = 0",
            (email, message_id),
        ).fetchone()

    def delete_message(self, email: str, message_id: str) -> bool:
        """Tombstone a message (messageDeleted history); False when unknown or already gone."""
        email = email.lower()
        with self.transaction() as conn:
            row = self._live(conn, email, message_id)
            if row is None:
                return False
            hid, seq = self._bump(conn, email, history=1, seq=1)
            conn.execute(
                "UPDATE message SET is_deleted = 1, history_id = ?, changed_seq = ? "
                "WHERE mailbox = ? AND id = ?",
                (hid, seq, email, message_id),
            )
            conn.execute(
                "INSERT INTO history VALUES (?,?,?,?,?,?)",
                (email, hid, "messageDeleted", message_id, row["thread_id"], row["labels"]),
            )
            self._refresh_threads(conn, email, {row["thread_id"]})
            return True

    def modify_labels(
        self, email: str, message_id: str, *, add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> dict | None:
        """Add/remove Gmail labels (one history record); keep folder and is_read coherent.

        Returns the updated message, or None when unknown/deleted. A no-op change still returns
        the message but allocates no history id (Gmail records only effective changes).
        """
        email = email.lower()
        with self.transaction() as conn:
            row = self._live(conn, email, message_id)
            if row is None:
                return None
            old = _unpad(row["labels"])
            removes = set(remove)
            new = [x for x in old if x not in removes]
            new += [x for x in dict.fromkeys(add) if x not in new and x not in removes]
            folder = _folder_for_labels(new, row["folder"])
            self._apply(conn, email, row, new, folder)
            return _message_dict(self._live(conn, email, message_id))

    def move_message(self, email: str, message_id: str, *, folder: str) -> dict | None:
        """Move to a Graph folder (location labels follow); None when unknown/deleted."""
        email = email.lower()
        with self.transaction() as conn:
            row = self._live(conn, email, message_id)
            if row is None:
                return None
            new = _labels_for_folder(_unpad(row["labels"]), folder)
            self._apply(conn, email, row, new, folder)
            return _message_dict(self._live(conn, email, message_id))

    def set_read(self, email: str, message_id: str, *, is_read: bool) -> dict | None:
        """Mark read/unread (Graph PATCH isRead); the UNREAD label follows."""
        if is_read:
            return self.modify_labels(email, message_id, remove=["UNREAD"])
        return self.modify_labels(email, message_id, add=["UNREAD"])

    def _apply(
        self,
        conn: sqlite3.Connection,
        email: str,
        row: sqlite3.Row,
        new: list[str],
        folder: str,
    ) -> None:
        old = _unpad(row["labels"])
        added = [x for x in new if x not in old]
        removed = [x for x in old if x not in new]
        if not added and not removed and folder == row["folder"]:
            return
        hid, seq = self._bump(conn, email, history=1, seq=1)
        conn.execute(
            "UPDATE message SET labels = ?, folder = ?, is_read = ?, history_id = ?, "
            "changed_seq = ? WHERE mailbox = ? AND id = ?",
            (_pad(new), folder, int("UNREAD" not in new), hid, seq, email, row["id"]),
        )
        if added:
            conn.execute(
                "INSERT INTO history VALUES (?,?,?,?,?,?)",
                (email, hid, "labelAdded", row["id"], row["thread_id"], _pad(added)),
            )
        if removed:
            conn.execute(
                "INSERT INTO history VALUES (?,?,?,?,?,?)",
                (email, hid, "labelRemoved", row["id"], row["thread_id"], _pad(removed)),
            )
        if folder != row["folder"]:
            conn.execute(
                "INSERT OR REPLACE INTO folder_departure VALUES (?,?,?,?)",
                (email, row["folder"], row["id"], seq),
            )
        self._refresh_threads(conn, email, {row["thread_id"]})

    def count_messages(
        self,
        email: str,
        *,
        label_id: str | None = None,
        folder: str | None = None,
        unread_only: bool = False,
    ) -> int:
        """Count live messages, optionally with one label or in one folder."""
        where = ["mailbox = ?", "is_deleted = 0"]
        args: list[Any] = [email.lower()]
        if label_id:
            where.append("labels LIKE ?")
            args.append(f"% {label_id} %")
        if folder:
            where.append("folder = ?")
            args.append(folder)
        if unread_only:
            where.append("is_read = 0")
        sql = f"SELECT count(*) FROM message WHERE {' AND '.join(where)}"  # noqa: S608
        return self.connection().execute(sql, args).fetchone()[0]

    def count_threads(self, email: str, *, label_id: str | None = None) -> int:
        """Count threads (with a live message carrying ``label_id`` when given)."""
        where, args = ["mailbox = ?", "all_labels != ' '"], [email.lower()]
        if label_id:
            where.append("all_labels LIKE ?")
            args.append(f"% {label_id} %")
        sql = f"SELECT count(*) FROM thread WHERE {' AND '.join(where)}"  # noqa: S608
        return self.connection().execute(sql, args).fetchone()[0]

    def list_history(
        self,
        email: str,
        *,
        start_history_id: int,
        history_types: Iterable[str] = (),
        label_id: str | None = None,
        page_size: int,
        after: str | None = None,
    ) -> tuple[list[dict], str | None]:
        """Page history rows with history_id > start, oldest first.

        Rows: ``{history_id, kind, message_id, thread_id, label_ids}``; several rows can share a
        history_id (one Gmail History record: group consecutive rows). ``page_size`` counts
        history records, and a page never splits one. ``label_ids`` is the message's labels for
        messageAdded/messageDeleted and the changed labels for labelAdded/labelRemoved.
        Raises StaleCursorError when start < history_floor (Gmail answers 404).
        """
        email = email.lower()
        conn = self.connection()
        mb = conn.execute("SELECT history_floor FROM mailbox WHERE email = ?", (email,)).fetchone()
        if mb is None:
            raise KeyError(email)
        if int(start_history_id) < mb[0]:
            raise StaleCursorError(f"history id {start_history_id} < floor {mb[0]}")
        lower = max(int(start_history_id), int(after) if after else 0)
        where = ["mailbox = ?", "history_id > ?"]
        args: list[Any] = [email, lower]
        types = list(history_types)
        if types:
            where.append(f"kind IN ({','.join('?' * len(types))})")
            args += types
        if label_id:
            where.append("label_ids LIKE ?")
            args.append(f"% {label_id} %")
        cond = " AND ".join(where)
        ids = [
            r[0]
            for r in conn.execute(
                f"SELECT DISTINCT history_id FROM history WHERE {cond} "  # noqa: S608
                "ORDER BY history_id LIMIT ?",
                (*args, page_size + 1),
            )
        ]
        if not ids:
            return [], None
        last = ids[min(page_size, len(ids)) - 1]
        rows = conn.execute(
            f"SELECT history_id, kind, message_id, thread_id, label_ids FROM history "  # noqa: S608
            f"WHERE {cond} AND history_id <= ? ORDER BY history_id, message_id, kind",
            (*args, last),
        )
        page = [{**dict(r), "label_ids": _unpad(r["label_ids"])} for r in rows]
        return page, (str(last) if len(ids) > page_size else None)

    def list_folder_changes(
        self,
        email: str,
        folder: str,
        *,
        since_seq: int,
        page_size: int,
        after: str | None = None,
    ) -> tuple[list[dict], str | None]:
        """Page a folder's changes after ``since_seq`` in changed_seq order (Graph delta).

        Rows are message dicts; ``is_deleted`` rows are tombstones with ``removed_reason``
        'deleted' (message deleted) or 'changed' (it left this folder; Graph's @removed
        reason). ``since_seq=0`` is the initial round (tombstones included: harmless).
        Raises StaleCursorError when 0 < since_seq < token_floor.
        """
        email = email.lower()
        conn = self.connection()
        self._check_token(conn, email, since_seq)
        lo_seq, lo_id = int(since_seq), ""
        if after:
            s, lo_id = _dec(after)
            lo_seq = int(s)
        rows = conn.execute(
            """
            SELECT * FROM (
              SELECT m.*, CASE WHEN m.is_deleted THEN 'deleted' END AS removed_reason
                FROM message m
               WHERE m.mailbox = ? AND m.folder = ? AND (m.changed_seq, m.id) > (?, ?)
              UNION ALL
              SELECT m.mailbox, m.id, m.thread_id, m.internal_ms, m.labels, d.folder, m.headers,
                     m.size_estimate, m.is_read, m.snippet, m.history_id, d.changed_seq, 1,
                     'changed'
                FROM folder_departure d JOIN message m ON m.mailbox = d.mailbox
                                                      AND m.id = d.message_id
               WHERE d.mailbox = ? AND d.folder = ? AND (d.changed_seq, d.message_id) > (?, ?)
            ) ORDER BY changed_seq, id LIMIT ?
            """,
            (email, folder, lo_seq, lo_id, email, folder, lo_seq, lo_id, page_size + 1),
        ).fetchall()
        page = []
        for r in rows[:page_size]:
            d = _message_dict(r)
            d["removed_reason"] = r["removed_reason"]
            page.append(d)
        cursor = _enc(page[-1]["changed_seq"], page[-1]["id"]) if len(rows) > page_size else None
        return page, cursor

    def _check_token(self, conn: sqlite3.Connection, email: str, since_seq: int | None) -> None:
        mb = conn.execute("SELECT token_floor FROM mailbox WHERE email = ?", (email,)).fetchone()
        if mb is None:
            raise KeyError(email)
        if since_seq and int(since_seq) < mb[0]:
            raise StaleCursorError(f"sequence {since_seq} < floor {mb[0]}")

    def current_seq(self, email: str) -> int:
        """Return the mailbox's current change_seq (what a new sync/delta token encodes)."""
        row = (
            self.connection()
            .execute("SELECT change_seq FROM mailbox WHERE email = ?", (email.lower(),))
            .fetchone()
        )
        if row is None:
            raise KeyError(email)
        return row[0]

    # -- calendars and events ---------------------------------------------------------------

    def upsert_calendar(
        self,
        email: str,
        *,
        id: str,
        summary: str,
        time_zone: str,
        is_primary: bool = False,
        access_role: str = "owner",
        is_app_created: bool = False,
    ) -> dict:
        """Insert or update a calendar (bumps change_seq for calendarList sync)."""
        email = email.lower()
        with self.transaction() as conn:
            _, seq = self._bump(conn, email, seq=1)
            conn.execute(
                "INSERT OR REPLACE INTO calendar VALUES (?,?,?,?,?,?,?,?,0)",
                (
                    email,
                    id,
                    summary,
                    time_zone,
                    int(is_primary),
                    access_role,
                    int(is_app_created),
                    seq,
                ),
            )
        cal = self.get_calendar(email, id)
        assert cal is not None
        return cal

    def get_calendar(self, email: str, calendar_id: str) -> dict | None:
        """Return a live calendar or None."""
        row = (
            self.connection()
            .execute(
                "SELECT * FROM calendar WHERE mailbox = ? AND id = ? AND is_deleted = 0",
                (email.lower(), calendar_id),
            )
            .fetchone()
        )
        return _calendar_dict(row) if row else None

    def list_calendars(self, email: str, *, include_deleted: bool = False) -> list[dict]:
        """Return the mailbox's calendars, primary first."""
        rows = self.connection().execute(
            "SELECT * FROM calendar WHERE mailbox = ? AND (is_deleted = 0 OR ?) "
            "ORDER BY is_primary DESC, id",
            (email.lower(), int(include_deleted)),
        )
        return [_calendar_dict(r) for r in rows]

    def delete_calendar(self, email: str, calendar_id: str) -> bool:
        """Tombstone a calendar; False when unknown or already deleted."""
        email = email.lower()
        with self.transaction() as conn:
            if self.get_calendar(email, calendar_id) is None:
                return False
            _, seq = self._bump(conn, email, seq=1)
            conn.execute(
                "UPDATE calendar SET is_deleted = 1, changed_seq = ? WHERE mailbox = ? AND id = ?",
                (seq, email, calendar_id),
            )
            return True

    def put_event(
        self, email: str, calendar_id: str, body: dict, *, now_ms: int | None = None
    ) -> dict:
        """Insert or replace an event (body per DESIGN.md); bump changed_seq; return the body.

        ``updated_ms`` is set to ``now_ms`` (default: wall clock); ``created_ms`` is kept from
        the body, else from the stored row, else ``now_ms``. A body with status 'cancelled' is
        stored as a tombstone (is_deleted=1).
        """
        email = email.lower()
        stamp = now_ms if now_ms is not None else _wall_ms()
        body = dict(body)
        with self.transaction() as conn:
            prev = conn.execute(
                "SELECT body FROM event WHERE mailbox = ? AND calendar_id = ? AND id = ?",
                (email, calendar_id, body["id"]),
            ).fetchone()
            if not body.get("created_ms"):
                body["created_ms"] = json.loads(prev[0]).get("created_ms") if prev else stamp
            body["updated_ms"] = stamp
            self._write_event(conn, email, calendar_id, body)
        return body

    def _write_event(
        self, conn: sqlite3.Connection, email: str, calendar_id: str, body: dict
    ) -> None:
        """Insert or replace one event row, bumping the mailbox's change sequence."""
        body.setdefault("ical_uid", f"{body['id']}@sandbox")
        start_ms, end_ms = _event_window(body)
        _, seq = self._bump(conn, email, seq=1)
        conn.execute(
            "INSERT OR REPLACE INTO event VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                email,
                calendar_id,
                body["id"],
                json.dumps(body, ensure_ascii=False),
                body.get("ical_uid"),
                body.get("recurring_event_id"),
                start_ms,
                end_ms,
                seq,
                int(body.get("status") == "cancelled"),
            ),
        )

    def put_events(self, email: str, calendar_id: str, bodies: Iterable[dict]) -> int:
        """Bulk insert events whose bodies already carry created_ms/updated_ms (generator)."""
        email = email.lower()
        n = 0
        with self.transaction() as conn:
            for body in bodies:
                self._write_event(conn, email, calendar_id, body)
                n += 1
        return n

    def get_event(
        self, email: str, calendar_id: str, event_id: str, *, include_deleted: bool = False
    ) -> dict | None:
        """Return an event body (None when unknown, or deleted unless asked)."""
        row = (
            self.connection()
            .execute(
                "SELECT body, is_deleted FROM event WHERE mailbox = ? AND calendar_id = ? "
                "AND id = ?",
                (email.lower(), calendar_id, event_id),
            )
            .fetchone()
        )
        if row is None or (row[1] and not include_deleted):
            return None
        return json.loads(row[0])

    def delete_event(
        self, email: str, calendar_id: str, event_id: str, *, now_ms: int | None = None
    ) -> bool:
        """Tombstone an event (status cancelled); False when unknown or already deleted
        (Calendar answers 410 for deleting a deleted event, PROVIDERS.md §2)."""
        body = self.get_event(email, calendar_id, event_id)
        if body is None:
            return False
        body["status"] = "cancelled"
        self.put_event(email, calendar_id, body, now_ms=now_ms)
        return True

    def list_events(
        self,
        email: str,
        calendar_id: str,
        *,
        since_seq: int | None = None,
        include_deleted: bool | None = None,
        page_size: int,
        after: str | None = None,
    ) -> tuple[list[dict], str | None]:
        """Page event rows in (changed_seq, id) order: ``{body, changed_seq, is_deleted}``.

        ``since_seq=None`` is a full listing (live events only unless ``include_deleted``);
        with ``since_seq`` only rows changed after it, tombstones included (sync tokens /
        calendarView delta). Raises StaleCursorError when since_seq < token_floor.
        """
        email = email.lower()
        conn = self.connection()
        self._check_token(conn, email, since_seq)
        if include_deleted is None:
            include_deleted = since_seq is not None
        lo_seq, lo_id = int(since_seq or 0), ""
        if after:
            s, lo_id = _dec(after)
            lo_seq = int(s)
        rows = conn.execute(
            "SELECT body, changed_seq, is_deleted, id FROM event WHERE mailbox = ? "
            "AND calendar_id = ? AND (changed_seq, id) > (?, ?) AND (is_deleted = 0 OR ?) "
            "ORDER BY changed_seq, id LIMIT ?",
            (email, calendar_id, lo_seq, lo_id, int(include_deleted), page_size + 1),
        ).fetchall()
        page = [
            {"body": json.loads(r[0]), "changed_seq": r[1], "is_deleted": bool(r[2])}
            for r in rows[:page_size]
        ]
        cursor = (
            _enc(rows[page_size - 1][1], rows[page_size - 1][3]) if len(rows) > page_size else None
        )
        return page, cursor

    def list_events_in_window(
        self,
        email: str,
        calendar_id: str,
        *,
        start_ms: int,
        end_ms: int,
        include_deleted: bool = False,
    ) -> list[dict]:
        """Return event bodies overlapping [start_ms, end_ms): single events, exceptions and
        every recurring master that starts before end_ms (callers expand the RRULE)."""
        rows = self.connection().execute(
            "SELECT body FROM event WHERE mailbox = ? AND calendar_id = ? AND start_ms < ? "
            "AND end_ms > ? AND (is_deleted = 0 OR ?) ORDER BY start_ms, id",
            (email.lower(), calendar_id, end_ms, start_ms, int(include_deleted)),
        )
        return [json.loads(r[0]) for r in rows]

    def list_event_exceptions(
        self, email: str, calendar_id: str, recurring_event_id: str
    ) -> list[dict]:
        """Return the exception rows (moved or cancelled occurrences) of a series."""
        rows = self.connection().execute(
            "SELECT body FROM event WHERE mailbox = ? AND calendar_id = ? "
            "AND recurring_event_id = ? ORDER BY start_ms, id",
            (email.lower(), calendar_id, recurring_event_id),
        )
        return [json.loads(r[0]) for r in rows]

    # -- oauth ------------------------------------------------------------------------------

    def create_auth_code(
        self,
        *,
        provider: str,
        mailbox: str,
        client_id: str,
        redirect_uri: str | None,
        scopes: str,
        code_challenge: str | None = None,
        code_challenge_method: str | None = None,
        nonce: str | None = None,
        extra: dict | None = None,
    ) -> str:
        """Store a fresh authorization code and return it."""
        code = secrets.token_urlsafe(32)
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO auth_code VALUES (?,?,?,?,?,?,?,?,?,?,?,0)",
                (
                    code,
                    provider,
                    mailbox.lower(),
                    client_id,
                    redirect_uri,
                    scopes,
                    code_challenge,
                    code_challenge_method,
                    nonce,
                    json.dumps(extra or {}),
                    now_ms(),
                ),
            )
        return code

    def take_auth_code(self, code: str) -> dict | None:
        """Consume a code: return it once, then None forever (also None when unknown).

        Callers check age (``created_ms``) themselves; codes live minutes at the providers.
        """
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM auth_code WHERE code = ? AND is_used = 0", (code,)
            ).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE auth_code SET is_used = 1 WHERE code = ?", (code,))
        d = dict(row)
        d["extra"] = json.loads(d["extra"] or "{}")
        return d

    def create_grant(self, *, provider: str, mailbox: str, client_id: str, scopes: str) -> dict:
        """Create a grant with a new refresh token; return the grant dict."""
        grant = {
            "id": uuid.uuid4().hex,
            "provider": provider,
            "mailbox": mailbox.lower(),
            "client_id": client_id,
            "scopes": scopes,
            "refresh_token": ("1//" if provider == "google" else "M.C5")
            + secrets.token_urlsafe(48),
            "is_revoked": False,
            "created_ms": now_ms(),
        }
        with self.transaction() as conn:
            conn.execute(
                'INSERT INTO "grant" VALUES (?,?,?,?,?,?,0,?)',
                tuple(v for k, v in grant.items() if k != "is_revoked"),
            )
        return grant

    def get_grant(self, grant_id: str) -> dict | None:
        """Return a grant by id (revoked ones included, with is_revoked True)."""
        row = (
            self.connection().execute('SELECT * FROM "grant" WHERE id = ?', (grant_id,)).fetchone()
        )
        return _grant_dict(row) if row else None

    def get_grant_by_refresh_token(self, refresh_token: str) -> dict | None:
        """Return the live grant holding this refresh token, or None (unknown or revoked)."""
        row = (
            self.connection()
            .execute(
                'SELECT * FROM "grant" WHERE refresh_token = ? AND is_revoked = 0',
                (refresh_token,),
            )
            .fetchone()
        )
        return _grant_dict(row) if row else None

    def rotate_refresh_token(self, grant_id: str) -> str:
        """Replace a grant's refresh token (Microsoft rotates them); the old one stops working."""
        grant = self.get_grant(grant_id)
        if grant is None:
            raise KeyError(grant_id)
        token = ("1//" if grant["provider"] == "google" else "M.C5") + secrets.token_urlsafe(48)
        with self.transaction() as conn:
            conn.execute('UPDATE "grant" SET refresh_token = ? WHERE id = ?', (token, grant_id))
        return token

    def revoke_grant(self, grant_id: str) -> None:
        """Revoke a grant and every access token issued from it."""
        with self.transaction() as conn:
            conn.execute('UPDATE "grant" SET is_revoked = 1 WHERE id = ?', (grant_id,))
            conn.execute("DELETE FROM access_token WHERE grant_id = ?", (grant_id,))

    def revoke_all_grants(self, email: str, provider: str) -> None:
        """Revoke every grant of a mailbox with one provider (admin "revoke consent")."""
        with self.transaction() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    'SELECT id FROM "grant" WHERE mailbox = ? AND provider = ?',
                    (email.lower(), provider),
                )
            ]
            for gid in ids:
                self.revoke_grant(gid)

    def revoke_token(self, token: str) -> bool:
        """Revoke the grant behind an access or refresh token (Google /revoke); False if unknown."""
        with self.transaction() as conn:
            row = (
                conn.execute('SELECT id FROM "grant" WHERE refresh_token = ?', (token,)).fetchone()
                or conn.execute(
                    "SELECT grant_id FROM access_token WHERE token = ?", (token,)
                ).fetchone()
            )
            if row is None:
                return False
            self.revoke_grant(row[0])
            return True

    def issue_access_token(self, grant_id: str, scopes: str, ttl_s: int) -> str:
        """Mint an opaque access token for a grant, valid ``ttl_s`` seconds."""
        token = "ya29.sbx-" + secrets.token_urlsafe(40)
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO access_token VALUES (?,?,?,?)",
                (token, grant_id, scopes, now_ms() + ttl_s * 1000),
            )
        return token

    def get_access_token(self, token: str, *, at_ms: int | None = None) -> dict | None:
        """Return ``{token, grant_id, scopes, expires_ms, mailbox, provider, client_id}`` for a
        live token, or None when unknown, expired or its grant is revoked."""
        row = (
            self.connection()
            .execute(
                "SELECT t.token, t.grant_id, t.scopes, t.expires_ms, g.mailbox, g.provider, "
                'g.client_id FROM access_token t JOIN "grant" g ON g.id = t.grant_id '
                "WHERE t.token = ? AND g.is_revoked = 0",
                (token,),
            )
            .fetchone()
        )
        if row is None or row["expires_ms"] <= (at_ms if at_ms is not None else now_ms()):
            return None
        return dict(row)

    # -- subscriptions ----------------------------------------------------------------------

    def create_subscription(
        self,
        email: str,
        *,
        provider: str,
        resource: str,
        notification_url: str | None,
        client_state: str | None,
        expiration_ms: int,
        body: dict | None = None,
        id: str | None = None,
    ) -> dict:
        """Store a Gmail watch or Graph subscription; return it."""
        sub = {
            "id": id or str(uuid.uuid4()),
            "mailbox": email.lower(),
            "provider": provider,
            "resource": resource,
            "notification_url": notification_url,
            "client_state": client_state,
            "expiration_ms": expiration_ms,
            "body": body or {},
        }
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO subscription VALUES (?,?,?,?,?,?,?,?)",
                (*list(sub.values())[:-1], json.dumps(sub["body"])),
            )
        return sub

    def get_subscription(self, subscription_id: str) -> dict | None:
        """Return a subscription or None."""
        row = (
            self.connection()
            .execute("SELECT * FROM subscription WHERE id = ?", (subscription_id,))
            .fetchone()
        )
        return _sub_dict(row) if row else None

    def list_subscriptions(
        self, email: str | None = None, *, provider: str | None = None
    ) -> list[dict]:
        """Return subscriptions, optionally of one mailbox and/or provider."""
        rows = self.connection().execute(
            "SELECT * FROM subscription WHERE (? IS NULL OR mailbox = ?) "
            "AND (? IS NULL OR provider = ?) ORDER BY id",
            (email and email.lower(), email and email.lower(), provider, provider),
        )
        return [_sub_dict(r) for r in rows]

    def update_subscription(
        self, subscription_id: str, *, expiration_ms: int | None = None, body: dict | None = None
    ) -> dict | None:
        """Renew/patch a subscription; None when unknown."""
        with self.transaction() as conn:
            if self.get_subscription(subscription_id) is None:
                return None
            if expiration_ms is not None:
                conn.execute(
                    "UPDATE subscription SET expiration_ms = ? WHERE id = ?",
                    (expiration_ms, subscription_id),
                )
            if body is not None:
                conn.execute(
                    "UPDATE subscription SET body = ? WHERE id = ?",
                    (json.dumps(body), subscription_id),
                )
        return self.get_subscription(subscription_id)

    def delete_subscription(self, subscription_id: str) -> bool:
        """Delete a subscription; False when unknown."""
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM subscription WHERE id = ?", (subscription_id,))
            return cur.rowcount > 0


def _wall_ms() -> int:
    return now_ms()


def _mailbox_dict(row: sqlite3.Row) -> dict:
    d = dict(row)
    d["aliases"] = json.loads(d["aliases"] or "[]")
    d["generator"] = json.loads(d["generator"]) if d["generator"] else None
    return d


def _message_dict(row: sqlite3.Row) -> dict:
    return {
        "id": row["id"],
        "thread_id": row["thread_id"],
        "internal_ms": row["internal_ms"],
        "labels": _unpad(row["labels"]),
        "folder": row["folder"],
        "headers": json.loads(row["headers"]),
        "size_estimate": row["size_estimate"],
        "is_read": bool(row["is_read"]),
        "snippet": row["snippet"],
        "history_id": row["history_id"],
        "changed_seq": row["changed_seq"],
        "is_deleted": bool(row["is_deleted"]),
    }


def _calendar_dict(row: sqlite3.Row) -> dict:
    d = dict(row)
    for key in ("is_primary", "is_app_created", "is_deleted"):
        d[key] = bool(d[key])
    d.pop("mailbox")
    return d


def _grant_dict(row: sqlite3.Row) -> dict:
    d = dict(row)
    d["is_revoked"] = bool(d["is_revoked"])
    return d


def _sub_dict(row: sqlite3.Row) -> dict:
    d = dict(row)
    d["body"] = json.loads(d["body"] or "{}")
    return d


# Kept for callers that format ISO times from stored ms without importing datetime themselves.
def ms_to_datetime(ms: int) -> datetime:
    """Return an aware UTC datetime for epoch milliseconds."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
