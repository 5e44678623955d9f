"""The local certificate authority of `waybill up --tls` / `waybill nats --tls`.

It lives in ``<state folder>/nats/tls``: ``ca.pem`` and ``ca.key``, the
server's ``server.pem`` / ``server.key`` and, with mutual TLS, one
``clients/<identity>.pem`` / ``.key`` per identity. Keys are written 0600.
Files that are present and still valid (signed by the CA, not about to
expire, naming the server's hosts) are reused, so a client that trusts the CA
keeps trusting it across runs. The client side (a connection's SSLContext,
what a TLS failure means) is :mod:`waybill_runtime.security.tls`.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 397
# A certificate this close to its end is replaced rather than reused.
RENEW_BEFORE = datetime.timedelta(days=30)


def tls_folder(state_dir: Path) -> Path:
    return state_dir / "nats" / "tls"


@dataclass(frozen=True)
class LocalPki:
    """The files of the local CA in ``folder``."""

    folder: Path

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def ca_key_file(self) -> Path:
        return self.folder / "ca.key"

    @property
    def server_cert_file(self) -> Path:
        return self.folder / "server.pem"

    @property
    def server_key_file(self) -> Path:
        return self.folder / "server.key"

    def client_cert_file(self, identity: str) -> Path:
        return self.folder / "clients" / f"{identity}.pem"

    def client_key_file(self, identity: str) -> Path:
        return self.folder / "clients" / f"{identity}.key"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by the owner only (0600), replacing ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _key_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load(cert_file: Path, key_file: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The certificate and its key; ValueError when either is missing, unreadable or mismatched."""
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(str(error)) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("not an EC key")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
        raise ValueError("key does not match certificate")
    if cert.not_valid_after_utc - RENEW_BEFORE < _now():
        raise ValueError("expires soon")
    return cert, key


def _san(hosts: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _ensure_ca(pki: LocalPki) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert, key = _load(pki.ca_file, pki.ca_key_file)
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return cert, key
    except (ValueError, x509.ExtensionNotFound):
        pass
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Waybill local CA")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(pki.ca_key_file, _key_bytes(key))
    _write_public(pki.ca_file, cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _ensure_leaf(
    cert_file: Path,
    key_file: Path,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    *,
    common_name: str,
    hosts: Iterable[str] = (),
    server: bool,
) -> None:
    ca_cert, ca_key = ca
    wanted = _san(hosts)
    try:
        cert, _ = _load(cert_file, key_file)
        cert.verify_directly_issued_by(ca_cert)
        present = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        if set(wanted) <= present:
            return
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        pass
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName(wanted or [x509.DNSName(common_name)]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_private(key_file, _key_bytes(key))
    _write_public(cert_file, cert.public_bytes(serialization.Encoding.PEM))


def ensure_local_pki(
    state_dir: Path, *, hosts: Iterable[str], clients: Iterable[str] = ()
) -> LocalPki:
    """The local CA, a server certificate for ``hosts`` and a client certificate per identity.

    Valid files already in the state folder are reused; anything missing,
    unreadable, mismatched or about to expire is made anew (a new CA means new
    certificates for everything it signs).
    """
    pki = LocalPki(tls_folder(state_dir))
    pki.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca = _ensure_ca(pki)
    every_host = ["127.0.0.1", "localhost", *hosts]
    _ensure_leaf(
        pki.server_cert_file,
        pki.server_key_file,
        ca,
        common_name="waybill-nats",
        hosts=[h for h in every_host if h not in ("0.0.0.0", "::")],
        server=True,
    )
    for identity in clients:
        _ensure_leaf(
            pki.client_cert_file(identity),
            pki.client_key_file(identity),
            ca,
            common_name=identity,
            server=False,
        )
    return pki


def server_tls_block(pki: LocalPki, *, verify_clients: bool) -> str:
    """The nats-server ``tls { ... }`` block; ``verify_clients`` asks every client for a cert."""
    lines = [
        "tls {",
        f"  cert_file: {_quoted(pki.server_cert_file)}",
        f"  key_file: {_quoted(pki.server_key_file)}",
        f"  ca_file: {_quoted(pki.ca_file)}",
        f"  verify: {'true' if verify_clients else 'false'}",
        # The server's default is short for a handshake on a busy laptop.
        "  timeout: 5",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _quoted(path: Path) -> str:
    return json.dumps(str(path))
