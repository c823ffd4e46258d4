"""Flask application factory.

`create_app(settings)` is the only way an app is made: tests, gunicorn (`server.wsgi`) and the CLI
pass their own settings. The request's database session commits at teardown — one of the three
commit boundaries (STYLE.md) — and rolls back when the view raised.
"""

from __future__ import annotations

import datetime as dt

from flask import Flask, Response, g

from connectors import registry
from core.db import make_engine, make_session_factory
from core.queue import make_celery
from core.runtime import load_secrets, make_vault, prepare_data_dir
from core.settings import Settings
from server import (
    addons,
    api,
    context_api,
    errors,
    followups_api,
    health,
    identity,
    relationships_api,
    web,
)
from server.converters import CONVERTERS


def create_app(settings: Settings) -> Flask:
    """Build the web application for these settings."""
    prepare_data_dir(settings)
    secrets = load_secrets(settings)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secrets.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.effective_public_url.startswith("https://"),
        JSON_SORT_KEYS=False,
        MAX_CONTENT_LENGTH=4 * 1024 * 1024,
        PERMANENT_SESSION_LIFETIME=dt.timedelta(days=14),
        SESSION_COOKIE_NAME="warmline_session",
    )
    engine = make_engine(settings.effective_database_url)
    app.extensions["warmline"] = {
        "settings": settings,
        "engine": engine,
        "session_factory": make_session_factory(engine),
        "celery": make_celery(settings),
        "vault": make_vault(settings),
        "oauth": registry.oauth_providers(settings),
    }
    app.url_map.converters.update(CONVERTERS)
    app.teardown_request(_end_session)
    errors.register(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(web.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(context_api.bp)
    app.register_blueprint(addons.bp)
    app.register_blueprint(followups_api.bp)
    app.register_blueprint(relationships_api.bp)
    app.after_request(_security_headers)
    app.jinja_env.globals["csrf_token"] = identity.csrf_token
    return app


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    # The OAuth callback URL carries a code: never leak it in a Referer.
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault(
        "Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    return response


def _end_session(exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is None:
        return
    try:
        if exc is None:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()
