"""Map every Google API fault (Gmail, Calendar, token refresh, transport) onto core.errors, once.

One function, `map_error`, serves direct calls and batch parts alike (a batch part's failure
reaches the callback as an `HttpError`, PROVIDERS.md §1.5).

Google's error body is `{"error": {"code", "message", "errors": [{"reason", "domain", ...}],
"status"}}` (https://developers.google.com/gmail/api/guides/handle-errors). What we read:

- 401: the access token was refused. The transport already asked `token()` for a fresh one and
  replayed the call once; a 401 that survives that means the grant is unusable -> ReauthRequired.
- 403/429 with reason rateLimitExceeded / userRateLimitExceeded / quotaExceeded, domain
  usageLimits, or "Too many concurrent requests for user" -> RateLimited. Google treats 403 and
  429 alike for quota (PROVIDERS.md §1.1; https://developers.google.com/calendar/api/guides/errors).
  Google rarely sends Retry-After; without it we suggest DEFAULT_RETRY_AFTER_S.
- 404 on a cursor request (history.list) -> CursorExpired: "If you receive an HTTP 404 ...
  perform a full sync" (https://developers.google.com/gmail/api/guides/sync#limitations).
- 410 (Calendar fullSyncRequired / updatedMinTooLongAgo) -> CursorExpired
  (https://developers.google.com/calendar/api/guides/sync).
- 5xx, timeouts, refused/dropped connections -> ProviderUnavailable.
- any other 4xx -> ProviderRejected(status=...), e.g. 403 insufficientPermissions when the user
  unticked a scope: a stream that cannot be read, not a dead grant.
- google.auth RefreshError with retryable=False (invalid_grant) -> ReauthRequired.

Messages carry statuses and reasons only: never addresses, subjects or tokens (they reach logs).
"""

from __future__ import annotations

import email.utils
import json
import re
import socket
import ssl
import time
from collections.abc import Mapping
from typing import Any

import google.auth.exceptions
import httplib2
from googleapiclient.errors import HttpError

from core.errors import (
    CursorExpired,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    ReauthRequired,
)

DEFAULT_RETRY_AFTER_S = 10.0
RATE_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "dailyLimitExceeded"}
)
SCOPE_INFO_REASON = "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
_INSUFFICIENT_SCOPE = re.compile(r'\berror\s*=\s*"?insufficient_scope\b', re.IGNORECASE)


def _error_body(exc: HttpError) -> Any:
    try:
        body: Any = json.loads(exc.content or b"{}")
    except (ValueError, UnicodeDecodeError):
        body = {}
    return body.get("error") if isinstance(body, dict) else None


def error_details(exc: HttpError) -> tuple[int, str | None, str | None, str]:
    """Return (status, first reason, first domain, message) from a Google error response."""
    status = int(exc.resp.status)
    reason = domain = None
    message = ""
    error = _error_body(exc)
    if isinstance(error, dict):
        message = str(error.get("message") or "")
        items = error.get("errors")
        if isinstance(items, list) and items and isinstance(items[0], dict):
            reason = items[0].get("reason")
            domain = items[0].get("domain")
    elif isinstance(error, str):  # OAuth-style body
        reason = error
    return status, reason, domain, message


def is_rate_limit(status: int, reason: str | None, domain: str | None, message: str) -> bool:
    """Tell whether a 403/429 is Google pushing back on quota or concurrency."""
    if status == 429:
        return True
    if status != 403:
        return False
    return (
        reason in RATE_REASONS
        or domain == "usageLimits"
        or "too many concurrent requests" in message.lower()
    )


def retry_after_s(headers: Mapping[str, str] | None, *, now: float | None = None) -> float:
    """Read Retry-After (delta-seconds or an HTTP date); DEFAULT_RETRY_AFTER_S when absent."""
    raw = None
    if headers:
        raw = headers.get("retry-after") or headers.get("Retry-After")
    if not raw:
        return DEFAULT_RETRY_AFTER_S
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_S
    if when is None:
        return DEFAULT_RETRY_AFTER_S
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def is_not_found(exc: BaseException) -> bool:
    """A 404 answer (for a batch part: the message was deleted since it was listed)."""
    return isinstance(exc, HttpError) and int(exc.resp.status) == 404


def is_insufficient_permissions(exc: BaseException) -> bool:
    """A 403 for a scope the grant lacks (e.g. sendAs.list under gmail.metadata, §1.3).

    Google says so in any of three ways, alone or together: `errors[].reason`
    insufficientPermissions (the classic body); a google.rpc.ErrorInfo in `details` with reason
    ACCESS_TOKEN_SCOPE_INSUFFICIENT (https://cloud.google.com/apis/design/errors#error_info);
    `WWW-Authenticate: Bearer ... error="insufficient_scope"` (RFC 6750 §3.1). The status
    PERMISSION_DENIED alone is not enough: quota answers carry it too, and stay RateLimited.
    """
    if not isinstance(exc, HttpError):
        return False
    status, reason, domain, message = error_details(exc)
    if status != 403 or is_rate_limit(status, reason, domain, message):
        return False
    if reason == "insufficientPermissions":
        return True
    error = _error_body(exc)
    details = error.get("details") if isinstance(error, dict) else None
    if isinstance(details, list) and any(
        isinstance(d, dict) and d.get("reason") == SCOPE_INFO_REASON for d in details
    ):
        return True
    challenge = _headers(exc).get("www-authenticate") or ""
    return bool(_INSUFFICIENT_SCOPE.search(challenge))


def map_error(exc: BaseException, *, cursor_request: bool = False) -> ProviderError:
    """Return the core.errors exception for `exc` (an HttpError, transport or auth error).

    `cursor_request` marks calls whose 404 means "this cursor is gone" (history.list).
    """
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, HttpError):
        return _map_http(exc, cursor_request=cursor_request)
    if isinstance(exc, google.auth.exceptions.RefreshError):
        if getattr(exc, "retryable", False):
            return ProviderUnavailable("Google token refresh failed, retryable")
        return ReauthRequired("Google refused the refresh token")
    if isinstance(exc, google.auth.exceptions.TransportError):
        return ProviderUnavailable("Google token endpoint unreachable")
    if isinstance(exc, TimeoutError | socket.timeout):
        return ProviderUnavailable("Google API timed out")
    if isinstance(exc, ssl.SSLError):
        return ProviderUnavailable(f"TLS failure talking to Google: {type(exc).__name__}")
    if isinstance(exc, httplib2.HttpLib2Error | ConnectionError | OSError):
        return ProviderUnavailable(f"Google API unreachable: {type(exc).__name__}")
    return ProviderUnavailable(f"unexpected failure talking to Google: {type(exc).__name__}")


def _map_http(exc: HttpError, *, cursor_request: bool) -> ProviderError:
    status, reason, domain, message = error_details(exc)
    label = f"Google answered {status}" + (f" {reason}" if reason else "")
    if status == 401:
        return ReauthRequired(label)
    if is_rate_limit(status, reason, domain, message):
        return RateLimited(label, retry_after_s=retry_after_s(_headers(exc)))
    if status == 404 and cursor_request:
        return CursorExpired(label)
    if status == 410:
        return CursorExpired(label)
    if status >= 500:
        return ProviderUnavailable(label)
    return ProviderRejected(label, status=status)


def _headers(exc: HttpError) -> Mapping[str, str]:
    resp = exc.resp
    return resp if isinstance(resp, Mapping) else {}
