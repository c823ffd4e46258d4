from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

import migrations
from core.db import Base, make_engine, make_session_factory
from core.settings import Settings
from tests.support import make_settings


@pytest.fixture(autouse=True)
def _no_ambient_warmline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own WARMLINE_* variables must not change what the tests see."""
    import os

    for name in list(os.environ):
        if name.startswith("WARMLINE_"):
            monkeypatch.delenv(name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def migrated_settings(settings: Settings) -> Settings:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrations.upgrade(settings.effective_database_url)
    return settings


# A database per test module, and a session per test rolled back afterwards.


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    path: Path = tmp_path_factory.mktemp("derive") / "derive.db"
    engine = make_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine) -> Iterator[Session]:  # type: ignore[no-untyped-def]
    connection = engine.connect()
    transaction = connection.begin()
    session = make_session_factory(engine)(bind=connection)
    try:
        yield session
    finally:
        session.close()
        transaction.rollback()
        connection.close()
