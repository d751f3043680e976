"""Which mesh a call goes to: the innermost ``async with`` pool, else the process default.

A context variable alone is not enough in Jupyter, where every cell runs in
a fresh copy of the context; the process default is what ``%wool start``
(or ``WorkerPool.start(default=True)``) installs, and what a worker uses
for nested calls.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

from wool.errors import MeshNotRunning
from wool.mesh.client import MeshClient

_scoped: ContextVar[MeshClient | None] = ContextVar("wool_mesh", default=None)
_default: MeshClient | None = None


def current(routine: str = "") -> MeshClient:
    mesh = _scoped.get() or _default
    if mesh is None:
        raise MeshNotRunning(routine)
    return mesh


def enter(mesh: MeshClient) -> Token:
    return _scoped.set(mesh)


def leave(token: Token) -> None:
    _scoped.reset(token)


def set_default(mesh: MeshClient | None) -> None:
    global _default
    _default = mesh


def get_default() -> MeshClient | None:
    return _default
