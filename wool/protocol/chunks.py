"""Large payloads as Chunk frames: the sender's ``Splitter`` and the receiver's ``Assembler``.

A frame whose payload is over ``frames.CHUNK`` bytes leaves as Chunk
frames carrying slices of it (views: nothing is copied until the message
is joined), then the frame itself with that field empty. Chunks of
different calls take turns, one per message, so the small frames sent
meanwhile (a no-op's Dispatch or Outcome) leave in the next message
rather than behind the whole transfer. Frames of a call whose transfer
is still going out wait behind it, so a call's frames never overtake one
another. The receiver copies each chunk into one ``bytearray`` of the
announced size and gives it to the call's next payload frame.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any, Final, TypeVar

from wool import tuning
from wool.errors import ProtocolError
from wool.protocol import frames
from wool.protocol.frames import (
    Cancel,
    Chunk,
    Context,
    Dispatch,
    Frame,
    Outcome,
    Parts,
    Payload,
    Resume,
    Value,
)

F = TypeVar("F")

HIGH_WATER: Final = 64 << 20
"""``Splitter.drain`` waits while more payload bytes than this are queued, until below half."""


def heavy(size: int) -> bool:
    """Whether a payload of ``size`` bytes counts as queued bytes (a sixteenth of
    ``frames.CHUNK``, 64 KiB by default, or more): a message carries only a few of those."""
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
    """Whether ``payload`` goes out in chunks: over ``frames.CHUNK`` by more than a quarter.

    Splitting a payload just over it would cost a second message for a
    sliver (measured: a 1 MiB echo took 1.5 to 2 ms longer in two chunks).
    """
    chunk = frames.CHUNK
    return len(payload) > chunk + (chunk >> 2)


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

    __slots__ = ("_drained", "active", "heavy", "queued")

    def __init__(self) -> None:
        self.active: dict[int, _Transfer] = {}
        """By call, in turn order (the next to send a chunk first)."""
        self.queued = 0
        """Payload bytes of heavy frames not yet in a message."""
        self.heavy = 0
        """Of those, the bytes of heavy frames in the outbox (too small to chunk)."""
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
        self.queued = self.heavy = 0
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
"""Payloads up to this size are assembled in a zeroed ``bytearray``; larger ones in one
whose bytes are not zeroed first.

``bytearray(n)`` zeroes all ``n`` bytes before the first chunk is copied:
measured on a loaded 2-core machine, 65 to 120 ms for 64 MiB and 290 to
350 ms for 256 MiB, a stall of the whole event loop (every other call on
the process waits). The C API makes a bytearray without that pass; every
byte of it is written by a chunk before anyone reads it (``fill`` checks).
It comes from the heap, which ``wool.tuning`` keeps warm while work runs.
"""

_bytearray_of_size: Any = None


def _unzeroed(size: int) -> bytearray:
    """A bytearray of ``size`` bytes whose contents are whatever the allocator gave."""
    global _bytearray_of_size
    if _bytearray_of_size is None:
        import ctypes

        make = ctypes.pythonapi.PyByteArray_FromStringAndSize
        make.restype = ctypes.py_object
        make.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
        _bytearray_of_size = make
    return _bytearray_of_size(None, size)


class Assembler:
    """One stream's payloads arriving in chunks, by call.

    ``open`` is empty unless a transfer is under way, so a receiver checks
    it before anything else. Every inconsistency raises ProtocolError.
    """

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open: dict[int, list[Any]] = {}
        """call -> [buffer, bytes filled]."""

    def add(self, chunk: Chunk) -> None:
        """Copy ``chunk`` into its call's buffer (the first chunk gives its total size)."""
        entry = self.open.get(chunk.call)
        total = chunk.total
        if entry is None:
            if total > frames.LIMIT:
                raise ProtocolError(
                    f"call {chunk.call} announced a {total}-byte payload, over the "
                    f"{frames.LIMIT}-byte limit"
                )
            try:
                buffer = bytearray(total) if total <= _PREALLOCATE else _unzeroed(total)
            except MemoryError:
                raise ProtocolError(
                    f"call {chunk.call} announced a {total}-byte payload; no memory for it"
                ) from None
            entry = self.open[chunk.call] = [buffer, 0]
        buffer, filled = entry
        end = filled + len(chunk.data)
        if total != len(buffer) or end > total:
            raise ProtocolError(f"the chunks of call {chunk.call} overrun their {total} bytes")
        buffer[filled:end] = chunk.data
        entry[1] = end
        tuning.note_large_payload()  # the heap stays warm while a transfer runs

    def fill(self, frame: Frame) -> None:
        """Give ``frame`` its call's assembled payload, if chunks of it arrived."""
        entry = self.open.get(frame.call)
        if entry is None:
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
        buffer, filled = self.open.pop(frame.call)
        total = len(buffer)
        if filled != total:
            raise ProtocolError(
                f"call {frame.call}'s payload came after {filled} of its {total} bytes"
            )
        if len(getattr(frame, field)):
            raise ProtocolError(f"call {frame.call}'s payload came both in chunks and whole")
        setattr(frame, field, buffer)

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
