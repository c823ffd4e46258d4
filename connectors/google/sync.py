"""GoogleSyncSource: core.ports.SyncSource for one Google account (Gmail + Calendar).

Streams: "mail" (the mailbox; cursor = Gmail historyId as a decimal string, or JSON with the
next history.list page token between pages; backfill cursor = `gmail.BackfillState` JSON) and
"calendar:<calendarId>" per owned calendar (cursors described in `calendar.py`).

Transport (PROVIDERS.md §1.5), all in `Session`, one per page:
- google-api-python-client with the bundled static discovery documents (no network to build),
  `api_endpoint` = config.gmail_root for Gmail and config.calendar_root + "calendar/v3/" for
  Calendar (Calendar's method paths are relative to servicePath).
- Batches are built with an explicit `batch_uri`: the configured root + the bundled discovery
  doc's `batchPath`, as Google's batch guide says ("the batchPath specified in the API discovery
  document", https://developers.google.com/gmail/api/guides/batch). Gmail's is `batch` on the
  API's own host (gmail.googleapis.com/batch, not the global www.googleapis.com/batch retired in
  2020), Calendar's `batch/calendar/v3`. `new_batch_http_request()` would use the discovery
  rootUrl and send our requests to the real googleapis host whatever `api_endpoint` says.
  `config.gmail_batch_url` overrides the Gmail one.
- One `httplib2.Http(timeout, ca_certs)` per page (httplib2 is not thread-safe) wrapped in
  `google_auth_httplib2.AuthorizedHttp` with credentials whose refresh calls `token()`: a 401 is
  replayed once with a fresh token (batch parts too, by the client), then -> ReauthRequired.
- No `num_retries`: the client's retry ignores Retry-After; the sync engine owns retries. We
  only retry the rate-limited/5xx *parts* of a batch after telling the pacer, so a page never
  silently skips a message: a part that keeps failing fails the page.
- `Pacer.acquire(units, bucket)` before every request (a batch: the sum of its parts), and
  `Pacer.penalize(retry_after_s, bucket)` on every rate answer.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Sequence
from typing import Any

import google.auth.credentials
import httplib2
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build_from_document
from googleapiclient.discovery_cache import get_static_doc
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from connectors.google import quota
from connectors.google.calendar import CalendarReader
from connectors.google.config import GoogleConfig
from connectors.google.errors import DEFAULT_RETRY_AFTER_S, map_error
from connectors.google.gmail import BackfillState, GmailReader, Owner
from core.errors import (
    CursorExpired,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from core.ports import Pacer, TokenSource
from core.records import Page

MAIL_STREAM = "mail"
CALENDAR_PREFIX = "calendar:"
MAX_BATCH_ROUNDS = 3  # a batch and two replays of its rate-limited / 5xx parts


@functools.cache
def _discovery(name: str, version: str) -> str:
    doc = get_static_doc(name, version)
    if doc is None:  # pragma: no cover - the client always bundles these two
        raise RuntimeError(f"google-api-python-client has no static discovery doc for {name}")
    return doc


@functools.cache
def _batch_path(service: str) -> str:
    # The client's own default when a doc has no batchPath (discovery.py, _add_basic_methods).
    version = "v1" if service == "gmail" else "v3"
    return str(json.loads(_discovery(service, version)).get("batchPath") or "batch")


class _TokenCredentials(google.auth.credentials.Credentials):  # type: ignore[misc]
    """Bearer credentials whose refresh asks Warmline's `token()` (which refreshes as needed)."""

    def __init__(self, token: TokenSource) -> None:
        super().__init__()
        self._source = token
        self.token = _fetch_token(token)

    def refresh(self, request: Any) -> None:
        # AuthorizedHttp calls this after a 401: the token we hold was refused, refresh it.
        self.token = _fetch_token(self._source, force=True)


def _fetch_token(token: TokenSource, *, force: bool = False) -> str:
    try:
        return token(force=True) if force else token()
    except ProviderError:
        raise
    except Exception as exc:  # RefreshError, TransportError, ... from the token source
        raise map_error(exc) from exc


