"""What one dispatch carries besides its code and arguments: identity and deadline."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

_deadline: ContextVar[float | None] = ContextVar("wool_deadline", default=None)
_current: ContextVar[RemoteTask | None] = ContextVar("wool_task", default=None)


@dataclass(frozen=True, slots=True)
class RemoteTask:
    """The routine call a worker is running right now (None in the caller).

    ``id`` is ``worker/stream/call``; ``parent`` is the id of the task that
    dispatched it ("" when it came from outside the mesh).
    """

    worker: str
    stream: int
    call: int
    parent: str
    routine: str

    @property
    def id(self) -> str:
        return f"{self.worker}/{self.stream}/{self.call}"


def current_task() -> RemoteTask | None:
    """The dispatch being executed in this context, when called inside a routine."""
    return _current.get()


@contextlib.contextmanager
def timeout(seconds: float | None) -> Iterator[None]:
    """Bound every routine call dispatched inside the block to ``seconds`` from now.

    Nested blocks keep the nearer deadline; the deadline travels with each
    call, so nested calls on workers inherit what is left of it. A call that
    runs past it raises ``wool.DispatchTimeout`` and is cancelled remotely; for
    an async generator the deadline bounds the whole stream, not each step.
    """
    if seconds is None:
        yield
        return
    deadline = time.monotonic() + checked(seconds)
    outer = _deadline.get()
    token = _deadline.set(deadline if outer is None else min(outer, deadline))
    try:
        yield
    finally:
        _deadline.reset(token)


def checked(seconds: float) -> float:
    """``seconds`` if it is a usable timeout; ValueError for zero, negative or NaN."""
    if not seconds > 0:  # NaN compares false, so it is refused here too
        raise ValueError(f"a timeout must be a positive number of seconds, not {seconds!r}")
    return seconds


def time_left(explicit: float | None) -> float | None:
    """Seconds a new dispatch may take: the nearer of ``explicit`` and the block's deadline."""
    deadline = _deadline.get()
    if deadline is None:
        return explicit
    left = deadline - time.monotonic()
    return left if explicit is None else min(explicit, left)


def enter(task: RemoteTask, seconds: float | None) -> None:
    """Install a received dispatch's identity and deadline in the running context."""
    _current.set(task)
    _deadline.set(None if not seconds else time.monotonic() + seconds)
