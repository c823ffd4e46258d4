"""Provider error exceptions and the Flask handlers that render their real wire bodies.

Every error the sandbox returns from an API path is JSON in the shape of the provider that owns the
path, never an HTML page; the client libraries parse these bodies (google-api-python-client reads
`error.errors[0].reason` to decide retries, msal reads `error`/`error_codes`, Graph SDKs read
`error.code`), so the shapes are copied exactly:

- Google APIs (Gmail, Calendar, userinfo):
  `{"error": {"code", "message", "errors": [{"message", "domain", "reason", "location"?,
  "locationType"?}], "status"}}`
  https://developers.google.com/gmail/api/guides/handle-errors ,
  https://cloud.google.com/apis/design/errors (code -> status names).
- OAuth token endpoints (both providers): `{"error", "error_description"}` (RFC 6749 §5.2);
  Microsoft adds `error_codes`, `timestamp`, `trace_id`, `correlation_id`
  https://learn.microsoft.com/entra/identity-platform/reference-error-codes .
- Microsoft Graph: `{"error": {"code", "message", "innerError": {"date", "request-id",
  "client-request-id"}}}` https://learn.microsoft.com/graph/errors .

Fallbacks (404/405/other HTTP errors and uncaught exceptions) pick the family by path prefix:
`/gmail`, `/calendar`, `/batch`, `/o/oauth2`, `/oauth2`, `/token`, `/revoke`, `/.well-known` →
Google; `/v1.0` → Graph; `/{tenant}/oauth2|v2.0|discovery/...` → Microsoft identity; `/_sandbox`
and anything else → plain `{"error", "status"}` JSON.

`DropConnection` is not an HTTP error: raising it makes the server abort the TCP connection with no
response at all (see `register_error_handlers`), which a client sees as a connection error.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, has_request_context, request
from werkzeug.exceptions import HTTPException

# gRPC canonical status names Google returns next to the HTTP code
# (https://cloud.google.com/apis/design/errors#handling_errors).
GOOGLE_STATUS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

# The realm/error Google sends with a 401/403 from its APIs (RFC 6750 §3).
_GOOGLE_WWW_AUTH = 'Bearer realm="https://accounts.google.com/"'

_ENVIRON_DROP = "sandbox.drop_connection"


class DropConnection(Exception):  # an instruction to the server, not an HTTP error
    """Abort the client's TCP connection without sending any response."""


