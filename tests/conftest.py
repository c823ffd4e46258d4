"""Shared fixtures: one sandbox for the whole session, per-test mailboxes, an HTTPS session.

- `sandbox` (session): a started `sandbox.server.Sandbox` on free loopback ports with a temporary
  store; stopped at the end of the session.
- autouse `_reset_sandbox`: after each test, if the sandbox is running, restores default controls
  (no latency, no faults, default quotas, empty windows and counters) and default config/clients.
- `make_mailbox(provider="google", messages=50, seed=None, **options) -> email`: generates a
  uniquely named mailbox for this test (deleted afterwards).
- `https_session`: a `requests.Session` that trusts only the sandbox CA. `trust_env=False` is
  required: REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE are set on this machine and would otherwise override
  `Session.verify` (PROVIDERS.md §5).

Sandbox modules are imported inside the fixtures so tests that never touch the sandbox do not
depend on it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import requests

if TYPE_CHECKING:
    from sandbox.server import Sandbox

_running: list[Sandbox] = []
_mailbox_numbers = itertools.count(1)

DEMO_DOMAINS = {"google": "sandbox-gmail.test", "microsoft": "sandbox-outlook.test"}


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """Start one sandbox (HTTP + HTTPS on free ports, temporary store) for the session."""
    from sandbox.server import Sandbox

    with Sandbox() as sb:
        _running.append(sb)
        try:
            yield sb
        finally:
            _running.remove(sb)


@pytest.fixture(autouse=True)
def _reset_sandbox() -> Iterator[None]:
    """Undo what a test did to the shared sandbox's controls, config and clients."""
    yield
    if not _running:
        return
    from sandbox.state import default_clients, default_config

    state = _running[0].state
    state.controls.reset()
    state.config.clear()
    state.config.update(default_config())
    state.clients.clear()
    state.clients.update(default_clients())


@pytest.fixture
def make_mailbox(sandbox: Sandbox, request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """Return a factory generating a uniquely named mailbox for this test; returns its email."""
    from sandbox import generate

    created: list[str] = []
    test_name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]

    def factory(
        provider: str = "google",
        messages: int = 50,
        seed: int | None = None,
        **options: Any,
    ) -> str:
        number = next(_mailbox_numbers)
        email = f"{test_name}-{number}@{DEMO_DOMAINS[provider]}"
        state = sandbox.state
        with state.lock:
            generate.generate_mailbox(
                state.store,
                email=email,
                provider=provider,
                seed=number if seed is None else seed,
                messages=messages,
                **options,
            )
        created.append(email)
        return email

    yield factory
    with sandbox.state.lock:
        for email in created:
            sandbox.state.store.delete_mailbox(email)


@pytest.fixture
def https_session(sandbox: Sandbox) -> Iterator[requests.Session]:
    """A requests.Session that verifies the sandbox's HTTPS certificate with its CA only."""
    session = requests.Session()
    session.trust_env = False
    session.verify = sandbox.ca_path
    with session:
        yield session
