"""Google endpoints and client registration, all configurable (sandbox, proxy or the real thing)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

from connectors.common import http_session
from core.settings import GOOGLE_ID_TOKEN_ISSUERS

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class GoogleConfig:
    client_id: str
    client_secret: str = field(repr=False)
    auth_uri: str = "https://accounts.google.com/o/oauth2/v2/auth"
    token_uri: str = "https://oauth2.googleapis.com/token"
    revoke_uri: str = "https://oauth2.googleapis.com/revoke"
    # google-auth's verify_oauth2_token hard-codes this URL; we pass it explicitly instead.
    certs_uri: str = "https://www.googleapis.com/oauth2/v1/certs"
    issuers: tuple[str, ...] = GOOGLE_ID_TOKEN_ISSUERS
    # Gmail's discovery rootUrl; method paths start with gmail/v1/ (PROVIDERS.md §1.5).
    gmail_root: str = "https://gmail.googleapis.com/"
    # Calendar's rootUrl; the client appends calendar/v3/ (servicePath).
    calendar_root: str = "https://www.googleapis.com/"
    # None: gmail_root + the discovery doc's batchPath (sync.py); set for a proxy that differs.
    gmail_batch_url: str | None = None
    ca_bundle: str | None = None  # extra CA for a sandbox or proxy with its own certificate
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        # Roots are prefixes that paths are appended to ("<root>gmail/v1/...", "<root>batch"):
        # without the trailing slash every URL would be wrong, so add it here, once.
        for name in ("gmail_root", "calendar_root"):
            root = getattr(self, name)
            if not root.endswith("/"):
                object.__setattr__(self, name, root + "/")

    def http_session(self) -> requests.Session:
        """A requests session for these endpoints (trusting `ca_bundle` when set)."""
        return http_session(self.ca_bundle)

    def allow_plain_http_on_loopback(self) -> None:
        """Let oauthlib talk plain http to a loopback provider (the sandbox), nothing else.

        oauthlib refuses http:// unless OAUTHLIB_INSECURE_TRANSPORT is set (a process-wide
        switch); it is set only when every OAuth endpoint that is http points at loopback.
        """
        plain = [u for u in (self.auth_uri, self.token_uri) if u.startswith("http://")]
        if plain and all(urlsplit(u).hostname in LOOPBACK_HOSTS for u in plain):
            os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
