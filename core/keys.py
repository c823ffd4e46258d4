"""Re-encrypt every stored secret under the newest vault key (`warmline keys rotate`).

Rows are processed in small committed batches, so workers keep running throughout: every
process already knows both the old and the new key (see core/vault.py for the procedure).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.db import transaction
from core.models import ConnectedAccount, OAuthRequest
from core.vault import Vault

BATCH = 200


def rotate_all(factory: sessionmaker[Session], *, vault: Vault) -> int:
    """Re-encrypt every stored secret not yet under the newest key; return how many."""
    rotated = 0
    for model, column in (
        (ConnectedAccount, ConnectedAccount.token_ciphertext),
        (OAuthRequest, OAuthRequest.payload_ciphertext),
    ):
        pk = model.__mapper__.primary_key[0]
        last = None
        while True:
            with transaction(factory) as session:
                query = select(model).where(column.is_not(None)).order_by(pk).limit(BATCH)
                if last is not None:
                    query = query.where(pk > last)
                rows = list(session.scalars(query))
                for row in rows:
                    value = getattr(row, column.key)
                    if not vault.is_current(value):
                        setattr(row, column.key, vault.rotate(value))
                        rotated += 1
            if len(rows) < BATCH:
                break
            last = getattr(rows[-1], pk.key)
    return rotated


def count_stale(factory: sessionmaker[Session], *, vault: Vault) -> int:
    """How many stored secrets are not under the newest key."""
    stale = 0
    with factory() as session:
        for column in (ConnectedAccount.token_ciphertext, OAuthRequest.payload_ciphertext):
            for value in session.scalars(select(column).where(column.is_not(None))):
                stale += not vault.is_current(value)
    return stale


def write_key_file(path: Path, keys: list[str]) -> None:
    """Atomically replace the embedded key file (mode 0600)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".keys-")
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(",".join(keys))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")
