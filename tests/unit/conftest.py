from __future__ import annotations

from pathlib import Path

import pytest

import migrations
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
