"""A small Microsoft Graph v1.0 client over requests, and the one Graph → core.errors mapping.

Every request:

- goes through `Pacer.acquire(units, bucket="graph")` first (quota.py), one unit per request and
  one per inner request of a `$batch`;
- carries `Prefer: IdType="ImmutableId"`, so message and event ids survive folder moves
  (https://learn.microsoft.com/graph/outlook-immutable-id; without it a move changes the id);
- uses `MicrosoftConfig.http_session()` (trust_env off when a CA bundle is configured: requests
  lets REQUESTS_CA_BUNDLE override `Session.verify`, PROVIDERS.md §5) and `config.timeout_s`;
- only goes to graph_root's origin. `@odata.nextLink`/`@odata.deltaLink` are absolute URLs, and
  a link naming another origin is refused before our bearer token leaves.

Errors (bodies are `{"error": {"code", "message", "innerError"}}`,
https://learn.microsoft.com/graph/errors), mapped once by `graph_error`:

- 401 `InvalidAuthenticationToken` (expired, revoked): the client asks `token()` again once
  (the callable refreshes) and retries; a second 401 is `ReauthRequired`. `token()` is called
  for the first request and after a 401 only; whatever it raises (ReauthRequired when the
  refresh token is gone) passes through.
- 403 `ErrorAccessDenied` / `Authorization_RequestDenied` / `accessDenied`: the token lacks a
  permission the connector needs (the user or an admin withdrew consent for it). Retrying cannot
  help and only a new consent can, so it is `ReauthRequired`. Other 403s are `ProviderRejected`.
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
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

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

Json = dict[str, Any]


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


def error_code(body: object) -> str:
    """Return Graph's `error.code` from a decoded body, or "" when there is none."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            return str(error["code"])
    return ""


def graph_error(status: int, body: object, headers: Mapping[str, str]) -> ProviderError:
    """Map one failed Graph answer to the core.errors taxonomy (see the module docstring)."""
    code = error_code(body)
    what = f"Graph answered {status} {code}".rstrip()
    lowered = code.lower()
    if status == 410 or lowered in RESYNC_CODES:
        return CursorExpired(f"{what}: the delta token is no longer valid")
    if status == 401:
        return ReauthRequired(f"{what}: the access token is refused")
    if status == 403 and lowered in PERMISSION_CODES:
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
        parts = urlsplit(self.root)
        self._origin = (parts.scheme.lower(), parts.hostname, parts.port)
        self._token_source = token
        self._token: str | None = None
        self.pacer = pacer
        self.session = session or config.http_session()

    def url(self, path_or_url: str, params: Mapping[str, str] | None = None) -> str:
        """Return an absolute URL under graph_root; refuse links to any other origin."""
        if path_or_url.lower().startswith(("https://", "http://")):
            parts = urlsplit(path_or_url)
            if (parts.scheme.lower(), parts.hostname, parts.port) != self._origin:
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
    ) -> Json:
        """GET one Graph resource or page; return its JSON body."""
        url = self.url(path_or_url, params)
        return self._send("GET", url, prefer=prefer, units=1)

    def batch(self, requests_: list[tuple[str, str]]) -> dict[str, tuple[int, Json]]:
        """Run up to 20 GETs `(id, relative url)` in one `$batch`; return id → (status, body).

        Items that fail with 404 come back as they are (callers decide); every other failed
        item raises as a direct request would (https://learn.microsoft.com/graph/json-batching:
        the envelope is 200 while items carry their own status and Retry-After).
        """
        if not 0 < len(requests_) <= BATCH_MAX_REQUESTS:
            raise ValueError(f"a Graph $batch holds 1..{BATCH_MAX_REQUESTS} requests")
        payload = {
            "requests": [
                {"id": rid, "method": "GET", "url": "/" + rel.lstrip("/"),
                 "headers": {"Prefer": IMMUTABLE_IDS}}
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
            if status >= 400 and status != 404:
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
    ) -> Json:
        response = self._exchange(method, url, prefer=prefer, units=units, json_body=json_body)
        if response.status_code >= 400:
            self._raise(response.status_code, _decode(response), response.headers)
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

    def _raise(self, status: int, body: object, headers: Mapping[str, str]) -> None:
        error = graph_error(status, body, headers)
        if isinstance(error, RateLimited):
            self.pacer.penalize(error.retry_after_s or DEFAULT_RETRY_AFTER_S, bucket=GRAPH_BUCKET)
        elif status == 503 and (wait := retry_after_s(headers)) is not None:
            # Graph asks for a pause on 503 too; make the whole account honour it.
            self.pacer.penalize(wait, bucket=GRAPH_BUCKET)
        raise error


def _decode(response: requests.Response) -> object:
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        return None
