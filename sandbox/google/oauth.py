"""Google OAuth 2.0 / OpenID Connect stand-in: consent page, token, revoke, userinfo, keys.

Routes (all answer on the sandbox's HTTP and HTTPS listeners):

- ``GET|POST /o/oauth2/v2/auth``      consent page (GET shows it, POST is the person's answer)
- ``POST /token``                     authorization_code and refresh_token grants
- ``POST /revoke``                    revoke an access or refresh token (and with it the grant)
- ``GET /oauth2/v3/userinfo``         OIDC userinfo (Bearer)
- ``GET /oauth2/v3/certs``            JWKS for id_token signatures
- ``GET /oauth2/v1/certs``            ``{kid: x509 PEM}``: what google-auth's
                                      ``id_token.verify_token(certs_url=...)`` fetches
- ``GET /.well-known/openid-configuration``

``authenticate(required_scopes_any)`` is the access-token check every Google API blueprint
(Gmail here, Calendar in ``calendar.py``) calls first.

Provider quirks reproduced (PROVIDERS.md §3 unless another source is given):

- A refresh token is issued only with ``access_type=offline`` and only at the *first* consent of
  a (user, client) pair, unless ``prompt=consent`` forces a new one
  (https://developers.google.com/identity/protocols/oauth2/web-server#offline).
- Granular consent: the person may untick scopes; the token's ``scope`` is what was granted, so it
  can differ from the request (oauthlib then needs ``OAUTHLIB_RELAX_TOKEN_SCOPE``).
- ``email``/``profile`` come back as their long ``userinfo.*`` forms and bring ``openid`` with them
  (the classic ``Scope has changed from "…userinfo.email" to "…userinfo.email openid"`` warning;
  https://github.com/domainaware/parsedmarc/issues/310 shows Google normalising the scope string).
- ``include_granted_scopes=true`` (incremental auth) adds earlier grants of the same client.
- Every dead refresh token answers 400 ``invalid_grant`` / ``Token has been expired or revoked.``
- Revoking an access token also revokes its refresh token, and vice versa: revocation works on
  the grant (https://developers.google.com/identity/protocols/oauth2/web-server#tokenrevoke:
  "If the token is an access token and it has a corresponding refresh token, the refresh token
  will also be revoked"). Success is 200 ``{}``, failure 400 ``invalid_token``.
- API 401/403 bodies are the real ones: 401 ``authError``/``Invalid Credentials``
  (https://github.com/googleapis/google-api-nodejs-client/issues/2665) and 403
  ``insufficientPermissions`` "Request had insufficient authentication scopes."
  (https://github.com/googleworkspace/php-samples/issues/123).

Knobs (``state.config``; absent means the default):

- ``google_issuer`` (``https://accounts.google.com``): the id_token ``iss`` and the discovery
  document's ``issuer``, so the sandbox can play an independent stand-in with its own issuer.
- ``google_clock_ahead_s`` (0): how far the sandbox's clock runs ahead when it stamps an
  id_token's ``iat``/``exp``; Google's clock is never exactly the client's
  (https://github.com/googleapis/google-auth-library-python/issues/889).
- ``google_scope_error_style`` (``"errors"``): the shape of a missing-scope 403. ``"errors"``
  is the classic body with ``errors[].reason`` ``insufficientPermissions``; ``"details"`` is the
  newer google.rpc shape with no ``errors`` array, only ``status`` ``PERMISSION_DENIED`` and an
  ``ErrorInfo`` reason ``ACCESS_TOKEN_SCOPE_INSUFFICIENT`` in ``details``
  (https://cloud.google.com/apis/design/errors#error_info; Google APIs answer so, e.g.
  https://github.com/kwent/react-google-contacts/issues/6 without ``errors``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, jsonify, redirect, request

from sandbox.errors import GoogleError, OAuthError
from sandbox.state import get_state

bp = Blueprint("google_oauth", __name__)

ISSUER = "https://accounts.google.com"
PROVIDER = "google"

SCOPE_OPENID = "openid"
SCOPE_EMAIL = "https://www.googleapis.com/auth/userinfo.email"
SCOPE_PROFILE = "https://www.googleapis.com/auth/userinfo.profile"
# Short forms Google accepts on the authorize URL and answers with their long form.
_SCOPE_ALIASES = {"email": SCOPE_EMAIL, "profile": SCOPE_PROFILE}
# Sign-in scopes are not offered as checkboxes on Google's granular consent screen: they are
# granted whenever the person allows at all.
_BASIC_SCOPES = frozenset({SCOPE_OPENID, SCOPE_EMAIL, SCOPE_PROFILE})

_AUTH_REALM = 'Bearer realm="https://accounts.google.com/"'

_CODE_TTL_MS = 10 * 60 * 1000  # Google's codes are short-lived; 10 min is generous.


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _now_ms() -> int:
    return int(time.time() * 1000)


def _issuer() -> str:
    return str(get_state().config.get("google_issuer") or ISSUER)


def normalize_scopes(raw: str) -> list[str]:
    """Split a scope string, map short aliases to Google's long names, keep order, dedupe."""
    out: list[str] = []
    for item in raw.split():
        scope = _SCOPE_ALIASES.get(item, item)
        if scope not in out:
            out.append(scope)
    # Asking for userinfo.* signs the person in: Google adds openid to what it grants.
    if (SCOPE_EMAIL in out or SCOPE_PROFILE in out) and SCOPE_OPENID not in out:
        out.insert(0, SCOPE_OPENID)
    return out


