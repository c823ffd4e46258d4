"""Add-on endpoints: the Gmail add-on (HTTP runtime) and the Outlook add-in (PROVIDERS.md §7).

Gmail add-on — Google POSTs a JSON EventObject
(https://developers.google.com/workspace/add-ons/reference/callback-contract):

* `POST /addon/gmail/homepage` (homepage trigger) and `POST /addon/gmail/message` (contextual
  trigger, a message is open). Each call carries `Authorization: Bearer <Google ID token>`
  for the add-ons service agent with `aud` = the endpoint's public URL (`WARMLINE_PUBLIC_URL` +
  path); core/addon_auth.py checks it. No service account configured → 503; any failed check
  → 401 JSON. The person is `authorizationEventObject.userIdToken` (`aud` = our Google client
  id, `sub` = the connected Google account); not connected → a card saying where to connect.
* The sender of the open message: Google's `gmail` event object carries `messageId`,
  `threadId`, `accessToken` and the recipient lists, but no From. Reading the header would take a
  Gmail API call from here; instead the sender is looked up in Warmline's own synced copy by
  `gmail.messageId` for the user's Google account. `commonEventObject.parameters.email`, when
  present (our own card actions may set it), wins. Not synced yet → a card saying so.
* Answer: `{"action": {"navigations": [{"pushCard": card}]}}`, cards in Card v1 JSON
  (validated by tests/functional/card_schema.py).

Outlook add-in:

* `GET /addin/outlook/taskpane` (also `.html`, the manifest's URL): the task pane page; its
  script reads the open message's sender through Office.js and asks `/addin/outlook/context`.
* `POST /addin/outlook/context` `{"email": ...}` → the same JSON as
  `GET /api/v1/contacts/<email>/context`. Bearer token: a Warmline API token (`wl_...`), or a
  nested-app-auth access token for our API (`WARMLINE_MICROSOFT_ADDIN_AUDIENCE`) verified
  against the configured authority's OIDC metadata and JWKS, mapped to the user through the
  connected Microsoft account `<oid>.<tid>`. Cookies are not accepted here.
* Outlook on the web shows the task pane in an iframe, and the page loads Office.js from
  Microsoft's CDN: for /addin/outlook/* only, the CSP allows that script origin and framing by
  Outlook's origins, and `X-Frame-Options` is dropped. That header rewrite runs as an app-level
  after-request hook registered with this blueprint, so it runs after app.py's
  `_security_headers` (Flask runs after-request hooks in reverse order of registration).

Signing keys and the Entra metadata are fetched with the provider CA bundle and cached for
`KEY_CACHE_S`; a token naming an unknown `kid` refetches once (key rotation).
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from connectors.common import http_session
from core import addon_auth
from core.addon_auth import AddonAuthError
from core.context import contact_context
from core.db import utcnow
from core.models import Provider
from server import context, schemas
from server.context_api import _add_reconnect_urls
from server.errors import error_response
from server.identity import current_user

bp = Blueprint("addons", __name__)

KEY_CACHE_S = 300.0
HTTP_TIMEOUT_S = 10.0
OFFICE_JS_ORIGIN = "https://appsforoffice.microsoft.com"
OUTLOOK_ORIGINS = (
    "https://outlook.office.com",
    "https://outlook.office365.com",
    "https://outlook.live.com",
)
TASKPANE_CSP = (
    f"default-src 'self'; script-src 'self' {OFFICE_JS_ORIGIN}; connect-src 'self'; "
    f"frame-ancestors {' '.join(OUTLOOK_ORIGINS)}; base-uri 'none'; form-action 'self'"
)


# Gmail add-on


@bp.post("/addon/gmail/homepage")
def gmail_homepage() -> Response:
    caller = _gmail_caller()
    if isinstance(caller, Response):
        return caller
    user_id, _event = caller
    if user_id is None:
        return _push(_connect_card())
    return _push(
        _card(
            "Warmline",
            "Who is this person to you?",
            [
                {"textParagraph": {"text": "Open a message to see who its sender is to you."}},
                _open_button("Open Warmline", f"{_public()}/sidebar"),
            ],
        )
    )


@bp.post("/addon/gmail/message")
def gmail_message() -> Response:
    caller = _gmail_caller()
    if isinstance(caller, Response):
        return caller
    user_id, event = caller
    if user_id is None:
        return _push(_connect_card())
    sender = _event_sender(event)
    if sender is None:
        message_id = str(_dig(event, "gmail", "messageId") or "")
        if message_id:
            sender = addon_auth.get_message_sender(
                context.db(),
                user_id=user_id,
                provider=Provider.GOOGLE,
                provider_message_id=message_id,
            )
    if sender is None:
        return _push(
            _card(
                "Warmline",
                "Not synced yet",
                [
                    {
                        "textParagraph": {
                            "text": "Warmline has not synced this message yet. "
                            "Try again in a minute."
                        }
                    },
                    _open_button("Open Warmline", f"{_public()}/sidebar"),
                ],
            )
        )
    answer = contact_context(context.db(), user_id=user_id, email=sender, now=utcnow())
    return _push(_context_card(answer, sender))


def _gmail_caller() -> Response | tuple[Any, dict[str, Any]]:
    """Verify Google's call; return (user id or None, event) or the error response."""
    settings = context.settings()
    service_account = settings.google_addon_service_account
    if not service_account:
        return error_response(
            503,
            "the Gmail add-on is not configured: set WARMLINE_GOOGLE_ADDON_SERVICE_ACCOUNT",
        )
    certs_url = settings.google_addon_certs_uri
    token = _bearer()
    try:
        claims = addon_auth.verify_google_id_token(
            token,
            certs=_keys(certs_url, token),
            audience=f"{_public()}{request.path}",
            issuers=settings.google_id_token_issuers,
        )
        addon_auth.check_google_addon_caller(claims, service_account=service_account)
    except AddonAuthError as exc:
        return _unauthorized(f"not a call from the Gmail add-on: {exc}")
    event = request.get_json(silent=True)
    if not isinstance(event, dict):
        return error_response(400, "send the add-on event object as JSON")
    user_token = str(_dig(event, "authorizationEventObject", "userIdToken") or "")
    if not user_token or not settings.google_client_id:
        return None, event
    try:
        user = addon_auth.verify_google_id_token(
            user_token,
            certs=_keys(certs_url, user_token),
            audience=settings.google_client_id,
            issuers=settings.google_id_token_issuers,
        )
    except AddonAuthError as exc:
        return _unauthorized(f"userIdToken rejected: {exc}")
    user_id = addon_auth.get_user_id_by_provider_account(
        context.db(), provider=Provider.GOOGLE, provider_account_id=str(user.get("sub") or "")
    )
    return user_id, event


