"""The ``@wool.routine`` decorator and the dispatch gate behind every call."""

from __future__ import annotations

import functools
import inspect
import uuid
from collections.abc import AsyncGenerator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, overload

from wool import codec, task

P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C")
A = TypeVar("A", bound=Coroutine[Any, Any, Any] | AsyncGenerator[Any, Any])
"""What calling an ``async def`` returns: a coroutine, or an async generator."""


@dataclass(frozen=True, slots=True)
class CodeRef:
    """A by-value routine as the wire names it."""

    uid: str
    digest: bytes
    code: bytes


class Routine(Generic[P, R]):
    """An async function (or async generator) that runs on a worker when called.

    Calling it returns a coroutine or an async generator exactly as the plain
    function would; awaiting or iterating it dispatches to the mesh that is
    active in the caller's context. Works on plain functions and on instance,
    class and static methods.

    For type checkers ``Routine[P, R]`` has the wrapped function's type: ``P``
    its parameters and ``R`` what calling it returns, a
    ``Coroutine[Any, Any, T]`` or an ``AsyncGenerator[Y, S]``. So
    ``await f(x)`` has the function's result type and ``async for`` its yield
    type, with no annotation needed at the call site.
    """

    __qualname__: str
    __name__: str
    generator: bool
    uid: str
    timeout: float | None
    worker: str | None = None
    tags: tuple[str, ...] = ()
    _fn: Callable[..., Any] | None
    _memo: codec.Memo | bool | None = None  # the last globals snapshot; False: it reads none

    def __init__(self, fn: Callable[P, Any], *, timeout: float | None = None) -> None:
        kind = "function"
        if isinstance(fn, classmethod):
            kind, fn = "class", fn.__func__
        elif isinstance(fn, staticmethod):
            kind, fn = "static", fn.__func__
        if not (inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)):
            raise TypeError(
                f"@wool.routine needs an async def function or async generator, "
                f"not {getattr(fn, '__qualname__', fn)!r}"
            )
        functools.update_wrapper(self, fn)
        self._fn = fn
        self._code: CodeRef | None = None
        self._importable: bool | None = None
        self.kind = kind
        self.generator = inspect.isasyncgenfunction(fn)
        self.uid = uuid.uuid4().hex
        self.timeout = None if timeout is None else task.checked(timeout)

    @classmethod
    def from_code(
        cls, uid: str, digest: bytes, code: bytes, qualname: str, generator: bool
    ) -> Routine:
        """A routine received by value; its function is unpickled on first use."""
        self = cls.__new__(cls)
        self._fn = None
        self._code = CodeRef(uid, digest, code)
        self._importable = False
        self.kind = "function"
        self.generator = generator
        self.uid = uid
        self.timeout = None
        self.__module__ = "__main__"
        self.__qualname__ = self.__name__ = qualname
        return self

    @property
    def function(self) -> Callable[..., Any]:
        fn = self._fn
        if fn is None:
            assert self._code is not None
            fn = self._fn = codec.load_function(self._code.code)
        return fn

    @property
    def importable(self) -> bool:
        if self._importable is None:
            self._importable = codec.importable(self)
        return self._importable

    def by_value(self) -> CodeRef:
        """Identity, digest and payload, computed once per routine object.

        The payload is the function's code, defaults and closure, not its
        globals: those travel with each call (``codec.snapshot``).
        """
        if self._code is None:
            code = codec.routine_code(self)
            self._code = CodeRef(self.uid, codec.digest_of(code), code)
        return self._code

    def snapshot(self) -> codec.Snapshot | None:
        """The current values of the globals this by-value routine reads, for one call.

        None when it reads none, or when it was received by value and never
        run here (its code is not even unpickled for that).
        """
        memo = self._memo
        if memo is None:
            if self._fn is None:
                return None
            memo = self._memo = codec.Memo() if codec.reads_globals(self._fn) else False
        if not isinstance(memo, codec.Memo):
            return None  # decided once: the code of a routine's function does not change
        return codec.snapshot(self._fn, self.__qualname__, memo)

    def bound(self, namespace: dict[str, Any]) -> Routine[P, R]:
        """This routine reading its globals from ``namespace``: one call's values on a worker.

        A nested call of the clone carries those values on, not the worker's own.
        """
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.__dict__.pop("_memo", None)  # a memo holds its namespace: not this one's
        clone._fn = codec.bind(self.function, namespace)
        return clone

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        dispatch: Any = _dispatch  # R is the wrapped function's coroutine or generator type
        if self.generator:
            return dispatch.stream(self, args, kwargs, self.timeout)
        return dispatch.call(self, args, kwargs, self.timeout)

    def __get__(self, instance: object, owner: type | None = None) -> Callable[..., R]:
        """Bound as the wrapped function would be: to the instance, to the class
        (class methods), or not at all (static methods and access on the class).

        Typed as taking any arguments (a type checker cannot drop the bound
        ``self`` or ``cls`` from ``P``), but still returning ``R``, so
        ``await obj.method(x)`` keeps the method's result type.
        """
        if self.kind == "static":
            return self
        call: Callable[..., R] = self
        if self.kind == "class":
            return functools.partial(call, owner if owner is not None else type(instance))
        if instance is None:
            return self
        return functools.partial(call, instance)

    def options(
        self,
        *,
        timeout: float | None = None,
        worker: str | None = None,
        tags: tuple[str, ...] | list[str] = (),
    ) -> Routine[P, R]:
        """The same routine with per-call options, e.g. ``await f.options(timeout=5)(x)``.

        ``worker`` pins calls to the worker with that id (``pool.workers[i].id``);
        ``tags`` restricts them to workers carrying every tag. Either raises
        ``NoWorkersAvailable`` when no live worker matches.
        """
        _ = self.importable  # decided once, on the original, before the clone copies it
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.timeout = None if timeout is None else task.checked(timeout)
        clone.worker = worker
        clone.tags = tuple(tags)
        return clone

    def __reduce__(self) -> tuple:
        return codec.reduce_routine(self)

    def __repr__(self) -> str:
        return f"<wool.routine {self.__module__}.{self.__qualname__}>"


from wool.mesh import dispatch as _dispatch  # noqa: E402  (dispatch imports this module)


@overload
def routine(fn: Callable[P, A]) -> Routine[P, A]: ...
@overload
def routine(fn: staticmethod[P, A]) -> Routine[P, A]: ...
@overload
def routine(fn: classmethod[C, P, A]) -> Routine[P, A]: ...
def routine(fn: Any) -> Routine[Any, Any]:
    """Make an async function or async generator run on the mesh when called.

    Typed as the function it wraps (see :class:`Routine`); a plain ``def``
    is a type error here and a ``TypeError`` at run time.
    """
    return Routine(fn)