def _is_known_scope(scope: str) -> bool:
    return (
        scope == SCOPE_OPENID
        or scope == "https://mail.google.com/"
        or scope.startswith("https://www.googleapis.com/auth/")
    )


def _split_scopes(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    return list(value)


def _client(client_id: str | None) -> dict[str, Any] | None:
    if not client_id:
        return None
    return get_state().clients.get(client_id)


def _is_loopback_redirect(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme in ("http", "https") and parts.hostname in ("127.0.0.1", "localhost", "::1")


def _redirect_allowed(client: dict[str, Any], redirect_uri: str) -> bool:
    allowed = client.get("redirect_uris")
    if allowed is None:  # DESIGN.md: None = any http(s) loopback redirect URI
        return _is_loopback_redirect(redirect_uri)
    return redirect_uri in allowed


def _with_query(uri: str, params: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _pkce_ok(verifier: str, challenge: str, method: str) -> bool:
    # RFC 7636 §4.6; Google supports S256 and plain
    # (https://developers.google.com/identity/protocols/oauth2/native-app#step1-code-verifier).
    if method.upper() == "S256":
        computed = _b64url(hashlib.sha256(verifier.encode()).digest())
    else:
        computed = verifier
    return hmac.compare_digest(computed, challenge)


def _row_get(row: Any, key: str, default: Any = None) -> Any:
    if row is None:
        return default
    if isinstance(row, dict):
        return row.get(key, default)
    try:
        return row[key]
    except (KeyError, IndexError):
        return default


# --------------------------------------------------------------------------------------------
# error pages (authorize endpoint: shown to the person, never redirected to an unchecked URI)
# --------------------------------------------------------------------------------------------


def _error_page(status: int, error: str, detail: str) -> Response:
    # Google renders "Error 400: redirect_uri_mismatch" etc. as an HTML page and does not
    # redirect when the client or redirect URI cannot be trusted (RFC 6749 §4.1.2.1).
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>Error {status}: {html.escape(error)}</title></head><body><main>"
        "<h1>Access blocked: this app's request is invalid</h1>"
        f"<p><strong>Error {status}: {html.escape(error)}</strong></p>"
        f"<p>{html.escape(detail)}</p></main></body></html>"
    )
    return Response(body, status=status, mimetype="text/html")


# --------------------------------------------------------------------------------------------
# /o/oauth2/v2/auth
# --------------------------------------------------------------------------------------------

_AUTH_PARAMS = (
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "access_type",
    "prompt",
    "include_granted_scopes",
    "login_hint",
    "code_challenge",
    "code_challenge_method",
    "nonce",
)


def _validate_auth_request(params: dict[str, str]) -> Response | None:
    """Return an error page (or redirect) for a bad authorize request, None when it is fine."""
    client_id = params.get("client_id")
    client = _client(client_id)
    if client is None:
        return _error_page(401, "invalid_client", "The OAuth client was not found.")
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri:
        return _error_page(400, "invalid_request", "Missing required parameter: redirect_uri")
    if not _redirect_allowed(client, redirect_uri):
        return _error_page(
            400,
            "redirect_uri_mismatch",
            f"The redirect URI in the request, {redirect_uri}, does not match the ones "
            "authorized for the OAuth client.",
        )
    if params.get("response_type") != "code":
        return _error_page(
            400,
            "unsupported_response_type",
            f"Invalid response_type: {params.get('response_type', '')}",
        )
    scopes = normalize_scopes(params.get("scope", ""))
    if not scopes:
        return _error_page(400, "invalid_request", "Missing required parameter: scope")
    bad = [s for s in scopes if not _is_known_scope(s)]
    if bad:
        return _error_page(
            400, "invalid_scope", f"Some requested scopes were invalid. {{invalid={bad}}}"
        )
    method = params.get("code_challenge_method", "")
    if params.get("code_challenge") and method and method.upper() not in ("S256", "PLAIN"):
        return _error_page(400, "invalid_request", f"Invalid code_challenge_method value: {method}")
    return None


def _google_mailboxes() -> list[dict[str, Any]]:
    return [m for m in get_state().store.list_mailboxes() if m.get("provider") == PROVIDER]


@bp.route("/o/oauth2/v2/auth", methods=["GET", "POST"])
def authorize() -> Response:
    """Show the consent page (GET) or take the person's Allow/Deny answer (POST)."""
    source = request.form if request.method == "POST" else request.args
    params = {k: source[k] for k in _AUTH_PARAMS if source.get(k)}
    problem = _validate_auth_request(params)
    if problem is not None:
        return problem
    state = get_state()
    mailboxes = _google_mailboxes()
    requested = normalize_scopes(params["scope"])

    if request.method == "GET" and not state.config.get("auto_consent", False):
        return _consent_page(params, requested, mailboxes)

    if request.method == "POST" and request.form.get("action") != "allow":
        # Deny: RFC 6749 §4.1.2.1, what Google sends when the person cancels.
        return _redirect_back(params, {"error": "access_denied"})

    if request.method == "POST":
        email = (request.form.get("mailbox") or "").lower()
        ticked = set(request.form.getlist("scope_granted"))
        granted = [s for s in requested if s in _BASIC_SCOPES or s in ticked]
    else:  # auto_consent: sign in as login_hint (or the only/first mailbox), grant everything
        email = (params.get("login_hint") or "").lower()
        if not email and mailboxes:
            email = mailboxes[0]["email"]
        granted = list(requested)

    mailbox = state.store.get_mailbox(email) if email else None
    if mailbox is None or mailbox.get("provider") != PROVIDER:
        return _error_page(400, "invalid_request", f"No sandbox Google account {email!r}.")
    if not granted:
        return _redirect_back(params, {"error": "access_denied"})
    code = _issue_code(params, mailbox, granted)
    answer = {"code": code, "scope": " ".join(granted), "authuser": "0", "prompt": "consent"}
    if params.get("state") is not None:
        answer = {"state": params["state"], **answer}
    return _redirect_back(params, answer)


def _redirect_back(params: dict[str, str], answer: dict[str, str]) -> Response:
    if "state" in params and "state" not in answer:
        answer = {"state": params["state"], **answer}
    return redirect(_with_query(params["redirect_uri"], answer), code=302)


def _consent_page(
    params: dict[str, str], requested: list[str], mailboxes: list[dict[str, Any]]
) -> Response:
    hint = (params.get("login_hint") or "").lower()
    client_id = params["client_id"]
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in params.items()
    )
    if mailboxes:
        options = "".join(
            '<option value="{v}"{sel}>{label}</option>'.format(
                v=html.escape(m["email"]),
                sel=" selected" if m["email"] == hint else "",
                label=html.escape(f"{m.get('display_name') or m['email']} <{m['email']}>"),
            )
            for m in mailboxes
        )
        account = (
            '<p><label for="mailbox">Sign in as</label> '
            f'<select id="mailbox" name="mailbox" required>{options}</select></p>'
        )
    else:
        account = "<p>No sandbox Google mailboxes exist yet; generate one first.</p>"
    items = []
    for i, scope in enumerate(requested):
        if scope in _BASIC_SCOPES:
            items.append(f"<li>{html.escape(scope)} <em>(always granted)</em></li>")
        else:
            items.append(
                f'<li><input type="checkbox" id="scope{i}" name="scope_granted" '
                f'value="{html.escape(scope)}" checked> '
                f'<label for="scope{i}">{html.escape(scope)}</label></li>'
            )
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>Sign in - Sandbox Google Accounts</title></head><body><main>"
        "<h1>Sandbox Google: sign in</h1>"
        f"<p><strong>{html.escape(client_id)}</strong> wants to access your sandbox Google "
        "Account.</p>"
        '<form method="post" action="/o/oauth2/v2/auth">'
        f"{hidden}{account}"
        "<fieldset><legend>Select what it can access</legend>"
        f"<ul>{''.join(items)}</ul></fieldset>"
        '<button type="submit" name="action" value="deny">Cancel</button> '
        '<button type="submit" name="action" value="allow">Allow</button>'
        "</form></main></body></html>"
    )
    return Response(body, mimetype="text/html")


