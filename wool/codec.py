"""Encoding of values, calls, exceptions and routine code for the wire.

Values use the C pickler; only when that fails, or when a value refers to
code a worker cannot import (``__main__``, a notebook, a module made at run
time), do they fall back to dill, which ships such objects by value.
Routine code that a worker cannot import is shipped by value once per
peer and then named by its digest.

Objects that belong to one process (locks, sockets, open files,
generators: whatever the C pickler refuses with "cannot pickle 'X'
object") are refused with SerializationError, never copied by dill; and
no encoded value may exceed ``frames.LIMIT``, checked here, before
anything is written.
"""

from __future__ import annotations

import _thread
import builtins
import hashlib
import importlib
import io
import os
import pickle
import re
import struct
import sys
import threading
import traceback
from collections import OrderedDict
from types import CodeType, FunctionType, ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

from wool.errors import RemoteError, SerializationError
from wool.protocol import frames

if TYPE_CHECKING:
    from wool.routine import Routine

_PROTOCOL = pickle.HIGHEST_PROTOCOL
_PLAIN = (bytes, bytearray, str, int, float, bool, complex)
_SIZED = (bytes, bytearray, str)
_WOOL_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
EMPTY_CALL = b""


def _dill() -> Any:
    import dill

    return dill


def _dill_dumps(obj: object) -> bytes:
    return _dill().dumps(obj, protocol=_PROTOCOL, recurse=True)


_strict_pickler: Any = None


def _dill_value(obj: object) -> bytes:
    """dill for a value: like ``_dill_dumps``, but locks and open files are refused, not copied.

    dill would recreate a lock (unlocked) or reopen a file by name on the
    other side; without its reducers for them, pickling fails as the C
    pickler does ("cannot pickle '_thread.lock' object").
    """
    global _strict_pickler
    if _strict_pickler is None:
        dill = _dill()
        base = dill.Pickler
        refused = {
            kind
            for kind in base.dispatch
            if kind in (_thread.LockType, _thread.RLock)
            or (isinstance(kind, type) and issubclass(kind, io.IOBase))
            or getattr(kind, "__module__", "") == "_pyio"
        }
        dispatch = type(base.dispatch)(
            {kind: save for kind, save in base.dispatch.items() if kind not in refused}
        )
        _strict_pickler = type("_StrictDillPickler", (base,), {"dispatch": dispatch})
    buffer = io.BytesIO()
    _strict_pickler(buffer, _PROTOCOL, recurse=True).dump(obj)
    return buffer.getvalue()


class _NeedsDill(Exception):
    """A value refers to code a worker cannot import; dill must ship it by value."""


_importable_modules: dict[str, bool] = {}


def _module_importable(name: str) -> bool:
    known = _importable_modules.get(name)
    if known is None:
        module = sys.modules.get(name)
        known = name != "__main__" and getattr(module, "__spec__", None) is not None
        _importable_modules[name] = known
    return known


class _Pickler(pickle.Pickler):
    """The C pickler, which hands back to dill on the first object a worker could not import.

    reducer_override only runs for objects that are not built-in containers
    or atoms, so its cost follows the number of such objects, not payload size.
    """

    def reducer_override(self, obj: object) -> Any:
        kind = type(obj)
        module = obj.__module__ if kind is type or kind is FunctionType else kind.__module__
        if not _module_importable(module):
            raise _NeedsDill
        return NotImplemented


_REFUSED = re.compile(r"cannot pickle '([\w.]+)' (?:object|instances)")  # 3.13 says instances
_BY_REFERENCE = frozenset({"module"})
"""Kinds the C pickler refuses that dill ships by reference, not as a copy."""


def _refused(exc: TypeError) -> str | None:
    """The type named by the C pickler's "cannot pickle 'X' object", unless dill may ship it."""
    found = _REFUSED.search(str(exc))
    if found is None or found.group(1) in _BY_REFERENCE:
        return None
    return found.group(1)


