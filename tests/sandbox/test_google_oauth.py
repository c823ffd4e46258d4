"""The sandbox's Google OAuth/OIDC endpoints, driven through Google's own client libraries.

google_auth_oauthlib's Flow builds the authorize URL and exchanges the code; a person's click is
played by submitting the consent page's form with requests; google-auth refreshes and verifies
id_tokens against the sandbox's certs.
"""

from __future__ import annotations

import time
import uuid
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import Request
from google.oauth2 import id_token
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import Flow

CLIENT_ID = "warmline-sandbox"
CLIENT_SECRET = "sandbox-secret"
REDIRECT_URI = "http://127.0.0.1:9/oauth/callback"
READONLY = "https://www.googleapis.com/auth/gmail.readonly"
METADATA = "https://www.googleapis.com/auth/gmail.metadata"
CAL = "https://www.googleapis.com/auth/calendar.readonly"
EMAIL = "https://www.googleapis.com/auth/userinfo.email"
PROFILE = "https://www.googleapis.com/auth/userinfo.profile"


@pytest.fixture(autouse=True)
def _oauthlib_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The sandbox speaks plain http on loopback; Google adds openid / people untick scopes.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")


@pytest.fixture
def mailbox(sandbox: Any) -> str:
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    sandbox.state.store.create_mailbox(
        email, provider="google", display_name="Ada Lovelace", aliases=[], time_zone="UTC"
    )
    return email