class Session:
    """Google API access for one page: one Http, fresh credentials, paced and mapped calls."""

    def __init__(
        self, config: GoogleConfig, *, token: TokenSource, pacer: Pacer, profile: str
    ) -> None:
        self.config = config
        self.pacer = pacer
        self.profile = profile
        self._token = token
        self._http: AuthorizedHttp | None = None
        self._gmail: Any = None
        self._calendar: Any = None

    @property
    def http(self) -> AuthorizedHttp:
        if self._http is None:
            transport = httplib2.Http(timeout=self.config.timeout_s, ca_certs=self.config.ca_bundle)
            self._http = AuthorizedHttp(
                _TokenCredentials(self._token), http=transport, max_refresh_attempts=1
            )
        return self._http

    def gmail(self) -> Any:
        """The Gmail v1 service, pointed at config.gmail_root."""
        if self._gmail is None:
            self._gmail = build_from_document(
                _discovery("gmail", "v1"),
                http=self.http,
                client_options={"api_endpoint": self.config.gmail_root},
            )
        return self._gmail

    def calendar(self) -> Any:
        """The Calendar v3 service, pointed at config.calendar_root + "calendar/v3/"."""
        if self._calendar is None:
            self._calendar = build_from_document(
                _discovery("calendar", "v3"),
                http=self.http,
                client_options={"api_endpoint": self.config.calendar_root + "calendar/v3/"},
            )
        return self._calendar

    def batch_uri(self, service: str) -> str:
        """Where a batch of `service` ("gmail" or "calendar") requests is sent."""
        if service == "gmail":
            return self.config.gmail_batch_url or self.config.gmail_root + _batch_path("gmail")
        return self.config.calendar_root + _batch_path("calendar")

    def _fail(self, exc: BaseException, *, bucket: str, cursor_request: bool) -> ProviderError:
        error = map_error(exc, cursor_request=cursor_request)
        if isinstance(error, RateLimited):
            self.pacer.penalize(error.retry_after_s or DEFAULT_RETRY_AFTER_S, bucket=bucket)
        return error

    def execute(
        self, request: Any, *, bucket: str, cost: float, cursor_request: bool = False
    ) -> dict[str, Any]:
        """Pace, send and return one request's JSON; raise core.errors on any failure."""
        self.pacer.acquire(cost, bucket=bucket)
        try:
            result: dict[str, Any] = request.execute(num_retries=0)
        except Exception as exc:
            raise self._fail(exc, bucket=bucket, cursor_request=cursor_request) from exc
        return result

    def execute_or_none(
        self, request: Any, *, bucket: str, cost: float, when: Callable[[BaseException], bool]
    ) -> dict[str, Any] | None:
        """Like `execute`, but return None when the failure is one `when` accepts."""
        self.pacer.acquire(cost, bucket=bucket)
        try:
            result: dict[str, Any] = request.execute(num_retries=0)
        except Exception as exc:
            if when(exc):
                return None
            raise self._fail(exc, bucket=bucket, cursor_request=False) from exc
        return result

    def execute_batch(
        self, parts: Sequence[tuple[str, Any, float]], *, bucket: str, service: str
    ) -> dict[str, dict[str, Any] | HttpError]:
        """Send (key, request, cost) parts as one batch; return key -> JSON or its HttpError.

        Rate-limited and 5xx parts are replayed (after `penalize`, so `acquire` waits) up to
        MAX_BATCH_ROUNDS; if they still fail, the page fails with the mapped error. Other part
        errors (404, 403 ...) are returned for the caller to judge.
        """
        results: dict[str, dict[str, Any] | HttpError] = {}
        pending = list(parts)
        for round_number in range(1, MAX_BATCH_ROUNDS + 1):
            answers: dict[str, tuple[Any, BaseException | None]] = {}
            batch = BatchHttpRequest(
                callback=functools.partial(_collect, answers), batch_uri=self.batch_uri(service)
            )
            for key, request, _ in pending:
                batch.add(request, request_id=key)
            self.pacer.acquire(sum(cost for _, _, cost in pending), bucket=bucket)
            try:
                batch.execute(http=self.http)
            except Exception as exc:
                raise self._fail(exc, bucket=bucket, cursor_request=False) from exc
            replay: list[tuple[str, Any, float]] = []
            waits: list[float] = []
            last_error: ProviderError | None = None
            for key, request, cost in pending:
                response, exception = answers.get(key, (None, None))
                if exception is None:
                    results[key] = response
                    continue
                error = map_error(exception)
                if isinstance(error, RateLimited | ProviderUnavailable):
                    replay.append((key, request, cost))
                    last_error = error
                    if isinstance(error, RateLimited):
                        waits.append(error.retry_after_s or DEFAULT_RETRY_AFTER_S)
                elif isinstance(exception, HttpError) and isinstance(error, ProviderRejected):
                    results[key] = exception  # 404 and friends: the caller judges
                else:
                    raise error from exception
            if waits:
                self.pacer.penalize(max(waits), bucket=bucket)
            if not replay:
                return results
            if round_number == MAX_BATCH_ROUNDS:
                assert last_error is not None
                raise last_error
            pending = replay
        return results  # pragma: no cover - the loop returns or raises


