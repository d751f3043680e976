"""Large payloads as Chunk frames: the sender's ``Splitter`` and the receiver's ``Assembler``.

A frame whose payload is over ``frames.CHUNK`` bytes leaves as Chunk
frames carrying slices of it (views: nothing is copied until the message
is joined), then the frame itself with that field empty. Chunks of
different calls take turns, one per message, so the small frames sent
meanwhile (a no-op's Dispatch or Outcome) leave in the next message
rather than behind the whole transfer. Frames of a call whose transfer
is still going out wait behind it, so a call's frames never overtake one
another. At most ``window()`` chunk bytes are in flight: the receiver
answers what it takes in with ``Credit``, so small frames never queue
behind more than that in gRPC's buffers. The receiver copies each chunk
into memory of the announced size (one object per out-of-band buffer when
it can, ``wool.protocol.buffers``) and gives it to the call's next payload
frame.
"""

from __future__ import annotations

import asyncio
import dataclasses
import struct
import sys
import time
from collections.abc import Sequence
from typing import Any, Final, TypeVar

from wool import tuning
from wool.errors import ProtocolError
from wool.protocol import frames
from wool.protocol.buffers import ALIGN, MARK, Head, Received, read_head
from wool.protocol.frames import (
    Cancel,
    Chunk,
    Context,
    Credit,
    Dispatch,
    Frame,
    Outcome,
    Parts,
    Payload,
    Resume,
    Value,
)

F = TypeVar("F")


def window(mixed: bool = False) -> int:
    """Chunk bytes one stream may have sent and not yet had credited (``Credit``).

    gRPC's flow-control window is sized for throughput (it grows to many
    MiB), and a receiver takes in chunks more slowly than loopback delivers
    them, so without this a small frame sent behind a transfer waited behind
    every chunk buffered on the way (measured: 15 to 25 ms during a 256 MiB
    return). By default two chunks are in flight, and one while other calls'
    small frames go out among the chunks (``mixed``): on a 2-core machine a
    no-op's p99 during a 256 MiB round trip was 4 to 8 ms with two and 3 ms
    with one, and a transfer alone ran 25% slower with one.
    ``frames.WINDOW`` (``WOOL_CHUNK_WINDOW``), when set, is used throughout.
    """
    if frames.WINDOW:
        return max(frames.WINDOW, frames.CHUNK)
    return frames.CHUNK if mixed else 2 * frames.CHUNK


MIXED_FOR: Final = 0.05
"""Seconds a stream counts as mixed (``window``) after it last queued another call's small frame."""


HIGH_WATER: Final = 64 << 20
"""``Splitter.drain`` waits while more payload bytes than this are queued, until below half."""


def heavy(size: int) -> bool:
    """Whether a payload of ``size`` bytes counts as queued bytes (a sixteenth of
    ``frames.CHUNK``, 32 KiB by default, or more): a message carries only a few of those."""
    return size >= frames.CHUNK >> 4


_BATCH: Final = 4096
"""The most frames one message carries."""


def split(frame: Frame, payload: Payload) -> bool:
    """Whether ``frame`` (heavy, with ``payload``) goes out in chunks.

    A routine's global (``Value``) never does: later calls count on it being
    known to the worker as soon as it is queued, so nothing may overtake it.
    """
    return type(frame) is not Value and chunked(payload)


def chunked(payload: Payload) -> bool:
    """Whether ``payload`` goes out in chunks: over two and a half chunks (1.25 MiB by default).

    One message of up to that holds a small frame back about a millisecond
    on loopback; splitting it costs more (measured: a 1 MiB echo took 1.5
    to 2 ms longer in two chunks, 1.8x the gRPC floor against 1.3x whole).
    """
    chunk = frames.CHUNK
    return len(payload) > 2 * chunk + (chunk >> 1)