def _previous_grants(mailbox_email: str, client_id: str) -> list[dict[str, Any]]:
    """Live grants of this client for this mailbox (first-consent / incremental-auth checks)."""
    # Store has no "list grants" call; this read-only query is the one place that reads the
    # table directly (schema: sandbox/store.py, DESIGN.md "Store").
    rows = (
        get_state()
        .store.connection()
        .execute(
            'SELECT id, scopes FROM "grant" '
            "WHERE mailbox = ? AND provider = ? AND client_id = ? AND is_revoked = 0",
            (mailbox_email.lower(), PROVIDER, client_id),
        )
    )
    return [dict(r) for r in rows]


def _issue_code(params: dict[str, str], mailbox: dict[str, Any], granted: list[str]) -> str:
    state = get_state()
    email = mailbox["email"]
    client_id = params["client_id"]
    earlier = _previous_grants(email, client_id)
    if params.get("include_granted_scopes") == "true":
        for grant in earlier:
            for scope in _split_scopes(_row_get(grant, "scopes")):
                if scope not in granted:
                    granted.append(scope)
    offline = params.get("access_type") == "offline"
    forced = "consent" in (params.get("prompt") or "").split()
    return state.store.create_auth_code(
        provider=PROVIDER,
        mailbox=email,
        client_id=client_id,
        redirect_uri=params["redirect_uri"],
        scopes=" ".join(granted),
        code_challenge=params.get("code_challenge"),
        code_challenge_method=(params.get("code_challenge_method") or "plain")
        if params.get("code_challenge")
        else None,
        nonce=params.get("nonce"),
        extra={"issue_refresh": offline and (forced or not earlier)},
    )


