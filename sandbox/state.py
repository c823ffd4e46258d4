"""The sandbox's shared state: store, controls, signing keys, OAuth clients and knobs.

One `SandboxState` lives per running sandbox and is stored on the Flask app as
`app.extensions["sandbox"]`; views reach it with `get_state()`. Invariants:

- `http_url`/`https_url` are filled by `Sandbox.start()` before the first request is served
  (views use them to build absolute URLs in discovery documents and links).
- Store writes happen under `lock` (SQLite allows one writer; the lock also keeps multi-step
  mutations such as "add message + history row + bump history id" atomic for readers).
- `clients` maps OAuth client ids to `{"secret", "redirect_uris"}`; `redirect_uris=None` accepts
  any http(s) loopback redirect URI. Both providers accept every client listed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import current_app

from sandbox.controls import Controls
from sandbox.keys import SigningKey

if TYPE_CHECKING:  # the store module is engineer A's; only its type is needed here
    from sandbox.store import Store

DEFAULT_CLIENT_ID = "warmline-sandbox"
DEFAULT_CLIENT_SECRET = "sandbox-secret"

# The Entra tenant the sandbox plays (a fixed GUID, so ids in tokens are stable across restarts).
DEFAULT_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"


def default_clients() -> dict[str, dict[str, Any]]:
    """Return the OAuth clients a fresh sandbox accepts (the demo's)."""
    return {DEFAULT_CLIENT_ID: {"secret": DEFAULT_CLIENT_SECRET, "redirect_uris": None}}


def default_config() -> dict[str, Any]:
    """Return the default knobs; views read them with `state.config[...]`."""
    return {
        "access_token_ttl_s": 3600,  # Google and Microsoft both issue 1 h access tokens
        "id_token_ttl_s": 3600,
        "auto_consent": False,  # False: a person clicks Allow on the consent page
        "google_issuer": "https://accounts.google.com",
        "microsoft_tenant_id": DEFAULT_TENANT_ID,
    }


@dataclass
class SandboxState:
    """Everything a sandbox view needs; see the module docstring for the invariants."""

    store: Store
    controls: Controls
    google_key: SigningKey  # signs Google id_tokens (iss https://accounts.google.com)
    microsoft_key: SigningKey  # signs Microsoft id_tokens / access tokens
    http_url: str = ""
    https_url: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock)
    clients: dict[str, dict[str, Any]] = field(default_factory=default_clients)
    config: dict[str, Any] = field(default_factory=default_config)
    data_dir: str | None = None  # None: temporary, deleted at stop
    ca_path: str | None = None  # PEM of the CA that signed the HTTPS listener's certificate

    def add_client(
        self, client_id: str, secret: str, redirect_uris: list[str] | None = None
    ) -> None:
        """Register another OAuth client both providers accept."""
        self.clients[client_id] = {"secret": secret, "redirect_uris": redirect_uris}


def get_state() -> SandboxState:
    """Return the state of the sandbox serving the current request (or app context)."""
    state = current_app.extensions["sandbox"]
    assert isinstance(state, SandboxState)
    return state
