"""Which mesh a call goes to: the innermost ``async with`` pool, else the process default.

A context variable alone is not enough in Jupyter, where every cell runs in
a fresh copy of the context; the process default is what ``%wool start``
(or ``WorkerPool.start(default=True)``) installs, and what a worker uses
for nested calls. While a default mesh is still starting in the background
(``%wool start``), ``set_starting`` makes calls wait for it instead of failing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, cast

from wool.errors import MeshNotRunning
from wool.mesh.client import MeshClient

if TYPE_CHECKING:
    from wool.mesh.connection import Connection
    from wool.stats import Counters

_scoped: ContextVar[MeshClient | None] = ContextVar("wool_mesh", default=None)
_default: MeshClient | None = None
_starting: Callable[[str], Awaitable[None]] | None = None


def current(routine: str = "") -> MeshClient:
    mesh = _scoped.get() or _default
    if mesh is None:
        if _starting is not None:
            return cast(MeshClient, _Starting(_starting, routine))
        raise MeshNotRunning(routine)
    return mesh


def set_starting(wait: Callable[[str], Awaitable[None]] | None) -> None:
    """While set and no mesh is installed, a call first awaits ``wait(routine)``.

    ``wait`` must return (bounded) once the default mesh is installed, or raise
    a typed error saying why it will not be; ``None`` ends the waiting.
    """
    global _starting
    _starting = wait


class _Starting:
    """What ``current()`` gives while the default mesh starts: ``connect`` waits for it.

    Dispatch reads ``max_payload``, calls ``connect`` and then reads
    ``dispatched``, so this is all of a mesh a call needs; it costs nothing
    once a mesh is installed.
    """

    __slots__ = ("_mesh", "_routine", "_wait")

    def __init__(self, wait: Callable[[str], Awaitable[None]], routine: str) -> None:
        self._wait = wait
        self._routine = routine
        self._mesh: MeshClient | None = None

    async def connect(self, worker: str | None = None, tags: tuple[str, ...] = ()) -> Connection:
        await self._wait(self._routine)
        mesh = _scoped.get() or _default
        if mesh is None:
            raise MeshNotRunning(self._routine)
        self._mesh = mesh
        return await mesh.connect(worker, tags)

    @property
    def max_payload(self) -> int | None:
        """The mesh's limit once known; until then None, the default limit."""
        return None if self._mesh is None else self._mesh.max_payload

    @property
    def dispatched(self) -> Counters:
        if self._mesh is None:
            raise MeshNotRunning(self._routine)
        return self._mesh.dispatched


def enter(mesh: MeshClient) -> Token:
    return _scoped.set(mesh)


def leave(token: Token) -> None:
    _scoped.reset(token)


def set_default(mesh: MeshClient | None) -> None:
    global _default
    _default = mesh


def get_default() -> MeshClient | None:
    return _default
