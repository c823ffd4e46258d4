"""A throwaway certificate authority and a loopback server certificate for the HTTPS listener.

msal refuses an authority that is not `https://` (PROVIDERS.md §5), so the sandbox serves HTTPS
with a certificate signed by a CA it makes itself. Clients trust that CA explicitly:
`requests` with `verify=ca_path` (in a `Session` with `trust_env=False`: this machine sets
REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE, which otherwise override `Session.verify`; PROVIDERS.md §5),
msal with `verify=ca_path`, httplib2 with `ca_certs=ca_path`.

Invariants:
- The server certificate names 127.0.0.1, ::1 and localhost (and the bound host when it is
  another loopback address) as subjectAltNames — Python's `ssl` matches IP SANs only, never CN.
- Files live in `<dir>/tls/`: `ca.pem` (CA cert), `server.pem` (server cert + CA chain),
  `server.key`. An existing set is reused while it is valid for a day more and covers the host,
  so a persistent demo keeps the same `ca.pem` across restarts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_CA_DAYS = 825
_LEAF_DAYS = 397  # what browsers accept for a leaf certificate


@dataclass(frozen=True)
class TLSFiles:
    """Paths of the CA certificate and of the server's certificate chain and key."""

    ca_path: str
    cert_path: str
    key_path: str

    def server_context(self) -> ssl.SSLContext:
        """Return an SSLContext for a server presenting this certificate."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx


def ensure_tls(directory: str | os.PathLike[str], host: str = "127.0.0.1") -> TLSFiles:
    """Return the CA and server certificate under `directory/tls`, making them if needed."""
    folder = Path(directory) / "tls"
    files = TLSFiles(
        ca_path=str(folder / "ca.pem"),
        cert_path=str(folder / "server.pem"),
        key_path=str(folder / "server.key"),
    )
    if _reusable(files, host):
        return files
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Warmline Sandbox CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=_LEAF_DAYS))
        .add_extension(x509.SubjectAlternativeName(_san_entries(host)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    Path(files.ca_path).write_bytes(ca_cert.public_bytes(pem))
    Path(files.cert_path).write_bytes(leaf_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    key_bytes = leaf_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(files.key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_bytes)
    return files


def _san_entries(host: str) -> list[x509.GeneralName]:
    ips = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    # a name such as "localhost" is covered by the DNS entry
    with contextlib.suppress(ValueError):
        ips.add(ipaddress.ip_address(host))
    entries: list[x509.GeneralName] = [x509.DNSName("localhost")]
    entries += [x509.IPAddress(ip) for ip in sorted(ips, key=str)]
    return entries


def _reusable(files: TLSFiles, host: str) -> bool:
    paths = (files.ca_path, files.cert_path, files.key_path)
    if not all(os.path.exists(p) for p in paths):
        return False
    try:
        leaf = x509.load_pem_x509_certificate(Path(files.cert_path).read_bytes())
        ca = x509.load_pem_x509_certificate(Path(files.ca_path).read_bytes())
    except ValueError:
        return False
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    if leaf.not_valid_after_utc < soon or ca.not_valid_after_utc < soon:
        return False
    if leaf.issuer != ca.subject:
        return False
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    try:
        wanted: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        wanted = x509.DNSName(host)
    return wanted in list(sans)