def _pickled(obj: object) -> bytes:
    """Bytes for ``obj`` (``b""`` for None), of any size. Raises SerializationError."""
    if obj is None:
        return b""
    if type(obj) in _PLAIN:
        return pickle.dumps(obj, _PROTOCOL)
    buffer = io.BytesIO()
    try:
        _Pickler(buffer, _PROTOCOL).dump(obj)
        return buffer.getvalue()
    except TypeError as exc:
        kind = _refused(exc)
        if kind is not None:
            raise SerializationError(
                f"cannot pickle '{kind}' object: it belongs to this process, and Wool "
                "does not copy it to another"
            ) from exc
    except Exception:
        pass
    try:
        return _dill_value(obj)
    except Exception as exc:
        raise SerializationError(
            f"cannot serialize {type(obj).__qualname__} object: {type(exc).__name__}: {exc}"
        ) from exc


def _size_text(size: int) -> str:
    """``size`` bytes for a message: "512 bytes", "3.5 MiB", "4.0 GiB"."""
    if size < 1 << 20:
        return f"{size} bytes"
    if size < 1 << 30:
        return f"{size / 2**20:.1f} MiB"
    return f"{size / 2**30:.1f} GiB"


def _too_large(what: str, size: int) -> SerializationError:
    return SerializationError(
        f"{what} {_size_text(size)}, over the {_size_text(frames.LIMIT)} one message can "
        "carry. Send it in parts, or have the routine load it itself."
    )


def encode_value(obj: object) -> bytes:
    """Bytes for ``obj``; ``b""`` stands for None.

    Raises SerializationError when ``obj`` cannot be pickled, belongs to
    this process (a lock, a socket), or encodes to more than ``frames.LIMIT``.
    """
    if obj is None:
        return b""
    kind = type(obj)
    if kind in _PLAIN:
        if kind in _SIZED and len(obj) > frames.LIMIT:  # type: ignore[arg-type]
            raise _too_large(f"a {kind.__qualname__} value is", len(obj))  # type: ignore[arg-type]
        data = pickle.dumps(obj, _PROTOCOL)
    else:
        data = _pickled(obj)
    if len(data) > frames.LIMIT:
        raise _too_large(f"a {kind.__qualname__} value encodes to", len(data))
    return data


def decode_value(data: bytes | memoryview) -> Any:
    if not data:
        return None
    return pickle.loads(data)


def encode_call(name: str, args: tuple, kwargs: dict) -> bytes:
    """Encode a call's arguments, naming the first one that cannot be encoded."""
    if not args and not kwargs:
        return EMPTY_CALL
    try:
        data = _pickled((args, kwargs))
    except SerializationError:
        pass
    else:
        if len(data) > frames.LIMIT:
            raise _too_large(f"{name}(): the arguments come to", len(data))
        return data
    labelled = [(f"positional argument {i}", a) for i, a in enumerate(args)]
    labelled += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
    for label, value in labelled:
        try:
            _pickled(value)
        except SerializationError as exc:
            raise SerializationError(
                f"{name}(): {label} ({type(value).__qualname__}) cannot be sent to a worker: "
                f"{exc}. Pass something picklable, or create it inside the routine."
            ) from exc.__cause__
    raise SerializationError(f"{name}(): the arguments cannot be sent to a worker")


def decode_call(data: bytes | memoryview) -> tuple[tuple, dict]:
    if not data:
        return (), {}
    args, kwargs = pickle.loads(data)
    return args, kwargs


# -- exceptions ---------------------------------------------------------------


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    """Skip Wool's own frames at the top of a worker-side traceback."""
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_WOOL_DIR):
        tb = tb.tb_next
    return tb


TRACEBACK_FRAMES = 100
"""Frames of a remote traceback rebuilt on the caller: the innermost, where it was raised."""
TEXT_LIMIT = 256 << 10
"""Characters kept of an error's message and of its formatted traceback."""