def payload_of(frame: Any) -> Payload | None:
    """The payload ``frame`` carries if it is ``heavy``, else None
    (the usual answer).

    A payload over ``frames.LIMIT`` is left alone: the receiver would refuse
    it, so its encode fails and the frame fails alone (``Salvage``).
    """
    kind = type(frame)
    if kind is Context:
        frame = frame.then
        kind = type(frame)
    if kind is Dispatch:
        payload = frame.args
    elif kind is Outcome or kind is Resume:
        payload = frame.value
    elif kind is Value:
        payload = frame.data
    else:
        return None
    if frames.CHUNK >> 4 <= len(payload) <= frames.LIMIT:
        return payload
    return None


def _emptied(frame: Frame) -> Frame:
    """A copy of ``frame`` with its payload empty (the original may be sent again)."""
    if type(frame) is Context:
        assert frame.then is not None
        return Context(frame.call, frame.values, _emptied(frame.then))  # type: ignore[arg-type]
    if type(frame) is Dispatch:
        return dataclasses.replace(frame, args=b"")
    if type(frame) is Value:
        return dataclasses.replace(frame, data=b"")
    assert type(frame) is Outcome or type(frame) is Resume
    return dataclasses.replace(frame, value=b"")


def _views(payload: Payload) -> list[memoryview]:
    parts = payload.parts if isinstance(payload, Parts) else [payload]
    out = []
    for part in parts:
        view = memoryview(part)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        if len(view):
            out.append(view)
    return out


class _Transfer:
    """One payload going out in chunks, and the frames of its call waiting behind it."""

    __slots__ = ("behind", "call", "final", "hold", "index", "left", "offset", "parts", "total")

    def __init__(self, frame: Frame, payload: Payload, hold: int) -> None:
        self.call = frame.call
        self.final = _emptied(frame)
        self.parts = _views(payload)
        self.total = self.left = len(payload)
        self.index = self.offset = 0
        self.behind: list[Frame] = []
        self.hold = hold  # frames ahead of it in the outbox (a call's earlier frames go first)

    def take(self, size: int) -> Payload:
        """The next ``size`` bytes at most, as a view (or views, across parts)."""
        pieces: list[bytes | memoryview] = []
        need = min(size, self.left)
        self.left -= need
        while need:
            part = self.parts[self.index]
            end = self.offset + need
            if end < len(part):
                pieces.append(part[self.offset : end])
                self.offset = end
                break
            pieces.append(part[self.offset :] if self.offset else part)
            need -= len(part) - self.offset
            self.index += 1
            self.offset = 0
        return pieces[0] if len(pieces) == 1 else Parts(pieces)