class _Form(HTMLParser):
    """Collect the consent form's fields the way a browser would submit them."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: list[tuple[str, str]] = []
        self.checkboxes: list[str] = []
        self.options: list[str] = []
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a["action"]
        elif tag == "input" and a.get("type") == "hidden":
            self.fields.append((a["name"], a["value"]))
        elif tag == "input" and a.get("type") == "checkbox":
            self.checkboxes.append(a["value"])
        elif tag == "select":
            self._select = a["name"]
        elif tag == "option" and self._select:
            self.options.append(a["value"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def make_flow(sandbox: Any, scopes: list[str], **kwargs: Any) -> Flow:
    config = {
        "web": {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "auth_uri": sandbox.http_url + "/o/oauth2/v2/auth",
            "token_uri": sandbox.http_url + "/token",
            "redirect_uris": [REDIRECT_URI],
        }
    }
    return Flow.from_client_config(config, scopes=scopes, redirect_uri=REDIRECT_URI, **kwargs)


def consent(
    auth_url: str, *, email: str, untick: tuple[str, ...] = (), action: str = "allow"
) -> str:
    """Play the person: open the consent page, untick, press a button; return the redirect."""
    page = requests.get(auth_url, allow_redirects=False, timeout=10)
    assert page.status_code == 200, page.text
    assert page.headers["Content-Type"].startswith("text/html")
    form = _Form()
    form.feed(page.text)
    assert email in form.options
    data = [*form.fields, ("mailbox", email), ("action", action)]
    data += [("scope_granted", s) for s in form.checkboxes if s not in untick]
    base = urlsplit(auth_url)
    answer = requests.post(
        f"{base.scheme}://{base.netloc}{form.action}", data=data, allow_redirects=False, timeout=10
    )
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def sign_in(
    sandbox: Any, email: str, scopes: list[str], *, untick: tuple[str, ...] = (), **params: Any
) -> Flow:
    flow = make_flow(sandbox, scopes)
    url, _state = flow.authorization_url(login_hint=email, **params)
    flow.fetch_token(authorization_response=consent(url, email=email, untick=untick))
    return flow


def test_full_flow_with_pkce_refresh_token_and_verified_id_token(sandbox: Any, mailbox: str):
    flow = sign_in(sandbox, mailbox, ["openid", "email", "profile", METADATA], nonce="n-0S6")
    token = flow.oauth2session.token
    creds = flow.credentials

    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    assert creds.refresh_token
    assert creds.refresh_token.startswith("1//")
    # email/profile come back in their long form
    assert set(token["scope"]) == {"openid", EMAIL, PROFILE, METADATA}

    claims = id_token.verify_token(
        token["id_token"],
        Request(),
        audience=CLIENT_ID,
        certs_url=sandbox.http_url + "/oauth2/v1/certs",
    )
    box = sandbox.state.store.get_mailbox(mailbox)
    assert claims["iss"] == "https://accounts.google.com"
    assert claims["azp"] == CLIENT_ID
    assert claims["sub"] == box["user_id"]
    assert claims["email"] == mailbox
    assert claims["email_verified"] is True
    assert claims["name"] == "Ada Lovelace"
    assert claims["nonce"] == "n-0S6"
    assert claims["exp"] - claims["iat"] == 3600
    # The JWKS verifies the same token (what PyJWT / other OIDC clients use).
    jwks = jwt.PyJWKClient(sandbox.http_url + "/oauth2/v3/certs")
    key = jwks.get_signing_key_from_jwt(token["id_token"])
    decoded = jwt.decode(token["id_token"], key.key, algorithms=["RS256"], audience=CLIENT_ID)
    assert decoded["at_hash"] == claims["at_hash"]

    info = requests.get(
        sandbox.http_url + "/oauth2/v3/userinfo",
        headers={"Authorization": f"Bearer {creds.token}"},
        timeout=10,
    ).json()
    assert info == {
        "sub": box["user_id"],
        "name": "Ada Lovelace",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "email": mailbox,
        "email_verified": True,
    }


def test_granular_consent_untick_and_incremental_auth(sandbox: Any, mailbox: str):
    first = sign_in(sandbox, mailbox, [METADATA, CAL], untick=(CAL,))
    assert first.credentials.granted_scopes == [METADATA]
    assert first.credentials.refresh_token

    # Consent again without prompt=consent: Google sends no new refresh token.
    again = sign_in(sandbox, mailbox, [CAL])
    assert again.credentials.refresh_token is None
    assert again.credentials.granted_scopes == [CAL]

    # include_granted_scopes=true adds what this client already holds.
    union = sign_in(sandbox, mailbox, [READONLY], include_granted_scopes="true")
    assert set(union.credentials.granted_scopes) == {READONLY, METADATA, CAL}

    forced = sign_in(sandbox, mailbox, [READONLY], prompt="consent")
    assert forced.credentials.refresh_token


def test_online_access_has_no_refresh_token(sandbox: Any, mailbox: str):
    flow = sign_in(sandbox, mailbox, [METADATA], access_type="online")
    assert flow.credentials.refresh_token is None
    assert "id_token" not in flow.oauth2session.token


def test_deny_redirects_with_access_denied_and_state(sandbox: Any, mailbox: str):
    flow = make_flow(sandbox, [METADATA])
    url, state = flow.authorization_url(login_hint=mailbox)
    location = consent(url, email=mailbox, action="deny")
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(REDIRECT_URI)
    assert query == {"error": ["access_denied"], "state": [state]}


def test_bad_client_or_redirect_uri_gets_an_error_page_not_a_redirect(sandbox: Any):
    base = sandbox.http_url + "/o/oauth2/v2/auth"
    common = {"response_type": "code", "scope": METADATA, "redirect_uri": REDIRECT_URI}
    unknown = requests.get(base, params={**common, "client_id": "nope"}, timeout=10)
    assert unknown.status_code == 401
    assert "invalid_client" in unknown.text

    sandbox.state.add_client("strict", "s3cret", ["http://127.0.0.1:9/registered"])
    mismatch = requests.get(
        base, params={**common, "client_id": "strict"}, allow_redirects=False, timeout=10
    )
    assert mismatch.status_code == 400
    assert "redirect_uri_mismatch" in mismatch.text

    # The default client takes any loopback redirect URI, but nothing else.
    remote = requests.get(
        base,
        params={**common, "client_id": CLIENT_ID, "redirect_uri": "https://evil.example/cb"},
        allow_redirects=False,
        timeout=10,
    )
    assert remote.status_code == 400


def test_auto_consent_skips_the_page(sandbox: Any, mailbox: str):
    sandbox.state.config["auto_consent"] = True
    try:
        flow = make_flow(sandbox, [METADATA])
        url, _state = flow.authorization_url(login_hint=mailbox, state="xyz")
        first = requests.get(url, allow_redirects=False, timeout=10)
    finally:
        sandbox.state.config["auto_consent"] = False
    assert first.status_code == 302
    flow.fetch_token(authorization_response=first.headers["Location"])
    assert flow.credentials.granted_scopes == [METADATA]
    assert parse_qs(urlsplit(first.headers["Location"]).query)["state"] == ["xyz"]


def _code(sandbox: Any, mailbox: str, **params: Any) -> tuple[Flow, str]:
    flow = make_flow(sandbox, [METADATA], **params)
    url, _ = flow.authorization_url(login_hint=mailbox)
    location = consent(url, email=mailbox)
    return flow, parse_qs(urlsplit(location).query)["code"][0]


def test_token_endpoint_errors_match_google(sandbox: Any, mailbox: str):
    token_url = sandbox.http_url + "/token"
    flow, code = _code(sandbox, mailbox)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": flow.code_verifier,
    }
    bad_secret = requests.post(token_url, data=form, auth=(CLIENT_ID, "wrong"), timeout=10)
    assert bad_secret.status_code == 401
    assert bad_secret.json() == {"error": "invalid_client", "error_description": "Unauthorized"}

    wrong_verifier = requests.post(
        token_url, data={**form, "code_verifier": "x" * 64}, auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    )  # fmt: skip
    assert wrong_verifier.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid code verifier.",
    }
    # The failed attempt consumed the code, as at Google: a retry is invalid_grant.
    retry = requests.post(token_url, data=form, auth=(CLIENT_ID, CLIENT_SECRET), timeout=10)
    assert retry.status_code == 400
    assert retry.json()["error"] == "invalid_grant"

    flow, code = _code(sandbox, mailbox)
    mismatch = requests.post(
        token_url,
        data={**form, "code": code, "redirect_uri": "http://127.0.0.1:9/other"},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    )
    assert mismatch.json() == {"error": "redirect_uri_mismatch", "error_description": "Bad Request"}

    unsupported = requests.post(
        token_url,
        data={"grant_type": "password", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        timeout=10,
    )
    assert unsupported.status_code == 400
    assert unsupported.json()["error"] == "unsupported_grant_type"


def test_plain_pkce_and_client_secret_post(sandbox: Any, mailbox: str):
    flow = make_flow(sandbox, [METADATA], code_verifier="v" * 50, autogenerate_code_verifier=False)
    url, _ = flow.authorization_url(
        login_hint=mailbox, code_challenge="v" * 50, code_challenge_method="plain"
    )
    code = parse_qs(urlsplit(consent(url, email=mailbox)).query)["code"][0]
    answer = requests.post(
        sandbox.http_url + "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": "v" * 50,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["scope"] == METADATA


def test_refresh_then_revoke_gives_invalid_grant_and_401(sandbox: Any, mailbox: str):
    flow = sign_in(sandbox, mailbox, [METADATA])
    stored = flow.credentials
    creds = Credentials(
        token=None,
        refresh_token=stored.refresh_token,
        token_uri=sandbox.http_url + "/token",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )
    creds.refresh(Request())
    assert creds.token
    assert creds.token != stored.token
    assert creds.valid

    # Revoking the *access* token revokes the whole grant, refresh token included.
    revoked = requests.post(sandbox.http_url + "/revoke", data={"token": creds.token}, timeout=10)
    assert revoked.status_code == 200
    assert revoked.json() == {}
    with pytest.raises(RefreshError, match=r"invalid_grant: Token has been expired or revoked\."):
        creds.refresh(Request())

    api = requests.get(
        sandbox.http_url + "/gmail/v1/users/me/profile",
        headers={"Authorization": f"Bearer {stored.token}"},
        timeout=10,
    )
    assert api.status_code == 401
    assert api.json()["error"]["errors"][0]["reason"] == "authError"

    again = requests.post(sandbox.http_url + "/revoke", data={"token": stored.token}, timeout=10)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_token"


def test_userinfo_without_token_and_discovery_document(sandbox: Any):
    anonymous = requests.get(sandbox.http_url + "/oauth2/v3/userinfo", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "invalid_request"

    doc = requests.get(sandbox.http_url + "/.well-known/openid-configuration", timeout=10).json()
    assert doc["issuer"] == "https://accounts.google.com"
    assert doc["token_endpoint"] == sandbox.http_url + "/token"
    assert doc["jwks_uri"] == sandbox.http_url + "/oauth2/v3/certs"
    assert "S256" in doc["code_challenge_methods_supported"]


def test_issuer_and_clock_knobs_shape_the_id_token(sandbox: Any, mailbox: str):
    sandbox.state.config["google_issuer"] = "https://accounts.sandbox.test"
    sandbox.state.config["google_clock_ahead_s"] = 30
    flow = sign_in(sandbox, mailbox, ["openid", "email"])
    raw = flow.oauth2session.token["id_token"]
    claims = jwt.decode(raw, options={"verify_signature": False})
    assert claims["iss"] == "https://accounts.sandbox.test"
    assert claims["iat"] - time.time() > 25  # stamped by a clock half a minute ahead
    assert claims["exp"] - claims["iat"] == 3600
    # google-auth with no leeway refuses it, as it would a real token from a clock ahead of ours
    with pytest.raises(ValueError, match="Token used too early"):
        id_token.verify_token(
            raw, Request(), audience=CLIENT_ID, certs_url=sandbox.http_url + "/oauth2/v1/certs"
        )
    doc = requests.get(sandbox.http_url + "/.well-known/openid-configuration", timeout=10).json()
    assert doc["issuer"] == "https://accounts.sandbox.test"
