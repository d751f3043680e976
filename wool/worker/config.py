"""What a durable worker (``wool worker``) is told to be, checked before anything binds.

``WorkerConfig`` is built from the command line in two steps: ``resolve``
checks every flag and the security policy without touching the files it
names (so ``--dry-run`` works on a machine where the certificates are not
mounted yet), and ``load`` reads the mesh secret and the TLS material.
Nothing secret ever appears in ``describe()`` or ``repr``.

The policy: a worker that listens beyond loopback needs mutual TLS and the
mesh secret, because anyone who can dispatch to it runs code as its user;
``--insecure`` lifts the TLS requirement and is warned about on every start.
Every worker needs the mesh secret: it is how callers and peers prove they
may dispatch (SECURITY.md).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from wool.credentials import WorkerCredentials, checked_secret
from wool.credentials import read_secret as read_secret_file
from wool.errors import CredentialsError, WoolError

SECRET_ENV: Final = "WOOL_SECRET"
DEFAULT_DRAIN_GRACE: Final = 10.0
"""Seconds a SIGTERM'd durable worker lets in-flight calls finish before cancelling them."""


class WorkerConfigError(WoolError, ValueError):
    """A ``wool worker`` flag, or a file it names, is unusable; the message says which and why."""


@dataclass(frozen=True)
class WorkerConfig:
    """A durable worker's resolved settings.

    ``listen`` is the bind address (``host:port``, port 0 for any free port);
    ``advertise`` the address peers dial (empty: derived from ``listen`` once
    bound). ``seeds`` are ``--join`` addresses (``host:port`` or
    ``dns:NAME:PORT``), ``discovery`` is ``""``, ``"lan"`` or
    ``"local:NAMESPACE"``. ``secret`` and ``credentials`` are filled by
    ``load()``; until then only where they come from is known.
    """

    listen: str
    id: str = ""
    advertise: str = ""
    tags: tuple[str, ...] = ()
    seeds: tuple[str, ...] = ()
    discovery: str = ""
    secret_file: Path | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure: bool = False
    drain_grace: float = DEFAULT_DRAIN_GRACE
    ready_file: Path | None = None
    secret: bytes | None = field(default=None, repr=False)
    credentials: Any = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return split_address(self.listen, allow_zero=True)[0]

    @property
    def port(self) -> int:
        return split_address(self.listen, allow_zero=True)[1]

    @property
    def tls(self) -> bool:
        return self.tls_ca is not None

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def warnings(self) -> list[str]:
        """What ``--insecure`` gives up; logged on every start and shown by ``--dry-run``."""
        if self.insecure and not self.loopback and not self.tls:
            return [
                f"--insecure: listening on {self.listen} without TLS: anyone who can reach "
                "this port and read its traffic can capture the handshake and run code on "
                "this machine; use only on a network you trust completely"
            ]
        return []

    def describe(self) -> dict[str, Any]:
        """The configuration as JSON-ready data, with no secret or key material in it."""
        if self.secret_file is not None:
            secret: Any = {"file": str(self.secret_file)}
        elif self.secret is not None or os.environ.get(SECRET_ENV):
            secret = {"env": SECRET_ENV, "value": "<set>"}
        else:
            secret = None
        tls = None
        if self.tls:
            tls = {
                "ca": str(self.tls_ca),
                "cert": str(self.tls_cert),
                "key": str(self.tls_key),
                "mutual": True,
            }
        return {
            "id": self.id or f"{socket.gethostname()}-<pid>",
            "listen": self.listen,
            "advertise": self.advertise or self._default_advertise(),
            "tags": list(self.tags),
            "join": list(self.seeds),
            "discovery": self.discovery or None,
            "secret": secret,
            "tls": tls,
            "insecure": self.insecure,
            "drain_grace": self.drain_grace,
            "ready_file": str(self.ready_file) if self.ready_file else None,
            "warnings": self.warnings(),
        }

    def _default_advertise(self) -> str:
        host = socket.gethostname() if is_wildcard(self.host) else self.host
        return join_address(host, self.port) if self.port else f"{host}:<bound port>"

    def load(self) -> WorkerConfig:
        """Read the secret and the TLS material; ``WorkerConfigError`` says what is missing."""
        if self.secret_file is not None:
            secret = read_secret(self.secret_file)
        elif os.environ.get(SECRET_ENV):
            secret = _long_enough(os.environ[SECRET_ENV].strip().encode(), SECRET_ENV)
        else:
            raise WorkerConfigError(_NO_SECRET)
        credentials = None
        if self.tls:
            try:
                credentials = WorkerCredentials.from_files(
                    ca_path=str(self.tls_ca),
                    key_path=str(self.tls_key),
                    cert_path=str(self.tls_cert),
                    mutual=True,
                )
            except OSError as exc:
                raise WorkerConfigError(f"cannot read TLS material: {exc}") from exc
            except WoolError as exc:
                raise WorkerConfigError(f"unusable TLS material: {exc}") from exc
        worker_id = self.id or f"{socket.gethostname()}-{os.getpid()}"
        return dataclasses.replace(self, id=worker_id, secret=secret, credentials=credentials)


