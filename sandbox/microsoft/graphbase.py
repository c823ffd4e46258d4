"""Shared plumbing of the Microsoft Graph v1.0 stand-in: the blueprint, authentication,
permission checks, ``Prefer`` headers, opaque state tokens and absolute links.

- Every call authenticates the Bearer JWT (401 ``InvalidAuthenticationToken``), then passes
  ``state.controls.call(service="graph", mailbox=..., method=...)`` (429 + Retry-After, faults),
  then checks the delegated permission (403 ``ErrorAccessDenied``,
  https://learn.microsoft.com/graph/errors). Permissions are listed per API in the Graph
  reference ("Permissions" tables), e.g. https://learn.microsoft.com/graph/api/message-delta.
- ``Prefer`` is a comma-separated list of preferences, possibly over several headers
  (RFC 7240); applied ones are echoed in ``Preference-Applied``
  (https://learn.microsoft.com/graph/api/message-delta#request-headers).
- Links (``@odata.nextLink``/``@odata.deltaLink``) are absolute URLs on the host the request came
  to, so a client that reached us on the HTTPS listener stays on it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, request

from sandbox.errors import GraphError
from sandbox.microsoft.common import b64url, b64url_decode, mailbox_identity
from sandbox.microsoft.identity import bearer, verify_graph_token
from sandbox.state import get_state

bp = Blueprint("microsoft_graph", __name__)

GRAPH = "/v1.0"

# Delegated permissions, lower-case, that satisfy each kind of access.
USER_READ = (
    "user.read",
    "user.readwrite",
    "user.readbasic.all",
    "user.read.all",
    "directory.read.all",
)
MAIL_READ_BASIC = ("mail.readbasic", "mail.read", "mail.readwrite")
MAIL_READ = ("mail.read", "mail.readwrite")
CAL_READ_BASIC = ("calendars.readbasic", "calendars.read", "calendars.readwrite")
CAL_READ = ("calendars.read", "calendars.readwrite")
CAL_WRITE = ("calendars.readwrite",)


@dataclass
class Caller:
    """The signed-in user behind a Graph request."""

    claims: dict[str, Any]
    mailbox: dict[str, Any]
    scopes: frozenset[str]

    @property
    def email(self) -> str:
        return str(self.mailbox["email"])

    @property
    def oid(self) -> str:
        return mailbox_identity(self.mailbox)[0]

    def has_any(self, permissions: tuple[str, ...]) -> bool:
        return any(p in self.scopes for p in permissions)


def authenticate() -> Caller:
    """Validate the Bearer token and return the caller (401 on any failure)."""
    claims = verify_graph_token(bearer())
    box = get_state().store.get_mailbox(str(claims.get("upn", "")))
    if box is None or box.get("provider") != "microsoft":
        # The user behind the token is gone (mailbox deleted) or is not a Microsoft mailbox.
        raise GraphError.invalid_token("Access token validation failure.")
    scopes = frozenset(s.lower() for s in str(claims.get("scp", "")).split())
    return Caller(claims=claims, mailbox=box, scopes=scopes)


@contextmanager
def graph_call(method: str, permissions: tuple[str, ...] = ()) -> Iterator[Caller]:
    """Authenticate, pass the controls gate, check permissions; yield the caller."""
    caller = authenticate()
    with get_state().controls.call(service="graph", mailbox=caller.email, method=method):
        if permissions and not caller.has_any(permissions):
            raise GraphError.access_denied()
        yield caller


# -- Prefer ------------------------------------------------------------------------------------


def prefer() -> dict[str, str]:
    """Return the request's preferences, keys lower-cased, values unquoted."""
    out: dict[str, str] = {}
    for header in request.headers.getlist("Prefer"):
        for item in header.split(","):
            key, _, value = item.strip().partition("=")
            if key:
                out[key.strip().lower()] = value.strip().strip('"')
    return out


def immutable_ids() -> bool:
    """Return True when the client asked for immutable ids (``Prefer: IdType="ImmutableId"``).

    https://learn.microsoft.com/graph/outlook-immutable-id
    """
    return prefer().get("idtype", "").lower() == "immutableid"


def apply_preferences(response: Response, applied: list[str]) -> Response:
    """Echo applied preferences in ``Preference-Applied``."""
    if immutable_ids():
        applied = [*applied, 'IdType="ImmutableId"']
    if applied:
        response.headers["Preference-Applied"] = ", ".join(applied)
    return response


# -- JSON / links ------------------------------------------------------------------------------


def json_response(body: dict[str, Any], status: int = 200) -> Response:
    """Return Graph's JSON content type (odata.metadata=minimal)."""
    return Response(
        json.dumps(body, ensure_ascii=False),
        status=status,
        content_type="application/json;odata.metadata=minimal;odata.streaming=true;"
        "IEEE754Compatible=false;charset=utf-8",
    )


def host_base() -> str:
    """Return ``scheme://host`` of the current request (no trailing slash)."""
    return request.host_url.rstrip("/")


def context_url(fragment: str) -> str:
    """Return an ``@odata.context`` URL."""
    return f"{host_base()}{GRAPH}/$metadata#{fragment}"


def self_link(params: dict[str, str]) -> str:
    """Return this request's path on this host with only ``params`` as the query."""
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
    return f"{host_base()}{request.path}" + (f"?{query}" if query else "")


# -- opaque state tokens -----------------------------------------------------------------------


