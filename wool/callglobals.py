"""The globals a by-value routine reads, current at every call.

On the caller, ``snapshot`` pickles the current value of every global a
routine reads (through the functions and routines of its namespace, its
closure and defaults included) and names each by digest; a call's manifest
(name, kind, digest) is itself such a value. On a worker, ``values`` (a
``ValueCache``) keeps what arrived and builds each call its own namespace,
against which ``bind`` rebuilds the routine's function.
"""

from __future__ import annotations

import builtins
import dis
import importlib
import os
import pickle
from collections import OrderedDict
from types import CellType, CodeType, FunctionType, ModuleType
from typing import TYPE_CHECKING, Any

from wool import registry
from wool.codec import (
    PROTOCOL,
    Buffers,
    dill_dumps,
    load_buffers,
    module_importable,
    pickled,
    pickled_buffers,
    too_large,
    value_digest,
)
from wool.errors import SerializationError
from wool.protocol import frames

if TYPE_CHECKING:
    from wool.routine import Routine


VALUE, FUNCTION, ROUTINE = 0, 1, 2
"""Kinds of manifest entry: a value; a function of the routine's namespace; a routine of it.

Functions and routines of the namespace are rebuilt on the worker against
the call's namespace, so they see the same values as the routine itself.
"""
_ATOMS = frozenset({int, float, complex, str, bytes, bool, type(None)})
_CACHE_LIMIT = 4096
_reads_of: dict[int, tuple[CodeType, tuple[str, ...]]] = {}
_Entry = tuple[int, bytes, "bytes | Buffers", tuple[str, ...]]
_fixed: dict[int, tuple[Any, _Entry]] = {}
_fixed_bytes = 0
FIXED_LIMIT = 64 << 20
"""Bytes of pickles ``_fixed`` may hold for immutable globals kept by identity."""
FIXED_ITEM = 64 << 10
"""An immutable global pickling to more than this is pickled again at each call, not kept."""
_functions: dict[int, tuple[tuple, _Entry]] = {}
_routine_entries: dict[str, _Entry] = {}
_manifests: dict[tuple, tuple[bytes, bytes]] = {}
_MISSING = object()
_BUILTINS = vars(builtins)


def _immutable(value: object, depth: int = 0) -> bool:
    kind = type(value)
    if kind in _ATOMS:
        return True
    if (kind is tuple or kind is frozenset) and depth < 8:
        return all(_immutable(item, depth + 1) for item in value)  # type: ignore[attr-defined]
    return False


_GLOBAL_OPS = frozenset(
    dis.opmap[name]
    for name in ("LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_NAME",
                 "LOAD_FROM_DICT_OR_GLOBALS")
    if name in dis.opmap
)  # fmt: skip


def _reads(code: CodeType) -> tuple[str, ...]:
    """Names ``code`` (and code nested in it) reads or writes as globals, once per code object.

    Only global loads and stores count: ``co_names`` also holds attribute
    and imported names (``b.lock`` is no read of a global ``lock``).
    Keyed by identity, holding the code: hashing a code object hashes its contents.
    """
    held = _reads_of.get(id(code))
    if held is not None and held[0] is code:
        return held[1]
    found: set[str] = set()
    codes = [code]
    while codes:
        current = codes.pop()
        for op in dis.get_instructions(current):
            if op.opcode in _GLOBAL_OPS:
                found.add(op.argval)
        codes.extend(c for c in current.co_consts if isinstance(c, CodeType))
    names = tuple(sorted(found))
    if len(_reads_of) >= _CACHE_LIMIT:
        _reads_of.clear()
    _reads_of[id(code)] = (code, names)
    return names


def reads(code: CodeType) -> tuple[str, ...]:
    """Names ``code`` reads or writes as globals (nested code included)."""
    return _reads(code)


def reads_globals(fn: Any) -> bool:
    """Whether ``fn`` reads a global, itself or through the functions and routines it holds."""
    return bool(_all_reads(fn, fn.__globals__))


def _of(fn: FunctionType, namespace: dict) -> bool:
    """Whether ``fn`` is a function of ``namespace`` that a worker cannot import."""
    return fn.__globals__ is namespace and not (
        module_importable(fn.__module__) and "<locals>" not in fn.__qualname__
    )


def _held(fn: Any) -> list[Any]:
    """What ``fn``'s closure cells and defaults hold."""
    held: list[Any] = []
    for cell in fn.__closure__ or ():
        try:
            held.append(cell.cell_contents)
        except ValueError:
            continue
    held.extend(fn.__defaults__ or ())
    held.extend((fn.__kwdefaults__ or {}).values())
    return held


