from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from connectors.registry import google_config
from core.runtime import load_secrets, prepare_data_dir
from core.settings import Settings


def test_defaults_are_the_embedded_setup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.data_dir == tmp_path / "data"
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'data' / 'warmline.sqlite'}"
    assert settings.effective_broker_url == "filesystem://localhost/"
    assert settings.effective_result_backend == f"file://{tmp_path / 'data' / 'results'}"
    assert settings.effective_public_url == "http://127.0.0.1:8000"


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WARMLINE_DATA_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("WARMLINE_DATABASE_URL", "postgresql+psycopg://db/warmline")
    monkeypatch.setenv("WARMLINE_PORT", "9000")
    monkeypatch.setenv("WARMLINE_LOG_LEVEL", "debug")
    settings = Settings()
    assert settings.data_dir == tmp_path / "elsewhere"
    assert settings.effective_database_url == "postgresql+psycopg://db/warmline"
    assert settings.port == 9000
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("name", "value"),
    [("WARMLINE_PORT", "not-a-port"), ("WARMLINE_PORT", "70000"), ("WARMLINE_LOG_LEVEL", "loud")],
)
def test_bad_values_are_refused_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert name.removeprefix("WARMLINE_").lower() in str(info.value)


def test_secrets_never_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("WARMLINE_ENCRYPTION_KEYS", key)
    monkeypatch.setenv("WARMLINE_SECRET_KEY", "hunter2-session-key")
    settings = Settings()
    assert key not in repr(settings)
    assert "hunter2" not in repr(settings)
    assert key not in repr(load_secrets(settings))


def test_embedded_secrets_are_generated_once_and_private(settings: Settings) -> None:
    prepare_data_dir(settings)
    first = load_secrets(settings)
    second = load_secrets(settings)
    assert first == second
    assert len(first.encryption_keys) == 1
    Fernet(first.encryption_keys[0].encode())  # a usable key
    for name in ("secret_key", "encryption_keys"):
        mode = stat.S_IMODE(os.stat(settings.keys_dir / name).st_mode)
        assert mode == 0o600


def test_configured_keys_are_used_newest_first_and_malformed_ones_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    new, old = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("WARMLINE_ENCRYPTION_KEYS", f"{new}, {old}")
    settings = Settings(data_dir=tmp_path)
    assert load_secrets(settings).encryption_keys == (new, old)
    assert not (settings.keys_dir / "encryption_keys").exists()

    monkeypatch.setenv("WARMLINE_ENCRYPTION_KEYS", "not-a-fernet-key")
    with pytest.raises(ValueError, match="Fernet key"):
        load_secrets(Settings(data_dir=tmp_path))


def test_google_endpoints_and_issuers_reach_the_connector_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WARMLINE_GOOGLE_CLIENT_ID", "client")
    monkeypatch.setenv("WARMLINE_GOOGLE_CLIENT_SECRET", "secret")
    monkeypatch.setenv("WARMLINE_GOOGLE_GMAIL_API_ROOT", "http://proxy.test:8080")
    monkeypatch.setenv("WARMLINE_GOOGLE_CALENDAR_API_ROOT", "http://proxy.test:8080/cal")
    monkeypatch.setenv("WARMLINE_GOOGLE_GMAIL_BATCH_URL", "http://proxy.test:8080/batch/gmail/v1")
    monkeypatch.setenv("WARMLINE_GOOGLE_ID_TOKEN_ISSUERS", "https://id.example.test, id.example")
    config = google_config(Settings())
    assert config is not None
    # roots are prefixes: the trailing slash every path is appended after is added once, here
    assert config.gmail_root == "http://proxy.test:8080/"
    assert config.calendar_root == "http://proxy.test:8080/cal/"
    assert config.gmail_batch_url == "http://proxy.test:8080/batch/gmail/v1"
    assert config.issuers == ("https://id.example.test", "id.example")


def test_google_id_token_issuers_default_to_googles_two(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().google_id_token_issuers == (
        "https://accounts.google.com",
        "accounts.google.com",
    )
    assert Settings().google_gmail_batch_url is None
    monkeypatch.setenv("WARMLINE_GOOGLE_ID_TOKEN_ISSUERS", " , ")
    with pytest.raises(ValidationError, match="google_id_token_issuers"):
        Settings()