class Splitter:
    """A writer's transfers in progress; the writer consults it only while one is.

    ``admit`` takes a frame the writer would otherwise queue as is; ``fill``
    adds to a message being built at most one chunk per transfer, and no
    more than ``frames.CHUNK`` chunk bytes in all, taking turns.
    """

    __slots__ = ("_drained", "active", "heavy", "mixed_at", "queued", "unacked")

    def __init__(self) -> None:
        self.active: dict[int, _Transfer] = {}
        """By call, in turn order (the next to send a chunk first)."""
        self.queued = 0
        """Payload bytes of heavy frames not yet in a message."""
        self.heavy = 0
        """Of those, the bytes of heavy frames in the outbox (too small to chunk)."""
        self.unacked = 0
        """Chunk bytes sent and not yet credited by the receiver."""
        self.mixed_at = float("-inf")
        """When a small frame of a call without a transfer was last queued among the chunks."""
        self._drained: asyncio.Future[None] | None = None

    def batch(self, outbox: list[F]) -> list[F]:
        """Take the next message's frames from the head of ``outbox``.

        Usually every waiting frame (up to ``_BATCH``); while heavy frames
        wait, no more of their bytes than ``frames.CHUNK`` (one at least), so
        a burst of 1 MiB calls never becomes one message of them all.
        """
        if self.heavy <= 0:
            taken = outbox[:_BATCH]
            del outbox[:_BATCH]
            return taken
        budget = frames.CHUNK
        count = weight = 0
        for frame in outbox[:_BATCH]:
            payload = payload_of(frame)
            if payload is not None:
                if weight and weight + len(payload) > budget:
                    break
                weight += len(payload)
            count += 1
        taken = outbox[:count]
        del outbox[:count]
        self.heavy -= weight
        self.queued -= weight
        self._release()
        return taken

    def requeued_heavy(self, returned: Sequence[Any]) -> None:
        """Frames put back at the head of the outbox count as queued again."""
        for frame in returned:
            payload = payload_of(frame)
            if payload is not None and not split(frame, payload):
                self.heavy += len(payload)
                self.queued += len(payload)

    def admit(self, frame: Frame, payload: Payload | None, outbox: list[Frame]) -> None:
        """Queue ``frame``: into ``outbox``, behind its call's transfer, or as a new transfer."""
        transfer = self.active.get(frame.call)
        if transfer is None:
            if payload is None:
                outbox.append(frame)
                if type(frame) is not Credit:
                    self.mixed_at = time.monotonic()
            elif split(frame, payload):
                self._start(frame, payload, len(outbox))
            else:
                outbox.append(frame)
                self.heavy += len(payload)
                self.queued += len(payload)
        elif type(frame) is Cancel:
            self._abandon(transfer)  # the receiver drops what it assembled on the Cancel
            outbox.append(frame)
        else:
            transfer.behind.append(frame)
            if payload is not None:
                self.queued += len(payload)

    def _start(self, frame: Frame, payload: Payload, hold: int) -> _Transfer:
        transfer = _Transfer(frame, payload, hold)
        self.active[transfer.call] = transfer
        self.queued += transfer.total
        return transfer

    def _abandon(self, transfer: _Transfer) -> None:
        del self.active[transfer.call]
        self.queued -= transfer.left
        for frame in transfer.behind:
            payload = payload_of(frame)
            if payload is not None:
                self.queued -= len(payload)
        self._release()

    @property
    def sendable(self) -> bool:
        """Whether a transfer may send a chunk now (one is active, and the window has room)."""
        return bool(self.active) and self.unacked + frames.CHUNK <= self._window()

    def _window(self) -> int:
        return window(time.monotonic() - self.mixed_at < MIXED_FOR)

    def credit(self, size: int) -> None:
        """The receiver took in ``size`` more chunk bytes."""
        self.unacked = max(0, self.unacked - size)

    def requeued(self, count: int) -> None:
        """``count`` frames went back to the head of the outbox: they must leave first."""
        for transfer in self.active.values():
            transfer.hold += count

    def fill(self, message: list[Frame], taken: int) -> None:
        """Add chunks (and the frames they release) to ``message``; it took ``taken`` queued."""
        active = self.active
        if taken:
            for transfer in active.values():
                if transfer.hold:
                    transfer.hold = max(0, transfer.hold - taken)
        if self.unacked + frames.CHUNK > self._window():
            return
        budget = frames.CHUNK
        for transfer in list(active.values()):
            if budget <= 0:
                break
            call = transfer.call
            del active[call]
            if transfer.hold:
                active[call] = transfer
                continue
            size = budget if transfer.left - budget >= frames.CHUNK >> 2 else transfer.left
            data = transfer.take(size)  # no sliver left for a message of its own
            budget -= len(data)
            self.queued -= len(data)
            self.unacked += len(data)
            message.append(Chunk(call, transfer.total, data))
            tuning.note_large_payload()
            if transfer.left:
                active[call] = transfer  # to the back of the turn order
                continue
            message.append(transfer.final)
            behind = transfer.behind
            for i, frame in enumerate(behind):
                payload = payload_of(frame)
                if payload is not None:
                    self.queued -= len(payload)
                    if split(frame, payload):
                        self._start(frame, payload, 0).behind = behind[i + 1 :]
                        break
                message.append(frame)
        self._release()

    def close(self) -> None:
        self.active.clear()
        self.queued = self.heavy = self.unacked = 0
        self._release()

    async def drain(self) -> None:
        """Return once queued payload bytes are below ``HIGH_WATER`` (below half, if waiting)."""
        while self.queued > HIGH_WATER:  # woken together: each checks again before going on
            if self._drained is None:
                self._drained = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._drained)

    def _release(self) -> None:
        drained = self._drained
        if drained is not None and self.queued < HIGH_WATER // 2:
            self._drained = None
            if not drained.done():
                drained.set_result(None)


