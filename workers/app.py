"""The worker-side Celery app: `make_celery` plus task registrations and process hygiene.

Tasks are thin: they take ids, open a session through `DbTask.session()`, call one core service
and let the task boundary commit. Prefork children dispose the inherited engine's pool at start,
so no two processes share a database connection (superset learned this the hard way).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init
from sqlalchemy.orm import Session

from core.db import make_engine, make_session_factory
from core.queue import make_celery
from core.runtime import prepare_data_dir
from core.settings import Settings


class DbTask(Task):  # type: ignore[misc]
    """Task base class: the one place a task's database work commits."""

    abstract = True

    @contextmanager
    def session(self) -> Iterator[Session]:
        factory = self.app.warmline_session_factory
        with factory() as session, session.begin():
            yield session


def create_worker_app(settings: Settings) -> Celery:
    """Return the Celery app with Warmline's tasks registered, for workers and beat."""
    prepare_data_dir(settings)
    app = make_celery(settings)
    engine = make_engine(settings.effective_database_url)
    app.warmline_settings = settings
    app.warmline_engine = engine
    app.warmline_session_factory = make_session_factory(engine)

    def _dispose_inherited_pool(**_: Any) -> None:
        engine.dispose(close=False)

    worker_process_init.connect(_dispose_inherited_pool, weak=False)

    from workers import tasks

    tasks.register(app, base=DbTask)
    return app
