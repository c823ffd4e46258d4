"""The sandbox's Microsoft identity platform, driven through msal.

msal.ConfidentialClientApplication talks to the HTTPS listener (msal refuses http authorities);
a person's click on the consent page is played with requests on the HTTP link the flow hands out.
A fresh app object per test: msal caches a POST that answered 400 for 60 s (PROVIDERS.md §5).
"""

from __future__ import annotations

import uuid
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import msal
import pytest
import requests

CLIENT_ID = "warmline-sandbox"
CLIENT_SECRET = "sandbox-secret"
REDIRECT_URI = "http://127.0.0.1:9/auth/microsoft/callback"
SCOPES = ["User.Read", "Mail.ReadBasic", "Calendars.ReadWrite"]


class _Form(HTMLParser):
    """Collect a form's fields the way a browser submits them."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: list[tuple[str, str]] = []
        self.radios: dict[str, bool] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a.get("action", "")
        elif tag == "input" and a.get("type") == "hidden":
            self.fields.append((a["name"], a["value"]))
        elif tag == "input" and a.get("type") == "radio":
            self.radios[a["value"]] = "checked" in a


def _plain() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


@pytest.fixture
def outlook(sandbox: Any) -> Any:
    """A work/school Microsoft mailbox (deleted afterwards)."""
    email = f"grace-{uuid.uuid4().hex[:8]}@contoso.test"
    sandbox.state.store.create_mailbox(
        email, provider="microsoft", display_name="Grace Hopper", aliases=[], time_zone="UTC"
    )
    yield email
    sandbox.state.store.delete_mailbox(email)


def make_app(sandbox: Any) -> msal.ConfidentialClientApplication:
    http = requests.Session()
    http.trust_env = False  # REQUESTS_CA_BUNDLE would override verify (PROVIDERS.md §5)
    http.verify = sandbox.ca_path
    return msal.ConfidentialClientApplication(
        CLIENT_ID,
        client_credential=CLIENT_SECRET,
        authority=sandbox.https_url + "/common",
        instance_discovery=False,
        http_client=http,
        token_cache=msal.SerializableTokenCache(),
    )


def consent(auth_uri: str, email: str, decision: str = "accept") -> dict[str, str]:
    """Play the person on the consent page; return the auth response the redirect carries."""
    session = _plain()
    page = session.get(auth_uri, allow_redirects=False, timeout=10)
    assert page.status_code == 200, page.text
    assert page.headers["Content-Type"].startswith("text/html")
    form = _Form()
    form.feed(page.text)
    assert form.radios.get(email) is True, "login_hint preselects the mailbox"
    assert "Read your basic mail" in page.text
    base = urlsplit(auth_uri)
    answer = session.post(
        f"{base.scheme}://{base.netloc}{form.action}",
        data=[*form.fields, ("mailbox", email), ("decision", decision)],
        allow_redirects=False,
        timeout=10,
    )
    if answer.status_code == 302:
        location = urlsplit(answer.headers["Location"])
        assert location.netloc == "127.0.0.1:9"
        return {k: v[0] for k, v in parse_qs(location.query).items()}
    # response_mode=form_post: an auto-submitting form aimed at the redirect URI
    assert answer.status_code == 200
    posted = _Form()
    posted.feed(answer.text)
    assert posted.action == REDIRECT_URI
    assert "document.forms[0].submit()" in answer.text
    return dict(posted.fields)


def sign_in(sandbox: Any, email: str, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    app = make_app(sandbox)
    kwargs.setdefault("response_mode", "form_post")
    flow = app.initiate_auth_code_flow(
        SCOPES, redirect_uri=REDIRECT_URI, login_hint=email, **kwargs
    )
    assert flow["auth_uri"].startswith(sandbox.http_url + "/common/oauth2/v2.0/authorize")
    result = app.acquire_token_by_auth_code_flow(flow, consent(flow["auth_uri"], email))
    assert "access_token" in result, result
    return app, result


def test_discovery_document(sandbox: Any) -> None:
    session = _plain()
    session.verify = sandbox.ca_path
    doc = session.get(
        sandbox.https_url + "/common/v2.0/.well-known/openid-configuration", timeout=10
    ).json()
    assert doc["issuer"] == sandbox.https_url + "/{tenantid}/v2.0"
    assert doc["authorization_endpoint"] == sandbox.http_url + "/common/oauth2/v2.0/authorize"
    assert doc["token_endpoint"] == sandbox.https_url + "/common/oauth2/v2.0/token"
    assert doc["jwks_uri"] == sandbox.https_url + "/common/discovery/v2.0/keys"
    assert "form_post" in doc["response_modes_supported"]
    consumers = session.get(
        sandbox.https_url + "/consumers/v2.0/.well-known/openid-configuration", timeout=10
    ).json()
    assert consumers["issuer"].endswith("/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0")
    bad = session.get(
        sandbox.https_url + "/not-a-tenant/v2.0/.well-known/openid-configuration", timeout=10
    )
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_tenant"
    assert bad.json()["error_codes"] == [90002]


def test_auth_code_flow_with_msal(sandbox: Any, outlook: str) -> None:
    app, result = sign_in(sandbox, outlook, response_mode="form_post")
    box = sandbox.state.store.get_mailbox(outlook)
    oid, tid = box["user_id"], box["tenant_id"]

    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == 3600
    assert result["refresh_token"].startswith("M.C5")
    # msal checked the id_token nonce against its flow; the claims say who signed in
    claims = result["id_token_claims"]
    assert claims["aud"] == CLIENT_ID
    assert claims["preferred_username"] == outlook
    assert claims["oid"] == oid
    assert claims["tid"] == tid
    assert claims["iss"] == f"{sandbox.https_url}/{tid}/v2.0"
    # client_info made the account's home_account_id
    (account,) = app.get_accounts()
    assert account["home_account_id"] == f"{oid}.{tid}"
    assert account["username"] == outlook

    # The access token is a Graph JWT verifiable with the published JWKS.
    jwks = _plain().get(sandbox.http_url + "/common/discovery/v2.0/keys", timeout=10).json()
    key = jwt.PyJWK(jwks["keys"][0]).key
    access = jwt.decode(
        result["access_token"], key, algorithms=["RS256"], audience="https://graph.microsoft.com"
    )
    assert sorted(access["scp"].split()) == sorted(SCOPES)
    assert access["upn"] == outlook
    assert access["appid"] == CLIENT_ID
    assert sorted(result["scope"].split()) == sorted([*SCOPES, "openid", "profile"])
    # msal keys its cache on that scope, so a silent call is served from the cache
    cached = app.acquire_token_silent(SCOPES, account)
    assert cached is not None
    assert cached["token_source"] == "cache"

    me = _plain().get(
        sandbox.http_url + "/v1.0/me",
        headers={"Authorization": f"Bearer {result['access_token']}"},
        timeout=10,
    )
    assert me.status_code == 200
    assert me.json()["userPrincipalName"] == outlook


# msal 1.39 warns unless response_mode is form_post; this test covers the plain query mode.
@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")
def test_query_redirect_and_cancel(sandbox: Any, outlook: str) -> None:
    app = make_app(sandbox)
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT_URI, login_hint=outlook)
    answer = consent(flow["auth_uri"], outlook, decision="cancel")
    assert answer["error"] == "access_denied"
    assert answer["error_description"].startswith("AADSTS65004")
    assert answer["state"] == flow["state"]

    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT_URI, login_hint=outlook)
    answer = consent(flow["auth_uri"], outlook)
    assert set(answer) == {"code", "state", "client_info", "session_state"}
    assert answer["state"] == flow["state"]


def test_refresh_rotates_refresh_token(sandbox: Any, outlook: str) -> None:
    app, first = sign_in(sandbox, outlook)
    (account,) = app.get_accounts()
    again = app.acquire_token_silent_with_error(SCOPES, account, force_refresh=True)
    assert again is not None
    assert "access_token" in again, again
    assert again["token_source"] == "identity_provider"
    assert again["refresh_token"] != first["refresh_token"]
    # Entra hands out a new refresh token on every use; the old one is gone here.
    old = _plain().post(
        sandbox.http_url + "/common/oauth2/v2.0/token",
        data={
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "scope": " ".join(SCOPES),
        },
        timeout=10,
    )
    assert old.status_code == 400
    assert old.json()["error"] == "invalid_grant"


def test_revoked_grant_gives_invalid_grant(sandbox: Any, outlook: str) -> None:
    app, _ = sign_in(sandbox, outlook)
    sandbox.state.store.revoke_all_grants(outlook, "microsoft")
    (account,) = app.get_accounts()
    result = app.acquire_token_silent_with_error(SCOPES, account, force_refresh=True)
    assert result is not None
    assert result["error"] == "invalid_grant"
    assert result["error_codes"] == [70000]
    assert result["error_description"].startswith("AADSTS70000:")
    assert result["suberror"] == "bad_token"
    for key in ("timestamp", "trace_id", "correlation_id"):
        assert result[key]


def test_withdrawn_consent_gives_interaction_required(sandbox: Any, outlook: str) -> None:
    from sandbox.microsoft.identity import withdraw_consent

    app, _ = sign_in(sandbox, outlook)
    withdraw_consent(sandbox.state, outlook, CLIENT_ID)
    (account,) = app.get_accounts()
    result = app.acquire_token_silent_with_error(SCOPES, account, force_refresh=True)
    assert result is not None
    assert result["error"] == "interaction_required"
    assert result["error_codes"] == [65001]
    assert result["suberror"] == "consent_required"
    # Consenting again clears it.
    sign_in(sandbox, outlook)


def _token_post(sandbox: Any, **data: str) -> requests.Response:
    return _plain().post(sandbox.http_url + "/common/oauth2/v2.0/token", data=data, timeout=10)


def test_token_endpoint_errors(sandbox: Any, outlook: str) -> None:
    wrong = _token_post(
        sandbox, client_id=CLIENT_ID, client_secret="nope", grant_type="refresh_token",
        refresh_token="x",
    )  # fmt: skip
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert wrong.json()["error_codes"] == [7000215]

    # A code, its PKCE verifier, single use.
    app = make_app(sandbox)
    flow = app.initiate_auth_code_flow(
        SCOPES, redirect_uri=REDIRECT_URI, login_hint=outlook, response_mode="form_post"
    )
    code = consent(flow["auth_uri"], outlook)["code"]
    base = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
    }
    bad_pkce = _token_post(sandbox, **base, code_verifier="not-the-verifier")
    assert bad_pkce.status_code == 400
    assert bad_pkce.json()["error"] == "invalid_grant"

    flow = app.initiate_auth_code_flow(
        SCOPES, redirect_uri=REDIRECT_URI, login_hint=outlook, response_mode="form_post"
    )
    base["code"] = consent(flow["auth_uri"], outlook)["code"]
    ok = _token_post(sandbox, **base, code_verifier=flow["code_verifier"], scope=" ".join(SCOPES))
    assert ok.status_code == 200, ok.text
    assert ok.json()["id_token"]
    replay = _token_post(sandbox, **base, code_verifier=flow["code_verifier"])
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"


def test_unknown_client_or_redirect_shows_an_error_page(sandbox: Any, outlook: str) -> None:
    session = _plain()
    url = sandbox.http_url + "/common/oauth2/v2.0/authorize"
    common = {"response_type": "code", "scope": "openid User.Read", "state": "s"}
    unknown = session.get(
        url, params={**common, "client_id": "nobody", "redirect_uri": REDIRECT_URI}, timeout=10
    )
    assert unknown.status_code == 400
    assert "AADSTS700016" in unknown.text
    foreign = session.get(
        url,
        params={**common, "client_id": CLIENT_ID, "redirect_uri": "https://evil.example/cb"},
        allow_redirects=False,
        timeout=10,
    )
    assert foreign.status_code == 400
    assert "AADSTS50011" in foreign.text


def test_without_offline_access_there_is_no_refresh_token(sandbox: Any, outlook: str) -> None:
    http = requests.Session()
    http.trust_env = False
    http.verify = sandbox.ca_path
    app = msal.ConfidentialClientApplication(
        CLIENT_ID,
        client_credential=CLIENT_SECRET,
        authority=sandbox.https_url + "/common",
        instance_discovery=False,
        http_client=http,
        exclude_scopes=["offline_access"],
    )
    flow = app.initiate_auth_code_flow(
        SCOPES, redirect_uri=REDIRECT_URI, login_hint=outlook, response_mode="form_post"
    )
    result = app.acquire_token_by_auth_code_flow(flow, consent(flow["auth_uri"], outlook))
    assert "access_token" in result, result
    assert "refresh_token" not in result
    assert result["id_token_claims"]["preferred_username"] == outlook


def test_prompt_none_without_a_session_is_login_required(sandbox: Any, outlook: str) -> None:
    answer = _plain().get(
        sandbox.http_url + "/common/oauth2/v2.0/authorize",
        params={"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
                "scope": "openid User.Read", "state": "s1", "prompt": "none"},
        allow_redirects=False,
        timeout=10,
    )  # fmt: skip
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["error"] == ["login_required"]
    assert query["state"] == ["s1"]