def _clip(text: str) -> str:
    if len(text) <= TEXT_LIMIT:
        return text
    half = TEXT_LIMIT // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters left out ...]\n{text[-half:]}"


def _innermost(tb: TracebackType | None, count: int) -> TracebackType | None:
    """The last ``count`` entries of a traceback chain (tblib recurses once per entry)."""
    ahead = tb
    for _ in range(count):
        if ahead is None:
            return tb
        ahead = ahead.tb_next
    while ahead is not None and tb is not None:
        ahead, tb = ahead.tb_next, tb.tb_next
    return tb


def _message(exc: BaseException) -> str:
    try:
        return _clip(str(exc))
    except Exception as failed:
        return f"<str() of the exception raised {type(failed).__qualname__}>"


def encode_exception(exc: BaseException) -> tuple[bytes, str, str, str]:
    """(payload, type name, message, formatted traceback) for a worker-side error.

    Never raises: what cannot be made is left out (the payload when the
    exception cannot be pickled and rebuilt, frames beyond the innermost
    ``TRACEBACK_FRAMES``, text beyond ``TEXT_LIMIT``), so the caller always
    gets an outcome, at worst a RemoteError with the type name and message.
    """
    kind = type(exc)
    type_name = f"{kind.__module__}.{kind.__qualname__}"
    message = _message(exc)
    original = exc.__traceback__
    try:
        tb = _user_frames(original)
        text = _clip("".join(traceback.format_exception(kind, exc, tb)))
    except Exception as failed:
        tb = None
        text = f"{type_name}: {message}\n(the traceback could not be formatted: {failed!r})"
    try:
        from tblib import Traceback

        kept = _innermost(tb, TRACEBACK_FRAMES)
        tb_dict = Traceback(kept).as_dict() if kept is not None else None
        payload = encode_value((exc.with_traceback(None), tb_dict))
        # A pickle that cannot be rebuilt is useless to the caller: check here.
        pickle.loads(payload)
    except Exception:
        payload = b""
    finally:
        exc.__traceback__ = original
    return payload, type_name, message, text


def decode_exception(
    payload: bytes | memoryview, type_name: str, message: str, text: str, where: str
) -> Exception:
    """Rebuild a remote exception with its remote traceback and a note saying where.

    Only an ``Exception`` is rebuilt as itself. A routine's SystemExit,
    KeyboardInterrupt or other BaseException arrives as a RemoteError
    naming it: raised as itself inside ``gather``/``create_task``, asyncio
    would treat it as fatal and end the caller's process.
    """
    exc: BaseException | None = None
    if payload:
        try:
            exc, tb_dict = decode_value(payload)
            if tb_dict is not None:
                from tblib import Traceback

                exc = exc.with_traceback(Traceback.from_dict(tb_dict).as_traceback())
        except Exception:
            exc = None
    if not isinstance(exc, Exception):
        exc = RemoteError(type_name, message, text)
    exc.add_note(f"[wool] raised remotely on {where}")
    return exc


# -- routine code ---------------------------------------------------------------

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
    names: set[str] = set()
    codes = [fn.__code__]
    while codes:
        code = codes.pop()
        names.update(code.co_names)
        codes.extend(c for c in code.co_consts if hasattr(c, "co_names"))
    found = {n: fn.__globals__[n] for n in names if n in fn.__globals__}
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
            sizes.append((len(_dill_dumps(value)), name))
        except Exception:
            broken.append(name)
    return broken, sorted(sizes, reverse=True)


def _stripped(fn: Any) -> FunctionType:
    """``fn`` without its globals: they travel per call (``snapshot``), not with the code."""
    bare = FunctionType(
        fn.__code__, {"__name__": fn.__module__}, fn.__name__, fn.__defaults__, fn.__closure__
    )
    bare.__kwdefaults__ = fn.__kwdefaults__
    bare.__qualname__ = fn.__qualname__
    bare.__module__ = fn.__module__
    bare.__doc__ = fn.__doc__
    if fn.__dict__:
        bare.__dict__.update(fn.__dict__)
    return bare