def _collect(
    answers: dict[str, tuple[Any, BaseException | None]],
    request_id: str,
    response: Any,
    exception: BaseException | None,
) -> None:
    answers[request_id] = (response, exception)


class GoogleSyncSource:
    """core.ports.SyncSource for one Google account; see the module docstring for cursors."""

    def __init__(
        self,
        config: GoogleConfig,
        *,
        token: TokenSource,
        pacer: Pacer,
        quota_profile: str = "2026",
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.config = config
        self.token = token
        self.pacer = pacer
        self.quota_profile = quota.check_profile(quota_profile)
        self.clock = clock
        self.owner = Owner()

    def _session(self) -> Session:
        return Session(self.config, token=self.token, pacer=self.pacer, profile=self.quota_profile)

    def list_streams(self) -> list[str]:
        """ "mail" plus "calendar:<id>" for every calendar the user owns."""
        calendars = CalendarReader(self._session()).owned_calendar_ids()
        return [MAIL_STREAM, *(CALENDAR_PREFIX + c for c in calendars or ())]

    def fetch_page(self, stream: str, *, cursor: str | None, backfill_cursor: str | None) -> Page:
        """Return the next page of `stream` (backfill until complete, then incremental)."""
        session = self._session()
        if stream == MAIL_STREAM:
            reader = GmailReader(session, profile=self.quota_profile)
            if backfill_cursor is not None or cursor is None:
                state = _load_backfill(backfill_cursor) or reader.start_backfill(self.owner)
                return reader.backfill_page(state, self.owner)
            return reader.history_page(cursor, self.owner)
        if stream.startswith(CALENDAR_PREFIX):
            return CalendarReader(session).page(
                stream.removeprefix(CALENDAR_PREFIX),
                cursor=cursor,
                backfill_cursor=backfill_cursor,
                now=self.clock(),
            )
        raise ProviderRejected(f"unknown Google stream {stream.split(':', 1)[0]!r}")

    def mailbox_counts(self) -> dict[str, int]:
        """Gmail's own totals (getProfile + labels.get SPAM/TRASH: 3 units).

        `messages` is what sync keeps in step: the mailbox without spam and trash, which are
        never listed (messagesTotal counts them).
        """
        reader = GmailReader(self._session(), profile=self.quota_profile)
        profile = reader.get_profile()
        total = int(profile.get("messagesTotal") or 0)
        binned = reader.label_total("SPAM") + reader.label_total("TRASH")
        return {
            "messages": total - binned,
            "messages_including_spam_trash": total,
            "threads": int(profile.get("threadsTotal") or 0),
        }


def _load_backfill(raw: str | None) -> BackfillState | None:
    if raw is None:
        return None
    try:
        return BackfillState.loads(raw)
    except ValueError as exc:
        # A cursor from another version: start the backfill over (CursorExpired does that).
        raise CursorExpired("unreadable Gmail backfill cursor") from exc


__all__ = ["CALENDAR_PREFIX", "MAIL_STREAM", "GoogleSyncSource", "Session"]
