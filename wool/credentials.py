"""Mutual-TLS credentials for a mesh: one CA, and a key and certificate per process.

Membership of a mesh is holding a certificate signed by its CA plus the mesh
secret. Certificates name the mesh, not a host: every one carries the SAN
``TLS_NAME`` and every client verifies that name (``wool.mesh.transport``),
so any address a peer advertises checks out against the mesh CA, whether it
is a container IP, a NAT address or a DNS name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import grpc

from wool.errors import CredentialsError

TLS_NAME: Final = "wool-worker"
MIN_SECRET: Final = 16
"""Fewest bytes a mesh secret may have."""


def checked_secret(secret: bytes, where: str) -> bytes:
    """``secret`` if it is long enough to be a mesh secret; CredentialsError naming ``where``."""
    if len(secret) < MIN_SECRET:
        raise CredentialsError(
            f"{where} holds {len(secret)} bytes; a mesh secret needs at least {MIN_SECRET}"
        )
    return secret


def read_secret(path: str | Path) -> bytes:
    """The mesh secret in a file, as ``wool worker --secret-file`` reads it.

    The file's bytes with trailing whitespace (a newline) removed: the same
    bytes as ``WOOL_SECRET`` holding the file's text, so either source works
    with the same secret. Raises CredentialsError when it is unreadable or short.
    """
    path = Path(path).expanduser()
    try:
        secret = path.read_bytes().rstrip()
    except OSError as exc:
        raise CredentialsError(f"cannot read the mesh secret {path}: {exc.strerror}") from exc
    return checked_secret(secret, f"the mesh secret file {path}")


"""The name every mesh certificate carries and every client checks."""


def _pem(data: bytes, what: str, marker: bytes) -> bytes:
    if not isinstance(data, bytes):
        raise CredentialsError(f"WorkerCredentials: {what} must be PEM bytes, not {type(data)}")
    if b"-----BEGIN " not in data or marker not in data:
        raise CredentialsError(
            f"WorkerCredentials: {what} is not a PEM {marker.decode()} "
            "(expected text starting with '-----BEGIN')"
        )
    return data


@dataclass(frozen=True)
class WorkerCredentials:
    """The CA certificate, this process's private key and its certificate, all PEM.

    ``mutual=True`` (the default) makes a server require a client certificate
    from the same CA and a client present its own; with ``mutual=False`` a
    server accepts any client (the mesh secret still has to be proved) and a
    client only checks the server. A worker uses the same pair to serve and,
    for nested calls, to dial its peers. Malformed input raises
    ``CredentialsError`` here, before anything listens or dials.
    """

    ca: bytes
    key: bytes
    cert: bytes
    mutual: bool = True

    def __post_init__(self) -> None:
        _pem(self.ca, "ca", b"CERTIFICATE")
        _pem(self.key, "key", b"PRIVATE KEY")
        _pem(self.cert, "cert", b"CERTIFICATE")
        if not isinstance(self.mutual, bool):
            raise CredentialsError(f"WorkerCredentials: mutual must be a bool, not {self.mutual!r}")

    @classmethod
    def from_files(
        cls,
        *,
        ca_path: str | Path,
        key_path: str | Path,
        cert_path: str | Path,
        mutual: bool = True,
    ) -> WorkerCredentials:
        """Read the three PEM files (``wool certs init DIR`` makes a set for a quick start)."""
        data = {}
        for name, path in (("ca_path", ca_path), ("key_path", key_path), ("cert_path", cert_path)):
            try:
                data[name] = Path(path).read_bytes()
            except OSError as exc:
                raise CredentialsError(
                    f"WorkerCredentials.from_files: cannot read {name}={str(path)!r}: "
                    f"{exc.strerror or exc}"
                ) from None
        return cls(data["ca_path"], data["key_path"], data["cert_path"], mutual)

    def server_credentials(self) -> grpc.ServerCredentials:
        """For a server port: our certificate; client certificates from the CA when mutual."""
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)],
            root_certificates=self.ca,
            require_client_auth=self.mutual,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """For a channel: trust only the mesh CA; present our certificate when mutual."""
        if not self.mutual:
            return grpc.ssl_channel_credentials(root_certificates=self.ca)
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )

    def to_config(self) -> dict[str, Any]:
        """A JSON-safe form, for a spawned worker's stdin config (never its command line)."""
        return {
            "ca": self.ca.decode(),
            "key": self.key.decode(),
            "cert": self.cert.decode(),
            "mutual": self.mutual,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> WorkerCredentials:
        return cls(
            config["ca"].encode(),
            config["key"].encode(),
            config["cert"].encode(),
            bool(config.get("mutual", True)),
        )

    def __repr__(self) -> str:  # never print the private key
        return f"WorkerCredentials(mutual={self.mutual})"
