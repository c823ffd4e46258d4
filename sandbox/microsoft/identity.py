"""Microsoft identity platform (Entra ID v2.0 endpoints) stand-in.

Routes (every one answers on both listeners; msal insists on an https authority, PROVIDERS.md §5):

- ``GET /{tenant}/v2.0/.well-known/openid-configuration``: OIDC discovery. ``issuer`` keeps
  Entra's literal ``{tenantid}`` placeholder for the multi-tenant aliases, as the real
  ``common`` document does; the ``authorization_endpoint`` is on the *HTTP* listener so a
  person's browser gets no certificate warning (msal only canonicalizes the token endpoint).
  https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc#find-your-apps-openid-configuration-document-uri
- ``GET|POST /{tenant}/oauth2/v2.0/authorize``: consent page, then the redirect with
  ``code``, ``state``, ``client_info`` (only when asked with ``client_info=1``), ``session_state``;
  ``response_mode=form_post`` answers an auto-submitting HTML form, as Entra does.
  https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow
- ``POST /{tenant}/oauth2/v2.0/token``: ``authorization_code`` (PKCE plain|S256, single-use code,
  redirect_uri must match) and ``refresh_token`` (a new refresh token every time: Entra rotates
  them, https://learn.microsoft.com/entra/identity-platform/refresh-tokens).
- ``GET /{tenant}/discovery/v2.0/keys``: JWKS of ``state.microsoft_key``.
- ``GET /{tenant}/oauth2/v2.0/logout``: end_session_endpoint.
- ``GET /oidc/userinfo``: the userinfo endpoint Entra's discovery names (it lives on Graph).

Quirks copied on purpose:

- Reserved scopes ``openid profile offline_access email`` are never in the access token's
  ``scp``; ``offline_access`` is what earns a refresh token, ``openid`` an id_token. Graph
  permissions may be written short (``Mail.ReadBasic``) or qualified
  (``https://graph.microsoft.com/Mail.ReadBasic``). Response ``scope`` lists Graph permissions in
  the short form followed by ``openid profile``/``email`` (a real cache entry's ``target`` reads
  "Files.ReadWrite openid profile":
  https://github.com/AzureAD/microsoft-authentication-library-for-python/issues/450); msal keys
  its access-token cache on it, so the short form is what lets ``acquire_token_silent`` hit it.
- The id_token ``nonce`` is echoed exactly as received (msal sends sha256(nonce) and compares).
- ``client_info`` is base64url JSON ``{"uid": oid, "utid": tid}``; msal builds
  ``home_account_id`` = ``uid.utid`` from it.
- Errors are JSON ``{"error", "error_description": "AADSTSnnnn: ...", "error_codes", "timestamp",
  "trace_id", "correlation_id", "suberror"?}``: ``invalid_grant`` (70000, ``bad_token``) for a
  revoked or unknown refresh token or a bad code, ``interaction_required`` (65001,
  ``consent_required``) when the user withdrew consent for the app, ``invalid_client`` with
  HTTP 401 for a wrong secret. https://learn.microsoft.com/entra/identity-platform/reference-error-codes
- Access tokens are v1.0-format JWTs for Graph (``aud`` https://graph.microsoft.com, ``iss``
  https://sts.windows.net/{tid}/, ``scp``), signed by ``state.microsoft_key``; they stay valid
  until ``exp`` even after revocation, as Entra's do without continuous access evaluation.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
import time
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import jwt
from flask import Blueprint, Response, jsonify, redirect, request

from sandbox.errors import GraphError
from sandbox.microsoft.common import (
    CONSUMERS_TENANT_ID,
    GRAPH_AUDIENCES,
    GRAPH_RESOURCE,
    b64url,
    entra_error,
    mailbox_identity,
)
from sandbox.state import get_state

bp = Blueprint("microsoft_identity", __name__)

PROVIDER = "microsoft"
RESERVED_SCOPES = ("openid", "profile", "offline_access", "email")
TENANT_ALIASES = ("common", "organizations", "consumers")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# Codes live about 10 minutes at Entra (AADSTS70008 after that).
CODE_TTL_MS = 10 * 60 * 1000

# What the consent page says for each permission (wording from the permissions reference,
# https://learn.microsoft.com/graph/permissions-reference).
PERMISSION_TEXT = {
    "user.read": "Sign you in and read your profile",
    "mail.readbasic": "Read your basic mail (no message bodies or attachments)",
    "mail.read": "Read your mail",
    "mail.readwrite": "Read and write access to your mail",
    "calendars.readbasic": "Read basic details of your calendars",
    "calendars.read": "Read your calendars",
    "calendars.readwrite": "Have full access to your calendars",
    "openid": "Sign you in",
    "profile": "View your basic profile",
    "email": "View your email address",
    "offline_access": "Maintain access to data you have given it access to",
}


# -- scopes -----------------------------------------------------------------------------------


def split_scopes(raw: str | None) -> tuple[list[str], list[str]]:
    """Return ``(graph permissions in short form, reserved scopes)`` of a scope string.

    ``https://graph.microsoft.com/.default`` stands for every permission the app was granted;
    the sandbox has no app registration, so it grants the usual Warmline set.
    """
    graph: list[str] = []
    reserved: list[str] = []
    for scope in (raw or "").split():
        lower = scope.lower()
        if lower in RESERVED_SCOPES:
            reserved.append(lower)
            continue
        for prefix in (GRAPH_RESOURCE + "/", "00000003-0000-0000-c000-000000000000/"):
            if lower.startswith(prefix):
                scope = scope[len(prefix) :]
                break
        if scope.lower() == ".default":
            graph += ["User.Read", "Mail.ReadBasic", "Calendars.ReadWrite"]
        elif scope:
            graph.append(scope)
    return _dedupe(graph), _dedupe(reserved)


def _dedupe(items: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for item in items:
        seen.setdefault(item.lower(), item)
    return list(seen.values())


def response_scope(graph: list[str], reserved: list[str]) -> str:
    """Return the ``scope`` Entra answers: short Graph permissions, then openid/profile/email."""
    out = list(graph)
    out += [s for s in reserved if s != "offline_access"]
    return " ".join(out)


# -- helpers ----------------------------------------------------------------------------------


def _valid_tenant(tenant: str) -> bool:
    return tenant.lower() in TENANT_ALIASES or bool(_GUID.match(tenant))


def _tenant_error(tenant: str) -> Response:
    # https://learn.microsoft.com/entra/identity-platform/reference-error-codes (AADSTS90002)
    return entra_error(
        "invalid_tenant",
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
        "are signing into the correct cloud.",
    )


def _base(https: bool) -> str:
    state = get_state()
    url = state.https_url if https else state.http_url
    return (url or request.host_url).rstrip("/")


def _is_loopback(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme in ("http", "https") and parts.hostname in ("127.0.0.1", "localhost", "::1")


def _redirect_allowed(client: dict[str, Any], redirect_uri: str) -> bool:
    allowed = client.get("redirect_uris")
    if allowed is None:
        return _is_loopback(redirect_uri)
    return redirect_uri in allowed


def _with_params(uri: str, params: dict[str, str], *, fragment: bool = False) -> str:
    parts = urlsplit(uri)
    if fragment:
        return urlunsplit(parts._replace(fragment=urlencode(params)))
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    return urlunsplit(parts._replace(query=query))


def _pkce_ok(verifier: str | None, challenge: str | None, method: str | None) -> bool:
    if not challenge:
        return True
    if not verifier:
        return False
    if (method or "plain").lower() == "s256":
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        return hmac.compare_digest(b64url(digest), challenge)
    return hmac.compare_digest(verifier, challenge)


def _page(title: str, body_html: str, status: int = 200) -> Response:
    doc = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;"
        "padding:0 1rem;line-height:1.5}fieldset{border:1px solid #8a8886;padding:1rem}"
        "button{font-size:1rem;padding:.5rem 1.25rem;margin-right:.5rem}"
        ".primary{background:#0067b8;color:#fff;border:0}</style></head>"
        f"<body><main>{body_html}</main></body></html>"
    )
    return Response(doc, status=status, mimetype="text/html")


def _error_page(code: int, message: str) -> Response:
    # Entra shows an error page (no redirect) when it cannot trust the client or redirect URI.
    return _page(
        "Sign in to your account",
        "<h1>Sorry, but we're having trouble signing you in.</h1>"
        f'<p role="alert">AADSTS{code}: {html.escape(message)}</p>',
        status=400,
    )


# -- discovery --------------------------------------------------------------------------------


@bp.get("/<tenant>/v2.0/.well-known/openid-configuration")
def openid_configuration(tenant: str) -> Response:
    """Serve the tenant's OIDC discovery document."""
    if not _valid_tenant(tenant):
        return _tenant_error(tenant)
    https, http = _base(True), _base(False)
    if tenant.lower() == "consumers":
        issuer_tid = CONSUMERS_TENANT_ID
    elif tenant.lower() in TENANT_ALIASES:
        issuer_tid = "{tenantid}"  # literally, as Entra's multi-tenant documents say
    else:
        issuer_tid = tenant
    doc = {
        "token_endpoint": f"{https}/{tenant}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{https}/{tenant}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{https}/{issuer_tid}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{https}/oidc/userinfo",
        "authorization_endpoint": f"{http}/{tenant}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{https}/{tenant}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{https}/{tenant}/oauth2/v2.0/logout",
        "claims_supported": [
            "sub",
            "iss",
            "cloud_instance_name",
            "cloud_instance_host_name",
            "cloud_graph_host_name",
            "msgraph_host",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "acr",
            "nonce",
            "preferred_username",
            "name",
            "tid",
            "ver",
            "at_hash",
            "c_hash",
            "email",
        ],
        "kerberos_endpoint": f"{https}/{tenant}/kerberos",
        "tenant_region_scope": None,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }
    return jsonify(doc)


