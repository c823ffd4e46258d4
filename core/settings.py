"""Warmline's one settings object, read from ``WARMLINE_*`` environment variables.

Read it once at the edge (`Settings()` in a command) and pass it in; nothing imports a global.
Every field is documented in the README's configuration table, with its default. The defaults
give the embedded setup: a SQLite database and a Celery broker and result store on the local
filesystem, all under ``data_dir``, so nothing but Python has to run.

Secrets are `SecretStr` so a repr or a log line never shows them.
"""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The `iss` values a Google ID token may carry: Google documents both spellings
# (https://developers.google.com/identity/openid-connect/reference, `issuer`).
GOOGLE_ID_TOKEN_ISSUERS = ("https://accounts.google.com", "accounts.google.com")


class Settings(BaseSettings):
    """Configuration for every Warmline process (web, worker, beat, CLI)."""

    model_config = SettingsConfigDict(env_prefix="WARMLINE_", extra="ignore", frozen=True)

    data_dir: Path = Field(
        default=Path("data"),
        description="Directory for the embedded database, broker queue, keys and sandbox data.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Default: SQLite file `<data_dir>/warmline.sqlite`.",
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker. Default: kombu filesystem transport under `<data_dir>/broker`.",
    )
    result_backend: str | None = Field(
        default=None,
        description="Celery result store. Default: files under `<data_dir>/results`.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs session cookies. Default: generated once into `<data_dir>/keys`.",
    )
    encryption_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated Fernet keys for tokens at rest, newest first. "
        "Default: generated once into `<data_dir>/keys`.",
    )
    host: str = Field(default="127.0.0.1", description="Address the web server binds.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the web server binds.")
    public_url: str | None = Field(
        default=None,
        description="Public base URL (OAuth redirect URIs). Default: `http://<host>:<port>`.",
    )
    web_workers: int = Field(default=2, ge=1, description="gunicorn worker processes.")
    worker_concurrency: int = Field(default=2, ge=1, description="Celery worker processes.")
    log_level: str = Field(default="INFO", description="Python log level for every process.")
    heartbeat_interval_s: float = Field(
        default=30.0, gt=0, description="How often beat asks a worker to report it is alive."
    )
    sandbox_http_port: int = Field(
        default=8025, ge=1, le=65535, description="`warmline up`: sandbox providers' HTTP port."
    )
    sandbox_https_port: int = Field(
        default=8026, ge=1, le=65535, description="`warmline up`: sandbox providers' HTTPS port."
    )

    # Providers. Every endpoint is configurable so the same code talks to the sandbox, a staging
    # proxy or the real services. A provider without a client id is simply not offered.
    google_client_id: str | None = Field(default=None, description="Google OAuth client id.")
    google_client_secret: SecretStr | None = Field(
        default=None, description="Google OAuth client secret."
    )
    google_auth_uri: str = Field(
        default="https://accounts.google.com/o/oauth2/v2/auth",
        description="Google authorization endpoint (the browser goes there).",
    )
    google_token_uri: str = Field(
        default="https://oauth2.googleapis.com/token", description="Google token endpoint."
    )
    google_revoke_uri: str = Field(
        default="https://oauth2.googleapis.com/revoke", description="Google revocation endpoint."
    )
    google_certs_uri: str = Field(
        default="https://www.googleapis.com/oauth2/v1/certs",
        description="Google's id_token signing certificates.",
    )
    google_gmail_api_root: str = Field(
        default="https://gmail.googleapis.com/",
        description="Gmail API root URL (a missing trailing slash is added).",
    )
    google_calendar_api_root: str = Field(
        default="https://www.googleapis.com/",
        description="Google Calendar API root URL (a missing trailing slash is added; the "
        "client appends calendar/v3/).",
    )
    google_gmail_batch_url: str | None = Field(
        default=None,
        description="Gmail batch endpoint. Default: the Gmail root + the discovery document's "
        "batchPath (`https://gmail.googleapis.com/batch`).",
    )
    google_id_token_issuers: Annotated[tuple[str, ...], NoDecode] = Field(
        default=GOOGLE_ID_TOKEN_ISSUERS,
        description="Comma-separated `iss` values accepted in Google ID tokens (sign-in and the "
        "Gmail add-on).",
    )
    microsoft_client_id: str | None = Field(
        default=None, description="Microsoft Entra application (client) id."
    )
    microsoft_client_secret: SecretStr | None = Field(
        default=None, description="Microsoft Entra client secret."
    )
    microsoft_authority: str = Field(
        default="https://login.microsoftonline.com/common",
        description="Microsoft identity authority (https, with tenant segment).",
    )
    microsoft_graph_root: str = Field(
        default="https://graph.microsoft.com/v1.0", description="Microsoft Graph root URL."
    )
    gmail_quota_profile: str = Field(
        default="2026",
        description="Gmail quota profile of your Cloud project: `2026` (created on or after "
        "2026-05-01: 6,000 units/user/min, messages.get 20) or `legacy` (15,000/min, 5).",
    )
    sync_interval_s: float = Field(
        default=300.0, gt=0, description="Incremental sync interval of an idle account."
    )
    sync_lease_s: float = Field(
        default=120.0,
        gt=0,
        description="How long a worker's hold on an account lasts without renewal; after a "
        "worker dies, another resumes the account's sync once it has expired.",
    )
    sync_dispatch_interval_s: float = Field(
        default=15.0, gt=0, description="How often beat wakes workers for due accounts."
    )
    derive_refresh_interval_s: float = Field(
        default=86400.0,
        gt=0,
        description="How often every user's contacts are fully recomputed (strength decays "
        "with time even when no mail arrives).",
    )
    # Follow-ups (core/followups): thresholds of the suggestion rules; per-user preferences
    # (time zone, working hours, auto-scheduling) are set in the app, these are the defaults.
    followup_reply_working_days: int = Field(
        default=2, ge=0, description="Waiting on you: working days after their message."
    )
    followup_nudge_days: int = Field(
        default=5, ge=1, description="No reply to you: days after your message before a nudge."
    )
    followup_after_meeting_days: int = Field(
        default=2, ge=0, description="After a meeting: days without an email after it ended."
    )
    followup_max_age_days: int = Field(
        default=30, ge=1, description="Unanswered mail or meetings older than this are history."
    )
    followup_quiet_factor: float = Field(
        default=1.5, gt=1, description="Going quiet: silence beyond this times the cadence."
    )
    followup_quiet_min_strength: int = Field(
        default=50, ge=0, le=100, description="Going quiet: only contacts at least this strong."
    )
    followup_offscreen_min_messages: int = Field(
        default=20, ge=2, description="Take it off the screen: emails both ways, at least."
    )
    followup_offscreen_stale_days: int = Field(
        default=180,
        ge=1,
        description="Take it off the screen: a meeting older than this is as good as none.",
    )
    followup_default_time_zone: str = Field(
        default="UTC",
        description="Time zone for working days and hours when neither the user nor their "
        "calendar says (IANA name).",
    )
    followup_refresh_interval_s: float = Field(
        default=900.0,
        gt=0,
        description="How often beat re-evaluates every user's follow-ups (rules depend on "
        "elapsed time) and retries pending calendar writes.",
    )
    # Add-ons (PROVIDERS.md §7, README "Add-ons"): server/addons.py.
    google_addon_service_account: str | None = Field(
        default=None,
        description="Gmail add-on: the add-ons service agent that signs Google's calls, "
        "`service-<PROJECT_NUMBER>@gcp-sa-gsuiteaddons.iam.gserviceaccount.com`. "
        "Unset: the Gmail add-on is off.",
    )
    google_addon_certs_uri: str = Field(
        default="https://www.googleapis.com/oauth2/v1/certs",
        description="Gmail add-on: certificates that sign Google's ID tokens (`{kid: PEM}`).",
    )
    microsoft_addin_audience: str | None = Field(
        default=None,
        description="Outlook add-in: our app ID URI, the `aud` of nested-app-auth access tokens "
        "(e.g. `api://<client-id>`). Unset: only Warmline API tokens are accepted.",
    )
    microsoft_addin_scope: str = Field(
        default="access_as_user",
        description="Outlook add-in: the scope (`scp`) those access tokens must carry.",
    )
    provider_ca_bundle: Path | None = Field(
        default=None,
        description="Extra CA certificate (PEM) for provider endpoints with their own "
        "certificate, such as the sandbox's HTTPS listener.",
    )

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Worker, beat and web run as separate processes, possibly from other directories.
        return value.expanduser().resolve()

    @field_validator("gmail_quota_profile")
    @classmethod
    def _profile(cls, value: str) -> str:
        if value not in {"2026", "legacy"}:
            raise ValueError("gmail_quota_profile must be 2026 or legacy")
        return value

    @field_validator("google_id_token_issuers", mode="before")
    @classmethod
    def _issuers(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(item.strip() for item in value.split(",") if item.strip())
        if not value:
            raise ValueError("google_id_token_issuers needs at least one issuer")
        return value

    @field_validator("followup_default_time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value

    # Derived values: one place decides the embedded defaults.

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'warmline.sqlite'}"

    @property
    def effective_broker_url(self) -> str:
        # kombu ignores the host of this transport but warns when there is none.
        return self.broker_url or "filesystem://localhost/"

    @property
    def effective_result_backend(self) -> str:
        return self.result_backend or f"file://{self.data_dir / 'results'}"

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"
