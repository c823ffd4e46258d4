"""What core needs from a provider, as Protocols and plain records (dependency inversion).

`connectors/` implements these; `core/` and the sync engine never import a connector, and
`server/`/`workers/` wire the concrete ones in at start.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

from core.models import Provider


@dataclass(frozen=True)
class Identity:
    """Who signed in, as the provider vouches for it (verified id_token claims)."""

    provider: Provider
    provider_account_id: str  # Google `sub`; Microsoft `<oid>.<tid>`
    email: str
    display_name: str | None = None


@dataclass(frozen=True)
class AuthorizationStart:
    """Where to send the browser, and what the callback will need (kept server-side)."""

    url: str
    state: str
    secret_payload: dict[str, object] = field(repr=False)  # PKCE verifier / msal flow


@dataclass(frozen=True)
class Grant:
    """The result of a completed authorization: identity plus the credential to keep."""

    identity: Identity
    granted_scopes: tuple[str, ...]
    credential: bytes = field(repr=False)  # opaque to core: connector-serialized, to encrypt
    access_expires_at: dt.datetime | None = None


@dataclass(frozen=True)
class AccessToken:
    token: str = field(repr=False)
    expires_at: dt.datetime | None
    credential: bytes | None = field(default=None, repr=False)  # updated credential to store


class OAuthProvider(Protocol):
    """The authorization half of a provider connector."""

    provider: Provider

    def start_authorization(
        self, *, redirect_uri: str, login_hint: str | None = None
    ) -> AuthorizationStart:
        """Begin the auth-code flow with PKCE."""

    def complete_authorization(
        self, *, redirect_uri: str, secret_payload: dict[str, object], params: dict[str, str]
    ) -> Grant:
        """Exchange the callback's code; raise OAuthFlowError or ProviderError."""

    def refresh(self, credential: bytes) -> AccessToken:
        """Return an access token valid for a few more minutes, refreshing it if needed.

        When the stored credential changed (new access token, rotated refresh token), the
        result carries the new one to store. Raise ReauthRequired when the grant is gone.
        """

    def revoke(self, credential: bytes) -> bool:
        """Revoke the grant at the provider where it offers a way; return whether it did."""