class GoogleError(Exception):
    """A Google API error, rendered as Google's JSON error body."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str,
        domain: str = "global",
        status: str | None = None,
        location: str | None = None,
        location_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.status = status if status is not None else GOOGLE_STATUS.get(code)
        self.location = location
        self.location_type = location_type
        self.headers = dict(headers or {})

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON body Google sends for this error."""
        item: dict[str, Any] = {
            "message": self.message,
            "domain": self.domain,
            "reason": self.reason,
        }
        if self.location is not None:
            item["location"] = self.location
        if self.location_type is not None:
            item["locationType"] = self.location_type
        error: dict[str, Any] = {"code": self.code, "message": self.message, "errors": [item]}
        if self.status:
            error["status"] = self.status
        return {"error": error}

    def to_response(self) -> Response:
        """Return a Flask response (status, JSON body, headers) for this error."""
        return _json_response(self.to_dict(), self.code, self.headers)

    # Common errors, with the bodies Google documents for them
    # (https://developers.google.com/gmail/api/guides/handle-errors).

    @classmethod
    def unauthenticated(cls) -> GoogleError:
        """401 for a missing, expired or revoked access token."""
        return cls(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
            "cookie or other valid authentication credential. "
            "See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            reason="authError",
            location="Authorization",
            location_type="header",
            headers={"WWW-Authenticate": f'{_GOOGLE_WWW_AUTH}, error="invalid_token"'},
        )

    @classmethod
    def insufficient_permissions(cls, required_scopes: Iterable[str] = ()) -> GoogleError:
        """403 when the token lacks every scope the method accepts."""
        scope = " ".join(required_scopes)
        www = f'{_GOOGLE_WWW_AUTH}, error="insufficient_scope"'
        if scope:
            www += f', scope="{scope}"'
        return cls(
            403,
            "Request had insufficient authentication scopes.",
            reason="insufficientPermissions",
            headers={"WWW-Authenticate": www},
        )

    @classmethod
    def rate_limited(cls, *, service: str = "gmail", status_code: int = 429) -> GoogleError:
        """429 (or 403) per-user quota exhausted, as Gmail/Calendar send it.

        Both 403 `userRateLimitExceeded` and 429 `rateLimitExceeded` occur in the wild
        (PROVIDERS.md §1.1; https://developers.google.com/calendar/api/guides/errors).
        """
        host = "gmail.googleapis.com" if service == "gmail" else "calendar-json.googleapis.com"
        if status_code == 403:
            return cls(
                403, "User Rate Limit Exceeded", reason="userRateLimitExceeded",
                domain="usageLimits",
            )  # fmt: skip
        return cls(
            429,
            "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' "
            f"of service '{host}' for consumer 'project_number:000000000000'.",
            reason="rateLimitExceeded",
            domain="usageLimits",
        )

    @classmethod
    def too_many_concurrent(cls) -> GoogleError:
        """429 for Gmail's undocumented per-user concurrency cap (PROVIDERS.md §1.1)."""
        return cls(429, "Too many concurrent requests for user", reason="rateLimitExceeded")

    @classmethod
    def backend_error(cls) -> GoogleError:
        """500 backendError, the transient error Google asks clients to retry."""
        return cls(500, "Backend Error", reason="backendError")

    @classmethod
    def unavailable(cls) -> GoogleError:
        """503, the service is temporarily unavailable."""
        return cls(503, "The service is currently unavailable.", reason="backendError")

    @classmethod
    def not_found(cls, message: str = "Requested entity was not found.") -> GoogleError:
        """404 notFound."""
        return cls(404, message, reason="notFound")

    @classmethod
    def bad_request(
        cls, message: str, *, location: str | None = None, reason: str = "invalidArgument"
    ) -> GoogleError:
        """400 for an invalid parameter (location names the parameter when given)."""
        return cls(
            400,
            message,
            reason=reason,
            location=location,
            location_type="parameter" if location else None,
        )


