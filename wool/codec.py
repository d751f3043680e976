"""Bytes for the wire: values, calls, exceptions, digests; no knowledge of routines.

Values use the C pickler; only when that fails, or when a value refers to
code a worker cannot import (``__main__``, a notebook, a module made at run
time), do they fall back to dill, which ships such objects by value.
Which routines travel by value, and the globals they read, are decided in
``registry`` and ``callglobals``; this module only makes and reads bytes.

Objects that belong to one process (locks, sockets, open files,
generators: whatever the C pickler refuses with "cannot pickle 'X'
object") are refused with SerializationError, never copied by dill.

Large buffers (numpy arrays, pandas columns, bytes, bytearrays,
memoryviews of ``LARGE`` bytes or more) are left out of band: the encoders
return ``Buffers`` (a ``frames.Parts``) holding views of them, not copies,
and the decoders rebuild them as views of the received memory. Small
values stay plain ``bytes``, made as cheaply as before. No value may
exceed the sender's limit (``MAX_PAYLOAD`` unless given) nor
``frames.LIMIT``: sizes are summed before anything is copied, and
PayloadTooLarge names the argument.
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

from wool import tuning
from wool.errors import PayloadTooLarge, RemoteError, SerializationError
from wool.protocol import buffers as layout
from wool.protocol import frames

PROTOCOL = pickle.HIGHEST_PROTOCOL
_PLAIN = (bytes, bytearray, str, int, float, bool, complex)
_SIZED = (bytes, bytearray, str)
_WOOL_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
EMPTY_CALL = b""
LARGE = 64 << 10
"""A buffer (numpy array, bytearray, bytes argument) of this many bytes travels out of band."""
REPICKLE = 1 << 20
"""A call whose pickle reaches this size is pickled again with its nested large bytes marked."""
MAX_PAYLOAD: int = int(os.environ.get("WOOL_MAX_PAYLOAD") or 2 << 30)
"""The default limit on one encoded value or call (``WorkerPool(max_payload=...)``)."""


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
        if not module_importable(module) and not _by_reference(obj, module):
            raise _NeedsDill
        return NotImplemented


def _by_reference(obj: object, module: str) -> bool:
    """Whether ``obj``, of a type from a module made at run time, names an importable module
    itself (a Cython function: pickled by reference to its own module)."""
    own = getattr(obj, "__module__", None)
    return isinstance(own, str) and own != module and module_importable(own)


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


def too_large(what: str, size: int) -> PayloadTooLarge:
    """The error for ``what`` of ``size`` bytes over ``frames.LIMIT``."""
    return PayloadTooLarge(
        f"{what} {_size_text(size)}, over the {_size_text(frames.LIMIT)} one payload can "
        "carry. Send it in parts, or have the routine load it itself."
    )


def _over(what: str, size: int, limit: int) -> PayloadTooLarge:
    """The error for ``what`` of ``size`` bytes over ``limit`` (``frames.LIMIT`` if smaller)."""
    if limit >= frames.LIMIT:
        return too_large(what, size)
    return PayloadTooLarge(
        f"{what} {_size_text(size)}, over this pool's max_payload of {_size_text(limit)}"
    )


def _cap(limit: int | None) -> int:
    return min(MAX_PAYLOAD if limit is None else limit, frames.LIMIT)


def encode_value(obj: object, limit: int | None = None) -> bytes | Buffers:
    """``obj`` for the wire: ``b""`` for None, bytes, or ``Buffers`` when it holds large buffers.

    ``limit`` (default ``MAX_PAYLOAD``, never above ``frames.LIMIT``) is
    checked on sizes before anything is copied. Raises SerializationError
    when ``obj`` cannot be pickled or belongs to this process (a lock, a
    socket), PayloadTooLarge when it is over the limit.
    """
    if obj is None:
        return b""
    kind = type(obj)
    if kind in _PLAIN:
        if kind in _SIZED:
            size = len(obj)  # type: ignore[arg-type]
            if size > _cap(limit):
                raise _over(f"a {kind.__qualname__} value is", size, _cap(limit))
            if size >= LARGE and kind is not str:
                return _sized(_dump(_Large(obj)), kind, limit)  # type: ignore[arg-type]
        return pickle.dumps(obj, PROTOCOL)
    return _sized(_dump(obj), kind, limit)


def _sized(found: tuple[bytes, list[memoryview]], kind: type, limit: int | None) -> bytes | Buffers:
    """``found`` as a payload once its size is known to be within the limit."""
    meta, views = found
    if len(meta) >= REPICKLE and not views:
        return _sized_bytes(meta, kind, limit)
    size = _payload_size(meta, views)
    if size > _cap(limit):
        verb = "is" if kind is memoryview else "encodes to"
        raise _over(f"a {kind.__qualname__} value {verb}", size, _cap(limit))
    if size >= tuning.LARGE_PAYLOAD:
        tuning.note_large_payload()
    return Buffers(meta, views) if views else meta


def _sized_bytes(data: bytes, kind: type, limit: int | None) -> bytes:
    if len(data) > _cap(limit):
        raise _over(f"a {kind.__qualname__} value encodes to", len(data), _cap(limit))
    tuning.note_large_payload()
    return data


def decode_value(data: frames.Payload) -> Any:
    """The value ``encode_value`` made, rebuilt on views of ``data`` where the library allows.

    Out-of-band buffers (numpy arrays, memoryviews) share the received memory,
    writable when it is a bytearray (or a ``buffers.Received``, whose buffers
    have memory of their own); ``bytes`` and ``bytearray`` values are the
    received objects themselves when the chunk assembler made them
    (``Received``), else copied out once, as those types own their memory.
    """
    if not data:
        return None
    try:
        value = pickle.loads(data)  # type: ignore[arg-type]
    except Exception:
        if isinstance(data, frames.Parts) or data[0] == _MARK:
            return _load_other(data)
        raise
    if len(data) >= REPICKLE:
        tuning.note_large_payload()
    return value


def _load_other(data: frames.Payload) -> Any:
    """A payload with buffers out of band, or one made here (``Parts``) and not sent."""
    if type(data) is layout.Received:
        tuning.note_large_payload()
        return pickle.loads(data.front[data.head.meta[0] : data.head.meta[1]], buffers=data.buffers)
    if isinstance(data, frames.Parts):
        data = bytes(data)
    if len(data) >= REPICKLE:
        tuning.note_large_payload()
    return load_buffers(data, writable=True)


def _label(args: tuple, kwargs: dict) -> list[tuple[str, object]]:
    labelled = [(f"positional argument {i}", a) for i, a in enumerate(args)]
    labelled += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
    return labelled


def encode_call(name: str, args: tuple, kwargs: dict, limit: int | None = None) -> bytes | Buffers:
    """Encode a call's arguments, naming the first one that cannot be encoded.

    Large buffers go out of band (``Buffers``). Over ``limit`` (default
    ``MAX_PAYLOAD``) raises PayloadTooLarge naming the largest argument,
    measured before anything is copied.
    """
    if not args and not kwargs:
        return EMPTY_CALL
    if not _OWNED.isdisjoint(map(type, args)) or (
        kwargs and not _OWNED.isdisjoint(map(type, kwargs.values()))
    ):
        args, kwargs = _marked(args, kwargs)
    try:
        meta, views = _dump((args, kwargs))
        if len(meta) >= REPICKLE:
            args, kwargs = _marked(args, kwargs, deep=True)
            meta, views = _dump((args, kwargs))
    except SerializationError:
        pass
    else:
        size = _payload_size(meta, views) if views else len(meta)
        if size > (MAX_PAYLOAD if limit is None else limit) or size > frames.LIMIT:
            raise _call_too_large(name, args, kwargs, size, _cap(limit))
        if size >= REPICKLE:
            tuning.note_large_payload()
        return Buffers(meta, views) if views else meta
    for label, value in _label(args, kwargs):
        try:
            _dump(value)
        except SerializationError as exc:
            shown = value.data if type(value) is _Large else value
            raise SerializationError(
                f"{name}(): {label} ({type(shown).__qualname__}) cannot be sent to a worker: "
                f"{exc}. Pass something picklable, or create it inside the routine."
            ) from exc.__cause__
    raise SerializationError(f"{name}(): the arguments cannot be sent to a worker")


def _call_too_large(name: str, args: tuple, kwargs: dict, size: int, cap: int) -> PayloadTooLarge:
    """The error naming the largest argument (each measured with its buffers out of band)."""
    largest, label, value = -1, "", None
    for what, item in _label(args, kwargs):
        meta, views = _dump(item)
        found = len(meta) + sum(view.nbytes for view in views)
        if found > largest:
            largest, label, value = found, what, item
    if type(value) is _Large:
        value = value.data
    named = f"{label} ({type(value).__qualname__})"
    if cap >= frames.LIMIT:  # the absolute cap: worded as before max_payload existed
        error = too_large(f"{name}(): the arguments come to", size)
        return PayloadTooLarge(f"{error} The largest is {named}, {_size_text(largest)}.")
    if largest > cap:
        return _over(f"{name}(): {named} is", largest, cap)
    error = _over(f"{name}(): the arguments come to", size, cap)
    return PayloadTooLarge(f"{error}; the largest is {named}, {_size_text(largest)}")


def decode_call(data: frames.Payload) -> tuple[tuple, dict]:
    """The arguments ``encode_call`` made (large buffers as in ``decode_value``)."""
    if not data:
        return (), {}
    try:
        args, kwargs = pickle.loads(data)  # type: ignore[arg-type]
    except Exception:
        if isinstance(data, frames.Parts) or data[0] == _MARK:
            args, kwargs = _load_other(data)
            return args, kwargs
        raise
    if len(data) >= REPICKLE:
        tuning.note_large_payload()
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
        encoded = encode_value((exc.with_traceback(None), tb_dict))
        payload = encoded if type(encoded) is bytes else bytes(encoded)
        # A pickle that cannot be rebuilt is useless to the caller: check here.
        decode_value(payload)
    except BaseException:  # a __reduce__ raising KeyboardInterrupt must not end the call
        payload = b""
    finally:
        exc.__traceback__ = original
    return payload, type_name, message, text


def decode_exception(
    payload: frames.Payload, type_name: str, message: str, text: str, where: str
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


_MARK = layout.MARK[0]  # a pickle of protocol 2 or more starts with 0x80, never this


def _payload_size(meta: bytes, views: list[memoryview]) -> int:
    """Bytes of the payload ``Buffers(meta, views)`` would be, computed without building it."""
    return layout.size_of(len(meta), [view.nbytes for view in views])


class Buffers(frames.Parts):
    """A value pickled with its large buffers (numpy arrays, bytes) left where they are.

    Laid out as ``wool.protocol.buffers`` says. The writer sends the parts
    as they are; nothing joins them before the wire.
    Its digest hashes the buffers in place, with no copy; ``bytes()``
    joins them when bytes are needed (a by-value global a worker lacks).
    Pickled (inside a ContextVar payload), it becomes those bytes.
    """

    __slots__ = ()

    def __init__(self, meta: bytes, buffers: list[memoryview]) -> None:
        head = layout.head_bytes(len(meta), buffers)
        parts: list[bytes | memoryview] = [head, meta]
        offset = len(head) + len(meta)
        for buffer in buffers:
            pad = layout.padding(offset)
            if pad:
                parts.append(pad)
            parts.append(buffer)
            offset += len(pad) + buffer.nbytes
        self.parts = parts
        self.size = offset

    def digest(self) -> bytes:
        hasher = hashlib.sha256()
        for part in self.parts:
            hasher.update(part)
        return hasher.digest()[:16]

    def __reduce__(self) -> tuple:
        return (bytes, (bytes(self),))


_OWNED = frozenset({bytes, bytearray})
"""Buffers the C pickler writes in band, with no hook: marked (``_Large``) where found."""


class _Large:
    """A large ``bytes`` or ``bytearray`` marked to travel out of band."""

    __slots__ = ("data",)

    def __init__(self, data: bytes | bytearray) -> None:
        self.data = data

    def __reduce__(self) -> tuple:  # by a pickler other than the buffer pickler (dill): in band
        return (type(self.data), (self.data,))


def _marked(args: tuple, kwargs: dict, deep: bool = False) -> tuple[tuple, dict]:
    """``args`` and ``kwargs`` with each large ``bytes``/``bytearray`` marked (``_Large``):
    top-level ones, and with ``deep`` those inside a list, tuple or dict value too.

    One mark per object, so a buffer passed twice travels once (the pickle
    refers back to it).
    """
    marks: dict[int, _Large] = {}

    def wrap(value: Any, deep: bool) -> Any:
        kind = type(value)
        if kind is _Large:  # marked on an earlier pass
            return marks.setdefault(id(value.data), value)
        if kind is bytes or kind is bytearray:
            if len(value) < LARGE:
                return value
            mark = marks.get(id(value))
            if mark is None:
                mark = marks[id(value)] = _Large(value)
            return mark
        if not deep:
            return value
        if (kind is list or kind is tuple) and not _OWNED.isdisjoint(map(type, value)):
            return kind(wrap(item, False) for item in value)
        if kind is dict and not _OWNED.isdisjoint(map(type, value.values())):
            return {k: wrap(v, False) for k, v in value.items()}
        return value

    return tuple(wrap(a, deep) for a in args), {k: wrap(v, deep) for k, v in kwargs.items()}


def _view_of(buffer: Any, format: str, shape: tuple[int, ...]) -> memoryview:
    """A memoryview rebuilt on ``buffer`` (received memory) with its format and shape."""
    view = memoryview(buffer)
    if format == "B" and len(shape) == 1:
        return view
    try:
        return view.cast("B").cast(format, shape)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return view


def _own(buffer: Any, as_bytes: bool) -> bytes | bytearray:
    """A marked ``bytes``/``bytearray`` rebuilt: the received object itself when the chunk
    assembler gave it one of that type (``buffers.Received``), else a copy of the view."""
    kind = bytes if as_bytes else bytearray
    return buffer if type(buffer) is kind else kind(buffer)


def _reduce_buffer(obj: Any) -> Any:
    """How the buffer pickler ships a bytearray, memoryview or marked bytes (large: out of band)."""
    if type(obj) is _Large:
        return (_own, (pickle.PickleBuffer(obj.data), type(obj.data) is bytes))
    if obj.c_contiguous:
        return (_view_of, (pickle.PickleBuffer(obj), obj.format, obj.shape))
    return (_view_of, (obj.tobytes(), obj.format, obj.shape))


class _BufferAwarePickler(_Pickler):
    """``_Pickler`` that also sends bytearrays, memoryviews and marked bytes as buffers."""

    def reducer_override(self, obj: object) -> Any:
        kind = type(obj)
        if kind is memoryview or kind is _Large:
            return _reduce_buffer(obj)
        module = obj.__module__ if kind is type or kind is FunctionType else kind.__module__
        if not module_importable(module) and not _by_reference(obj, module):
            raise _NeedsDill
        return NotImplemented


class _BufferPickler(threading.local):
    """One buffer pickler per thread, reused: making one costs more than pickling a small value."""

    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.found: list[memoryview] = []
        self.pickler = _BufferAwarePickler(self.out, PROTOCOL, buffer_callback=self.keep)
        self.busy = False
        self.threshold = LARGE

    def keep(self, buffer: pickle.PickleBuffer) -> bool:
        """Leave a large contiguous buffer out of band (False); keep a small one in the pickle."""
        try:
            view = buffer.raw()
        except BufferError:
            return True
        if view.nbytes < self.threshold:
            return True
        self.found.append(view)
        return False


_buffer_pickler = _BufferPickler()
_NO_VIEWS: list[memoryview] = []  # shared, never appended to


def _dump(value: object, threshold: int = LARGE) -> tuple[bytes, list[memoryview]]:
    """``value``'s pickle and its buffers of ``threshold`` bytes or more, left out of band
    (views, not copies); ``PickleBuffer``s only: bytearrays and memoryviews from ``LARGE``.

    Falls back to ``pickled`` (dill, buffers in band) where the C pickler
    cannot go; raises SerializationError as it does.
    """
    state = _buffer_pickler
    if state.busy:  # reentered from a __reduce__: a fresh one
        return pickled(value), []
    out, found, pickler = state.out, state.found, state.pickler
    state.busy = True
    state.threshold = threshold
    try:
        pickler.dump(value)
    except Exception:
        failed = True
    else:
        failed = False
        data = out.getvalue()
        views = found[:] if found else _NO_VIEWS
    finally:
        out.seek(0)
        out.truncate()
        if found:
            found.clear()
        pickler.clear_memo()
        state.busy = False
    if failed:
        return pickled(value), _NO_VIEWS
    return data, views


def pickled_buffers(value: object) -> bytes | Buffers:
    """``value`` pickled, its contiguous buffers out of band when it has any.

    Every ``PickleBuffer`` goes out of band, however small: a by-value global
    is then hashed in place and rebuilt on views of the worker's cached bytes.
    """
    data, views = _dump(value, 1)
    return Buffers(data, views) if views else data


def load_buffers(data: bytes | bytearray | memoryview, writable: bool = False) -> Any:
    """A value as ``pickled_buffers`` made it: None, a pickle, or a pickle with its buffers.

    Buffers come back as views of ``data`` (writable when it is). With
    ``writable``, a read-only ``data`` (a payload inside a received message,
    2.5 chunks, 1.25 MiB by default, at most) has its buffers copied out, so arrays arrive writable
    as they would in band, and do not keep the whole message alive.
    """
    if not data:
        return None
    if data[0] != _MARK:
        return pickle.loads(data)
    view = memoryview(data)
    try:
        head = layout.read_head(view)
    except struct.error:
        head = None
    if head is None:
        raise SerializationError("a payload's head runs past its end")
    meta = view[head.meta[0] : head.meta[1]]
    buffers = []
    copy = writable and view.readonly
    for (start, stop), kind in zip(head.spans, head.kinds, strict=True):
        if stop > len(view):
            raise SerializationError("a payload's buffers run past its end")
        buffer = view[start:stop]
        # A bytes value is copied once by ``_own``; anything else gets writable memory here.
        buffers.append(bytearray(buffer) if copy and kind is not bytes else buffer)
    return pickle.loads(meta, buffers=buffers)
