"""Pieces the Microsoft identity platform and Graph stand-ins share.

- Entra error bodies: ``{"error", "error_description": "AADSTSnnnnn: ...", "error_codes",
  "timestamp", "trace_id", "correlation_id", "suberror"?}``
  (https://learn.microsoft.com/entra/identity-platform/reference-error-codes, and the shape msal
  hands back from ``acquire_token_*``: PROVIDERS.md §5).
- Who a mailbox is to Microsoft: object id (``oid``), tenant id (``tid``); personal Microsoft
  accounts all live in the fixed consumers tenant ``9188040d-6c67-4c5b-b112-36a304b66dad``
  (https://learn.microsoft.com/entra/identity-platform/id-token-claims-reference, ``tid``).
- Graph access tokens: JWTs signed by ``state.microsoft_key`` with ``aud`` Microsoft Graph.
  Entra access tokens stay valid until ``exp`` after a grant is revoked (no continuous access
  evaluation here), which is why Graph checks the signature and lifetime only
  (https://learn.microsoft.com/entra/identity-platform/access-tokens#token-lifetime).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid
from typing import Any

from flask import Response

from sandbox.errors import OAuthError

CONSUMERS_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_AUDIENCES = (GRAPH_RESOURCE, GRAPH_RESOURCE + "/", GRAPH_APP_ID)

# A stable namespace so generated object/tenant ids are the same across restarts.
_NS = uuid.UUID("5b0a1c3e-7d2f-4e8a-9c61-2f4b8d0e9a17")


def b64url(data: bytes) -> str:
    """Return unpadded base64url text."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url text with or without padding."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def now_ms() -> int:
    """Return the current time in epoch milliseconds."""
    return int(time.time() * 1000)


def iso_z(when_ms: int | float) -> str:
    """Return ``2026-11-23T10:00:00Z`` for epoch milliseconds (Graph's DateTimeOffset form)."""
    moment = dt.datetime.fromtimestamp(when_ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def mailbox_identity(mailbox: dict[str, Any]) -> tuple[str, str]:
    """Return ``(oid, tid)`` for a store mailbox, deriving stable GUIDs when the store has none."""
    email = mailbox["email"]
    oid = mailbox.get("user_id") or str(uuid.uuid5(_NS, "oid:" + email))
    tid = mailbox.get("tenant_id")
    if not tid:
        domain = email.rsplit("@", 1)[-1]
        # outlook.com / hotmail.com / live.com style domains are personal Microsoft accounts.
        personal = domain in {"outlook.com", "hotmail.com", "live.com", "msn.com"}
        tid = CONSUMERS_TENANT_ID if personal else str(uuid.uuid5(_NS, "tid:" + domain))
    return str(oid), str(tid)


def is_personal(mailbox: dict[str, Any]) -> bool:
    """Return True for a personal Microsoft account (consumers tenant)."""
    return mailbox_identity(mailbox)[1] == CONSUMERS_TENANT_ID


def entra_error(
    error: str,
    code: int,
    description: str,
    *,
    status: int = 400,
    suberror: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Render an Entra token-endpoint error as login.microsoftonline.com shapes it.

    errors.OAuthError renders the common fields; Entra adds ``suberror`` for the cases msal and
    MSAL-based apps branch on (``bad_token``, ``consent_required``)
    (https://learn.microsoft.com/entra/msal/python/advanced/msal-error-handling-python).
    """
    err = OAuthError(
        error, f"AADSTS{code}: {description}", status, error_codes=[code], microsoft=True
    )
    body = err.to_dict(microsoft=True)
    if suberror:
        body["suberror"] = suberror
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store, no-cache"
    response.headers["Pragma"] = "no-cache"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
