"""A plain reader task and writer task per stream, and the switch that selects them.

``StreamReader`` and ``FrameWriter`` save an event-loop hop each way by
leaning on internals: a future stand-in that asyncio's ``Task`` accepts,
and gRPC's read and write coroutines stepped with ``send()``. A new
Python or grpcio may change what they rely on. The classes here do the
same jobs the ordinary way (a task loops on ``await read()``; a task
drains the outbox), using only public asyncio and ``grpc.aio``
behaviour: the fallback if the fast path breaks, and the reference it is
tested against.

``WOOL_PLAIN_IO=1`` selects them. It is read once, when this module is
first imported; workers inherit the caller's environment, so one setting
covers both ends of every stream.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from typing import Any, Final, Generic, Protocol, TypeVar

from wool.protocol.chunks import Splitter, payload_of
from wool.protocol.reader import Read, StreamReader
from wool.protocol.writer import FrameWriter, Write

T = TypeVar("T")
M = TypeVar("M")
M_contra = TypeVar("M_contra", contravariant=True)

ENABLED: Final = os.environ.get("WOOL_PLAIN_IO", "0") == "1"


class Reader(Protocol):
    """What a connection needs from its stream's reader (``StreamReader`` or ``PlainReader``).

    ``on_message`` gets every message in order; ``on_error`` hears once of a
    failed read or the end of the stream (``EOFError``) and nothing after.
    """

    def start(self) -> None: ...

    async def wait(self, waiter: asyncio.Future[T]) -> T: ...

    def close(self) -> None: ...


class Writer(Protocol[M_contra]):
    """What a stream's owner needs from its writer (``FrameWriter`` or ``PlainWriter``).

    Frames leave in the order sent; ``on_error`` hears once of a failed
    encode or write, after which nothing more is written.
    """

    def send(self, frame: M_contra) -> None: ...

    def requeue(self, frames: Sequence[M_contra]) -> None: ...

    def close(self) -> None: ...

    @property
    def queued_bytes(self) -> int:
        """Bytes of large payloads queued and not yet handed to gRPC."""
        ...

    def credit(self, size: int) -> None:
        """The receiver took in ``size`` chunk bytes: chunks held back by the window may leave."""
        ...

    def transferring(self, call: int) -> bool:
        """Whether a payload of ``call`` is going out in chunks (``Cancel(call)`` stops it)."""
        ...

    async def drain(self) -> None:
        """Wait while ``queued_bytes`` is over the high-water mark (until below half)."""
        ...


def make_reader(
    read: Read,
    eof: object,
    on_message: Callable[[Any], None],
    on_error: Callable[[BaseException], None],
) -> Reader:
    """The reader ``WOOL_PLAIN_IO`` selects, not yet started."""
    kind = PlainReader if ENABLED else StreamReader
    return kind(read, eof, on_message, on_error)


def make_writer(
    write: Write,
    on_error: Callable[[BaseException], None],
    encode: Callable[[list[M]], bytes],
) -> Writer[M]:
    """The writer ``WOOL_PLAIN_IO`` selects."""
    if ENABLED:
        return PlainWriter(write, on_error, encode)
    return FrameWriter(write, on_error, encode)


class PlainReader:
    """A task that reads the stream until it ends and hands each message to ``on_message``.

    Callers wait on their own futures; cancelling one cancels only its
    future, never the task's read (which would end the RPC). ``close()``
    cancels the read in flight, as ``StreamReader.close`` does.
    """

    def __init__(
        self,
        read: Read,
        eof: object,
        on_message: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self._read = read
        self._eof = eof
        self._on_message = on_message
        self._on_error = on_error
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        """Start the reading task, once."""
        if self._task is None and not self._closed:
            self._task = self._loop.create_task(self._run(), name="wool-stream-reader")

    async def wait(self, waiter: asyncio.Future[T]) -> T:
        """``waiter``'s result; the reading task completes it."""
        return await waiter

    def close(self) -> None:
        """Stop reading; a read in flight is cancelled (which ends the RPC)."""
        self._closed = True
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _run(self) -> None:
        read, eof, on_message = self._read, self._eof, self._on_message
        try:
            while not self._closed:
                message = await read()
                if message is eof:
                    raise EOFError("the stream ended")
                on_message(message)
        except asyncio.CancelledError as exc:
            if _cancelled_from_outside():
                raise  # close(), or the loop shutting down
            self._fail(exc)  # gRPC's read raises it when the call was cancelled
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if not self._closed:
            self._closed = True
            self._on_error(exc)