@bp.get("/<tenant>/discovery/v2.0/keys")
def keys(tenant: str) -> Response:
    """Serve the JWKS that signs id_tokens and Graph access tokens."""
    if not _valid_tenant(tenant):
        return _tenant_error(tenant)
    return jsonify(get_state().microsoft_key.jwks())


# -- authorize --------------------------------------------------------------------------------

_AUTH_PARAMS = (
    "client_id",
    "response_type",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "login_hint",
    "domain_hint",
    "response_mode",
    "client_info",
    "claims",
)


def _microsoft_mailboxes() -> list[dict[str, Any]]:
    return [m for m in get_state().store.list_mailboxes() if m.get("provider") == PROVIDER]


@bp.route("/<tenant>/oauth2/v2.0/authorize", methods=["GET", "POST"])
def authorize(tenant: str) -> Response:
    """Show the consent page (GET) or act on the person's answer (POST)."""
    if not _valid_tenant(tenant):
        return _error_page(90002, f"Tenant '{tenant}' not found.")
    source = request.form if request.method == "POST" else request.args
    params = {k: source[k] for k in _AUTH_PARAMS if source.get(k) is not None}
    state = get_state()
    client = state.clients.get(params.get("client_id", ""))
    if client is None:
        return _error_page(
            700016,
            f"Application with identifier '{params.get('client_id', '')}' was not found in the "
            "directory 'Sandbox'.",
        )
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri or not _redirect_allowed(client, redirect_uri):
        return _error_page(
            50011,
            f"The redirect URI '{redirect_uri}' specified in the request does not match the "
            f"redirect URIs configured for the application '{params['client_id']}'.",
        )
    problem = _check_auth_request(params)
    if problem:
        return _answer(params, {"error": "invalid_request", "error_description": problem})
    mailboxes = _microsoft_mailboxes()
    if tenant.lower() == "consumers":
        mailboxes = [m for m in mailboxes if mailbox_identity(m)[1] == CONSUMERS_TENANT_ID]
    elif tenant.lower() == "organizations":
        mailboxes = [m for m in mailboxes if mailbox_identity(m)[1] != CONSUMERS_TENANT_ID]
    elif tenant.lower() not in TENANT_ALIASES:
        mailboxes = [m for m in mailboxes if mailbox_identity(m)[1].lower() == tenant.lower()]

    if request.method == "POST":
        if request.form.get("decision") != "accept":
            # https://learn.microsoft.com/entra/identity-platform/reference-error-codes (65004)
            return _answer(
                params,
                {
                    "error": "access_denied",
                    "error_description": "AADSTS65004: User declined to consent to access the app.",
                },
            )
        chosen = request.form.get("mailbox", "").lower()
        box = next((m for m in mailboxes if m["email"] == chosen), None)
        if box is None:
            return _consent_page(tenant, params, mailboxes, "Choose an account to continue.")
        return _answer(params, _issue_code(params, box))

    hint = params.get("login_hint", "").lower()
    auto = bool(state.config.get("auto_consent"))
    if params.get("prompt") == "none" or auto:
        box = next((m for m in mailboxes if m["email"] == hint), None)
        if box is None and len(mailboxes) == 1:
            box = mailboxes[0]
        if box is not None and auto:
            return _answer(params, _issue_code(params, box))
        if params.get("prompt") == "none":
            # No browser session to reuse: https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow#error-codes-for-authorization-endpoint-errors
            return _answer(
                params,
                {
                    "error": "login_required",
                    "error_description": "AADSTS50058: A silent sign-in request was sent but no "
                    "user is signed in.",
                },
            )
    return _consent_page(tenant, params, mailboxes, None)


