"""The ``@wool.routine`` decorator and the dispatch gate behind every call."""

from __future__ import annotations

import functools
import inspect
import uuid
from collections.abc import AsyncGenerator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, overload

from wool import callglobals, codec, registry, task
from wool.protocol.frames import Dispatch, Frame, Payload, Value

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


KNOWN_LIMIT = 1 << 16
"""Digests remembered as sent per connection; past this the set starts afresh (the worker asks)."""


class Shipment:
    """The frames of one call of a by-value routine, and what its worker may ask for again.

    ``frames`` go first (the globals the peer is not known to hold), then
    ``dispatch``. ``again`` answers a worker's NeedCode with only what it
    named: one value, or the code, then the Dispatch.
    """

    __slots__ = ("code", "dispatch", "frames", "values")

    def __init__(
        self,
        dispatch: Dispatch,
        frames: list[Frame],
        values: dict[bytes, bytes | codec.Buffers] | None,
        code: bytes,
    ) -> None:
        self.dispatch = dispatch
        self.frames = frames
        self.values = values
        self.code = code

    @property
    def parts(self) -> int:
        """Digests a worker may ask for: the code's and each value's."""
        return 1 + (len(self.values) if self.values else 0)

    def again(self, digest: bytes, known: set[bytes]) -> list[Frame]:
        """The frames answering a worker that lacks ``digest``."""
        found = self.values.get(digest) if self.values else None
        frame = self.dispatch
        if found is not None:
            known.add(digest)
            return [
                Value(frame.call, digest, found if type(found) is bytes else bytes(found)),
                frame,
            ]
        frame.code = self.code
        known.add(frame.digest)
        return [frame]


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
    _memo: callglobals.Memo | bool | None = None  # the last globals snapshot; False: it reads none

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
            self._importable = registry.importable(self)
        return self._importable

    def by_value(self) -> CodeRef:
        """Identity, digest and payload, computed once per routine object.

        The payload is the function's code, defaults and closure, not its
        globals: those travel with each call (``callglobals.snapshot``).
        """
        if self._code is None:
            code = registry.routine_code(self)
            self._code = CodeRef(self.uid, codec.digest_of(code), code)
        return self._code

    def snapshot(self) -> callglobals.Snapshot | None:
        """The current values of the globals this by-value routine reads, for one call.

        None when it reads none, or when it was received by value and never
        run here (its code is not even unpickled for that).
        """
        memo = self._memo
        if memo is None:
            if self._fn is None:
                return None
            memo = self._memo = callglobals.Memo() if callglobals.reads_globals(self._fn) else False
        if not isinstance(memo, callglobals.Memo):
            return None  # decided once: the code of a routine's function does not change
        return callglobals.snapshot(self._fn, self.__qualname__, memo)

    def request(
        self,
        call: int,
        args: Payload,
        timeout: float,
        parent: str,
        output: bool,
        known: set[bytes],
    ) -> Dispatch | Shipment:
        """What to send for call number ``call`` to a peer that holds the digests in ``known``.

        An importable routine is one ``Dispatch`` by name (nothing else is
        made). A by-value one is a ``Shipment``: its code only when the peer
        lacks it, the globals the peer lacks as ``Value`` frames, and the
        call's manifest digest; ``known`` is updated as if all were sent.
        """
        if self.importable:
            return Dispatch(
                call, self.__module__, self.__qualname__, b"", b"", "", args,
                self.generator, timeout, parent, output,
            )  # fmt: skip
        ref = self.by_value()
        found = self.snapshot()
        if len(known) > KNOWN_LIMIT:
            known.clear()  # the worker's cache is bounded anyway; it asks for what it lacks
        code = b"" if ref.digest in known else ref.code
        known.add(ref.digest)
        sent: list[Frame] = []
        manifest, values = b"", None
        if found is not None:
            manifest, values = found
            if manifest not in known:
                for digest, data in values.items():
                    if digest not in known:
                        sent.append(
                            Value(call, digest, data if type(data) is bytes else bytes(data))
                        )
                        known.add(digest)
        frame = Dispatch(
            call, "", self.__qualname__, ref.digest, code, ref.uid, args,
            self.generator, timeout, parent, output, manifest,
        )  # fmt: skip
        return Shipment(frame, sent, values, ref.code)

    def bound(self, namespace: dict[str, Any]) -> Routine[P, R]:
        """This routine reading its globals from ``namespace``: one call's values on a worker.

        A nested call of the clone carries those values on, not the worker's own.
        """
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.__dict__.pop("_memo", None)  # a memo holds its namespace: not this one's
        clone._fn = callglobals.bind(self.function, namespace)
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
        return registry.reduce_routine(self)

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