def _event_sender(event: dict[str, Any]) -> str | None:
    params = _dig(event, "commonEventObject", "parameters")
    if isinstance(params, dict) and isinstance(params.get("email"), str) and params["email"]:
        return str(params["email"])
    return None


# Cards (Card v1 JSON: https://developers.google.com/workspace/add-ons/reference/rpc/google.apps.card.v1)


def _push(card: dict[str, Any]) -> Response:
    return jsonify({"action": {"navigations": [{"pushCard": card}]}})


def _card(title: str, subtitle: str, widgets: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "header": {"title": title, "subtitle": subtitle},
        "sections": [{"widgets": widgets}],
    }


def _open_button(text: str, url: str) -> dict[str, Any]:
    return {"buttonList": {"buttons": [{"text": text, "onClick": {"openLink": {"url": url}}}]}}


def _connect_card() -> dict[str, Any]:
    url = f"{_public()}/"
    return _card(
        "Warmline",
        "Connect your account",
        [
            {
                "textParagraph": {
                    "text": "This Google account is not connected to Warmline yet. Connect it "
                    f"at {html.escape(url)} and Warmline will show who people are to you."
                }
            },
            _open_button("Connect at Warmline", url),
        ],
    )


def _context_card(answer: dict[str, Any], sender: str) -> dict[str, Any]:
    contact = answer["contact"]
    address = answer["address"] or sender
    name = contact["display_name"] or address
    link = f"{_public()}/sidebar?{urlencode({'email': address})}"
    if not answer["known"]:
        reason = {
            "yourself": "This is you.",
            "not_an_address": "The sender is not an email address.",
        }.get(answer["reason"], "No history with this person yet.")
        return _card(
            _text(name),
            _text(address),
            [{"textParagraph": {"text": reason}}, _open_button("Open in Warmline", link)],
        )
    mail = answer["email"]
    strength = answer["strength"] if answer["strength"] is not None else 0
    reasons = "; ".join(answer["strength_reasons"]) or "—"
    widgets: list[dict[str, Any]] = [
        {
            "decoratedText": {
                "topLabel": "Strength",
                "text": f"{strength}/100",
                "bottomLabel": _text(reasons),
            }
        },
        {
            "decoratedText": {
                "topLabel": "Last contact",
                "text": _text(answer["last_contact_words"] or "never"),
            }
        },
        {
            "decoratedText": {
                "topLabel": "Emails",
                "text": f"{mail['inbound_count']} from them · {mail['outbound_count']} from you",
                "bottomLabel": f"{mail['threads_together']} threads together",
            }
        },
    ]
    meetings = answer["meetings"]
    next_meeting = meetings["next_meeting"]
    widgets.append(
        {
            "decoratedText": {
                "topLabel": "Meetings",
                "text": f"{meetings['past_count']} past",
                "bottomLabel": (
                    f"Next: {_text(next_meeting['words'])}" if next_meeting else "None scheduled"
                ),
            }
        }
    )
    for follow_up in answer.get("follow_ups") or []:
        # The suggestion in words; acting on it happens in Warmline (the button below).
        widgets.append(
            {
                "decoratedText": {
                    "topLabel": "Follow up",
                    "text": _text(follow_up["reason"]),
                    "wrapText": True,
                }
            }
        )
    widgets += [{"divider": {}}, _open_button("Open in Warmline", link)]
    company = contact.get("company")
    subtitle = f"{address} · {company}" if company else address
    return _card(_text(name), _text(subtitle), widgets)


