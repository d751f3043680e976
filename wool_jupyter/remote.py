"""What ``%wool connect`` joins: a remote mesh reached through seed addresses.

:class:`RemoteMesh` holds the arguments as the user gave them and turns them
into the ``wool.WorkerPool`` the runtime's contract describes for a mesh of
durable workers: ``WorkerPool(discovery=SeedDiscovery(addresses),
credentials=WorkerCredentials.from_files(...), secret=...)``. Such a pool
spawns nothing and stops nothing: leaving it (``%wool disconnect``) closes
this kernel's connections and leaves the workers running for their other users.

Files are read when the pool is made, so a missing or unreadable file is a
``wool.CredentialsError`` naming it, before anything is dialled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import wool

__all__ = ["RemoteMesh"]


@dataclass(frozen=True)
class RemoteMesh:
    """Seed addresses, and the files that prove this kernel belongs to their mesh.

    TLS needs all three of ``ca``, ``cert`` and ``key`` (mutual TLS) or none
    (a mesh on loopback without TLS). ``secret_file`` holds the mesh secret.
    """

    addresses: tuple[str, ...]
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    secret_file: str | None = None

    def __post_init__(self) -> None:
        if not self.addresses:
            raise ValueError("give at least one address of a peer (host:port)")
        for address in self.addresses:
            host, sep, port = address.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"{address!r} is not host:port")
        given = [name for name in ("ca", "cert", "key") if getattr(self, name) is not None]
        if given and len(given) != 3:
            missing = sorted({"ca", "cert", "key"} - set(given))
            raise ValueError(
                "mutual TLS needs --tls-ca, --tls-cert and --tls-key together; missing "
                + ", ".join(f"--tls-{m}" for m in missing)
            )

    @property
    def tls(self) -> bool:
        return self.ca is not None

    def describe(self) -> str:
        how = "mutual TLS" if self.tls else "no TLS"
        return f"remote mesh via {', '.join(self.addresses)} ({how})"

    def secret(self) -> bytes | None:
        """The mesh secret from ``secret_file``, read as ``wool worker --secret-file`` reads it."""
        if self.secret_file is None:
            return None
        return wool.read_secret(self.secret_file)

    def credentials(self) -> wool.WorkerCredentials | None:
        """``wool.WorkerCredentials`` from the three files, or ``None`` without TLS."""
        if not self.tls:
            return None
        ca, cert, key = self.ca, self.cert, self.key
        assert ca is not None and cert is not None and key is not None
        for path, what in ((ca, "CA certificate"), (cert, "certificate"), (key, "private key")):
            _read(path, what)
        return wool.WorkerCredentials.from_files(ca_path=ca, key_path=key, cert_path=cert)

    def pool(self, *, start_timeout: float) -> wool.WorkerPool:
        """A durable ``wool.WorkerPool`` that finds its workers through the seed addresses."""
        return wool.WorkerPool(
            discovery=wool.SeedDiscovery(list(self.addresses)),
            credentials=self.credentials(),
            secret=self.secret(),
            start_timeout=start_timeout,
        )


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise wool.CredentialsError(
            f"cannot read the {what} {path}: {exc.strerror or exc}"
        ) from None