def bind(fn: Any, namespace: dict[str, Any]) -> FunctionType:
    """``fn`` reading its globals from ``namespace`` (one call's values)."""
    bound = FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)
    bound.__kwdefaults__ = fn.__kwdefaults__
    bound.__qualname__ = fn.__qualname__
    bound.__module__ = fn.__module__
    if fn.__dict__:
        bound.__dict__.update(fn.__dict__)
    return bound


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
            code = _dill_dumps(_stripped(routine.function))
        except Exception as exc:
            broken, _ = _culprits(_stripped(routine.function))
            which = ", ".join(repr(b) for b in broken) or "a value it uses"
            raise SerializationError(
                f"cannot ship routine {name}() to workers: {which} cannot be pickled "
                f"({type(exc).__name__}: {exc}). Create it inside the routine, pass what it "
                "needs as arguments, or move it to a module the workers can import."
            ) from exc
        if len(code) > CODE_LIMIT:
            _, sizes = _culprits(_stripped(routine.function))
            biggest = ", ".join(f"{n!r} ({size / 2**20:.1f} MiB)" for size, n in sizes[:3])
            raise SerializationError(
                f"routine {name}() would ship {len(code) / 2**20:.1f} MiB of code, defaults and "
                f"closure to every worker; the largest: {biggest}. Pass large data as an "
                "argument, or load it inside the routine."
            )
        return code
    finally:
        stack.discard(routine.uid)


def digest_of(code: bytes) -> bytes:
    return hashlib.blake2b(code, digest_size=16).digest()


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


class _ByIdentity:
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
        values.put(key, data)
    return routine.bound(values.namespace(manifest, routine.__module__))


def _placeholder(uid: str) -> Routine:
    return routines.by_uid(uid)


def load_function(code: bytes) -> Any:
    return _dill().loads(code)


# -- globals, current at every call -----------------------------------------

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


def _reads(code: CodeType) -> tuple[str, ...]:
    """Names ``code`` (and code nested in it) may read as globals, computed once per code object.

    Keyed by identity, holding the code: hashing a code object hashes its contents.
    """
    held = _reads_of.get(id(code))
    if held is not None and held[0] is code:
        return held[1]
    found: set[str] = set()
    codes = [code]
    while codes:
        current = codes.pop()
        found.update(current.co_names)
        codes.extend(c for c in current.co_consts if isinstance(c, CodeType))
    names = tuple(sorted(found))
    if len(_reads_of) >= _CACHE_LIMIT:
        _reads_of.clear()
    _reads_of[id(code)] = (code, names)
    return names


