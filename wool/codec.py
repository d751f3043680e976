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
import hashlib
import importlib
import io
import os
import pickle
import re
import sys
import threading
import traceback
from collections import OrderedDict
from types import FunctionType, ModuleType, TracebackType
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


_REFUSED = re.compile(r"cannot pickle '([\w.]+)' object")
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


def routine_code(routine: Routine) -> bytes:
    """The by-value payload of a routine's function, with routines inside it by identity.

    Raises SerializationError naming the global (or closure variable) at
    fault when the payload cannot be made, or when it would exceed 10 MiB.
    """
    stack = _encoding_stack()
    stack.add(routine.uid)
    name = routine.__qualname__
    try:
        try:
            code = _dill_dumps(routine.function)
        except Exception as exc:
            broken, _ = _culprits(routine.function)
            which = ", ".join(repr(b) for b in broken) or "a value it uses"
            raise SerializationError(
                f"cannot ship routine {name}() to workers: {which} cannot be pickled "
                f"({type(exc).__name__}: {exc}). Create it inside the routine, pass what it "
                "needs as arguments, or move it to a module the workers can import."
            ) from exc
        if len(code) > CODE_LIMIT:
            _, sizes = _culprits(routine.function)
            biggest = ", ".join(f"{n!r} ({size / 2**20:.1f} MiB)" for size, n in sizes[:3])
            raise SerializationError(
                f"routine {name}() would ship {len(code) / 2**20:.1f} MiB of code and globals "
                f"to every worker; the largest: {biggest}. Pass large data as an argument, or "
                "load it inside the routine."
            )
        return code
    finally:
        stack.discard(routine.uid)


def digest_of(code: bytes) -> bytes:
    return hashlib.blake2b(code, digest_size=16).digest()


def reduce_routine(routine: Routine) -> tuple:
    """How a routine pickles: by reference when importable, else by identity and code."""
    if routine.importable:
        return (lookup, (routine.__module__, routine.__qualname__))
    if routine.uid in _encoding_stack():
        return (_placeholder, (routine.uid,))
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
    uid: str, digest: bytes, code: bytes, qualname: str, generator: bool = False
) -> Routine:
    return routines.rebuild(uid, digest, code, qualname, generator)


def _placeholder(uid: str) -> Routine:
    return routines.by_uid(uid)


def load_function(code: bytes) -> Any:
    return _dill().loads(code)
