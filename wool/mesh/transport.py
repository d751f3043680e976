"""The one place Wool makes gRPC channels and server ports: plaintext, or TLS with the mesh CA.

With credentials, a channel trusts only the mesh CA and checks the name
``TLS_NAME`` every mesh certificate carries, whatever address it dials; a
port requires a client certificate from the same CA when the credentials are
mutual. Without credentials both are plaintext (loopback meshes). The
options callers pass (keepalive, message sizes) are kept as given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import grpc
import grpc.aio

from wool.credentials import TLS_NAME, WorkerCredentials

Options = Sequence[tuple[str, Any]]

_TLS_SIGNS: Final = (
    "ssl handshake",
    "ssl_error",
    "handshake failed",
    "certificate",
    "tsi_",
    "wrong_version_number",
    "wrong version number",
    "tlsv1",
    "tlsv13",
)


def _secure_options(options: Options) -> tuple[tuple[str, Any], ...]:
    return (*options, ("grpc.ssl_target_name_override", TLS_NAME))


def aio_channel(
    address: str, credentials: WorkerCredentials | None, options: Options = ()
) -> grpc.aio.Channel:
    """An asyncio channel to ``address`` (plaintext when ``credentials`` is None)."""
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=tuple(options))
    return grpc.aio.secure_channel(
        address, credentials.channel_credentials(), options=_secure_options(options)
    )


def sync_channel(
    address: str, credentials: WorkerCredentials | None, options: Options = ()
) -> grpc.Channel:
    """A blocking channel to ``address`` (plaintext when ``credentials`` is None)."""
    if credentials is None:
        return grpc.insecure_channel(address, options=tuple(options))
    return grpc.secure_channel(
        address, credentials.channel_credentials(), options=_secure_options(options)
    )


def add_port(
    server: grpc.Server | grpc.aio.Server, address: str, credentials: WorkerCredentials | None
) -> int:
    """Bind ``address`` on ``server`` (asyncio or threaded); the port it got.

    Raises RuntimeError when gRPC cannot bind, rather than returning port 0.
    """
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials.server_credentials())
    if not port:
        raise RuntimeError(f"wool: cannot listen on {address}")
    return port


def tls_failure(code: grpc.StatusCode | None, details: str | None) -> bool:
    """Whether a failed call's status certainly comes from a TLS handshake that failed.

    gRPC reports those as UNAVAILABLE naming the handshake (another CA, no
    client certificate, TLS to a plaintext port); anything else (refused,
    reset, timed out) is not certain and callers treat it as a lost peer.
    """
    if code != grpc.StatusCode.UNAVAILABLE or not details:
        return False
    text = details.lower()
    return any(sign in text for sign in _TLS_SIGNS)
