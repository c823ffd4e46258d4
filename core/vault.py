"""Token vault: refresh tokens and msal caches encrypted at rest with Fernet (AES-128-CBC +
HMAC-SHA256, from `cryptography`).

Keys come from configuration, newest first (`MultiFernet`): the newest encrypts, every listed key
decrypts. Rotation without downtime:

1. a new key is put first (env `WARMLINE_ENCRYPTION_KEYS`, or `warmline keys rotate` writes it to
   the embedded key file) — every process can still decrypt everything;
2. `warmline keys rotate` re-encrypts every stored secret under the newest key;
3. old keys are dropped once no process needs them (`warmline keys retire`).

On the embedded default a process that meets ciphertext it cannot read re-reads the key file
once, so a rotation done by the CLI reaches running workers without a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class VaultError(Exception):
    """A secret could not be decrypted with any configured key."""


class Vault:
    def __init__(
        self, keys: Sequence[str], *, reload: Callable[[], Sequence[str]] | None = None
    ) -> None:
        self._reload = reload
        self._set_keys(keys)

    def _set_keys(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("the vault needs at least one key")
        self._keys = tuple(keys)
        self._fernet = MultiFernet([Fernet(k.encode("ascii")) for k in self._keys])

    def encrypt(self, plaintext: bytes) -> bytes:
        """Encrypt under the newest key."""
        return self._fernet.encrypt(plaintext)

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Decrypt with any configured key; raise VaultError if none fits."""
        try:
            return self._fernet.decrypt(ciphertext)
        except InvalidToken:
            if self._reload is not None and self._refresh_keys():
                return self.decrypt(ciphertext)
            raise VaultError("ciphertext does not decrypt under any configured key") from None

    def rotate(self, ciphertext: bytes) -> bytes:
        """Re-encrypt under the newest key (a no-op in meaning: the plaintext is unchanged)."""
        try:
            return self._fernet.rotate(ciphertext)
        except InvalidToken:
            raise VaultError("ciphertext does not decrypt under any configured key") from None

    def is_current(self, ciphertext: bytes) -> bool:
        """True when `ciphertext` is already encrypted under the newest key."""
        try:
            Fernet(self._keys[0].encode("ascii")).decrypt(ciphertext)
        except InvalidToken:
            return False
        return True

    def _refresh_keys(self) -> bool:
        assert self._reload is not None
        fresh = tuple(self._reload())
        if fresh == self._keys:
            return False
        self._set_keys(fresh)
        return True
