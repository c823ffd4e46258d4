"""RSA signing keys for the sandbox's identity providers.

One `SigningKey` per provider signs id_tokens (and Microsoft's JWT access tokens) with RS256 and
publishes its public half in the two shapes the real providers use:

- `jwks()` → `{"keys": [{kty, use, alg, kid, n, e, x5c, x5t}]}`, as served by Google's
  `/oauth2/v3/certs` (https://www.googleapis.com/oauth2/v3/certs) and Microsoft's
  `/{tenant}/discovery/v2.0/keys`
  (https://learn.microsoft.com/entra/identity-platform/access-tokens#validate-the-signature).
- `x509_certs()` → `{kid: PEM certificate}`, as served by Google's `/oauth2/v1/certs`; this is the
  shape `google.oauth2.id_token.verify_token(..., certs_url=...)` expects (PROVIDERS.md §7.1).

Invariants: the `kid` is the key's RFC 7638 JWK thumbprint (hex), so it is stable for a key and
changes with it; with a `data_dir` the key and its certificate are persisted there and reloaded,
so tokens signed before a restart still verify after it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

_KEY_SIZE = 2048
_CERT_DAYS = 3650


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class SigningKey:
    """An RSA key pair with a self-signed certificate, used to sign and publish JWTs."""

    def __init__(self, private_key: rsa.RSAPrivateKey, certificate: x509.Certificate) -> None:
        self.private_key = private_key
        self.public_key = private_key.public_key()
        self.certificate = certificate
        numbers = self.public_key.public_numbers()
        self._n = _b64url_uint(numbers.n)
        self._e = _b64url_uint(numbers.e)
        # RFC 7638 thumbprint: SHA-256 of the required members in lexicographic order.
        canonical = json.dumps(
            {"e": self._e, "kty": "RSA", "n": self._n}, separators=(",", ":"), sort_keys=True
        )
        self.kid = hashlib.sha256(canonical.encode("ascii")).hexdigest()[:40]

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def generate(cls, name: str = "sandbox") -> SigningKey:
        """Make a fresh 2048-bit key and a self-signed certificate for it."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)
        return cls(key, _self_signed(key, name))

    @classmethod
    def load_or_create(cls, data_dir: str | os.PathLike[str] | None, name: str) -> SigningKey:
        """Load `<data_dir>/keys/<name>.*.pem`, or make and save them; no data_dir → ephemeral."""
        if data_dir is None:
            return cls.generate(name)
        folder = Path(data_dir) / "keys"
        key_path = folder / f"{name}.key.pem"
        cert_path = folder / f"{name}.cert.pem"
        if key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError(f"{key_path} is not an RSA private key")
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            return cls(key, cert)
        signing_key = cls.generate(name)
        folder.mkdir(parents=True, exist_ok=True)
        _write_private(key_path, signing_key.private_pem())
        cert_path.write_bytes(signing_key.certificate.public_bytes(serialization.Encoding.PEM))
        return signing_key

    # -- signing ------------------------------------------------------------------------------

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        """Return an RS256 JWT of `claims` whose header names this key's kid."""
        header = {"kid": self.kid, "typ": "JWT", **(headers or {})}
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers=header)

    def verify(self, token: str, **options: Any) -> dict[str, Any]:
        """Decode a JWT this key signed; `options` go to `jwt.decode` (audience, issuer, ...).

        Raises jwt.PyJWTError when the signature, expiry or a requested claim check fails.
        """
        options.setdefault("algorithms", ["RS256"])
        if "audience" not in options:
            options.setdefault("options", {}).setdefault("verify_aud", False)
        return jwt.decode(token, self.public_key, **options)  # type: ignore[no-any-return]

    # -- publishing ---------------------------------------------------------------------------

    def jwk(self) -> dict[str, Any]:
        """Return the public key as a JWK (with the x5c chain Microsoft also publishes)."""
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": self._n,
            "e": self._e,
            "x5c": [base64.b64encode(der).decode("ascii")],
            "x5t": base64.urlsafe_b64encode(hashlib.sha1(der).digest())  # noqa: S324 - x5t is SHA-1 by spec
            .rstrip(b"=")
            .decode("ascii"),
        }

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """Return `{"keys": [jwk]}`."""
        return {"keys": [self.jwk()]}

    def x509_certs(self) -> dict[str, str]:
        """Return `{kid: PEM certificate}` (Google's /oauth2/v1/certs shape)."""
        pem = self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
        return {self.kid: pem}

    def public_pem(self) -> str:
        """Return the public key as PEM (SubjectPublicKeyInfo)."""
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    def private_pem(self) -> bytes:
        """Return the private key as unencrypted PKCS#8 PEM (sandbox only)."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"


def _self_signed(key: rsa.RSAPrivateKey, name: str) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} signing key")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=_CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