# --------------------------------------------------------------------------------------------
# /token
# --------------------------------------------------------------------------------------------


def _client_credentials() -> tuple[str | None, str | None]:
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        return auth.username, auth.password
    return request.form.get("client_id"), request.form.get("client_secret")


@bp.post("/token")
def token() -> Response:
    """Exchange an authorization code or a refresh token for tokens, like oauth2.googleapis.com."""
    client_id, client_secret = _client_credentials()
    client = _client(client_id)
    if client is None:
        raise OAuthError("invalid_client", "The OAuth client was not found.", status=401)
    if not client_secret or not hmac.compare_digest(str(client["secret"]), client_secret):
        raise OAuthError("invalid_client", "Unauthorized", status=401)
    assert client_id is not None
    grant_type = request.form.get("grant_type", "")
    with get_state().controls.call(service="oauth", mailbox=None, method="token"):
        if grant_type == "authorization_code":
            return _token_from_code(client_id)
        if grant_type == "refresh_token":
            return _token_from_refresh(client_id)
    raise OAuthError("unsupported_grant_type", f"Invalid grant_type: {grant_type}")


def _token_from_code(client_id: str) -> Response:
    state = get_state()
    code = request.form.get("code", "")
    if not code:
        raise OAuthError("invalid_request", "Missing required parameter: code")
    row = state.store.take_auth_code(code)  # single use: a second take returns None
    if row is None or _row_get(row, "provider", PROVIDER) != PROVIDER:
        # Google answers unknown, reused and other clients' codes alike.
        raise OAuthError("invalid_grant", "Bad Request")
    extras = _row_get(row, "extra") or {}
    if _now_ms() - int(_row_get(row, "created_ms", _now_ms())) > _CODE_TTL_MS:
        raise OAuthError("invalid_grant", "Bad Request")
    if _row_get(row, "client_id") != client_id:
        raise OAuthError("invalid_grant", "Bad Request")
    if request.form.get("redirect_uri", "") != _row_get(row, "redirect_uri"):
        raise OAuthError("redirect_uri_mismatch", "Bad Request")
    challenge = _row_get(row, "code_challenge")
    verifier = request.form.get("code_verifier")
    if challenge:
        if not verifier:
            raise OAuthError("invalid_grant", "Missing code verifier.")
        method = _row_get(row, "code_challenge_method") or "plain"
        if not _pkce_ok(verifier, challenge, method):
            raise OAuthError("invalid_grant", "Invalid code verifier.")
    scopes = _split_scopes(_row_get(row, "scopes"))
    mailbox = _row_get(row, "mailbox")
    grant_id, refresh_token = _create_grant(
        mailbox, client_id, scopes, with_refresh=bool(extras.get("issue_refresh"))
    )
    return _token_response(
        grant_id=grant_id,
        mailbox=mailbox,
        client_id=client_id,
        scopes=scopes,
        refresh_token=refresh_token,
        nonce=_row_get(row, "nonce"),
    )


