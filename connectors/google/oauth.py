"""Google sign-in and account connection: the web-server flow with PKCE (google-auth-oauthlib),
refresh and revocation (google-auth).

Scopes are the least that Warmline's features need (README "Google scopes"):
- `openid email profile`: who signed in;
- `gmail.metadata`: headers and labels, never bodies (restricted scope; it also forbids `q` and
  format=full, PROVIDERS.md §1.3);
- `calendar.calendarlist.readonly` + `calendar.events.readonly`: find and read the user's
  calendars;
- `calendar.freebusy`: free/busy for placing follow-ups;
- `calendar.app.created`: create the "Warmline follow-ups" calendar and write only into it.

Google returns a refresh token only on consent, so every flow asks `prompt=consent` and
`access_type=offline`; with granular consent the user may untick scopes, so the granted scopes are
read from the token response, never assumed (OAUTHLIB_RELAX_TOKEN_SCOPE, PROVIDERS.md §3).
https://developers.google.com/identity/protocols/oauth2/web-server
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
import requests
from google.oauth2 import credentials as google_credentials
from google.oauth2 import id_token as google_id_token
from google_auth_oauthlib.flow import Flow
from oauthlib.oauth2 import OAuth2Error

from connectors.common import expiry_from_now
from connectors.google.config import GoogleConfig
from core.errors import OAuthFlowError, ProviderUnavailable, ReauthRequired
from core.models import Provider
from core.ports import AccessToken, AuthorizationStart, Grant, Identity

SCOPES = (
    "openid",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/userinfo.profile",
    "https://www.googleapis.com/auth/gmail.metadata",
    "https://www.googleapis.com/auth/calendar.calendarlist.readonly",
    "https://www.googleapis.com/auth/calendar.events.readonly",
    "https://www.googleapis.com/auth/calendar.freebusy",
    "https://www.googleapis.com/auth/calendar.app.created",
)
GMAIL_METADATA = "https://www.googleapis.com/auth/gmail.metadata"
# Refresh a little before expiry so a token never dies in the middle of a page of calls.
REFRESH_MARGIN = dt.timedelta(minutes=5)
# Google stamps `iat` with its own clock; with no leeway a few seconds of drift make sign-in
# fail with "Token used too early"
# (https://github.com/googleapis/google-auth-library-python/issues/889).
ID_TOKEN_CLOCK_SKEW_S = 10


class GoogleOAuth:
    provider = Provider.GOOGLE

    def __init__(self, config: GoogleConfig) -> None:
        self.config = config
        config.allow_plain_http_on_loopback()
        # Google may grant fewer (granular consent) or differently spelled scopes.
        os.environ["OAUTHLIB_RELAX_TOKEN_SCOPE"] = "1"

    def _flow(self, redirect_uri: str, **kwargs: Any) -> Flow:
        client = {
            "web": {
                "client_id": self.config.client_id,
                "client_secret": self.config.client_secret,
                "auth_uri": self.config.auth_uri,
                "token_uri": self.config.token_uri,
                "redirect_uris": [redirect_uri],
            }
        }
        flow = Flow.from_client_config(
            client, scopes=list(SCOPES), redirect_uri=redirect_uri, **kwargs
        )
        if self.config.ca_bundle:
            flow.oauth2session.trust_env = False
            flow.oauth2session.verify = self.config.ca_bundle
        return flow

    def start_authorization(
        self, *, redirect_uri: str, login_hint: str | None = None
    ) -> AuthorizationStart:
        flow = self._flow(redirect_uri)
        extra = {"login_hint": login_hint} if login_hint else {}
        url, state = flow.authorization_url(
            access_type="offline", prompt="consent", include_granted_scopes="true", **extra
        )
        return AuthorizationStart(
            url=url, state=state, secret_payload={"code_verifier": flow.code_verifier}
        )

    def complete_authorization(
        self, *, redirect_uri: str, secret_payload: dict[str, object], params: dict[str, str]
    ) -> Grant:
        if "error" in params:
            raise OAuthFlowError(f"Google refused the authorization: {params['error']}")
        code = params.get("code")
        verifier = secret_payload.get("code_verifier")
        if not code or not isinstance(verifier, str):
            raise OAuthFlowError("the callback carries no authorization code")
        flow = self._flow(redirect_uri, code_verifier=verifier, autogenerate_code_verifier=False)
        try:
            token = flow.fetch_token(code=code, timeout=self.config.timeout_s)
        except OAuth2Error as exc:
            raise OAuthFlowError(f"Google refused the code: {exc.error}") from exc
        except requests.RequestException as exc:
            raise ProviderUnavailable(
                f"Google token endpoint unreachable: {type(exc).__name__}"
            ) from exc
        refresh_token = token.get("refresh_token")
        if not refresh_token:
            raise OAuthFlowError("Google returned no refresh token (offline access not granted)")
        granted = _scopes(token.get("scope"))
        claims = self._verify_id_token(token.get("id_token"))
        expires_at = expiry_from_now(token.get("expires_in"))
        credential = json.dumps(
            {
                "refresh_token": refresh_token,
                "scopes": list(granted),
                "access_token": token.get("access_token"),
                "expires_at": expires_at.isoformat() if expires_at else None,
            }
        ).encode()
        return Grant(
            identity=Identity(
                provider=Provider.GOOGLE,
                provider_account_id=str(claims["sub"]),
                email=str(claims["email"]).lower(),
                display_name=claims.get("name"),
            ),
            granted_scopes=granted,
            credential=credential,
            access_expires_at=expires_at,
        )

    def _verify_id_token(self, raw: object) -> dict[str, Any]:
        if not isinstance(raw, str):
            raise OAuthFlowError("Google returned no id_token (openid scope not granted)")
        request = google.auth.transport.requests.Request(self.config.http_session())
        try:
            claims: dict[str, Any] = google_id_token.verify_token(
                raw,
                request,
                audience=self.config.client_id,
                certs_url=self.config.certs_uri,
                clock_skew_in_seconds=ID_TOKEN_CLOCK_SKEW_S,
            )
        except (ValueError, google.auth.exceptions.GoogleAuthError) as exc:
            raise OAuthFlowError(f"the id_token did not verify: {exc}") from exc
        if claims.get("iss") not in self.config.issuers:
            raise OAuthFlowError("the id_token has the wrong issuer")
        if not claims.get("email") or claims.get("email_verified") is False:
            raise OAuthFlowError("the Google account has no verified email address")
        return claims

    def refresh(self, credential: bytes, *, force: bool = False) -> AccessToken:
        """Return the stored access token while it has a few minutes left, else refresh it."""
        stored = json.loads(credential)
        expires_at = _parse_time(stored.get("expires_at"))
        fresh = expires_at is not None and expires_at - _now() > REFRESH_MARGIN
        if stored.get("access_token") and fresh and not force:
            return AccessToken(token=stored["access_token"], expires_at=expires_at)
        creds = google_credentials.Credentials(
            token=None,
            refresh_token=stored["refresh_token"],
            token_uri=self.config.token_uri,
            client_id=self.config.client_id,
            client_secret=self.config.client_secret,
            scopes=stored.get("scopes") or None,
        )
        request = google.auth.transport.requests.Request(self.config.http_session())
        try:
            creds.refresh(request)
        except google.auth.exceptions.RefreshError as exc:
            # invalid_grant ("Token has been expired or revoked.") is final; google-auth marks
            # it retryable=False. Anything else from the token endpoint is transient.
            if getattr(exc, "retryable", False):
                raise ProviderUnavailable("Google token refresh failed, retryable") from exc
            raise ReauthRequired("Google refused the refresh token") from exc
        except google.auth.exceptions.TransportError as exc:
            raise ProviderUnavailable("Google token endpoint unreachable") from exc
        # google-auth keeps expiry naive UTC.
        expiry = creds.expiry.replace(tzinfo=dt.UTC) if creds.expiry else None
        updated = {
            **stored,
            "access_token": creds.token,
            "expires_at": expiry.isoformat() if expiry else None,
        }
        return AccessToken(
            token=str(creds.token), expires_at=expiry, credential=json.dumps(updated).encode()
        )

    def revoke(self, credential: bytes) -> bool:
        """Revoke the refresh token (which revokes the whole grant).

        https://developers.google.com/identity/protocols/oauth2/web-server#tokenrevoke
        """
        token = json.loads(credential)["refresh_token"]
        try:
            response = self.config.http_session().post(
                self.config.revoke_uri,
                data={"token": token},
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                timeout=self.config.timeout_s,
            )
        except requests.RequestException as exc:
            raise ProviderUnavailable("Google revocation endpoint unreachable") from exc
        if response.status_code == 200:
            return True
        if response.status_code == 400:
            return False  # invalid_token: already revoked or expired; nothing left to revoke
        raise ProviderUnavailable(f"Google revocation answered {response.status_code}")


def _scopes(value: object) -> tuple[str, ...]:
    # requests-oauthlib hands the scope back as a list; the wire format is space-separated.
    items = value.split() if isinstance(value, str) else list(value or ())  # type: ignore[call-overload]
    return tuple(sorted(str(s) for s in items))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _parse_time(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None