def _check_auth_request(params: dict[str, str]) -> str | None:
    for name in ("response_type", "scope"):
        if not params.get(name):
            return f"AADSTS900144: The request body must contain the following parameter: '{name}'."
    if "code" not in params["response_type"].split():
        return (
            "AADSTS70005: response_type 'token' is not enabled for the application."
            if "token" in params["response_type"]
            else f"AADSTS900144: Unsupported response_type '{params['response_type']}'."
        )
    method = params.get("code_challenge_method")
    if method and method.lower() not in ("plain", "s256"):
        return f"AADSTS5002731: Invalid code_challenge_method '{method}'; use S256 or plain."
    mode = params.get("response_mode", "query")
    if mode not in ("query", "fragment", "form_post"):
        return f"AADSTS900144: Unsupported response_mode '{mode}'."
    return None


def _answer(params: dict[str, str], answer: dict[str, str]) -> Response:
    """Send the authorization response back to the client in the requested response_mode."""
    if params.get("state") is not None:
        answer = {**answer, "state": params["state"]}
    redirect_uri = params["redirect_uri"]
    mode = params.get("response_mode", "query")
    if mode == "form_post":
        fields = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in answer.items()
        )
        doc = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Working...'
            '</title></head><body onload="document.forms[0].submit()">'
            f'<form method="POST" name="hiddenform" action="{html.escape(redirect_uri)}">'
            f"{fields}<noscript><p>Script is disabled. Click Submit to continue.</p>"
            '<input type="submit" value="Submit"></noscript></form></body></html>'
        )
        return Response(doc, mimetype="text/html")
    target = _with_params(redirect_uri, answer, fragment=mode == "fragment")
    return redirect(target, code=302)


