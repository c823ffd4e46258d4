"""Turn settings into concrete connectors: the one place that names them.

The web process (sign-in) and the workers (sync) both build their connectors here; core only
ever sees them through the Protocols in core/ports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.google.config import GoogleConfig
from connectors.google.oauth import GoogleOAuth
from connectors.microsoft.config import MicrosoftConfig
from connectors.microsoft.oauth import MicrosoftOAuth
from core.models import Provider
from core.ports import CalendarWriter, OAuthProvider, Pacer, SyncSource, TokenSource
from core.settings import Settings


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
        issuers=settings.google_id_token_issuers,
        gmail_root=settings.google_gmail_api_root,
        calendar_root=settings.google_calendar_api_root,
        gmail_batch_url=settings.google_gmail_batch_url,
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


def quota_limits(settings: Settings, provider: Provider) -> Mapping[str, Any]:
    """The per-account quota limits the pacer enforces, by bucket."""
    if provider is Provider.GOOGLE:
        from connectors.google.quota import LIMITS as GOOGLE_LIMITS

        return GOOGLE_LIMITS[settings.gmail_quota_profile]
    from connectors.microsoft.quota import LIMITS as MICROSOFT_LIMITS

    return MICROSOFT_LIMITS


def sync_source(
    settings: Settings, provider: Provider, *, token: TokenSource, pacer: Pacer
) -> SyncSource:
    """The sync connector for one account of `provider`."""
    if provider is Provider.GOOGLE:
        from connectors.google.sync import GoogleSyncSource

        google = google_config(settings)
        if google is None:
            raise RuntimeError("Google is not configured (WARMLINE_GOOGLE_CLIENT_ID)")
        return GoogleSyncSource(
            google, token=token, pacer=pacer, quota_profile=settings.gmail_quota_profile
        )
    from connectors.microsoft.sync import MicrosoftSyncSource

    microsoft = microsoft_config(settings)
    if microsoft is None:
        raise RuntimeError("Microsoft is not configured (WARMLINE_MICROSOFT_CLIENT_ID)")
    return MicrosoftSyncSource(microsoft, token=token, pacer=pacer)


def calendar_writer(
    settings: Settings, provider: Provider, *, token: TokenSource, pacer: Pacer
) -> CalendarWriter:
    """The calendar-writing connector (follow-ups) for one account of `provider`."""
    if provider is Provider.GOOGLE:
        from connectors.google.calendar_write import GoogleCalendarWriter

        google = google_config(settings)
        if google is None:
            raise RuntimeError("Google is not configured (WARMLINE_GOOGLE_CLIENT_ID)")
        return GoogleCalendarWriter(google, token=token, pacer=pacer)
    from connectors.microsoft.calendar_write import MicrosoftCalendarWriter

    microsoft = microsoft_config(settings)
    if microsoft is None:
        raise RuntimeError("Microsoft is not configured (WARMLINE_MICROSOFT_CLIENT_ID)")
    return MicrosoftCalendarWriter(microsoft, token=token, pacer=pacer)