def _create_grant(
    mailbox: str, client_id: str, scopes: list[str], *, with_refresh: bool
) -> tuple[Any, str | None]:
    """Record the grant; its refresh token is handed out only when Google would issue one."""
    grant = get_state().store.create_grant(
        provider=PROVIDER, mailbox=mailbox, client_id=client_id, scopes=" ".join(scopes)
    )
    return grant["id"], (grant["refresh_token"] if with_refresh else None)


def _token_from_refresh(client_id: str) -> Response:
    store = get_state().store
    refresh_token = request.form.get("refresh_token", "")
    if not refresh_token:
        raise OAuthError("invalid_request", "Missing required parameter: refresh_token")
    grant = store.get_grant_by_refresh_token(refresh_token)
    if grant is None or _row_get(grant, "is_revoked") or _row_get(grant, "provider") != PROVIDER:
        raise OAuthError("invalid_grant", "Token has been expired or revoked.")
    if _row_get(grant, "client_id") != client_id:
        raise OAuthError("unauthorized_client", "Unauthorized")
    granted = _split_scopes(_row_get(grant, "scopes"))
    wanted = normalize_scopes(request.form.get("scope", "")) or granted
    # A refresh may narrow the scopes, never widen them (RFC 6749 §6).
    if any(s not in granted for s in wanted):
        raise OAuthError("invalid_scope", "Bad Request")
    return _token_response(
        grant_id=_row_get(grant, "id"),
        mailbox=_row_get(grant, "mailbox"),
        client_id=client_id,
        scopes=wanted,
        refresh_token=None,
        nonce=None,
    )


def _token_response(
    *,
    grant_id: Any,
    mailbox: str,
    client_id: str,
    scopes: list[str],
    refresh_token: str | None,
    nonce: str | None,
) -> Response:
    state = get_state()
    ttl_s = int(state.config.get("access_token_ttl_s", 3600))
    access_token = state.store.issue_access_token(grant_id, " ".join(scopes), ttl_s)
    body: dict[str, Any] = {
        "access_token": access_token,
        "expires_in": ttl_s,
        "scope": " ".join(scopes),
        "token_type": "Bearer",
    }
    if refresh_token:
        body["refresh_token"] = refresh_token
        # Google reports how long a refresh token lives only when it is time-limited; leave out.
    if SCOPE_OPENID in scopes:
        body["id_token"] = _id_token(
            mailbox=mailbox,
            client_id=client_id,
            scopes=scopes,
            access_token=access_token,
            nonce=nonce,
        )
    response = jsonify(body)
    # RFC 6749 §5.1: token responses must not be cached.
    response.headers["Cache-Control"] = "no-cache, no-store, max-age=0, must-revalidate"
    response.headers["Pragma"] = "no-cache"
    return response


