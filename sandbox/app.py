"""The sandbox's WSGI application: every provider blueprint plus the admin API on one Flask app.

Both listeners (HTTP and HTTPS, see server.py) serve this same app, so every route answers on
both. Invariants: `app.extensions["sandbox"]` holds the `SandboxState` (views use
`sandbox.state.get_state()`); every error leaves as JSON in the owning provider's shape
(errors.py); JSON keys keep the order the views build them in, as the providers' do.
"""

from __future__ import annotations

from flask import Flask

from sandbox import admin
from sandbox.errors import register_error_handlers
from sandbox.google import calendar as google_calendar
from sandbox.google import gmail as google_gmail
from sandbox.google import oauth as google_oauth
from sandbox.microsoft import graph as microsoft_graph
from sandbox.microsoft import identity as microsoft_identity
from sandbox.state import SandboxState


def create_sandbox_app(state: SandboxState) -> Flask:
    """Return the Flask app serving `state` with all provider blueprints and /_sandbox."""
    app = Flask("sandbox")
    app.extensions["sandbox"] = state
    app.json.sort_keys = False  # type: ignore[attr-defined]
    register_error_handlers(app)
    for module in (
        google_oauth,
        google_gmail,
        google_calendar,
        microsoft_identity,
        microsoft_graph,
        admin,
    ):
        app.register_blueprint(module.bp)
    return app
