"""Microsoft identity platform and Graph endpoints, all configurable."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

from connectors.common import http_session

# Hosts msal knows; any other authority (a sandbox, a sovereign proxy) skips instance discovery.
KNOWN_AUTHORITY_HOSTS = {
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "login.partner.microsoftonline.cn",
}


@dataclass(frozen=True)
class MicrosoftConfig:
    client_id: str
    client_secret: str = field(repr=False)
    # msal requires an https authority with a tenant path segment (PROVIDERS.md §5).
    authority: str = "https://login.microsoftonline.com/common"
    graph_root: str = "https://graph.microsoft.com/v1.0"
    ca_bundle: str | None = None
    timeout_s: float = 30.0

    @property
    def is_known_authority(self) -> bool:
        return urlsplit(self.authority).hostname in KNOWN_AUTHORITY_HOSTS

    def http_session(self) -> requests.Session:
        """A requests session for these endpoints (trusting `ca_bundle` when set)."""
        return http_session(self.ca_bundle)
