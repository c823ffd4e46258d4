"""A small Microsoft Graph v1.0 client over requests, and the one Graph → core.errors mapping.

Every request:

- goes through `Pacer.acquire(units, bucket="graph")` first (quota.py), one unit per request and
  one per inner request of a `$batch`;
- carries `Prefer: IdType="ImmutableId"`, so message and event ids survive folder moves
  (https://learn.microsoft.com/graph/outlook-immutable-id; without it a move changes the id);
- uses `MicrosoftConfig.http_session()` (trust_env off when a CA bundle is configured: requests
  lets REQUESTS_CA_BUNDLE override `Session.verify`, PROVIDERS.md §5) and `config.timeout_s`;
- only goes to graph_root's origin. `@odata.nextLink`/`@odata.deltaLink` are absolute URLs, and
  a link naming another origin is refused before our bearer token leaves. Origins compare as
  (scheme, host, port) with the scheme's default port filled in (RFC 3986 §6.2.3), so
  `https://graph.microsoft.com:443/...` is the same origin as `https://graph.microsoft.com/...`.

Errors (bodies are `{"error": {"code", "message", "innerError"}}`,
https://learn.microsoft.com/graph/errors), mapped once by `graph_error`:

- 401 `InvalidAuthenticationToken` (expired, revoked): the client asks `token()` again once
  (the callable refreshes) and retries; a second 401 is `ReauthRequired`. `token()` is called
  for the first request and after a 401 only; whatever it raises (ReauthRequired when the
  refresh token is gone) passes through.
- 403 `ErrorAccessDenied` / `Authorization_RequestDenied` / `accessDenied` on an
  **account-level** request (`/me`, the folder or calendar listing, the calendar writer's calls):
  the token lacks a permission the connector needs (the user or an admin withdrew consent).
  Retrying cannot help and only a new consent can, so it is `ReauthRequired`. The same 403 on
  one folder's or calendar's delta, or on one item (`account_level=False`), is that resource
  refusing us — a 403 can also mean a missing license or a resource-level denial
  (https://learn.microsoft.com/graph/errors) — so it is `ProviderRejected(403)`: the engine
  backs off that stream alone, and the account keeps syncing. Other 403s are `ProviderRejected`.
- 429 (`TooManyRequests`, `ApplicationThrottled`): `RateLimited(Retry-After)` after
  `Pacer.penalize` (https://learn.microsoft.com/graph/throttling).
- 410 Gone, or codes `syncStateNotFound` / `resyncRequired` / `syncStateInvalid` on any status:
  the delta token is gone → `CursorExpired`
  (https://learn.microsoft.com/graph/delta-query-overview#synchronization-reset).
- 500/502/503/504, timeouts, dropped connections, TLS failures, unreadable bodies:
  `ProviderUnavailable`; a 503 `Retry-After` is passed to `Pacer.penalize` as well.
- Any other 4xx: `ProviderRejected(status)`.

Exception messages carry the status and Graph's error code only, never Graph's message (it can
name mailboxes) nor a URL (links carry state tokens).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import SplitResult, urlencode, urlsplit

import requests

from connectors.microsoft.config import MicrosoftConfig
from connectors.microsoft.quota import (
    BATCH_MAX_REQUESTS,
    DEFAULT_RETRY_AFTER_S,
    GRAPH_BUCKET,
    batch_cost,
)
from core.errors import (
    CursorExpired,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    ReauthRequired,
)
from core.ports import Pacer, TokenSource

IMMUTABLE_IDS = 'IdType="ImmutableId"'
RESYNC_CODES = {"syncstatenotfound", "resyncrequired", "syncstateinvalid"}
PERMISSION_CODES = {"erroraccessdenied", "authorization_requestdenied", "accessdenied"}
UNAVAILABLE_STATUSES = {500, 502, 503, 504}
DEFAULT_PORTS = {"https": 443, "http": 80}
# Failed `$batch` items that are about the request as a whole (auth, pacing, an outage): they
# raise like a direct request would. Every other failed item is about that item alone.
BATCH_RAISES = {401, 408, 429}

Json = dict[str, Any]
# Approves a failed answer (status, lower-case Graph error code) that the caller handles itself.
Accept = Callable[[int, str], bool]


# -- pure mapping ------------------------------------------------------------------------------


def retry_after_s(headers: Mapping[str, str], *, now: dt.datetime | None = None) -> float | None:
    """Return Retry-After as seconds (delta-seconds or an HTTP date, RFC 9110 §10.2.3)."""
    raw = next((str(v) for k, v in headers.items() if k.lower() == "retry-after"), None)
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def origin(parts: SplitResult) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the scheme's default port filled in; a bad port is None."""
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # e.g. "host:99999": matches no configured root
        return scheme, "", None
    return scheme, (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(scheme)


def error_code(body: object) -> str:
    """Return Graph's `error.code` from a decoded body, or "" when there is none."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            return str(error["code"])
    return ""


def graph_error(
    status: int, body: object, headers: Mapping[str, str], *, account_level: bool = True
) -> ProviderError:
    """Map one failed Graph answer to the core.errors taxonomy (see the module docstring).

    `account_level=False` for a request about one folder, calendar or item: its 403 refusal is
    that resource's, not the grant's.
    """
    code = error_code(body)
    what = f"Graph answered {status} {code}".rstrip()
    lowered = code.lower()
    if status == 410 or lowered in RESYNC_CODES:
        return CursorExpired(f"{what}: the delta token is no longer valid")
    if status == 401:
        return ReauthRequired(f"{what}: the access token is refused")
    if status == 403 and lowered in PERMISSION_CODES and account_level:
        return ReauthRequired(f"{what}: a permission Warmline needs is not granted")
    if status == 429:
        return RateLimited(what, retry_after_s=retry_after_s(headers) or DEFAULT_RETRY_AFTER_S)
    if status in UNAVAILABLE_STATUSES or status >= 500:
        return ProviderUnavailable(what)
    return ProviderRejected(what, status=status)


# -- I/O ---------------------------------------------------------------------------------------


class GraphClient:
    """Graph GETs and `$batch` for one account; raises only core.errors."""

    def __init__(
        self,
        config: MicrosoftConfig,
        *,
        token: TokenSource,
        pacer: Pacer,
        session: requests.Session | None = None,
    ) -> None:
        self.config = config
        self.root = config.graph_root.rstrip("/")
        self._origin = origin(urlsplit(self.root))
        self._token_source = token
        self._token: str | None = None
        self.pacer = pacer
        self.session = session or config.http_session()

    def url(self, path_or_url: str, params: Mapping[str, str] | None = None) -> str:
        """Return an absolute URL under graph_root; refuse links to any other origin."""
        if path_or_url.lower().startswith(("https://", "http://")):
            if origin(urlsplit(path_or_url)) != self._origin:
                # Never hand our bearer token to a host we were not configured for.
                raise ProviderRejected("Graph link points at another origin than graph_root")
            url = path_or_url
        else:
            url = self.root + "/" + path_or_url.lstrip("/")
        if params:
            # Graph wants `$select` unescaped-looking but accepts percent-encoding; keep `$`/`,`.
            url += ("&" if "?" in url else "?") + urlencode(params, safe="$,")
        return url

    def get(
        self,
        path_or_url: str,
        *,
        params: Mapping[str, str] | None = None,
        prefer: Iterable[str] = (),
        account_level: bool = True,
    ) -> Json:
        """GET one Graph resource or page; return its JSON body."""
        url = self.url(path_or_url, params)
        return self._send("GET", url, prefer=prefer, units=1, account_level=account_level)

    def call(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Json | None = None,
        prefer: Iterable[str] = (),
        accept: Accept | None = None,
        account_level: bool = True,
    ) -> tuple[int, Json]:
        """Send one request; return (status, JSON body or {}).

        A failure `accept(status, lower-case Graph code)` approves is returned instead of
        raised; every other failure raises the core.errors taxonomy.
        """
        response = self._exchange(
            method, self.url(path_or_url, params), prefer=prefer, units=1, json_body=json_body
        )
        status = response.status_code
        body = _decode(response)
        if status >= 400:
            if accept is not None and accept(status, error_code(body).lower()):
                return status, body if isinstance(body, dict) else {}
            self._raise(status, body, response.headers, account_level=account_level)
        if not response.content:
            return status, {}  # 204 No Content (DELETE)
        if not isinstance(body, dict):
            raise ProviderUnavailable("Graph answered an unreadable body")
        return status, body

    def batch(
        self, requests_: list[tuple[str, str]], *, prefer: Iterable[str] = ()
    ) -> dict[str, tuple[int, Json]]:
        """Run up to 20 GETs `(id, relative url)` in one `$batch`; return id → (status, body).

        Items that fail on their own (404, 400, 403, ...) come back as they are: callers decide
        what one refused item means. Items failing for the whole account or for now (401, 408,
        429, 5xx) raise as a direct request would, so the caller retries the lot
        (https://learn.microsoft.com/graph/json-batching: the envelope is 200 while items carry
        their own status and Retry-After). `prefer` is added to every item's Prefer header.
        """
        if not 0 < len(requests_) <= BATCH_MAX_REQUESTS:
            raise ValueError(f"a Graph $batch holds 1..{BATCH_MAX_REQUESTS} requests")
        item_prefer = ", ".join([IMMUTABLE_IDS, *prefer])
        payload = {
            "requests": [
                {"id": rid, "method": "GET", "url": "/" + rel.lstrip("/"),
                 "headers": {"Prefer": item_prefer}}
                for rid, rel in requests_
            ]
        }  # fmt: skip
        body = self._send(
            "POST",
            self.root + "/$batch",
            prefer=(),
            units=batch_cost(len(requests_)),
            json_body=payload,
        )
        out: dict[str, tuple[int, Json]] = {}
        for item in body.get("responses") or []:
            status = int(item.get("status", 0))
            item_body = item.get("body") if isinstance(item.get("body"), dict) else {}
            if status in BATCH_RAISES or status >= 500:
                self._raise(status, item_body, item.get("headers") or {})
            out[str(item.get("id"))] = (status, item_body)
        return out

    # -- internals -----------------------------------------------------------------------------

    def _bearer(self, *, fresh: bool = False) -> str:
        if self._token is None or fresh:
            # token() may raise ReauthRequired itself (the grant is gone): let it through.
            self._token = self._token_source(force=True) if fresh else self._token_source()
        return self._token

    def _send(
        self,
        method: str,
        url: str,
        *,
        prefer: Iterable[str],
        units: int,
        json_body: Json | None = None,
        account_level: bool = True,
    ) -> Json:
        response = self._exchange(method, url, prefer=prefer, units=units, json_body=json_body)
        if response.status_code >= 400:
            self._raise(
                response.status_code,
                _decode(response),
                response.headers,
                account_level=account_level,
            )
        try:
            body = response.json()
        except ValueError as exc:  # truncated or non-JSON 2xx
            raise ProviderUnavailable("Graph answered an unreadable body") from exc
        if not isinstance(body, dict):
            raise ProviderUnavailable("Graph answered an unexpected body")
        return body

    def _exchange(
        self,
        method: str,
        url: str,
        *,
        prefer: Iterable[str],
        units: int,
        json_body: Json | None = None,
    ) -> requests.Response:
        """Send one paced, authorised request; return the response, whatever its status.

        Transport failures raise ProviderUnavailable; a 401 refreshes the token and retries once.
        """
        headers = {
            "Accept": "application/json",
            # One Prefer header, comma-separated preferences (RFC 7240 §2).
            "Prefer": ", ".join([IMMUTABLE_IDS, *prefer]),
        }
        for attempt in (0, 1):
            headers["Authorization"] = f"Bearer {self._bearer(fresh=attempt == 1)}"
            self.pacer.acquire(units, bucket=GRAPH_BUCKET)
            try:
                response = self.session.request(
                    method, url, headers=headers, json=json_body, timeout=self.config.timeout_s
                )
            except requests.Timeout as exc:
                raise ProviderUnavailable("Graph did not answer within the timeout") from exc
            except requests.RequestException as exc:  # connection reset/refused, TLS, ...
                raise ProviderUnavailable(f"Graph unreachable ({type(exc).__name__})") from exc
            if response.status_code == 401 and attempt == 0:
                continue  # expired or revoked access token: refresh once and retry
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _raise(
        self,
        status: int,
        body: object,
        headers: Mapping[str, str],
        *,
        account_level: bool = True,
    ) -> None:
        error = graph_error(status, body, headers, account_level=account_level)
        if isinstance(error, RateLimited):
            self.pacer.penalize(error.retry_after_s or DEFAULT_RETRY_AFTER_S, bucket=GRAPH_BUCKET)
        elif status == 503 and (wait := retry_after_s(headers)) is not None:
            # Graph asks for a pause on 503 too; make the whole account honour it.
            self.pacer.penalize(wait, bucket=GRAPH_BUCKET)
        raise error


def _decode(response: requests.Response) -> object:
    if not response.content:
        return None
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        return None