def _id_token(
    *, mailbox: str, client_id: str, scopes: list[str], access_token: str, nonce: str | None
) -> str:
    """Sign an OIDC id_token the way Google does (RS256; iss: the `google_issuer` knob)."""
    state = get_state()
    box = state.store.get_mailbox(mailbox) or {"email": mailbox}
    now = int(time.time()) + int(state.config.get("google_clock_ahead_s", 0))
    # at_hash: left half of SHA-256 of the access token, base64url (OIDC Core §3.1.3.6).
    digest = hashlib.sha256(access_token.encode()).digest()
    claims: dict[str, Any] = {
        "iss": _issuer(),
        "azp": client_id,
        "aud": client_id,
        "sub": str(box.get("user_id") or box["email"]),
        "at_hash": _b64url(digest[: len(digest) // 2]),
        "iat": now,
        "exp": now + int(state.config.get("id_token_ttl_s", 3600)),
    }
    if SCOPE_EMAIL in scopes:
        claims["email"] = box["email"]
        claims["email_verified"] = True
    if SCOPE_PROFILE in scopes:
        claims.update(_profile_claims(box))
    if nonce:
        claims["nonce"] = nonce
    return state.google_key.sign(claims)


def _profile_claims(box: dict[str, Any]) -> dict[str, Any]:
    name = box.get("display_name") or box["email"].split("@", 1)[0]
    given, _, family = name.partition(" ")
    claims = {"name": name, "given_name": given}
    if family:
        claims["family_name"] = family
    return claims


# --------------------------------------------------------------------------------------------
# /revoke
# --------------------------------------------------------------------------------------------


@bp.route("/revoke", methods=["POST", "GET"])
def revoke() -> Response:
    """Revoke the grant behind an access or refresh token (token in body or query)."""
    store = get_state().store
    tok = request.values.get("token", "")
    # Both lookups only return live tokens (unexpired, grant not revoked).
    grant = store.get_grant_by_refresh_token(tok) if tok else None
    access = store.get_access_token(tok) if tok and grant is None else None
    grant_id = grant["id"] if grant else (access["grant_id"] if access else None)
    if grant_id is None:
        raise OAuthError("invalid_token", "Token expired or revoked")
    store.revoke_grant(grant_id)
    return jsonify({})


# --------------------------------------------------------------------------------------------
# access-token check for API blueprints
# --------------------------------------------------------------------------------------------


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    # Google APIs also take ?access_token= (discouraged but supported).
    return request.args.get("access_token") or None


def _unauthenticated(missing: bool) -> GoogleError:
    if missing:
        return GoogleError(
            401,
            "Request is missing required authentication credential. Expected OAuth 2 access "
            "token, login cookie or other valid authentication credential. See "
            "https://developers.google.com/identity/sign-in/web/devconsole-project.",
            reason="required",
            status="UNAUTHENTICATED",
            location="Authorization",
            location_type="header",
            headers={"WWW-Authenticate": _AUTH_REALM},
        )
    return GoogleError(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
        "cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project.",
        reason="authError",
        status="UNAUTHENTICATED",
        location="Authorization",
        location_type="header",
        headers={"WWW-Authenticate": f'{_AUTH_REALM}, error="invalid_token"'},
    )


def lookup_access_token(tok: str | None) -> dict[str, Any] | None:
    """Return live token info for an access token, or None (unknown, expired or revoked)."""
    if not tok:
        return None
    store = get_state().store
    row = store.get_access_token(tok)
    if row is None or int(_row_get(row, "expires_ms", 0)) <= _now_ms():
        return None
    if _row_get(row, "is_revoked"):
        return None
    mailbox = _row_get(row, "mailbox")
    client_id = _row_get(row, "client_id")
    provider = _row_get(row, "provider", PROVIDER)
    if provider != PROVIDER or mailbox is None:
        return None
    return {
        "token": tok,
        "grant_id": _row_get(row, "grant_id"),
        "mailbox": mailbox,
        "client_id": client_id,
        "scopes": set(_split_scopes(_row_get(row, "scopes"))),
        "expires_ms": int(_row_get(row, "expires_ms", 0)),
    }


def authenticate(scopes: Iterable[str]) -> dict[str, Any]:
    """Check the request's Bearer token; raise Google's real 401/403 bodies when it fails.

    ``scopes`` is a method's ``scopes`` array from the discovery document: the token needs at
    least one of them (empty: any valid token). Returns ``{token, grant_id, mailbox,
    client_id, scopes (set), expires_ms}``.
    """
    required_scopes_any = set(scopes)
    tok = _bearer_token()
    info = lookup_access_token(tok)
    if info is None:
        raise _unauthenticated(missing=tok is None)
    if required_scopes_any and not (info["scopes"] & required_scopes_any):
        raise insufficient_scope(
            headers={
                "WWW-Authenticate": f'{_AUTH_REALM}, error="insufficient_scope", '
                f'scope="{" ".join(sorted(required_scopes_any))}"'
            }
        )
    return info


_SCOPE_MESSAGE = "Request had insufficient authentication scopes."


class _ScopeErrorInfo(GoogleError):
    """The newer missing-scope 403: google.rpc ErrorInfo in ``details``, no ``errors`` array."""

    def to_dict(self) -> dict[str, Any]:
        service = "gmail" if request.path.startswith("/gmail") else "calendar-json"
        info = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
            "domain": "googleapis.com",
            "metadata": {"service": f"{service}.googleapis.com"},
        }
        return {
            "error": {
                "code": 403,
                "message": self.message,
                "status": "PERMISSION_DENIED",
                "details": [info],
            }
        }


def insufficient_scope(headers: dict[str, str] | None = None) -> GoogleError:
    """A missing-scope 403 in the shape ``google_scope_error_style`` selects (module doc)."""
    if get_state().config.get("google_scope_error_style") == "details":
        return _ScopeErrorInfo(
            403, _SCOPE_MESSAGE, reason="ACCESS_TOKEN_SCOPE_INSUFFICIENT", headers=headers
        )
    return GoogleError(
        403,
        _SCOPE_MESSAGE,
        reason="insufficientPermissions",
        status="PERMISSION_DENIED",
        headers=headers,
    )


# --------------------------------------------------------------------------------------------
# userinfo, keys, discovery
# --------------------------------------------------------------------------------------------


@bp.get("/oauth2/v3/userinfo")
def userinfo() -> Response:
    """Return the OIDC claims the token's scopes allow."""
    info = lookup_access_token(_bearer_token())
    if info is None:
        # The userinfo endpoint answers OAuth-style, not with the API error envelope.
        response = jsonify({"error": "invalid_request", "error_description": "Invalid Credentials"})
        response.status_code = 401
        response.headers["WWW-Authenticate"] = _AUTH_REALM
        return response
    box = get_state().store.get_mailbox(info["mailbox"]) or {"email": info["mailbox"]}
    body: dict[str, Any] = {"sub": str(box.get("user_id") or box["email"])}
    if SCOPE_PROFILE in info["scopes"]:
        body.update(_profile_claims(box))
    if SCOPE_EMAIL in info["scopes"]:
        body["email"] = box["email"]
        body["email_verified"] = True
    return jsonify(body)


@bp.get("/oauth2/v3/certs")
def jwks() -> Response:
    """Publish the id_token signing keys as a JWK set."""
    return jsonify(get_state().google_key.jwks())


@bp.get("/oauth2/v1/certs")
def x509_certs() -> Response:
    """Publish ``{kid: PEM certificate}``: what google-auth's verify_token(certs_url=) reads."""
    return jsonify(get_state().google_key.x509_certs())


@bp.get("/.well-known/openid-configuration")
def openid_configuration() -> Response:
    """OIDC discovery document with absolute sandbox URLs (issuer stays Google's)."""
    base = get_state().http_url.rstrip("/")
    return jsonify(
        {
            "issuer": _issuer(),
            "authorization_endpoint": f"{base}/o/oauth2/v2/auth",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/oauth2/v3/userinfo",
            "revocation_endpoint": f"{base}/revoke",
            "jwks_uri": f"{base}/oauth2/v3/certs",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": [
                "aud",
                "email",
                "email_verified",
                "exp",
                "family_name",
                "given_name",
                "iat",
                "iss",
                "name",
                "sub",
            ],
            "code_challenge_methods_supported": ["plain", "S256"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
        }
    )
