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
_SETTLED: Final = (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE)


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


async def settled(channel: grpc.aio.Channel) -> None:
    """Wait until ``channel`` is connected or its connection attempt failed.

    Unlike ``channel_ready()``, which retries a failing handshake until the
    caller's timeout, this returns at the first failure; the next call on the
    channel then fails at once with gRPC's reason (see ``refusal``).
    """
    state = channel.get_state(try_to_connect=True)
    while state not in _SETTLED:
        await channel.wait_for_state_change(state)
        state = channel.get_state(try_to_connect=True)


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


def refusal(
    code: grpc.StatusCode | None, details: str | None, credentials: WorkerCredentials | None
) -> str | None:
    """Why a peer's transport refused us, when a failed call's status says so for certain.

    gRPC reports a failed TLS handshake as UNAVAILABLE naming it (another
    CA, TLS to a plaintext port). A peer that accepts the TCP connection and
    closes it before HTTP/2 starts ("Socket closed" while connecting) is a
    TLS server that refused the handshake: a Wool worker closes a fresh
    connection for no other reason. None for everything else (refused,
    reset, timed out): callers treat that as a lost peer.
    """
    if code != grpc.StatusCode.UNAVAILABLE or not details:
        return None
    text = details.lower()
    if "handshake failed" in text or "ssl_error" in text or "tsi_" in text:
        if "wrong_version_number" in text and credentials is not None:
            return f"it does not speak TLS (is it a plaintext worker?): {details}"
        return f"the TLS handshake failed (a certificate from another CA?): {details}"
    if "failed to connect" in text and "socket closed" in text:
        if credentials is None:
            return (
                "it closed the connection when we spoke plaintext: it serves TLS, so "
                "give credentials= (wool.WorkerCredentials)"
            )
        if not credentials.mutual:
            return "it closed the TLS connection: it requires a client certificate (mutual=True)"
        return "it closed the TLS connection: it did not accept our client certificate"
    return None


def tls_failure(code: grpc.StatusCode | None, details: str | None) -> bool:
    """Whether a failed call's status certainly comes from a refused TLS handshake.

    Kept for callers that only need yes or no; ``refusal`` also says why.
    A plaintext caller's "Socket closed" counts only there, where the caller's
    own credentials are known.
    """
    text = (details or "").lower()
    return code == grpc.StatusCode.UNAVAILABLE and (
        "handshake failed" in text or "ssl_error" in text or "tsi_" in text
    )