def _consent_page(
    tenant: str, params: dict[str, str], mailboxes: list[dict[str, Any]], notice: str | None
) -> Response:
    graph, reserved = split_scopes(params.get("scope"))
    hint = params.get("login_hint", "").lower()
    if not mailboxes:
        return _page(
            "Sign in to your account",
            "<h1>Sign in</h1><p>No sandbox Microsoft mailbox exists yet. Create one with "
            "<code>POST /_sandbox/mailboxes</code> (provider <code>microsoft</code>).</p>",
        )
    options = []
    for i, box in enumerate(mailboxes):
        checked = box["email"] == hint or (not hint and i == 0)
        label = html.escape(f"{box.get('display_name') or box['email']} <{box['email']}>")
        options.append(
            f'<div><input type="radio" id="mb{i}" name="mailbox" '
            f'value="{html.escape(box["email"])}"{" checked" if checked else ""}>'
            f'<label for="mb{i}">{label}</label></div>'
        )
    perms = "".join(
        f"<li>{html.escape(PERMISSION_TEXT.get(s.lower(), s))} "
        f"<small>({html.escape(s)})</small></li>"
        for s in graph + reserved
    )
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in params.items()
    )
    client_id = html.escape(params["client_id"])
    alert = f'<p role="alert">{html.escape(notice)}</p>' if notice else ""
    body = (
        "<h1>Permissions requested</h1>"
        f"<p>The app <strong>{client_id}</strong> (sandbox) would like to:</p><ul>{perms}</ul>"
        f'{alert}<form method="post" action="/{html.escape(tenant)}/oauth2/v2.0/authorize">'
        f"{hidden}<fieldset><legend>Sign in as</legend>{''.join(options)}</fieldset>"
        '<p><button type="submit" class="primary" name="decision" value="accept">Accept'
        '</button><button type="submit" name="decision" value="cancel">Cancel</button></p>'
        "</form>"
    )
    return _page("Permissions requested", body)