_NO_SECRET: Final = (
    "no mesh secret: pass --secret-file FILE (`wool certs init DIR` writes DIR/mesh.secret) "
    f"or set {SECRET_ENV}; callers and peers need the same secret"
)


def read_secret(path: Path) -> bytes:
    """``wool.read_secret``, with its error as a WorkerConfigError."""
    try:
        return read_secret_file(path)
    except CredentialsError as exc:
        raise WorkerConfigError(f"--secret-file: {exc}") from exc


def _long_enough(secret: bytes, where: str) -> bytes:
    try:
        return checked_secret(secret, where)
    except CredentialsError as exc:
        raise WorkerConfigError(str(exc)) from exc


def resolve(
    *,
    listen: str,
    worker_id: str = "",
    advertise: str = "",
    tags: list[str] | tuple[str, ...] = (),
    seeds: list[str] | tuple[str, ...] = (),
    discovery: str = "",
    secret_file: str | Path | None = None,
    tls_ca: str | Path | None = None,
    tls_cert: str | Path | None = None,
    tls_key: str | Path | None = None,
    insecure: bool = False,
    drain_grace: float = DEFAULT_DRAIN_GRACE,
    ready_file: str | Path | None = None,
) -> WorkerConfig:
    """Check every setting and the security policy; files are named, not read."""
    split_address(listen, what="--listen", allow_zero=True)
    if advertise:
        split_address(advertise, what="--advertise")
    for seed in seeds:
        check_seed(seed)
    for tag in tags:
        if not tag.strip():
            raise WorkerConfigError("--tag must not be empty")
    if discovery and discovery != "lan":
        kind, _, namespace = discovery.partition(":")
        if kind != "local" or not namespace:
            raise WorkerConfigError(
                f"--discovery {discovery!r}: expected 'lan' or 'local:NAMESPACE'"
            )
    tls = [tls_ca, tls_cert, tls_key]
    if any(tls) and not all(tls):
        raise WorkerConfigError(
            "--tls-ca, --tls-cert and --tls-key go together (mutual TLS needs all three)"
        )
    if not drain_grace >= 0:
        raise WorkerConfigError(f"--drain-grace must be >= 0 seconds, not {drain_grace}")
    host = split_address(listen, allow_zero=True)[0]
    if not is_loopback(host) and not insecure:
        missing = []
        if not all(tls):
            missing.append("mutual TLS (--tls-ca, --tls-cert, --tls-key)")
        if secret_file is None and not os.environ.get(SECRET_ENV):
            missing.append(f"the mesh secret (--secret-file or {SECRET_ENV})")
        if missing:
            raise WorkerConfigError(
                f"refusing to listen on {listen} without {' and '.join(missing)}: a worker runs "
                "any code its callers send. Make certificates and a secret with "
                "`wool certs init DIR`, or pass --insecure on a network you trust completely"
            )
    return WorkerConfig(
        listen=listen,
        id=worker_id,
        advertise=advertise,
        tags=tuple(tags),
        seeds=tuple(seeds),
        discovery=discovery,
        secret_file=_path(secret_file),
        tls_ca=_path(tls_ca),
        tls_cert=_path(tls_cert),
        tls_key=_path(tls_key),
        insecure=insecure,
        drain_grace=drain_grace,
        ready_file=_path(ready_file),
    )


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


def split_address(
    address: str, *, what: str = "address", allow_zero: bool = False
) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` as (host, port); ``WorkerConfigError`` otherwise."""
    host, sep, port_text = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # an unbracketed IPv6 address: ambiguous
    if not sep or not host or not port_text.isdigit():
        raise WorkerConfigError(
            f"{what} {address!r}: expected HOST:PORT (e.g. 0.0.0.0:7700, [::1]:7700)"
        )
    port = int(port_text)
    if not (0 if allow_zero else 1) <= port <= 65535:
        raise WorkerConfigError(f"{what} {address!r}: port out of range")
    return host, port


def join_address(host: str, port: int) -> str:
    """The inverse of ``split_address`` (IPv6 hosts get brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_seed(seed: str) -> None:
    """A ``--join`` value: ``host:port`` or ``dns:NAME:PORT``."""
    if seed.startswith("dns:"):
        split_address(seed[4:], what="--join dns:NAME:PORT")
    else:
        split_address(seed, what="--join")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (``[::1]`` brackets allowed) is reachable from this machine only."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::", "")