_PREALLOCATE: Final = 4 << 20
"""Payloads up to this size are assembled in zeroed memory; larger ones in memory whose
bytes are not zeroed first.

``bytearray(n)`` zeroes all ``n`` bytes before the first chunk is copied:
measured on a loaded 2-core machine, 65 to 120 ms for 64 MiB and 290 to
350 ms for 256 MiB, a stall of the whole event loop (every other call on
the process waits). The C API makes a bytearray (or bytes) without that
pass; every byte of it is written by a chunk before anyone reads it
(``fill`` checks). It comes from the heap, which ``wool.tuning`` keeps
warm while work runs.
"""

_native: dict[type, Any] = {}
_BYTES_DATA: Final = bytes.__basicsize__ - 1
"""Where a ``bytes`` object's data starts, from its address (CPython)."""


def _unzeroed(kind: type, size: int) -> Any:
    """A ``kind`` (bytes or bytearray) of ``size`` bytes holding whatever the allocator gave."""
    make = _native.get(kind)
    if make is None:
        import ctypes

        name = "PyBytes_FromStringAndSize" if kind is bytes else "PyByteArray_FromStringAndSize"
        make = getattr(ctypes.pythonapi, name)
        make.restype = ctypes.py_object
        make.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
        _native[kind] = make
    return make(None, size)


def _new_buffer(kind: type | None, size: int) -> tuple[Any, memoryview]:
    """Memory for one incoming buffer, and a writable byte view of it.

    A ``bytes`` is written in place through its address before anyone else
    holds it, as C code fills the object it has just made; that saves the
    copy ``bytes(received)`` would cost (measured: 400 ms for 256 MiB of
    fresh pages here). Small ones are assembled as a bytearray and copied.
    """
    if kind is bytes and size >= _PREALLOCATE and sys.implementation.name == "cpython":
        import ctypes

        made = _unzeroed(bytes, size)
        window = (ctypes.c_char * size).from_address(id(made) + _BYTES_DATA)
        return made, memoryview(window).cast("B")
    made = bytearray(size) if size <= _PREALLOCATE else _unzeroed(bytearray, size)
    return made, memoryview(made)


class _Incoming:
    """One payload arriving in chunks: where each byte goes, and how far it has come.

    A payload with out-of-band buffers (``buffers.MARK``) whose head is in
    its first chunk gets each buffer in memory of its own (``Received``);
    any other payload, one ``bytearray``. ``spans`` lists (start, stop,
    writable view) in payload order; bytes between spans (padding) are
    dropped.
    """

    __slots__ = ("filled", "front", "head", "objects", "spans", "total", "turn")

    def __init__(self, call: int, total: int, first: Payload) -> None:
        if total > frames.LIMIT:
            raise ProtocolError(
                f"call {call} announced a {total}-byte payload, over the {frames.LIMIT}-byte limit"
            )
        self.total = total
        self.filled = self.turn = 0
        head = self.head = _layout(first, total)
        front = total if head is None else head.spans[0][0]  # the head and pickle, or it all
        self.objects: list[Any] = []
        try:
            self.front, view = _new_buffer(None, front)
            self.spans = [(0, front, view)]
            if head is not None:
                for (start, stop), kind in zip(head.spans, head.kinds, strict=True):
                    made, view = _new_buffer(kind, stop - start)
                    self.objects.append(made)
                    self.spans.append((start, stop, view))
        except MemoryError:
            raise ProtocolError(
                f"call {call} announced a {total}-byte payload; no memory for it"
            ) from None

    def add(self, data: Payload) -> None:
        """Write ``data`` at ``filled`` into the spans it covers."""
        source = memoryview(bytes(data) if isinstance(data, Parts) else data)
        position, end = self.filled, self.filled + len(source)
        spans = self.spans
        while position < end:
            start, stop, target = spans[self.turn]
            if position >= stop:
                self.turn += 1
                continue
            if position < start:  # padding
                position = min(start, end)
                continue
            upto = min(stop, end)
            target[position - start : upto - start] = source[
                position - self.filled : upto - self.filled
            ]
            position = upto
        self.filled = end

    def payload(self) -> Payload:
        if self.head is None:
            return self.front
        return Received(self.front, self.head, self.objects)


