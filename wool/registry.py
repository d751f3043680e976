"""Routines by name: which a worker can import, how one is named or shipped by value.

An importable routine travels as (module, qualified name); any other as its
identity and code (``routine_code``: the function without its globals,
which travel per call, see ``callglobals``), once per peer, then by digest.
A process keeps the routines it received by value in ``routines``.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections import OrderedDict
from types import ModuleType
from typing import TYPE_CHECKING, Any

from wool import callglobals
from wool.codec import dill_dumps
from wool.errors import SerializationError

if TYPE_CHECKING:
    from wool.routine import Routine

_encoding = threading.local()


def _encoding_stack() -> set[str]:
    stack = getattr(_encoding, "uids", None)
    if stack is None:
        stack = _encoding.uids = set()
    return stack


def importable(routine: Routine) -> bool:
    """Whether a worker can import ``routine`` by module and qualified name."""
    module = sys.modules.get(routine.__module__)
    if module is None or routine.__module__ == "__main__":
        return False
    if getattr(module, "__spec__", None) is None or not getattr(module, "__file__", None):
        return False
    if "<locals>" in routine.__qualname__:
        return False
    try:
        return lookup(routine.__module__, routine.__qualname__).uid == routine.uid
    except Exception:
        return False


def lookup(module: str, qualname: str) -> Routine:
    """The routine a module exposes under ``qualname`` (unwrapping method wrappers)."""
    from wool.routine import Routine

    obj: Any = importlib.import_module(module)
    parts = qualname.split(".")
    for part in parts[:-1]:
        obj = getattr(obj, part)
    found = vars(obj).get(parts[-1]) if isinstance(obj, type) else getattr(obj, parts[-1])
    if isinstance(found, (classmethod, staticmethod)):
        found = found.__func__
    if not isinstance(found, Routine):
        raise LookupError(f"{module}.{qualname} is not a wool routine")
    return found


CODE_LIMIT = 10 << 20


def _captured(fn: Any) -> dict[str, object]:
    """The globals and closure variables a function (and functions nested in it) reads."""
    found = {n: fn.__globals__[n] for n in callglobals.reads(fn.__code__) if n in fn.__globals__}
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False):
        try:
            found[name] = cell.cell_contents
        except ValueError:
            continue
    return {n: v for n, v in found.items() if not isinstance(v, ModuleType)}


def _culprits(fn: Any) -> tuple[list[str], list[tuple[int, str]]]:
    """(names that cannot be pickled, (size, name) of the rest, largest first)."""
    broken, sizes = [], []
    for name, value in _captured(fn).items():
        try:
            sizes.append((len(dill_dumps(value)), name))
        except Exception:
            broken.append(name)
    return broken, sorted(sizes, reverse=True)


def routine_code(routine: Routine) -> bytes:
    """The by-value payload of a routine's function: its code, defaults and closure.

    Its globals are not in it: each call carries their current values
    (``snapshot``). Raises SerializationError naming the closure variable
    at fault when the payload cannot be made, or when it would exceed 10 MiB.
    """
    stack = _encoding_stack()
    stack.add(routine.uid)
    name = routine.__qualname__
    try:
        try:
            code = dill_dumps(callglobals.strip(routine.function))
        except Exception as exc:
            broken, _ = _culprits(callglobals.strip(routine.function))
            which = ", ".join(repr(b) for b in broken) or "a value it uses"
            raise SerializationError(
                f"cannot ship routine {name}() to workers: {which} cannot be pickled "
                f"({type(exc).__name__}: {exc}). Create it inside the routine, pass what it "
                "needs as arguments, or move it to a module the workers can import."
            ) from exc
        if len(code) > CODE_LIMIT:
            _, sizes = _culprits(callglobals.strip(routine.function))
            biggest = ", ".join(f"{n!r} ({size / 2**20:.1f} MiB)" for size, n in sizes[:3])
            raise SerializationError(
                f"routine {name}() would ship {len(code) / 2**20:.1f} MiB of code, defaults and "
                f"closure to every worker; the largest: {biggest}. Pass large data as an "
                "argument, or load it inside the routine."
            )
        return code
    finally:
        stack.discard(routine.uid)


def reduce_routine(routine: Routine) -> tuple:
    """How a routine pickles: by reference when importable, else by identity and code.

    A by-value routine sent as a value (an argument, a result) carries the
    current values of its globals inline, so calling it on the other side
    sees them; inside routine code, or a call's globals, it goes without.
    """
    if routine.importable:
        return (lookup, (routine.__module__, routine.__qualname__))
    stack = _encoding_stack()
    if routine.uid in stack:
        return (_placeholder, (routine.uid,))
    ref = routine.by_value()
    args = (ref.uid, ref.digest, ref.code, routine.__qualname__, routine.generator)
    if stack:
        return (rebuild_routine, args)
    found = routine.snapshot()
    if found is None:
        return (rebuild_routine, args)
    manifest, values = found
    inline = {digest: bytes(data) for digest, data in values.items()}
    return (rebuild_routine, (*args, (manifest, inline)))


class ByIdentity:
    """A routine pickled by identity and code alone: a call's globals rebind it themselves."""

    __slots__ = ("routine",)

    def __init__(self, routine: Routine) -> None:
        self.routine = routine

    def __reduce__(self) -> tuple:
        routine = self.routine
        ref = routine.by_value()
        return (
            rebuild_routine,
            (ref.uid, ref.digest, ref.code, routine.__qualname__, routine.generator),
        )


class RoutineCache:
    """Routines a process received by value, by identity and by digest (bounded)."""

    def __init__(self, limit: int = 4096) -> None:
        self._by_uid: dict[str, Routine] = {}
        self._by_digest: OrderedDict[bytes, Routine] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, digest: bytes) -> Routine | None:
        with self._lock:
            routine = self._by_digest.get(digest)
            if routine is not None:
                self._by_digest.move_to_end(digest)
            return routine

    def rebuild(
        self, uid: str, digest: bytes, code: bytes, qualname: str, generator: bool
    ) -> Routine:
        from wool.routine import Routine

        with self._lock:
            routine = self._by_uid.get(uid)
            if routine is None or routine.by_value().digest != digest:
                routine = Routine.from_code(uid, digest, code, qualname, generator)
                self._by_uid[uid] = routine
            self._by_digest[digest] = routine
            self._by_digest.move_to_end(digest)
            while len(self._by_digest) > self._limit:
                _, old = self._by_digest.popitem(last=False)
                self._by_uid.pop(old.uid, None)
            return routine

    def by_uid(self, uid: str) -> Routine:
        with self._lock:
            return self._by_uid[uid]

    def forget(self) -> None:
        with self._lock:
            self._by_digest.clear()
            self._by_uid.clear()


routines = RoutineCache()


def rebuild_routine(
    uid: str,
    digest: bytes,
    code: bytes,
    qualname: str,
    generator: bool = False,
    shipped: tuple[bytes, dict[bytes, bytes]] | None = None,
) -> Routine:
    routine = routines.rebuild(uid, digest, code, qualname, generator)
    if shipped is None:
        return routine
    manifest, inline = shipped
    for key, data in inline.items():
        callglobals.values.put(key, data)
    return routine.bound(callglobals.values.namespace(manifest, routine.__module__))


def _placeholder(uid: str) -> Routine:
    return routines.by_uid(uid)