def _issue_code(params: dict[str, str], box: dict[str, Any]) -> dict[str, str]:
    state = get_state()
    graph, reserved = split_scopes(params.get("scope"))
    code = state.store.create_auth_code(
        provider=PROVIDER,
        mailbox=box["email"],
        client_id=params["client_id"],
        redirect_uri=params["redirect_uri"],
        scopes=" ".join(graph + reserved),
        code_challenge=params.get("code_challenge"),
        code_challenge_method=params.get("code_challenge_method"),
        nonce=params.get("nonce"),
        extra={"client_info": params.get("client_info") == "1"},
    )
    # Consent given again: a previously withdrawn consent no longer blocks refreshes.
    _withdrawn().discard((box["email"], params["client_id"]))
    answer = {"code": code}
    if params.get("client_info") == "1":
        answer["client_info"] = client_info(box)
    answer["session_state"] = str(uuid.uuid4())
    return answer


# -- consent withdrawal (interaction_required) --------------------------------------------------


def _withdrawn() -> set[tuple[str, str]]:
    return get_state().config.setdefault("microsoft_withdrawn_consent", set())  # type: ignore[no-any-return]


def withdraw_consent(state: Any, email: str, client_id: str) -> None:
    """Record that the user removed the app's consent (myapps / admin): refreshes then answer
    ``interaction_required`` AADSTS65001 until the user consents again.

    Held in ``state.config`` (not persisted): the store has no consent table.
    """
    state.config.setdefault("microsoft_withdrawn_consent", set()).add((email.lower(), client_id))


# -- token ------------------------------------------------------------------------------------


def client_info(box: dict[str, Any]) -> str:
    """Return base64url ``{"uid": oid, "utid": tid}`` (msal's home_account_id source)."""
    oid, tid = mailbox_identity(box)
    return b64url(json.dumps({"uid": oid, "utid": tid}, separators=(",", ":")).encode())


def _client_credentials() -> tuple[str | None, str | None]:
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        return auth.username, auth.password
    return request.form.get("client_id"), request.form.get("client_secret")


@bp.post("/<tenant>/oauth2/v2.0/token")
def token(tenant: str) -> Response:
    """Exchange a code or a refresh token for tokens."""
    state = get_state()
    with state.controls.call(service="oauth", mailbox=None, method="microsoft.token"):
        if not _valid_tenant(tenant):
            return _tenant_error(tenant)
        client_id, secret = _client_credentials()
        if not client_id:
            return entra_error(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        client = state.clients.get(client_id)
        if client is None:
            return entra_error(
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                "'Sandbox'. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant.",
            )
        if not secret:
            return entra_error(
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
                status=401,
            )
        if not hmac.compare_digest(str(secret), str(client["secret"])):
            return entra_error(
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                "the client secret value, not the client secret ID, for a secret added to app "
                f"'{client_id}'.",
                status=401,
            )
        grant_type = request.form.get("grant_type")
        if grant_type == "authorization_code":
            return _from_code(client_id)
        if grant_type == "refresh_token":
            return _from_refresh(client_id)
        if not grant_type:
            return entra_error(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            )
        return entra_error(
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant_type}'.",
        )


def _bad_grant(description: str, code: int = 70000) -> Response:
    return entra_error("invalid_grant", code, description, suberror="bad_token")