class PlainWriter(Generic[M]):
    """A task that drains the outbox: one gRPC write at a time, batching what queued meanwhile.

    ``encode`` turns a batch of frames into one message (a ``Salvage`` for
    Wool's streams, as with ``FrameWriter``, so one bad frame fails alone). A
    failed encode or write is reported to ``on_error`` once and the writer
    closes; frames sent after that are dropped. Senders never wait, so
    cancelling one cannot cancel a write.
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
        self._idle: asyncio.Future[None] | None = None
        self._split = Splitter()
        self._task = self._loop.create_task(self._run(), name="wool-stream-writer")

    def send(self, frame: M) -> None:
        if self.closed:
            return
        split = self._split
        payload = payload_of(frame)
        if split.active or payload is not None:
            split.admit(frame, payload, self.outbox)  # type: ignore[arg-type]
        else:
            self.outbox.append(frame)
        self._wake()

    @property
    def queued_bytes(self) -> int:
        """Bytes of large payloads sent here and not yet handed to gRPC."""
        return self._split.queued

    async def drain(self) -> None:
        """Wait while ``queued_bytes`` is over ``chunks.HIGH_WATER`` (until below half)."""
        await self._split.drain()

    def credit(self, size: int) -> None:
        """The receiver took in ``size`` chunk bytes: chunks held back by the window may leave."""
        self._split.credit(size)
        self._wake()

    def transferring(self, call: int) -> bool:
        """Whether a payload of ``call`` is going out in chunks (``Cancel(call)`` stops it)."""
        return call in self._split.active

    def requeue(self, frames: Sequence[M]) -> None:
        """Put ``frames`` back at the head of the outbox: they leave before anything sent since."""
        self.outbox[:0] = frames
        self._split.requeued_heavy(frames)
        if self._split.active:
            self._split.requeued(len(frames))

    def close(self) -> None:
        """Drop what is queued; a write in flight finishes, then the task ends."""
        self.closed = True
        self.outbox.clear()
        self._split.close()
        self._wake()

    def _wake(self) -> None:
        idle, self._idle = self._idle, None
        if idle is not None and not idle.done():
            idle.set_result(None)

    async def _run(self) -> None:
        while not self.closed:
            if not self.outbox and not self._split.sendable:
                self._idle = self._loop.create_future()
                await self._idle
                continue
            frames = self._split.batch(self.outbox)
            if self._split.active:
                self._split.fill(frames, len(frames))  # type: ignore[arg-type]
                if not frames:  # the window is full: a Credit wakes this
                    self._idle = self._loop.create_future()
                    await self._idle
                    continue
            try:
                data = self._encode(frames)
            except Exception as exc:
                self._fail(exc)
                return
            self.writing = True
            try:
                await self._write(data)
            except asyncio.CancelledError as exc:
                if _cancelled_from_outside():
                    raise
                self._fail(exc)
                return
            except Exception as exc:
                self._fail(exc)
                return
            finally:
                self.writing = False

    def _fail(self, exc: BaseException) -> None:
        if not self.closed:
            self.closed = True
            self.outbox.clear()
            self._split.close()
            self._on_error(exc)


def _cancelled_from_outside() -> bool:
    """Whether the running task was cancelled (rather than an awaited call raising it)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
