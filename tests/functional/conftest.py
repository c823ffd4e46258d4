from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

import migrations
from core.settings import Settings
from server.app import create_app
from tests.functional.browser import Callback, consent
from tests.support import make_settings

if TYPE_CHECKING:
    from sandbox.server import Sandbox

CLIENT_ID, CLIENT_SECRET = "warmline-sandbox", "sandbox-secret"


@pytest.fixture(autouse=True)
def _no_ambient_warmline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("WARMLINE_"):
            monkeypatch.delenv(name)


def sandbox_settings(sandbox: Sandbox, data_dir: Path, **overrides: object) -> Settings:
    """Warmline configured against the sandbox, exactly as an operator would configure it."""
    values: dict[str, object] = {
        "google_client_id": CLIENT_ID,
        "google_client_secret": CLIENT_SECRET,
        "google_auth_uri": f"{sandbox.http_url}/o/oauth2/v2/auth",
        "google_token_uri": f"{sandbox.http_url}/token",
        "google_revoke_uri": f"{sandbox.http_url}/revoke",
        "google_certs_uri": f"{sandbox.http_url}/oauth2/v1/certs",
        "google_gmail_api_root": f"{sandbox.http_url}/",
        "google_calendar_api_root": f"{sandbox.http_url}/",
        "microsoft_client_id": CLIENT_ID,
        "microsoft_client_secret": CLIENT_SECRET,
        "microsoft_authority": f"{sandbox.https_url}/common",
        "microsoft_graph_root": f"{sandbox.https_url}/v1.0",
        "provider_ca_bundle": sandbox.ca_path,
    }
    values.update(overrides)
    return make_settings(data_dir, **values)


@pytest.fixture
def settings(sandbox: Sandbox, tmp_path: Path) -> Settings:
    settings = sandbox_settings(sandbox, tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    migrations.upgrade(settings.effective_database_url)
    return settings


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    app.extensions["warmline"]["engine"].dispose()


class Browser:
    """One person's browser: Warmline through the Flask test client, providers over HTTP."""

    def __init__(self, app: Flask) -> None:
        self.client: FlaskClient = app.test_client()

    def connect(
        self,
        provider: str,
        mailbox: str,
        *,
        intent: str = "signin",
        allow: bool = True,
        untick: tuple[str, ...] = (),
    ) -> tuple[int, str]:
        """Click "Sign in/Connect with <provider>", consent, follow back; return the result."""
        callback = self.start_and_consent(
            provider, mailbox, intent=intent, allow=allow, untick=untick
        )
        return self.open(callback)

    def start_and_consent(
        self,
        provider: str,
        mailbox: str,
        *,
        intent: str = "signin",
        allow: bool = True,
        untick: tuple[str, ...] = (),
    ) -> Callback:
        start = self.client.get(f"/auth/{provider}/start?intent={intent}")
        assert start.status_code == 302, start.get_data(as_text=True)[:500]
        return consent(start.headers["Location"], mailbox=mailbox, allow=allow, untick=untick)

    def open(self, callback: Callback) -> tuple[int, str]:
        """Deliver the provider's answer to Warmline's callback, as the browser would."""
        parts = urlsplit(callback.url)
        if callback.method == "GET":
            response = self.client.get(f"{parts.path}?{parts.query}")
        else:
            response = self.client.post(parts.path, data=callback.data)
        return response.status_code, response.get_data(as_text=True)

    def csrf(self) -> str:
        with self.client.session_transaction() as session:
            return str(session.get("csrf", ""))


@pytest.fixture
def browser(app: Flask) -> Browser:
    return Browser(app)


@pytest.fixture
def other_browser(app: Flask) -> Browser:
    return Browser(app)