def _from_code(client_id: str) -> Response:
    state = get_state()
    code = request.form.get("code")
    if not code:
        return entra_error(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'code'.",
        )
    row = state.store.take_auth_code(code)
    if row is None or row["provider"] != PROVIDER or row["client_id"] != client_id:
        return _bad_grant(
            "The provided authorization code or refresh token has expired due to inactivity, "
            "was already redeemed, or is not valid. Send a new interactive authorization request "
            "for this user and resource."
        )
    if time.time() * 1000 - row["created_ms"] > CODE_TTL_MS:
        return _bad_grant("The provided authorization code is expired.", 70008)
    if request.form.get("redirect_uri") != row["redirect_uri"]:
        return _bad_grant(
            "The redirect URI in the token request does not match the redirect URI used to "
            "acquire the authorization code.",
            500117,
        )
    if not _pkce_ok(
        request.form.get("code_verifier"), row["code_challenge"], row["code_challenge_method"]
    ):
        return _bad_grant(
            "The code_verifier does not match the code_challenge supplied in the authorization "
            "request.",
            501481,
        )
    box = state.store.get_mailbox(row["mailbox"])
    if box is None:
        return _bad_grant("The user account no longer exists.", 50034)
    graph, reserved = split_scopes(row["scopes"])
    grant = state.store.create_grant(
        provider=PROVIDER, mailbox=box["email"], client_id=client_id, scopes=row["scopes"]
    )
    return _token_response(
        box,
        client_id,
        graph,
        reserved,
        refresh_token=grant["refresh_token"] if "offline_access" in reserved else None,
        grant_id=grant["id"],
        nonce=row["nonce"],
    )


def _from_refresh(client_id: str) -> Response:
    state = get_state()
    refresh = request.form.get("refresh_token")
    if not refresh:
        return entra_error(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'refresh_token'.",
        )
    grant = state.store.get_grant_by_refresh_token(refresh)
    if grant is None or grant["provider"] != PROVIDER or grant["client_id"] != client_id:
        # Unknown, rotated away, or revoked (password reset, admin "revoke sessions").
        return _bad_grant(
            "The provided authorization code or refresh token has expired due to inactivity, "
            "was already redeemed, or has been revoked. Send a new interactive authorization "
            "request for this user and resource."
        )
    box = state.store.get_mailbox(grant["mailbox"])
    if box is None:
        return _bad_grant("The user account no longer exists.", 50034)
    if (box["email"], client_id) in _withdrawn():
        return _consent_required(client_id)
    granted_graph, granted_reserved = split_scopes(grant["scopes"])
    asked_graph, asked_reserved = split_scopes(request.form.get("scope"))
    granted_lower = {s.lower() for s in granted_graph}
    if any(s.lower() not in granted_lower for s in asked_graph):
        # Asking for more than the user consented to needs the browser again.
        return _consent_required(client_id)
    graph = asked_graph or granted_graph
    reserved = [s for s in (asked_reserved or granted_reserved) if s in granted_reserved]
    new_refresh = state.store.rotate_refresh_token(grant["id"])
    return _token_response(
        box, client_id, graph, reserved, refresh_token=new_refresh, grant_id=grant["id"]
    )


def _consent_required(client_id: str) -> Response:
    return entra_error(
        "interaction_required",
        65001,
        f"The user or administrator has not consented to use the application with ID "
        f"'{client_id}' named 'Sandbox app'. Send an interactive authorization request for this "
        "user and resource.",
        suberror="consent_required",
    )


def _token_response(
    box: dict[str, Any],
    client_id: str,
    graph: list[str],
    reserved: list[str],
    *,
    refresh_token: str | None,
    grant_id: str,
    nonce: str | None = None,
) -> Response:
    state = get_state()
    ttl = int(state.config.get("access_token_ttl_s", 3600))
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "scope": response_scope(graph, reserved),
        "expires_in": ttl,
        "ext_expires_in": ttl,
        "access_token": access_token(box, client_id, graph, ttl, grant_id=grant_id),
    }
    if refresh_token:
        body["refresh_token"] = refresh_token
    if "openid" in reserved:
        body["id_token"] = id_token(box, client_id, nonce=nonce)
    if request.form.get("client_info") == "1":
        body["client_info"] = client_info(box)
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store, no-cache"
    response.headers["Pragma"] = "no-cache"
    return response