def reads_globals(fn: Any) -> bool:
    """Whether ``fn``'s code names anything it might read as a global."""
    return bool(_reads(fn.__code__))


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
    if (
        kind is FunctionType
        and value.__globals__ is namespace
        and not (_module_importable(value.__module__) and "<locals>" not in value.__qualname__)
    ):
        identity = _function_identity(value)
        known = _functions.get(id(value.__code__))
        if known is not None and all(a is b for a, b in zip(known[0], identity, strict=True)):
            return known[1]
        try:
            data = _dill_dumps(_stripped(value))
        except Exception as exc:
            raise SerializationError(f"{type(exc).__name__}: {exc}") from exc
        entry: _Entry = (
            FUNCTION,
            value_digest(_checked(name, value, data)),
            data,
            _reads(value.__code__),
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
            data = pickle.dumps(_ByIdentity(value), _PROTOCOL)
            entry = (
                ROUTINE,
                value_digest(_checked(name, value, data)),
                data,
                _reads(value.function.__code__),
            )
            _remember(_routine_entries, value.uid, entry)
        return entry
    found: bytes | Buffers
    if kind is ModuleType:
        found = pickle.dumps(_ModuleByName(value.__name__), _PROTOCOL)
    elif kind in _ATOMS:
        found = _pickled(value)
    else:
        found = _pickled_buffers(value)
    if type(found) is bytes:
        entry = (VALUE, value_digest(_checked(name, value, found)), found, ())
    else:
        assert isinstance(found, Buffers)
        _checked_size(name, value, found.size)
        entry = (VALUE, found.digest(), found, ())
    if _immutable(value) or kind is ModuleType:
        _remember(_fixed, id(value), (value, entry))
    return entry


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
        raise _too_large(f"global {name!r} ({type(value).__qualname__}) encodes to", size)


def value_digest(data: bytes | memoryview) -> bytes:
    """A value's name on the wire: SHA-256 (hardware-accelerated on most CPUs) cut to 16 bytes."""
    return hashlib.sha256(data).digest()[:16]


_OUT_OF_BAND = b"W"
_BUFFERS = struct.Struct(">IQ")  # buffer count, pickle length; then a u64 length per buffer


class Buffers:
    """A value pickled with its large buffers (numpy arrays, bytearrays) left where they are.

    Its digest hashes the buffers in place, with no copy; its bytes are
    made only when a worker lacks them (``bytes()``). On the worker, the
    value is rebuilt on views of those cached bytes: read-only, shared by
    every call, never copied.
    """

    __slots__ = ("parts", "size")

    def __init__(self, meta: bytes, buffers: list[memoryview]) -> None:
        lengths = [len(b) for b in buffers]
        head = _OUT_OF_BAND + _BUFFERS.pack(len(buffers), len(meta))
        head += struct.pack(f">{len(lengths)}Q", *lengths)
        self.parts: list[bytes | memoryview] = [head, meta, *buffers]
        self.size = sum(len(part) for part in self.parts)

    def digest(self) -> bytes:
        hasher = hashlib.sha256()
        for part in self.parts:
            hasher.update(part)
        return hasher.digest()[:16]

    def __bytes__(self) -> bytes:
        return b"".join(self.parts)


class _BufferPickler(threading.local):
    """One ``_Pickler`` per thread, reused: making one costs more than pickling a small value."""

    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.found: list[pickle.PickleBuffer] = []
        self.pickler = _Pickler(self.out, _PROTOCOL, buffer_callback=self.found.append)
        self.busy = False


_buffer_pickler = _BufferPickler()


def _pickled_buffers(value: object) -> bytes | Buffers:
    """``value`` pickled, its contiguous buffers out of band when it has any."""
    state = _buffer_pickler
    if state.busy:  # reentered from a __reduce__: a fresh one
        return _pickled(value)
    out, found = state.out, state.found
    state.busy = True
    try:
        out.seek(0)
        out.truncate()
        found.clear()
        state.pickler.clear_memo()
        state.pickler.dump(value)
        views = [b.raw() for b in found]
        data = out.getvalue()
    except Exception:
        return _pickled(value)
    finally:
        found.clear()
        state.busy = False
    if not views:
        return data
    return Buffers(data, views)


def _load(data: bytes) -> Any:
    """A value as ``snapshot`` pickled it: None, a pickle, or a pickle with its buffers."""
    if not data:
        return None
    if data[:1] != _OUT_OF_BAND:
        return pickle.loads(data)
    view = memoryview(data)
    count, size = _BUFFERS.unpack_from(view, 1)
    offset = 1 + _BUFFERS.size
    lengths = struct.unpack_from(f">{count}Q", view, offset)
    offset += 8 * count
    meta = view[offset : offset + size]
    offset += size
    buffers = []
    for length in lengths:
        buffers.append(view[offset : offset + length])
        offset += length
    return pickle.loads(meta, buffers=buffers)


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
    names = _reads(fn.__code__)
    if not names:
        return None
    namespace = fn.__globals__
    if memo is not None and memo.reuse(namespace):
        return memo.result
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
            data = pickle.dumps(key, _PROTOCOL)
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

    def put(self, digest: bytes, data: bytes | memoryview) -> bool:
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
                obj = _load(self._bytes(item))
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
