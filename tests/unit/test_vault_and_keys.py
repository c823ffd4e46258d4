from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from cryptography.fernet import Fernet

from core import keys
from core.db import make_engine, make_session_factory, transaction
from core.models import ConnectedAccount, Provider, User
from core.runtime import load_secrets, make_vault, prepare_data_dir
from core.settings import Settings
from core.vault import Vault, VaultError


def test_a_secret_encrypted_under_an_old_key_still_decrypts_and_rotates() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    ciphertext = Vault([old]).encrypt(b"refresh-token")
    vault = Vault([new, old])
    assert vault.decrypt(ciphertext) == b"refresh-token"
    assert not vault.is_current(ciphertext)
    rotated = vault.rotate(ciphertext)
    assert vault.is_current(rotated)
    assert Vault([new]).decrypt(rotated) == b"refresh-token"
    with pytest.raises(VaultError):
        Vault([Fernet.generate_key().decode()]).decrypt(rotated)


def test_ciphertext_never_contains_the_plaintext() -> None:
    vault = Vault([Fernet.generate_key().decode()])
    assert b"1//secret-refresh" not in vault.encrypt(b"1//secret-refresh")


def _account_with_token(settings: Settings, plaintext: bytes) -> uuid.UUID:
    factory = make_session_factory(make_engine(settings.effective_database_url))
    vault = make_vault(settings)
    with transaction(factory) as session:
        user = User(email="ada@example.com")
        account = ConnectedAccount(
            user=user,
            provider=Provider.GOOGLE,
            provider_account_id="1",
            email="ada@example.com",
            token_ciphertext=vault.encrypt(plaintext),
        )
        session.add(account)
        session.flush()
        return account.id


def test_keys_rotate_and_retire_on_the_embedded_default(migrated_settings: Settings) -> None:
    prepare_data_dir(migrated_settings)
    account_id = _account_with_token(migrated_settings, b"refresh-token")
    running = make_vault(migrated_settings)  # a worker that started before the rotation
    old_key = load_secrets(migrated_settings).encryption_keys

    env = {"WARMLINE_DATA_DIR": str(migrated_settings.data_dir), "PATH": ""}
    cli = [sys.executable, "-m", "server.cli", "keys"]
    out = subprocess.run([*cli, "rotate"], env=env, capture_output=True, text=True, check=True)
    assert "re-encrypted 1 secret" in out.stdout
    new_keys = load_secrets(migrated_settings).encryption_keys
    assert len(new_keys) == 2
    assert new_keys[1:] == old_key

    factory = make_session_factory(make_engine(migrated_settings.effective_database_url))
    with factory() as session:
        ciphertext = session.get(ConnectedAccount, account_id).token_ciphertext
    # The running worker only knew the old key: it re-reads the key file and carries on.
    assert running.decrypt(ciphertext) == b"refresh-token"
    assert Vault(new_keys[:1]).decrypt(ciphertext) == b"refresh-token"

    out = subprocess.run([*cli, "retire"], env=env, capture_output=True, text=True, check=True)
    assert load_secrets(migrated_settings).encryption_keys == new_keys[:1]
    assert make_vault(migrated_settings).decrypt(ciphertext) == b"refresh-token"


def test_retire_refuses_while_an_old_key_is_in_use(
    migrated_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("WARMLINE_ENCRYPTION_KEYS", old)
    settings = Settings(data_dir=migrated_settings.data_dir)
    _account_with_token(settings, b"refresh-token")
    env = {
        "WARMLINE_DATA_DIR": str(settings.data_dir),
        "WARMLINE_ENCRYPTION_KEYS": f"{new},{old}",
        "PATH": "",
    }
    cli = [sys.executable, "-m", "server.cli", "keys"]
    refused = subprocess.run([*cli, "retire"], env=env, capture_output=True, text=True)
    assert refused.returncode != 0
    assert "still use an old key" in refused.stderr
    subprocess.run([*cli, "rotate"], env=env, capture_output=True, text=True, check=True)
    done = subprocess.run([*cli, "retire"], env=env, capture_output=True, text=True, check=True)
    assert "remove them from WARMLINE_ENCRYPTION_KEYS" in done.stdout
    factory = make_session_factory(make_engine(settings.effective_database_url))
    with factory() as session:
        ciphertext = session.query(ConnectedAccount).one().token_ciphertext
    assert Vault([new]).decrypt(ciphertext) == b"refresh-token"
    assert keys.count_stale(factory, vault=Vault([new, old])) == 0