def _all_reads(fn: Any, namespace: dict) -> tuple[str, ...]:
    """``reads(fn)``, plus those of the functions and by-value routines of ``namespace``
    that its closure and defaults hold (recursively): they run against the same globals."""
    names = _reads(fn.__code__)
    if not (fn.__closure__ or fn.__defaults__ or fn.__kwdefaults__):
        return names
    found = set(names)
    seen = {id(fn)}
    todo = [fn]
    routine = _routine_type()
    inner: Any
    while todo:
        for obj in _held(todo.pop()):
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if type(obj) is FunctionType and _of(obj, namespace):
                inner = obj
            elif isinstance(obj, routine) and not obj.importable:
                inner = obj.function
                if inner.__globals__ is not namespace:
                    continue
            else:
                continue
            found.update(_reads(inner.__code__))
            todo.append(inner)
    return tuple(sorted(found))


_routine_class: Any = None


def _routine_type() -> type[Routine]:
    global _routine_class
    if _routine_class is None:
        from wool.routine import Routine

        _routine_class = Routine
    return _routine_class


def _function_identity(fn: Any) -> tuple:
    return (fn.__code__, fn.__defaults__, fn.__kwdefaults__, fn.__closure__, fn.__qualname__)


def _remember(cache: dict, key: Any, value: Any) -> None:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value


def _entry(name: str, value: Any, namespace: dict) -> _Entry:
    """(kind, digest, pickled bytes, further names to read) of one global, as of now.

    Immutable values and modules are pickled once while the same object
    stays bound, functions of the namespace while their code, defaults and
    closure are the same, routines once; anything else is pickled again at
    every call, so a mutation is seen. The caches hold no call's namespace.
    """
    held = _fixed.get(id(value))
    if held is not None and held[0] is value:
        return held[1]
    kind = type(value)
    if kind is FunctionType and _of(value, namespace):
        identity = _function_identity(value)
        known = _functions.get(id(value.__code__))
        if known is not None and all(a is b for a, b in zip(known[0], identity, strict=True)):
            return known[1]
        try:
            data = dill_dumps(strip(value))
        except Exception as exc:
            raise SerializationError(f"{type(exc).__name__}: {exc}") from exc
        entry: _Entry = (
            FUNCTION,
            value_digest(_checked(name, value, data)),
            data,
            _all_reads(value, namespace),
        )
        _remember(_functions, id(value.__code__), (identity, entry))
        return entry
    if (
        isinstance(value, _routine_type())
        and not value.importable
        and value.function.__globals__ is namespace
    ):
        entry = _routine_entries.get(value.uid)  # type: ignore[assignment]
        if entry is None:
            data = pickle.dumps(registry.ByIdentity(value), PROTOCOL)
            entry = (
                ROUTINE,
                value_digest(_checked(name, value, data)),
                data,
                _all_reads(value.function, namespace),
            )
            _remember(_routine_entries, value.uid, entry)
        return entry
    found: bytes | Buffers
    if kind is ModuleType:
        found = pickle.dumps(_ModuleByName(value.__name__), PROTOCOL)
    elif kind in _ATOMS:
        found = pickled(value)
    else:
        found = pickled_buffers(value)
    if type(found) is bytes:
        entry = (VALUE, value_digest(_checked(name, value, found)), found, ())
    else:
        assert isinstance(found, Buffers)
        _checked_size(name, value, found.size)
        entry = (VALUE, found.digest(), found, ())
    if _immutable(value) or kind is ModuleType:
        _keep_fixed(value, entry)
    return entry


def _keep_fixed(value: object, entry: _Entry) -> None:
    """Keep a small immutable global's pickle by identity, within ``FIXED_LIMIT`` bytes in all."""
    global _fixed_bytes
    data = entry[2]
    size = data.size if isinstance(data, Buffers) else len(data)
    if size > FIXED_ITEM:
        return
    if _fixed_bytes + size > FIXED_LIMIT or len(_fixed) >= _CACHE_LIMIT:
        _fixed.clear()
        _fixed_bytes = 0
    _fixed[id(value)] = (value, entry)
    _fixed_bytes += size


