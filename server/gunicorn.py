"""Run the Flask app under gunicorn from Python, with Warmline's settings."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from core.settings import Settings


class _Application(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from server.app import create_app

        return create_app(self.settings)


def run(settings: Settings, *, workers: int) -> None:
    """Serve until SIGTERM/SIGINT."""
    _Application(
        settings,
        {
            "bind": f"{settings.host}:{settings.port}",
            "workers": workers,
            "threads": 4,
            "worker_class": "gthread",
            "timeout": 60,
            "graceful_timeout": 10,
            "accesslog": "-",
            "loglevel": settings.log_level.lower(),
        },
    ).run()
