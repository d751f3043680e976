"""What one dispatch carries besides its code and arguments: identity and deadline."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar, Token
from typing import Any

from wool.errors import UnsupportedArgument

_deadline: ContextVar[float | None] = ContextVar("wool_deadline", default=None)
_current: ContextVar[Task | None] = ContextVar("wool_task", default=None)


class Task:
    """The routine call a worker is running right now (``current_task()``; None in the caller).

    Our own fields: ``worker`` (the worker's id), ``stream`` and ``call``
    (which stream and call on it), ``parent`` (the id of the task that
    dispatched this one, "" when it came from outside the mesh) and
    ``routine`` (its qualified name); ``id`` is ``worker/stream/call``.

    The ``wool`` package's names for the same call work too: ``id``,
    ``caller`` (``parent``, or None), ``function`` (the qualified name),
    ``callable``, ``args``, ``kwargs`` (what the worker runs), ``timeout``
    (seconds the call had left when it was sent, 0 for none), ``tag``
    (``module.qualname:line``), ``filename`` and ``line_no``. Where they
    differ: ``id`` and ``caller`` are strings, not UUIDs. The package's
    ``proxy``, ``namespace``, ``exception`` and ``runtime_context`` have no
    counterpart here and are not offered.

    Built once per call on the worker, so it is a plain slotted object (a
    frozen dataclass cost three times as much); treat it as read-only.
    """

    __slots__ = (
        "args",
        "call",
        "callable",
        "kwargs",
        "parent",
        "routine",
        "stream",
        "timeout",
        "worker",
    )

    def __init__(
        self,
        worker: str,
        stream: int,
        call: int,
        parent: str,
        routine: str,
        timeout: float = 0.0,
        callable: Callable[..., Any] | None = None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.worker = worker
        self.stream = stream
        self.call = call
        self.parent = parent
        self.routine = routine
        self.timeout = timeout
        self.callable = callable
        self.args = args
        self.kwargs = kwargs if kwargs is not None else {}

    @property
    def id(self) -> str:
        return f"{self.worker}/{self.stream}/{self.call}"

    @property
    def caller(self) -> str | None:
        """The id of the task that dispatched this one; None when it came from outside the mesh."""
        return self.parent or None

    @property
    def function(self) -> str:
        return self.routine

    @property
    def filename(self) -> str | None:
        code = getattr(self.callable, "__code__", None)
        return code.co_filename if code is not None else None

    @property
    def line_no(self) -> int | None:
        code = getattr(self.callable, "__code__", None)
        return code.co_firstlineno if code is not None else None

    @property
    def tag(self) -> str:
        """``module.qualname:line``, as the ``wool`` package labels a task."""
        module = getattr(self.callable, "__module__", None) or "?"
        line = self.line_no
        return f"{module}.{self.routine}" + (f":{line}" if line is not None else "")

    def __repr__(self) -> str:
        parent = f" caller={self.parent}" if self.parent else ""
        return f"<wool.Task {self.id} {self.routine}(){parent}>"


RemoteTask = Task  # the name this object had before it took the wool package's


def current_task() -> Task | None:
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
    token = _narrow(checked(seconds))
    try:
        yield
    finally:
        _deadline.reset(token)


def _narrow(seconds: float) -> Token[float | None]:
    deadline = time.monotonic() + seconds
    outer = _deadline.get()
    return _deadline.set(deadline if outer is None else min(outer, deadline))


# RuntimeContext keywords of the wool package that have no counterpart here, and what to use.
_REFUSED = {
    "credentials": "a local mesh authenticates every call with its pool's secret "
    "(WorkerPool(secret=...)); TLS is not built yet",
}


class RuntimeContext:
    """The ``wool`` package's spelling of a block deadline: ``wool.timeout`` under another name.

    ``with wool.RuntimeContext(timeout=5): ...`` (``async with`` works too)
    bounds every routine call dispatched in the block exactly as
    ``with wool.timeout(5):`` does; ``dispatch_timeout=`` (the package's
    keyword) is the same argument. None, or no argument, leaves the
    surrounding deadline as it is. Zero, negative or NaN seconds raise
    ValueError here, when the object is made.

    Differences from the package: its ``dispatch_timeout`` replaces the
    surrounding value and bounds handing the task to a worker, while ours
    keeps the nearer of the two deadlines and bounds the whole call
    (``wool.DispatchTimeout``, remote cancel). Its other keywords raise
    ``wool.UnsupportedArgument`` naming them. Like the package's, an instance
    is entered by one block at a time: entering it again while it is active
    raises RuntimeError.
    """

    __slots__ = ("_active", "_token", "timeout")

    def __init__(
        self,
        *,
        timeout: float | None = None,
        dispatch_timeout: float | None = None,
        **unsupported: object,
    ) -> None:
        for name in unsupported:
            if name in _REFUSED:
                raise UnsupportedArgument(
                    f"RuntimeContext({name}=...) is not supported: {_REFUSED[name]}."
                )
            raise TypeError(f"RuntimeContext() got an unexpected keyword argument {name!r}")
        if timeout is not None and dispatch_timeout is not None:
            raise TypeError(
                "give RuntimeContext(timeout=...) or dispatch_timeout= (the wool package's "
                "name for it), not both"
            )
        seconds = timeout if timeout is not None else dispatch_timeout
        self.timeout = None if seconds is None else checked(seconds)
        self._token: Token[float | None] | None = None
        self._active = False

    @property
    def dispatch_timeout(self) -> float | None:
        return self.timeout

    def __enter__(self) -> RuntimeContext:
        if self._active:
            raise RuntimeError(
                "this RuntimeContext is already active in a `with` block; make one per block"
            )
        self._active = True
        self._token = None if self.timeout is None else _narrow(self.timeout)
        return self

    def __exit__(self, *_: object) -> None:
        token, self._token, self._active = self._token, None, False
        if token is not None:
            _deadline.reset(token)

    async def __aenter__(self) -> RuntimeContext:
        return self.__enter__()

    async def __aexit__(self, *_: object) -> None:
        self.__exit__()

    def __repr__(self) -> str:
        return f"wool.RuntimeContext(timeout={self.timeout!r})"


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


def enter(task: Task, seconds: float | None) -> None:
    """Install a received dispatch's identity and deadline in the running context."""
    _current.set(task)
    _deadline.set(None if not seconds else time.monotonic() + seconds)