class _ModuleByName:
    """A module global: the worker imports it by name (dill would copy a module's state)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> tuple:
        return (importlib.import_module, (self.name,))


def _checked(name: str, value: object, data: bytes) -> bytes:
    _checked_size(name, value, len(data))
    return data


def _checked_size(name: str, value: object, size: int) -> None:
    if size > frames.LIMIT:
        raise too_large(f"global {name!r} ({type(value).__qualname__}) encodes to", size)


Snapshot = tuple[bytes, dict[bytes, "bytes | Buffers"]]
"""(digest of the call's manifest, every value it names by digest, the manifest included)."""


class Memo:
    """The last snapshot of one routine, and what it was made from (kept on the routine).

    Valid while every name it read is bound to the same object and every
    function of the namespace it read is unchanged; then only the mutable
    values are pickled again, and when none changed the last snapshot is
    reused whole, so an unchanged call costs an identity check per global.
    """

    __slots__ = ("functions", "mutable", "namespace", "pairs", "result")

    def __init__(self) -> None:
        self.namespace: dict | None = None
        self.pairs: tuple[tuple[str, object], ...] = ()
        self.functions: tuple[tuple[Any, tuple], ...] = ()
        self.mutable: tuple[tuple[str, object, bytes], ...] = ()
        self.result: Snapshot | None = None

    def reuse(self, namespace: dict) -> bool:
        if namespace is not self.namespace:
            return False
        get = namespace.get
        for name, obj in self.pairs:
            if get(name, _MISSING) is not obj:
                return False
        for fn, identity in self.functions:
            if not all(a is b for a, b in zip(_function_identity(fn), identity, strict=True)):
                return False
        for name, value, digest in self.mutable:
            if _entry(name, value, namespace)[1] != digest:
                return False
        return True


def snapshot(fn: Any, qualname: str, memo: Memo | None = None) -> Snapshot | None:
    """The current values of the globals ``fn`` reads, directly or through its namespace's
    functions and routines; None when it reads none (the common no-globals call costs one
    dict lookup).

    Raises SerializationError naming every global that cannot be pickled,
    or one too large for a message (``frames.LIMIT``).
    """
    namespace = fn.__globals__
    if memo is not None and memo.reuse(namespace):
        return memo.result
    names = _all_reads(fn, namespace)
    if not names:
        return None
    entries: list[tuple[str, int, bytes]] = []
    values: dict[bytes, bytes | Buffers] = {}
    seen: set[str] = set()
    todo = list(names)
    broken: list[tuple[str, SerializationError]] = []
    pairs: list[tuple[str, object]] = []
    functions: list[tuple[Any, tuple]] = []
    mutable: list[tuple[str, object, bytes]] = []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        value = namespace.get(name, _MISSING)
        pairs.append((name, value))
        if value is _MISSING or value is _BUILTINS.get(name) or name == "__builtins__":
            continue  # a builtin: the worker has the same one
        try:
            kind, digest, data, more = _entry(name, value, namespace)
        except SerializationError as exc:
            broken.append((name, exc))
            continue
        entries.append((name, kind, digest))
        values[digest] = data
        if kind == FUNCTION:
            functions.append((value, _function_identity(value)))
        elif kind == VALUE and not (_immutable(value) or type(value) is ModuleType):
            mutable.append((name, value, digest))
        if more:
            todo.extend(more)
    if broken:
        which = ", ".join(repr(name) for name, _ in broken)
        first = broken[0][1]
        raise SerializationError(
            f"cannot ship routine {qualname}() to workers: the global {which} cannot be sent "
            f"({first}). Create it inside the routine, pass what it needs as arguments, or "
            "move it to a module the workers can import."
        ) from first
    result: Snapshot | None = None
    if entries:
        key = tuple(sorted(entries))
        manifest = _manifests.get(key)
        if manifest is None:
            data = pickle.dumps(key, PROTOCOL)
            manifest = (value_digest(data), data)
            if len(_manifests) >= _CACHE_LIMIT:
                _manifests.clear()
            _manifests[key] = manifest
        values[manifest[0]] = manifest[1]
        result = manifest[0], values
    if memo is not None:
        memo.namespace, memo.pairs, memo.result = namespace, tuple(pairs), result
        memo.functions, memo.mutable = tuple(functions), tuple(mutable)
    return result


class MissingValue(LookupError):
    """A worker lacks a value a call's manifest names (evicted, or never received)."""

    def __init__(self, digest: bytes) -> None:
        super().__init__(digest.hex())
        self.digest = digest


class ValueCache:
    """Globals a worker received, by digest, LRU-bounded by bytes; used on its routine loop.

    Immutable values, classes, modules, functions and routines are unpickled
    once; other values are unpickled for every call, so a routine that
    mutates one does not change what the next call sees. One value larger
    than the limit is still kept while it is the newest.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.hits = 0
        self.misses = 0
        self.received = 0
        self.offered = 0  # bytes of values sent here, new or not: what went over the wire
        self._data: OrderedDict[bytes, bytes] = OrderedDict()
        self._objects: dict[bytes, Any] = {}
        self._manifests: dict[bytes, tuple[tuple[str, int, bytes], ...]] = {}

    def put(self, digest: bytes, data: frames.Payload) -> bool:
        """Keep ``data`` under ``digest``; False (and nothing kept) when they do not match."""
        self.offered += len(data)
        if digest in self._data:
            self._data.move_to_end(digest)
            return True
        data = bytes(data)
        if value_digest(data) != digest:
            return False
        self._data[digest] = data
        self.size += len(data)
        self.received += 1
        while self.size > self.limit and len(self._data) > 1:
            old, gone = self._data.popitem(last=False)
            self.size -= len(gone)
            self._objects.pop(old, None)
            self._manifests.pop(old, None)
        return True

    def _bytes(self, digest: bytes) -> bytes:
        data = self._data.get(digest)
        if data is None:
            self.misses += 1
            raise MissingValue(digest)
        self._data.move_to_end(digest)
        self.hits += 1
        return data

    def namespace(self, digest: bytes, module: str) -> dict[str, Any]:
        """A fresh globals dict for one call, from the manifest named ``digest``.

        Raises MissingValue naming the first digest this worker lacks.
        """
        entries = self._manifests.get(digest)
        if entries is None:
            entries = self._manifests[digest] = pickle.loads(self._bytes(digest))
        else:
            self._data.move_to_end(digest)
            self.hits += 1
        namespace: dict[str, Any] = {"__name__": module, "__builtins__": builtins}
        late = []
        for name, kind, item in entries:
            obj = self._objects.get(item, _MISSING)
            if obj is _MISSING:
                obj = load_buffers(self._bytes(item))
                if kind != VALUE or _immutable(obj) or isinstance(obj, type | ModuleType):
                    self._objects[item] = obj
            else:
                self._data.move_to_end(item)
                self.hits += 1
            if kind == VALUE:
                namespace[name] = obj
            else:
                late.append((name, kind, obj))
        for name, kind, obj in late:
            namespace[name] = bind(obj, namespace) if kind == FUNCTION else obj.bound(namespace)
        return namespace

    def forget(self) -> None:
        self._data.clear()
        self._objects.clear()
        self._manifests.clear()
        self.size = 0


values = ValueCache(int(os.environ.get("WOOL_VALUE_CACHE") or 1 << 30))
"""This process's cache of globals received by value (``WOOL_VALUE_CACHE`` bytes, 1 GiB)."""

_MARK = "__wool_namespace__"
"""Set on a function of the routine's namespace shipped in its code: a worker rebinds it."""


def strip(fn: Any) -> FunctionType:
    """``fn`` without its globals, for its code by value: they travel per call (``snapshot``).

    Functions of its namespace held in its closure or defaults are stripped
    too, and marked, so that ``bind`` on the worker gives them the call's
    globals as well.
    """
    return _rebind(fn, {"__name__": fn.__module__}, fn.__globals__, {})


def bind(fn: Any, namespace: dict[str, Any]) -> FunctionType:
    """``fn`` reading its globals from ``namespace`` (one call's values), as do the marked
    functions and by-value routines its closure and defaults hold."""
    return _rebind(fn, namespace, None, {})


def _member(obj: Any, source: dict | None) -> bool:
    """Whether ``obj`` is rebound with the function holding it (see ``_rebind``)."""
    if type(obj) is FunctionType:
        return _MARK in obj.__dict__ if source is None else _of(obj, source)
    return source is None and isinstance(obj, _routine_type()) and not obj.importable


def _rebind(fn: Any, namespace: dict, source: dict | None, done: dict[int, Any]) -> FunctionType:
    """``fn`` with ``namespace`` for globals; with ``source`` (stripping), the functions of
    ``source`` it holds are stripped and marked, without (binding), marked functions and
    by-value routines are rebound. ``done`` keeps cycles and shared cells intact."""
    held = done.get(id(fn))
    if held is not None:
        return held
    closure = fn.__closure__
    defaults, kwdefaults = fn.__defaults__, fn.__kwdefaults__
    deep = any(_member(obj, source) for obj in _held(fn)) if (
        closure or defaults or kwdefaults
    ) else False  # fmt: skip
    cells = closure
    if deep and closure:
        cells = tuple(done.setdefault(id(cell), CellType()) for cell in closure)
    bound = FunctionType(fn.__code__, namespace, fn.__name__, defaults, cells)
    done[id(fn)] = bound
    bound.__kwdefaults__ = kwdefaults
    bound.__qualname__ = fn.__qualname__
    bound.__module__ = fn.__module__
    bound.__doc__ = fn.__doc__
    if fn.__dict__:
        bound.__dict__.update(fn.__dict__)
    if source is not None:
        bound.__dict__[_MARK] = True
    if not deep:
        return bound

    def again(obj: Any) -> Any:
        if not _member(obj, source):
            return obj
        if type(obj) is FunctionType:
            return _rebind(obj, namespace if source is None else {"__name__": obj.__module__},
                           source, done)  # fmt: skip
        return obj.bound(namespace)

    for old, new in zip(closure or (), cells or (), strict=True):
        try:
            new.cell_contents = again(old.cell_contents)
        except ValueError:
            continue
    if defaults:
        bound.__defaults__ = tuple(again(obj) for obj in defaults)
    if kwdefaults:
        bound.__kwdefaults__ = {key: again(obj) for key, obj in kwdefaults.items()}
    return bound
