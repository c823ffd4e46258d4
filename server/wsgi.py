"""WSGI entry point for gunicorn: `gunicorn 'server.wsgi:create_app_from_env()'`."""

from __future__ import annotations

from flask import Flask

from core.settings import Settings
from server.app import create_app


def create_app_from_env() -> Flask:
    """Build the app from `WARMLINE_*` environment variables."""
    return create_app(Settings())
