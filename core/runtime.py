"""Process start-up: the data directory and the embedded defaults' secrets.

On the embedded default nobody has to invent keys: the first start generates a session-signing
key and a Fernet key into `<data_dir>/keys` (mode 0600) and every later start, in every process,
reads the same files. A production deployment sets `WARMLINE_SECRET_KEY` and
`WARMLINE_ENCRYPTION_KEYS` instead and no file is written.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet

from core.settings import Settings
from core.vault import Vault


@dataclass(frozen=True)
class Secrets:
    secret_key: str = field(repr=False)
    encryption_keys: tuple[str, ...] = field(repr=False)  # newest first


def prepare_data_dir(settings: Settings) -> None:
    """Create the directories the embedded database, broker and result store write into."""
    for path in (settings.data_dir, settings.keys_dir):
        path.mkdir(parents=True, exist_ok=True)
    if settings.effective_broker_url.startswith("filesystem://"):
        for sub in ("queue", "control"):
            (settings.broker_dir / sub).mkdir(parents=True, exist_ok=True)
    backend = settings.effective_result_backend
    if backend.startswith("file://"):
        Path(backend.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    os.chmod(settings.keys_dir, 0o700)


def load_secrets(settings: Settings) -> Secrets:
    """Return the configured secrets, generating the embedded defaults on first use."""
    if settings.secret_key is not None:
        secret_key = settings.secret_key.get_secret_value()
    else:
        secret_key = _read_or_create(settings.keys_dir / "secret_key", secrets.token_urlsafe(48))
    if settings.encryption_keys is not None:
        raw = settings.encryption_keys.get_secret_value()
    else:
        raw = _read_or_create(
            settings.keys_dir / "encryption_keys", Fernet.generate_key().decode("ascii")
        )
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    if not keys:
        raise ValueError("WARMLINE_ENCRYPTION_KEYS holds no key")
    for key in keys:
        Fernet(key.encode("ascii"))  # raises a clear ValueError on a malformed key
    return Secrets(secret_key=secret_key, encryption_keys=keys)


def _read_or_create(path: Path, fresh: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: when several processes start at once, exactly one writes the file.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(fresh)
    return fresh


def make_vault(settings: Settings) -> Vault:
    """The token vault; on the embedded default it re-reads the key file after a rotation."""
    keys = load_secrets(settings).encryption_keys
    if settings.encryption_keys is not None:
        return Vault(keys)
    return Vault(keys, reload=lambda: load_secrets(settings).encryption_keys)
