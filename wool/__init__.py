"""Wool: run ordinary async Python across a peer-to-peer mesh of gRPC workers."""

from wool.errors import (
    AuthenticationError,
    DispatchTimeout,
    MeshNotRunning,
    NoWorkersAvailable,
    ProtocolError,
    RemoteError,
    RpcError,
    SerializationError,
    WoolError,
    WorkerLost,
    WorkerStartError,
)
from wool.mesh.pool import WorkerInfo, WorkerPool
from wool.routine import Routine, routine
from wool.stats import DispatchCounters, LatencySummary, MeshStatistics, PeerStatistics
from wool.task import RemoteTask, current_task, timeout

__all__ = [
    "AuthenticationError",
    "DispatchCounters",
    "DispatchTimeout",
    "LatencySummary",
    "MeshNotRunning",
    "MeshStatistics",
    "NoWorkersAvailable",
    "PeerStatistics",
    "ProtocolError",
    "RemoteError",
    "RemoteTask",
    "Routine",
    "RpcError",
    "SerializationError",
    "WoolError",
    "WorkerInfo",
    "WorkerLost",
    "WorkerPool",
    "WorkerStartError",
    "current_task",
    "routine",
    "timeout",
]
