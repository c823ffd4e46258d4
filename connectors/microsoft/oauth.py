"""Microsoft sign-in and account connection with msal's auth-code flow (PKCE, nonce, state).

Scopes: `Mail.ReadBasic` (mail metadata without body, preview or attachments — the least Graph
offers for message delta), `Calendars.ReadWrite` (read meetings, write follow-ups), `User.Read`
(who signed in), `email`; msal adds `openid profile offline_access` itself and refuses them if
passed (PROVIDERS.md §5).

The credential kept for an account is msal's serialized token cache (refresh token inside, in
plaintext: the vault encrypts it). `response_mode=form_post`, as msal and RFC 9700 §4.3.1
recommend: the code never appears in a URL, history or log. (The server relays that cross-site
POST once to itself so the SameSite=Lax cookie binding the flow to the browser comes along.)

Microsoft gives a web app no endpoint to revoke its own refresh token (revocation is per user,
`revokeSignInSessions`, or by removing consent at https://myapps.microsoft.com); so `revoke`
drops the cache and reports that nothing was revoked at the provider.
https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow
"""

from __future__ import annotations

from typing import Any

import msal
import requests

from connectors.common import expiry_from_now
from connectors.microsoft.config import MicrosoftConfig
from core.errors import OAuthFlowError, ProviderUnavailable, ReauthRequired
from core.models import Provider
from core.ports import AccessToken, AuthorizationStart, Grant, Identity

SCOPES = ("Mail.ReadBasic", "Calendars.ReadWrite", "User.Read", "email")
# Errors after which only the user can help (AADSTS70000/700082 invalid_grant, 65001 consent).
REAUTH_ERRORS = {"invalid_grant", "interaction_required", "consent_required", "login_required"}


class MicrosoftOAuth:
    provider = Provider.MICROSOFT

    def __init__(self, config: MicrosoftConfig) -> None:
        self.config = config

    def _app(
        self, cache: msal.SerializableTokenCache | None = None
    ) -> msal.ConfidentialClientApplication:
        try:
            return msal.ConfidentialClientApplication(
                self.config.client_id,
                client_credential=self.config.client_secret,
                authority=self.config.authority,
                token_cache=cache,
                http_client=self.config.http_session(),
                instance_discovery=self.config.is_known_authority,
                timeout=self.config.timeout_s,
            )
        except requests.RequestException as exc:  # tenant discovery is fetched here
            raise ProviderUnavailable("Microsoft authority unreachable") from exc

    def start_authorization(
        self, *, redirect_uri: str, login_hint: str | None = None
    ) -> AuthorizationStart:
        flow = self._app().initiate_auth_code_flow(
            list(SCOPES),
            redirect_uri=redirect_uri,
            login_hint=login_hint,
            prompt="select_account",
            response_mode="form_post",
        )
        return AuthorizationStart(url=flow["auth_uri"], state=flow["state"], secret_payload=flow)

    def complete_authorization(
        self, *, redirect_uri: str, secret_payload: dict[str, object], params: dict[str, str]
    ) -> Grant:
        if "error" in params:
            raise OAuthFlowError(f"Microsoft refused the authorization: {params['error']}")
        if secret_payload.get("redirect_uri") != redirect_uri:
            raise OAuthFlowError("the flow was started for another redirect URI")
        cache = msal.SerializableTokenCache()
        app = self._app(cache)
        try:
            # msal checks state and that the id_token's nonce matches the flow's.
            result = app.acquire_token_by_auth_code_flow(dict(secret_payload), dict(params))
        except ValueError as exc:  # state mismatch and other flow errors
            raise OAuthFlowError(f"the Microsoft callback does not match the flow: {exc}") from exc
        except requests.RequestException as exc:
            raise ProviderUnavailable("Microsoft token endpoint unreachable") from exc
        if "error" in result:
            raise OAuthFlowError(f"Microsoft refused the code: {result['error']}")
        claims: dict[str, Any] = result.get("id_token_claims") or {}
        oid, tid = claims.get("oid"), claims.get("tid")
        email = claims.get("email") or claims.get("preferred_username")
        if not (oid and tid and email):
            raise OAuthFlowError("the Microsoft id_token lacks oid, tid or an address")
        granted = tuple(sorted(str(result.get("scope", "")).split()))
        return Grant(
            identity=Identity(
                provider=Provider.MICROSOFT,
                provider_account_id=f"{oid}.{tid}",
                email=str(email).lower(),
                display_name=claims.get("name"),
            ),
            granted_scopes=granted,
            credential=cache.serialize().encode(),
            access_expires_at=expiry_from_now(result.get("expires_in")),
        )

    def refresh(self, credential: bytes, *, force: bool = False) -> AccessToken:
        cache = msal.SerializableTokenCache()
        cache.deserialize(credential.decode())
        app = self._app(cache)
        accounts = app.get_accounts()
        if not accounts:
            raise ReauthRequired("no Microsoft account in the stored token cache")
        try:
            result = app.acquire_token_silent_with_error(
                list(SCOPES), account=accounts[0], force_refresh=force
            )
        except requests.RequestException as exc:
            raise ProviderUnavailable("Microsoft token endpoint unreachable") from exc
        if not result:
            raise ReauthRequired("the stored Microsoft token cache holds no usable token")
        if "error" in result:
            if result["error"] in REAUTH_ERRORS:
                raise ReauthRequired(f"Microsoft refused the refresh token: {result['error']}")
            raise ProviderUnavailable(f"Microsoft token refresh failed: {result['error']}")
        updated = cache.serialize().encode() if cache.has_state_changed else None
        return AccessToken(
            token=result["access_token"],
            expires_at=expiry_from_now(result.get("expires_in")),
            credential=updated,
        )

    def revoke(self, credential: bytes) -> bool:
        return False