def _text(value: str) -> str:
    # Card text fields accept a little HTML: names and addresses come from mail headers.
    return html.escape(value, quote=False)


# Outlook add-in


@bp.get("/addin/outlook/taskpane")
@bp.get("/addin/outlook/taskpane.html")
def outlook_taskpane() -> str:
    settings = context.settings()
    scope = (
        f"{settings.microsoft_addin_audience}/{settings.microsoft_addin_scope}"
        if settings.microsoft_addin_audience
        else ""
    )
    return render_template(
        "outlook_taskpane.html",
        client_id=settings.microsoft_client_id or "",
        naa_scope=scope,
        # MSAL must ask the authority whose keys verify the token (a single-tenant app
        # registration fails on /common).
        authority=settings.microsoft_authority if scope else "",
        public_url=_public(),
    )


@bp.post("/addin/outlook/context")
def outlook_context() -> Response:
    token = _bearer()
    if not token:
        return _unauthorized("send a Warmline API token or a nested-app-auth access token")
    if token.startswith("wl_"):
        user = current_user()
        if user is None:
            return _unauthorized("unknown or revoked API token")
        user_id = user.id
    else:
        found = _outlook_user(token)
        if isinstance(found, Response):
            return found
        user_id = found
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    if not isinstance(email, str) or not email.strip():
        return error_response(400, 'send a JSON object {"email": "ann@example.org"}')
    answer = contact_context(context.db(), user_id=user_id, email=email.strip(), now=utcnow())
    _add_reconnect_urls(answer["sync"])
    return jsonify(schemas.ContactContextWithSync.model_validate(answer).model_dump(mode="json"))


def _outlook_user(token: str) -> Any:
    settings = context.settings()
    audience = settings.microsoft_addin_audience
    if not audience:
        return _unauthorized(
            "nested app authentication is not configured (WARMLINE_MICROSOFT_ADDIN_AUDIENCE)"
        )
    try:
        metadata = _fetch_json(
            f"{settings.microsoft_authority.rstrip('/')}/v2.0/.well-known/openid-configuration"
        )
        claims = addon_auth.verify_microsoft_access_token(
            token,
            jwks=_keys(str(metadata["jwks_uri"]), token),
            issuer=str(metadata["issuer"]),
            audience=audience,
            required_scope=settings.microsoft_addin_scope,
        )
    except AddonAuthError as exc:
        return _unauthorized(f"access token rejected: {exc}")
    except (OSError, ValueError, KeyError):
        return error_response(502, "could not read the Microsoft authority's signing keys")
    user_id = addon_auth.get_user_id_by_provider_account(
        context.db(),
        provider=Provider.MICROSOFT,
        provider_account_id=f"{claims['oid']}.{claims['tid']}",
    )
    if user_id is None:
        return error_response(
            403, f"this Microsoft account is not connected to Warmline: connect it at {_public()}/"
        )
    return user_id


@bp.after_app_request
def _outlook_frame_headers(response: Response) -> Response:
    # Registered on the app, after nothing else overrides it: see the module docstring.
    if request.path.startswith("/addin/outlook/"):
        response.headers.pop("X-Frame-Options", None)
        response.headers["Content-Security-Policy"] = TASKPANE_CSP
    return response


# Helpers


def _public() -> str:
    return context.settings().effective_public_url


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""


def _unauthorized(message: str) -> Response:
    response = error_response(401, message)
    response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


class _KeyCache:
    """Signing keys and metadata by URL, kept `KEY_CACHE_S`; one per app."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Any]] = {}

    def get(self, url: str, *, fresh: bool = False) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(url)
        if hit and not fresh and now - hit[0] < KEY_CACHE_S:
            return hit[1]
        settings = context.settings()
        ca = str(settings.provider_ca_bundle) if settings.provider_ca_bundle else None
        with http_session(ca) as session:
            response = session.get(url, timeout=HTTP_TIMEOUT_S)
            response.raise_for_status()
            value = response.json()
        with self._lock:
            self._entries[url] = (now, value)
        return value


def _cache() -> _KeyCache:
    return current_app.extensions.setdefault("warmline_addon_keys", _KeyCache())  # type: ignore[no-any-return]


def _fetch_json(url: str) -> Any:
    return _cache().get(url)


def _keys(url: str, token: str) -> Any:
    """Return the keys at `url`, refetched once when the token names a kid they lack."""
    try:
        keys = _cache().get(url)
        if not addon_auth.has_key(keys, token):
            keys = _cache().get(url, fresh=True)
    except (OSError, ValueError):
        raise AddonAuthError("signing keys unavailable") from None
    return keys