def access_token(
    box: dict[str, Any], client_id: str, graph: list[str], ttl_s: int, *, grant_id: str = ""
) -> str:
    """Mint a Graph access token (v1.0 claims, as Graph tokens carry them)."""
    state = get_state()
    oid, tid = mailbox_identity(box)
    now = int(time.time())
    claims = {
        "aud": GRAPH_RESOURCE,
        "iss": f"https://sts.windows.net/{tid}/",
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
        "app_displayname": "Sandbox app",
        "appid": client_id,
        "appidacr": "1",
        "idtyp": "user",
        "name": box.get("display_name") or box["email"],
        "oid": oid,
        "scp": " ".join(graph),
        "sub": b64url(hashlib.sha256(f"{oid}:{client_id}".encode()).digest()),
        "tid": tid,
        "unique_name": box["email"],
        "upn": box["email"],
        "uti": b64url(uuid.uuid4().bytes),
        "ver": "1.0",
        # Sandbox-only: lets Graph tell which grant minted it (real tokens carry no such claim).
        "xms_sbx_grant": grant_id,
    }
    return state.microsoft_key.sign(claims)


def id_token(box: dict[str, Any], client_id: str, *, nonce: str | None) -> str:
    """Mint a v2.0 id_token; ``nonce`` is echoed exactly as the authorize request sent it."""
    state = get_state()
    oid, tid = mailbox_identity(box)
    now = int(time.time())
    ttl = int(state.config.get("id_token_ttl_s", 3600))
    claims: dict[str, Any] = {
        "aud": client_id,
        "iss": f"{_base(True)}/{tid}/v2.0",
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "name": box.get("display_name") or box["email"],
        "oid": oid,
        "preferred_username": box["email"],
        "email": box["email"],
        "rh": "0.sandbox.",
        # v2.0 `sub` is pairwise: unique per user *and* app.
        "sub": b64url(hashlib.sha256(f"{oid}:{client_id}".encode()).digest()),
        "tid": tid,
        "uti": b64url(uuid.uuid4().bytes),
        "ver": "2.0",
    }
    if nonce is not None:
        claims["nonce"] = nonce
    return state.microsoft_key.sign(claims)  # type: ignore[no-any-return]


# -- logout / userinfo ------------------------------------------------------------------------


@bp.get("/<tenant>/oauth2/v2.0/logout")
def logout(tenant: str) -> Response:
    """End the (stateless) session and go back to post_logout_redirect_uri when given."""
    target = request.args.get("post_logout_redirect_uri")
    if target and _is_loopback(target):
        return redirect(target, code=302)
    return _page("Signed out", "<h1>You signed out of your account</h1>")


def verify_graph_token(raw: str | None) -> dict[str, Any]:
    """Validate a Graph Bearer token; raise GraphError 401 with Graph's messages on failure."""
    if not raw:
        raise GraphError.invalid_token("Access token is empty.")
    try:
        header = jwt.get_unverified_header(raw)
    except jwt.PyJWTError:
        # Non-JWT tokens (e.g. an MSA compact ticket) fail to parse this way at Graph.
        raise GraphError.invalid_token("IDX14100: JWT is not well formed.") from None
    if header.get("kid") != get_state().microsoft_key.kid:
        raise GraphError.invalid_token("Access token validation failure.")
    try:
        claims = get_state().microsoft_key.verify(raw, audience=list(GRAPH_AUDIENCES))
    except jwt.ExpiredSignatureError:
        raise GraphError.invalid_token(
            "Lifetime validation failed, the token is expired."
        ) from None
    except jwt.InvalidAudienceError:
        raise GraphError.invalid_token(
            "Access token validation failure. Invalid audience."
        ) from None
    except jwt.PyJWTError:
        raise GraphError.invalid_token("Access token validation failure.") from None
    return claims


def bearer() -> str | None:
    """Return the Bearer token of the current request, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


@bp.get("/oidc/userinfo")
def userinfo() -> Response:
    """Serve OIDC userinfo for a Graph token (openid scope), as graph.microsoft.com does."""
    claims = verify_graph_token(bearer())
    box = get_state().store.get_mailbox(claims.get("upn", "")) or {"email": claims.get("upn")}
    name = box.get("display_name") or box["email"]
    given, _, family = str(name).partition(" ")
    return jsonify(
        {
            "sub": claims["sub"],
            "name": name,
            "family_name": family,
            "given_name": given,
            "picture": f"{_base(True)}/v1.0/me/photo/$value",
            "email": box["email"],
        }
    )
