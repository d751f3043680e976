"""Wool: run ordinary async Python across a peer-to-peer mesh of gRPC workers."""

from typing import TYPE_CHECKING, Any

from wool.contextvar import ContextVar, ContextVarCollision, Token
from wool.credentials import WorkerCredentials, read_secret
from wool.errors import (
    AuthenticationError,
    CredentialsError,
    DispatchTimeout,
    MeshNotRunning,
    NoWorkersAvailable,
    PayloadTooLarge,
    ProtocolError,
    RemoteError,
    RpcError,
    SerializationError,
    UnsupportedArgument,
    WoolError,
    WorkerLost,
    WorkerStartError,
)
from wool.mesh.dispatch import output_handler, set_output_handler
from wool.routine import Routine, routine
from wool.stats import DispatchCounters, LatencySummary, MeshStatistics, PeerStatistics
from wool.task import RemoteTask, RuntimeContext, Task, current_task, timeout

if TYPE_CHECKING:
    from wool.discovery import (
        Discovery,
        DnsDiscovery,
        LanDiscovery,
        LocalDiscovery,
        SeedDiscovery,
    )
    from wool.mesh.pool import WorkerInfo, WorkerPool

    __version__: str  # read on first access (wool.distribution)

__all__ = [
    "AuthenticationError",
    "ContextVar",
    "ContextVarCollision",
    "CredentialsError",
    "Discovery",
    "DispatchCounters",
    "DispatchTimeout",
    "DnsDiscovery",
    "LanDiscovery",
    "LatencySummary",
    "LocalDiscovery",
    "MeshNotRunning",
    "MeshStatistics",
    "NoWorkersAvailable",
    "PayloadTooLarge",
    "PeerStatistics",
    "ProtocolError",
    "RemoteError",
    "RemoteTask",
    "Routine",
    "RpcError",
    "RuntimeContext",
    "SeedDiscovery",
    "SerializationError",
    "Task",
    "Token",
    "UnsupportedArgument",
    "WoolError",
    "WorkerCredentials",
    "WorkerInfo",
    "WorkerLost",
    "WorkerPool",
    "WorkerStartError",
    "current_task",
    "load_ipython_extension",
    "output_handler",
    "read_secret",
    "routine",
    "set_output_handler",
    "timeout",
    "unload_ipython_extension",
]


def __getattr__(name: str) -> Any:
    # The pool is loaded on first use, so worker processes (which never spawn
    # pools) start without it.
    if name in ("WorkerPool", "WorkerInfo"):
        from wool.mesh import pool

        return getattr(pool, name)
    if name in ("Discovery", "DnsDiscovery", "LanDiscovery", "LocalDiscovery", "SeedDiscovery"):
        import wool.discovery

        return getattr(wool.discovery, name)
    if name == "__version__":
        from wool.distribution import version

        globals()["__version__"] = found = version()
        return found
    raise AttributeError(f"module 'wool' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext wool``: the magics and kernel-side mesh live in wool_jupyter."""
    from wool_jupyter.extension import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from wool_jupyter.extension import unload_ipython_extension as unload

    unload(ipython)