def encode_token(payload: dict[str, Any]) -> str:
    """Return an opaque URL-safe token for ``payload``."""
    return b64url(json.dumps(payload, separators=(",", ":")).encode())


def decode_token(token: str, what: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Decode an opaque token holding ``required`` keys; 400 as Graph answers a mangled one."""
    try:
        value = json.loads(b64url_decode(token))
        if not isinstance(value, dict) or any(key not in value for key in required):
            raise ValueError(what)
    except (ValueError, UnicodeDecodeError):
        raise GraphError(
            400, "ErrorInvalidUrlQuery", f"The value of the {what} is malformed."
        ) from None
    return value


# -- $select -----------------------------------------------------------------------------------


def parse_select(raw: str | None, known: set[str], type_name: str) -> list[str] | None:
    """Return the selected properties (None: default set); 400 for unknown ones."""
    if raw is None:
        return None
    names = [s.strip() for s in raw.split(",") if s.strip()]
    lower = {k.lower(): k for k in known}
    out = []
    for name in names:
        canon = lower.get(name.lower())
        if canon is None:
            # https://learn.microsoft.com/graph/query-parameters#error-handling-for-query-parameters
            raise GraphError(
                400,
                "RequestBroker--ParseUri",
                f"Could not find a property named '{name}' on type '{type_name}'.",
            )
        out.append(canon)
    return out


def project(item: dict[str, Any], select: list[str] | None, keep: tuple[str, ...]) -> dict:
    """Keep ``keep`` (ids, annotations) and the selected properties of ``item``."""
    if select is None:
        return item
    wanted = set(select) | set(keep)
    return {k: v for k, v in item.items() if k in wanted or k.startswith("@odata.")}


# -- time --------------------------------------------------------------------------------------

# Windows time zone names Outlook uses -> IANA (CLDR windowsZones.xml, territory 001).
WINDOWS_TZ = {
    "utc": "UTC",
    "greenwich standard time": "Atlantic/Reykjavik",
    "gmt standard time": "Europe/London",
    "w. europe standard time": "Europe/Berlin",
    "romance standard time": "Europe/Paris",
    "central europe standard time": "Europe/Budapest",
    "central european standard time": "Europe/Warsaw",
    "e. europe standard time": "Europe/Chisinau",
    "fle standard time": "Europe/Kiev",
    "russian standard time": "Europe/Moscow",
    "eastern standard time": "America/New_York",
    "central standard time": "America/Chicago",
    "mountain standard time": "America/Denver",
    "us mountain standard time": "America/Phoenix",
    "pacific standard time": "America/Los_Angeles",
    "alaskan standard time": "America/Anchorage",
    "hawaiian standard time": "Pacific/Honolulu",
    "atlantic standard time": "America/Halifax",
    "e. south america standard time": "America/Sao_Paulo",
    "india standard time": "Asia/Kolkata",
    "china standard time": "Asia/Shanghai",
    "tokyo standard time": "Asia/Tokyo",
    "singapore standard time": "Asia/Singapore",
    "aus eastern standard time": "Australia/Sydney",
    "new zealand standard time": "Pacific/Auckland",
    "south africa standard time": "Africa/Johannesburg",
    "arabian standard time": "Asia/Dubai",
    "israel standard time": "Asia/Jerusalem",
}


_ACRONYMS = {"aus", "fle", "gmt", "us", "utc"}


def _windows_title(lowered: str) -> str:
    """'w. europe standard time' -> 'W. Europe Standard Time' (WINDOWS_TZ keys are lower-case)."""
    return " ".join(w.upper() if w in _ACRONYMS else w.capitalize() for w in lowered.split())


# IANA -> the Windows name Outlook reports (the first Windows name listed for a zone wins).
_WINDOWS_NAME: dict[str, str] = {}
for _lowered, _iana in WINDOWS_TZ.items():
    _WINDOWS_NAME.setdefault(_iana, _windows_title(_lowered))


def windows_name(iana: str) -> str | None:
    """The Windows zone name Outlook uses for an IANA zone, where WINDOWS_TZ knows one."""
    return _WINDOWS_NAME.get(iana)


def zone(name: str | None) -> tuple[str, dt.tzinfo]:
    """Return ``(name to echo, tzinfo)`` for an Outlook (Windows) or IANA zone name."""
    if not name:
        return "UTC", dt.UTC
    iana = WINDOWS_TZ.get(name.lower(), name)
    try:
        return name, ZoneInfo(iana)
    except (KeyError, ValueError):
        raise GraphError(
            400,
            "ErrorTimeZoneNotSupported",
            f"A valid TimeZone value must be specified. "
            f"The following TimeZone value is not supported: '{name}'.",
        ) from None


def graph_datetime(moment: dt.datetime, tz: dt.tzinfo) -> str:
    """Return Graph's dateTimeTimeZone.dateTime text: local wall clock with 7 fraction digits."""
    local = moment.astimezone(tz).replace(tzinfo=None)
    return local.strftime("%Y-%m-%dT%H:%M:%S.0000000")


def parse_graph_datetime(value: str, tz_name: str | None) -> dt.datetime:
    """Parse a dateTimeTimeZone (or an ISO string with offset) into an aware datetime."""
    text = value.strip().replace("Z", "+00:00")
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        rest = tail[len(digits) :]
        text = head + ("." + digits[:6] if digits else "") + rest
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise GraphError(
            400, "ErrorInvalidRequest", f"Cannot convert the literal '{value}' to DateTime."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(tz_name)[1])
    return moment
