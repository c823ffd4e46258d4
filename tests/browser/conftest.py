"""Headless Chromium (Debian's, driven by Playwright; no browser download) against a live
Warmline server and the sandbox providers on loopback."""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

import migrations
from core.models import ConnectedAccount
from core.settings import Settings
from server.app import create_app
from tests.functional.conftest import sandbox_settings
from tests.functional.syncing import factory_for, sync_until_idle
from tests.support import free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from sandbox.server import Sandbox

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(autouse=True)
def _no_ambient_warmline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("WARMLINE_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (./dev test installs it when it can)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            # This machine's network is closed: keep Chromium from calling home at start.
            args=[
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


class LiveWarmline:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.server = make_server("127.0.0.1", settings.port, self.app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return self.settings.effective_public_url


@pytest.fixture
def live_overrides(request: pytest.FixtureRequest) -> dict[str, object]:
    """Extra settings for `live`; change them with indirect parametrization of this fixture."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
def live(
    sandbox: Sandbox, tmp_path: Path, live_overrides: dict[str, object]
) -> Iterator[LiveWarmline]:
    port = free_port()
    settings = sandbox_settings(
        sandbox,
        tmp_path / "data",
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        gmail_quota_profile="legacy",
        **live_overrides,
    )
    settings.data_dir.mkdir(parents=True)
    migrations.upgrade(settings.effective_database_url)
    warmline = LiveWarmline(settings)
    warmline.thread.start()
    yield warmline
    warmline.server.shutdown()
    warmline.app.extensions["warmline"]["engine"].dispose()


@pytest.fixture
def page(chromium: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-last.png"), full_page=True)
    context.close()


def sign_in_and_sync(page: Page, live: LiveWarmline, mailbox: str) -> ConnectedAccount:
    """Sign in with Google through the sandbox's consent page, then sync the account to idle."""
    page.goto(f"{live.url}/login")
    page.get_by_role("link", name="Sign in with Google").click()
    # The sandbox's consent page: pick the mailbox, keep every box ticked, press Allow.
    page.get_by_label("Sign in as").select_option(mailbox)
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(f"{live.url}/accounts")
    with factory_for(live.settings)() as session:
        account = session.scalars(select(ConnectedAccount)).one()
    sync_until_idle(live.settings, uuid.UUID(str(account.id)))
    return account
