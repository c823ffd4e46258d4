"""The composition root: turn settings into connectors and the vault.

The only place (with workers/) that names concrete connectors; core sees them as Protocols.
"""

from __future__ import annotations

from connectors.google.config import GoogleConfig
from connectors.google.oauth import GoogleOAuth
from connectors.microsoft.config import MicrosoftConfig
from connectors.microsoft.oauth import MicrosoftOAuth
from core.models import Provider
from core.ports import OAuthProvider
from core.runtime import load_secrets
from core.settings import Settings
from core.vault import Vault


def google_config(settings: Settings) -> GoogleConfig | None:
    if not settings.google_client_id or settings.google_client_secret is None:
        return None
    return GoogleConfig(
        client_id=settings.google_client_id,
        client_secret=settings.google_client_secret.get_secret_value(),
        auth_uri=settings.google_auth_uri,
        token_uri=settings.google_token_uri,
        revoke_uri=settings.google_revoke_uri,
        certs_uri=settings.google_certs_uri,
        gmail_root=settings.google_gmail_api_root,
        calendar_root=settings.google_calendar_api_root,
        ca_bundle=str(settings.provider_ca_bundle) if settings.provider_ca_bundle else None,
    )


def microsoft_config(settings: Settings) -> MicrosoftConfig | None:
    if not settings.microsoft_client_id or settings.microsoft_client_secret is None:
        return None
    return MicrosoftConfig(
        client_id=settings.microsoft_client_id,
        client_secret=settings.microsoft_client_secret.get_secret_value(),
        authority=settings.microsoft_authority,
        graph_root=settings.microsoft_graph_root,
        ca_bundle=str(settings.provider_ca_bundle) if settings.provider_ca_bundle else None,
    )


def oauth_providers(settings: Settings) -> dict[Provider, OAuthProvider]:
    """The sign-in/connect providers that are configured."""
    providers: dict[Provider, OAuthProvider] = {}
    google = google_config(settings)
    if google is not None:
        providers[Provider.GOOGLE] = GoogleOAuth(google)
    microsoft = microsoft_config(settings)
    if microsoft is not None:
        providers[Provider.MICROSOFT] = MicrosoftOAuth(microsoft)
    return providers


def make_vault(settings: Settings) -> Vault:
    """The token vault; on the embedded default it re-reads the key file after a rotation."""
    keys = load_secrets(settings).encryption_keys
    if settings.encryption_keys is not None:
        return Vault(keys)
    return Vault(keys, reload=lambda: load_secrets(settings).encryption_keys)
