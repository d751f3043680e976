"""Bytes for the wire: values, calls, exceptions, digests; no knowledge of routines.

Values use the C pickler; only when that fails, or when a value refers to
code a worker cannot import (``__main__``, a notebook, a module made at run
time), do they fall back to dill, which ships such objects by value.
Which routines travel by value, and the globals they read, are decided in
``registry`` and ``callglobals``; this module only makes and reads bytes.

Objects that belong to one process (locks, sockets, open files,
generators: whatever the C pickler refuses with "cannot pickle 'X'
object") are refused with SerializationError, never copied by dill; and
no encoded value may exceed ``frames.LIMIT``, checked here, before
anything is written.
"""

from __future__ import annotations

import _thread
import hashlib
import io
import os
import pickle
import re
import struct
import sys
import threading
import traceback
from types import FunctionType, TracebackType
from typing import Any

from wool.errors import RemoteError, SerializationError
from wool.protocol import frames

PROTOCOL = pickle.HIGHEST_PROTOCOL
_PLAIN = (bytes, bytearray, str, int, float, bool, complex)
_SIZED = (bytes, bytearray, str)
_WOOL_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
EMPTY_CALL = b""


def _dill() -> Any:
    import dill

    return dill


def dill_dumps(obj: object) -> bytes:
    """dill with ``recurse``: functions carry only the globals they name (code by value)."""
    return _dill().dumps(obj, protocol=PROTOCOL, recurse=True)


_strict_pickler: Any = None


def _dill_value(obj: object) -> bytes:
    """dill for a value: like ``dill_dumps``, but locks and open files are refused, not copied.

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
    _strict_pickler(buffer, PROTOCOL, recurse=True).dump(obj)
    return buffer.getvalue()


class _NeedsDill(Exception):
    """A value refers to code a worker cannot import; dill must ship it by value."""


_importable_modules: dict[str, bool] = {}


def module_importable(name: str) -> bool:
    """Whether a worker can import module ``name`` (not ``__main__``, not made at run time)."""
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
        if not module_importable(module):
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


def pickled(obj: object) -> bytes:
    """Bytes for ``obj`` (``b""`` for None), of any size. Raises SerializationError."""
    if obj is None:
        return b""
    if type(obj) in _PLAIN:
        return pickle.dumps(obj, PROTOCOL)
    buffer = io.BytesIO()
    try:
        _Pickler(buffer, PROTOCOL).dump(obj)
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


def too_large(what: str, size: int) -> SerializationError:
    """The error for ``what`` of ``size`` bytes over ``frames.LIMIT``."""
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
            raise too_large(f"a {kind.__qualname__} value is", len(obj))  # type: ignore[arg-type]
        data = pickle.dumps(obj, PROTOCOL)
    else:
        data = pickled(obj)
    if len(data) > frames.LIMIT:
        raise too_large(f"a {kind.__qualname__} value encodes to", len(data))
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
        data = pickled((args, kwargs))
    except SerializationError:
        pass
    else:
        if len(data) > frames.LIMIT:
            raise too_large(f"{name}(): the arguments come to", len(data))
        return data
    labelled = [(f"positional argument {i}", a) for i, a in enumerate(args)]
    labelled += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
    for label, value in labelled:
        try:
            pickled(value)
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
    except BaseException as failed:  # a __str__ raising SystemExit too: never escape
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
    except BaseException as failed:
        tb = None
        text = f"{type_name}: {message}\n(the traceback could not be formatted: {failed!r})"
    try:
        from tblib import Traceback

        kept = _innermost(tb, TRACEBACK_FRAMES)
        tb_dict = Traceback(kept).as_dict() if kept is not None else None
        payload = encode_value((exc.with_traceback(None), tb_dict))
        # A pickle that cannot be rebuilt is useless to the caller: check here.
        pickle.loads(payload)
    except BaseException:  # a __reduce__ raising KeyboardInterrupt must not end the call
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


def digest_of(code: bytes) -> bytes:
    """A routine's code on the wire: blake2b, 16 bytes."""
    return hashlib.blake2b(code, digest_size=16).digest()


def load_function(code: bytes) -> Any:
    """A function from ``dill_dumps`` bytes."""
    return _dill().loads(code)


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
        self.pickler = _Pickler(self.out, PROTOCOL, buffer_callback=self.found.append)
        self.busy = False


_buffer_pickler = _BufferPickler()


def pickled_buffers(value: object) -> bytes | Buffers:
    """``value`` pickled, its contiguous buffers out of band when it has any."""
    state = _buffer_pickler
    if state.busy:  # reentered from a __reduce__: a fresh one
        return pickled(value)
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
        return pickled(value)
    finally:
        found.clear()
        state.busy = False
    if not views:
        return data
    return Buffers(data, views)


def load_buffers(data: bytes) -> Any:
    """A value as ``pickled_buffers`` made it: None, a pickle, or a pickle with its buffers."""
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