class OAuthError(Exception):
    """A token-endpoint error (RFC 6749 §5.2), with Microsoft's extra fields on its paths."""

    def __init__(
        self,
        error: str,
        description: str,
        status: int = 400,
        *,
        error_codes: list[int] | None = None,
        microsoft: bool | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.error_codes = error_codes
        self.microsoft = microsoft
        self.headers = dict(headers or {})

    def to_dict(self, *, microsoft: bool | None = None) -> dict[str, Any]:
        """Return the JSON body; Microsoft's adds error_codes/timestamp/trace_id/correlation_id."""
        if microsoft is None:
            microsoft = self.microsoft
        if microsoft is None:
            microsoft = has_request_context() and family_for_path(request.path) == "microsoft"
        if not microsoft:
            return {"error": self.error, "error_description": self.description}
        # Microsoft's description ends with trace/correlation ids and a timestamp
        # (https://learn.microsoft.com/entra/identity-platform/reference-error-codes#sample-response).
        now = datetime.now(UTC)
        trace_id = str(uuid.uuid4())
        correlation_id = _client_request_id() or str(uuid.uuid4())
        stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
        codes = self.error_codes
        if codes is None:
            codes = [int(m) for m in re.findall(r"AADSTS(\d+)", self.description)[:1]]
        return {
            "error": self.error,
            "error_description": (
                f"{self.description}\r\nTrace ID: {trace_id}\r\n"
                f"Correlation ID: {correlation_id}\r\nTimestamp: {stamp}"
            ),
            "error_codes": codes,
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
        }

    def to_response(self) -> Response:
        """Return a Flask response for this error; token errors are never cached (RFC 6749 §5.1)."""
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache", **self.headers}
        return _json_response(self.to_dict(), self.status, headers)


class GraphError(Exception):
    """A Microsoft Graph error, rendered as Graph's JSON error body."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def to_dict(
        self, *, request_id: str | None = None, client_request_id: str | None = None
    ) -> dict[str, Any]:
        """Return the JSON body; innerError carries the date and the request ids."""
        request_id = request_id or str(uuid.uuid4())
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    # UTC without an offset, as Graph writes it (learn.microsoft.com/graph/errors)
                    "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": request_id,
                    "client-request-id": client_request_id or _client_request_id() or request_id,
                },
            }
        }

    def to_response(self) -> Response:
        """Return a Flask response; Graph echoes request-id/client-request-id as headers too."""
        request_id = str(uuid.uuid4())
        client_request_id = _client_request_id() or request_id
        body = self.to_dict(request_id=request_id, client_request_id=client_request_id)
        headers = {"request-id": request_id, "client-request-id": client_request_id, **self.headers}
        return _json_response(body, self.status, headers)

    @property
    def retry_after_s(self) -> int | None:
        """The Retry-After seconds this error carries, if any."""
        value = self.headers.get("Retry-After")
        return int(value) if value is not None else None

    # Common errors (https://learn.microsoft.com/graph/errors, .../graph/throttling).

    @classmethod
    def too_many_requests(cls, retry_after_s: int) -> GraphError:
        """429 throttled, with the seconds to wait in Retry-After."""
        return cls(
            429,
            "TooManyRequests",
            "Too many requests. Please retry after the time given in the Retry-After header.",
            headers={"Retry-After": str(max(1, int(retry_after_s)))},
        )

    @classmethod
    def mailbox_concurrency(cls, retry_after_s: int = 1) -> GraphError:
        """429 when a mailbox already has 4 requests of this app in flight (PROVIDERS.md §4)."""
        return cls(
            429,
            "ApplicationThrottled",
            "Application is over its MailboxConcurrency limit.",
            headers={"Retry-After": str(max(1, int(retry_after_s)))},
        )

    @classmethod
    def invalid_token(cls, message: str = "Access token validation failure.") -> GraphError:
        """401 for a missing, malformed, expired or revoked token."""
        return cls(
            401,
            "InvalidAuthenticationToken",
            message,
            headers={
                "WWW-Authenticate": (
                    'Bearer realm="", authorization_uri='
                    '"https://login.microsoftonline.com/common/oauth2/authorize", '
                    'client_id="00000003-0000-0000-c000-000000000000"'
                )
            },
        )

    @classmethod
    def access_denied(
        cls, message: str = "Access is denied. Check credentials and try again."
    ) -> GraphError:
        """403 when the token lacks the permission (Outlook's ErrorAccessDenied)."""
        return cls(403, "ErrorAccessDenied", message)

    @classmethod
    def not_found(
        cls, message: str = "The specified object was not found in the store."
    ) -> GraphError:
        """404 for an item that does not exist (Outlook's ErrorItemNotFound)."""
        return cls(404, "ErrorItemNotFound", message)

    @classmethod
    def internal(cls) -> GraphError:
        """500 generalException."""
        return cls(500, "generalException", "General exception while processing.")

    @classmethod
    def service_unavailable(cls, retry_after_s: int = 1) -> GraphError:
        """503 serviceNotAvailable, with Retry-After as Graph sends it."""
        return cls(
            503,
            "serviceNotAvailable",
            "The service is temporarily unavailable. Please retry after a delay.",
            headers={"Retry-After": str(max(1, int(retry_after_s)))},
        )


# -- family by path ---------------------------------------------------------------------------

_GOOGLE_PREFIXES = (
    "/gmail/",
    "/calendar/",
    "/batch",
    "/o/oauth2/",
    "/oauth2/",
    "/token",
    "/revoke",
    "/tokeninfo",
    "/.well-known/",
)
# /{tenant}/oauth2/v2.0/..., /{tenant}/v2.0/.well-known/..., /{tenant}/discovery/v2.0/keys
_MICROSOFT_IDENTITY = re.compile(r"^/[^/]+/(oauth2|v2\.0|discovery)(/|$)")


def family_for_path(path: str) -> str:
    """Return "google", "graph", "microsoft" (identity), or "sandbox" for a request path."""
    if path.startswith("/_sandbox"):
        return "sandbox"
    if path == "/gmail" or path == "/calendar" or path.startswith(_GOOGLE_PREFIXES):
        return "google"
    if path == "/v1.0" or path.startswith(("/v1.0/", "/beta/")):
        return "graph"
    if _MICROSOFT_IDENTITY.match(path):
        return "microsoft"
    return "sandbox"


def _fallback(code: int, description: str, path: str) -> Response:
    """Render an HTTP error that no view produced in the path's family shape."""
    family = family_for_path(path)
    if family == "google":
        reason = {404: "notFound", 405: "httpMethodNotAllowed", 500: "backendError"}.get(
            code, "badRequest" if code < 500 else "backendError"
        )
        message = {404: "Not Found", 405: "Method Not Allowed", 500: "Backend Error"}.get(
            code, description
        )
        return GoogleError(code, message, reason=reason).to_response()
    if family == "graph":
        if code == 404:
            # Graph answers an unknown path segment with 400 BadRequest, never HTML
            # (https://learn.microsoft.com/graph/errors).
            segment = path.split("/")[2] if path.count("/") >= 2 else ""
            return GraphError(
                400, "BadRequest", f"Resource not found for the segment '{segment}'."
            ).to_response()
        if code == 405:
            return GraphError(
                405, "BadRequest", "Specified HTTP method is not allowed for the request target."
            ).to_response()
        if code >= 500:
            return GraphError.internal().to_response()
        return GraphError(code, "BadRequest", description).to_response()
    if family == "microsoft":
        error = "invalid_request" if code < 500 else "server_error"
        return OAuthError(error, f"AADSTS900561: {description}", code, microsoft=True).to_response()
    return _json_response({"error": description, "status": code}, code, {})


def register_error_handlers(app: Flask) -> None:
    """Render provider errors, fallbacks and dropped connections for every path of `app`."""

    @app.errorhandler(GoogleError)
    def _google(e: GoogleError) -> Response:
        return e.to_response()

    @app.errorhandler(OAuthError)
    def _oauth(e: OAuthError) -> Response:
        return e.to_response()

    @app.errorhandler(GraphError)
    def _graph(e: GraphError) -> Response:
        return e.to_response()

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException) -> Response:
        code = e.code or 500
        response = _fallback(code, e.description or e.name, request.path)
        if code == 405 and e.response is None:
            # keep the Allow header werkzeug computed for the route
            allow = e.get_headers()
            for name, value in allow:
                if name.lower() == "allow":
                    response.headers["Allow"] = value
        return response

    @app.errorhandler(DropConnection)
    def _drop(_e: DropConnection) -> Response:
        # The view cannot abort the socket and stop the server from writing a response;
        # mark the environ and let the WSGI wrapper below do it after Flask returns.
        request.environ[_ENVIRON_DROP] = True
        return Response(b"", 500)

    @app.errorhandler(Exception)
    def _unhandled(e: Exception) -> Response:
        app.logger.exception("unhandled error on %s", request.path, exc_info=e)
        return _fallback(500, "Internal Server Error", request.path)

    app.wsgi_app = _DropConnectionMiddleware(app.wsgi_app)  # type: ignore[method-assign]


class _DropConnectionMiddleware:
    """Abort the TCP connection of a request whose view raised DropConnection.

    Werkzeug's dev server puts the client socket in `environ["werkzeug.socket"]`. Shutting it
    down (both directions) makes the client read EOF before any status line, i.e.
    `RemoteDisconnected`/`ConnectionError`; SO_LINGER 0 turns the final close into a RST.
    Raising ConnectionAbortedError afterwards is what werkzeug's `run_wsgi` treats as
    "connection dropped": it logs nothing and writes nothing.
    """

    def __init__(self, wsgi_app: Any) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        result = self.wsgi_app(environ, start_response)
        if not environ.get(_ENVIRON_DROP):
            return result  # type: ignore[no-any-return]
        close = getattr(result, "close", None)
        if close is not None:
            close()
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the client may have gone already; either way nothing more is sent
        raise ConnectionAbortedError("sandbox: injected dropped connection")


def _client_request_id() -> str | None:
    if not has_request_context():
        return None
    return request.headers.get("client-request-id")


def _json_response(body: dict[str, Any], status: int, headers: dict[str, str]) -> Response:
    response = Response(
        json.dumps(body, indent=2), status=status, content_type="application/json; charset=UTF-8"
    )
    for name, value in headers.items():
        response.headers[name] = value
    return response
