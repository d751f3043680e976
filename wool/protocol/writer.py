"""Writes frames to one gRPC stream, batching while a write is in flight, with no writer task.

gRPC allows one write in flight per stream. A frame sent while the stream
is idle is written at once: the write's first step (which starts the gRPC
batch) runs in the sender's own step, saving the event-loop round trip a
writer task would cost. Frames sent while a write is in flight leave
together in the next message. The rest of each write is driven from
done-callbacks, never from a sender's task, so cancelling a sender can
never cancel the stream.

A frame with a large payload goes out in chunks (``wool.protocol.chunks``),
one per message in turn with other transfers, while small frames keep
leaving with the next message; only while a transfer is under way does a
sent frame cost more than a type check and a length.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from functools import partial
from typing import Any, Generic, TypeVar

from wool.protocol.chunks import Splitter, payload_of

M = TypeVar("M")


Write = Callable[[bytes], Coroutine[Any, Any, None]]
Reject = Callable[[M, Exception], M | None]


class Salvage(Generic[M]):
    """An ``encode`` for a writer under which one bad frame fails alone, not its stream.

    A batch that encodes is returned as is (the only cost on the usual path
    is this call). Otherwise each frame is tried alone: ``reject(frame,
    error)`` hears of every frame that cannot be encoded even alone and
    returns what to send in its place, or None. Frames that encode alone
    but not together (too large for one message) leave one message each:
    the first now, the rest handed to ``requeue`` at once, which puts them
    back at the head of the writer's outbox, so nothing sent later can
    overtake them. Only when even a replacement cannot be encoded does
    this raise, and the writer then fails the stream.
    """

    __slots__ = ("_encode", "_reject", "_requeue")

    def __init__(
        self,
        encode: Callable[[list[M]], bytes],
        reject: Reject[M],
        requeue: Callable[[list[M]], None],
    ) -> None:
        self._encode = encode
        self._reject = reject
        self._requeue = requeue

    def __call__(self, frames: list[M]) -> bytes:
        try:
            return self._encode(frames)
        except Exception:
            return self._salvage(frames)

    def _salvage(self, frames: list[M]) -> bytes:
        kept: list[M] = []
        for frame in frames:
            try:
                self._encode([frame])
            except Exception as exc:
                replacement = self._reject(frame, exc)
                if replacement is None:
                    continue
                frame = replacement
            kept.append(frame)
        try:
            return self._encode(kept)
        except Exception:
            if len(kept) < 2:
                raise
        first = self._encode(kept[:1])
        self._requeue(kept[1:])
        return first


class FrameWriter(Generic[M]):
    """The outbox of one stream; ``on_error`` hears of a failed write once.

    ``encode`` turns a batch into one message: ``frames.encode`` for Wool's
    streams (the benchmarks' bare multiplexed stream joins raw bytes).
    """

    def __init__(
        self,
        write: Write,
        on_error: Callable[[BaseException], None],
        encode: Callable[[list[M]], bytes],
    ) -> None:
        self._write = write
        self._on_error = on_error
        self._encode = encode
        self._loop = asyncio.get_running_loop()
        self.outbox: list[M] = []
        self.writing = False
        self.closed = False
        self._split = Splitter()

    def send(self, frame: M) -> None:
        if self.closed:
            return
        payload = payload_of(frame)
        if payload is None and not self._split.active:
            self.outbox.append(frame)
        else:
            self._split.admit(frame, payload, self.outbox)  # type: ignore[arg-type]
        if not self.writing:
            self._write_next()

    @property
    def queued_bytes(self) -> int:
        """Bytes of large payloads sent here and not yet handed to gRPC."""
        return self._split.queued

    async def drain(self) -> None:
        """Wait while ``queued_bytes`` is over ``chunks.HIGH_WATER`` (until below half)."""
        await self._split.drain()

    def transferring(self, call: int) -> bool:
        """Whether a payload of ``call`` is going out in chunks (``Cancel(call)`` stops it)."""
        return call in self._split.active

    def credit(self, size: int) -> None:
        """The receiver took in ``size`` chunk bytes (``Credit``): more chunks may leave."""
        self._split.credit(size)
        if not self.writing and not self.closed and self._split.sendable:
            self._write_next()

    def requeue(self, frames: Sequence[M]) -> None:
        """Put ``frames`` back at the head of the outbox: they leave before anything sent since."""
        self.outbox[:0] = frames
        self._split.requeued_heavy(frames)
        if self._split.active:
            self._split.requeued(len(frames))

    def close(self) -> None:
        self.closed = True
        self.outbox.clear()
        self._split.close()

    def _write_next(self) -> None:
        frames = self._split.batch(self.outbox)
        if self._split.active:
            self._split.fill(frames, len(frames))  # type: ignore[arg-type]
            if not frames:
                return  # the window is full: a Credit starts the next write
        try:
            data = self._encode(frames)
        except Exception as exc:  # a programming error: fail the stream, never stall it
            self.closed = True
            self._split.close()
            self._on_error(exc)
            return
        self.writing = True
        self._drive(self._write(data))

    def _drive(self, write: Coroutine[Any, Any, None], waited: Any = None) -> None:
        try:
            if isinstance(waited, asyncio.Future) and waited.cancelled():
                yielded = write.throw(asyncio.CancelledError())
            else:
                yielded = write.send(None)
        except StopIteration:
            self.writing = False
            if (self.outbox or self._split.sendable) and not self.closed:
                self._write_next()
            return
        except BaseException as exc:
            self.writing = False
            self.closed = True
            self._split.close()
            self._on_error(exc)
            return
        if yielded is None:
            self._loop.call_soon(self._drive, write)
        else:
            yielded._asyncio_future_blocking = False
            yielded.add_done_callback(partial(self._drive, write))
