"""``wool certs init DIR``: a CA, worker and client certificates and a mesh secret.

Every certificate carries the SAN ``wool-worker`` (``wool.credentials.TLS_NAME``),
which is the name clients verify, plus ``localhost``, ``127.0.0.1`` and any
``hosts`` given. Both certificates may serve and dial (a worker dials its peers
for nested calls with its own). Private keys and the secret are written 0600.
Needs the ``cryptography`` package (``pip install 'wool-jupyter[tls]'``).
Production meshes should use a CA of their own, whose key never sits next to
the workers.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from wool.credentials import TLS_NAME
from wool.errors import CredentialsError

VALID_DAYS: Final = 825
FILES: Final = (
    "ca.pem",
    "ca.key",
    "worker.pem",
    "worker.key",
    "client.pem",
    "client.key",
    "mesh.secret",
)
NOTICE: Final = (
    "wool: these certificates come from a CA made here for a quick start; production "
    "meshes should use their own CA and keep its key (ca.key) away from the workers"
)


def _crypto() -> Any:
    try:
        from cryptography import x509
    except ImportError:
        raise CredentialsError(
            "wool certs init needs the cryptography package: pip install 'wool-jupyter[tls]'"
        ) from None
    return x509


def _write(path: Path, data: bytes, private: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    if private:
        os.chmod(path, 0o600)  # also when the file already existed with wider rights


def _names(hosts: Iterable[str]) -> list[Any]:
    from cryptography import x509

    names: list[Any] = []
    seen: set[str] = set()
    for host in (TLS_NAME, "localhost", "127.0.0.1", *hosts):
        if host in seen:
            continue
        seen.add(host)
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def init(directory: Path, *, hosts: Iterable[str] = ()) -> dict[str, Path]:
    """Write a fresh CA, a worker and a client key pair, and a mesh secret into ``directory``.

    Returns the paths by file name (``FILES``). Existing files of those names
    are replaced. Prints ``NOTICE`` to stderr.
    """
    x509 = _crypto()
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=VALID_DAYS)

    def name(common: str) -> Any:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def key_pem(key: Any) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("wool mesh CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
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

    def leaf(common: str) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(common))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)

    worker_pem, worker_key = leaf("wool worker")
    client_pem, client_key = leaf("wool client")
    contents = {
        "ca.pem": (ca_cert.public_bytes(serialization.Encoding.PEM), False),
        "ca.key": (key_pem(ca_key), True),
        "worker.pem": (worker_pem, False),
        "worker.key": (worker_key, True),
        "client.pem": (client_pem, False),
        "client.key": (client_key, True),
        "mesh.secret": (os.urandom(32).hex().encode() + b"\n", True),
    }
    paths: dict[str, Path] = {}
    for file, (data, private) in contents.items():
        paths[file] = path = directory / file
        _write(path, data, private)
    print(NOTICE, file=sys.stderr)
    return paths