def _layout(first: Payload, total: int) -> Head | None:
    """The out-of-band layout ``first`` (a payload's first chunk) starts, if it is a sane one.

    A sender's buffers are never empty and each starts on an ``ALIGN`` boundary,
    so a head naming more than ``total // ALIGN + 1`` of them is refused before
    it is read: a peer cannot make the receiver build more than ``total`` allows.
    """
    data = bytes(first) if isinstance(first, Parts) else first
    if len(data) < 5 or data[0] != MARK[0]:
        return None
    if int.from_bytes(data[1:5], "big") > total // ALIGN + 1:
        return None
    try:
        head = read_head(data)
    except (ValueError, struct.error):
        return None
    if head is None or not head.spans:
        return None
    previous = head.meta[1]
    for start, stop in head.spans:
        if start < previous or stop <= start:
            return None
        previous = stop
    if previous != total:
        return None
    return head


class Assembler:
    """One stream's payloads arriving in chunks, by call.

    ``open`` is empty unless a transfer is under way, so a receiver checks
    it before anything else. Every inconsistency raises ProtocolError.
    """

    __slots__ = ("credit", "open", "taken")

    def __init__(self) -> None:
        self.open: dict[int, _Incoming] = {}
        self.credit = 0
        """Chunk bytes taken in and not yet credited back (the receiver sends ``Credit``)."""
        self.taken = 0
        """Chunk bytes taken in since the stream opened."""

    def take_credit(self) -> Credit:
        """The ``Credit`` to send for chunks taken in since the last one (when ``credit``)."""
        size, self.credit = self.credit, 0
        return Credit(0, size)

    def add(self, chunk: Chunk) -> None:
        """Copy ``chunk`` into its call's memory (the first chunk gives its total size)."""
        incoming = self.open.get(chunk.call)
        if incoming is None:
            incoming = self.open[chunk.call] = _Incoming(chunk.call, chunk.total, chunk.data)
        if chunk.total != incoming.total or incoming.filled + len(chunk.data) > incoming.total:
            raise ProtocolError(
                f"the chunks of call {chunk.call} overrun their {incoming.total} bytes"
            )
        incoming.add(chunk.data)
        self.credit += len(chunk.data)
        self.taken += len(chunk.data)
        tuning.note_large_payload()  # the heap stays warm while a transfer runs

    def fill(self, frame: Frame) -> None:
        """Give ``frame`` its call's assembled payload, if chunks of it arrived."""
        incoming = self.open.get(frame.call)
        if incoming is None:
            return
        kind = type(frame)
        if kind is Cancel:
            del self.open[frame.call]
            return
        if kind is Dispatch:
            field = "args"
        elif kind is Outcome or kind is Resume:
            field = "value"
        elif kind is Value:
            field = "data"
        else:
            return
        del self.open[frame.call]
        if incoming.filled != incoming.total:
            raise ProtocolError(
                f"call {frame.call}'s payload came after {incoming.filled} of its "
                f"{incoming.total} bytes"
            )
        if len(getattr(frame, field)):
            raise ProtocolError(f"call {frame.call}'s payload came both in chunks and whole")
        setattr(frame, field, incoming.payload())

    def feed(self, received: list[Frame]) -> list[Frame]:
        """``received`` with chunks taken out and assembled payloads put in place."""
        if not self.open:
            for frame in received:
                if type(frame) is Chunk:
                    break
            else:
                return received
        out: list[Frame] = []
        for frame in received:
            if type(frame) is Chunk:
                self.add(frame)
                continue
            if self.open:
                self.fill(frame)
            out.append(frame)
        return out
