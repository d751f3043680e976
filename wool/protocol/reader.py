"""Reads one gRPC stream with no reader task: the caller waiting for an answer reads it.

A multiplexed stream normally needs a reader task, and every answer then
costs two event-loop hops: the reader wakes, then wakes the caller. Here
the read in flight is driven by done-callbacks while nobody waits, and a
task that waits for an answer while no other task is reading drives the
read itself, so its answer wakes it directly, as in a plain request and
response.

Cancelling a task that is reading must not cancel the stream (gRPC
cancels the whole RPC when a read is cancelled). The task therefore waits
on a ``_Guard``: a future-like stand-in whose ``cancel()`` hands the read
back to the callbacks and wakes the task with ``CancelledError``, leaving
gRPC's own future untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")

Read = Callable[[], Coroutine[Any, Any, Any]]


class _Guard:
    """What a reading task awaits instead of gRPC's future (asyncio duck-types futures)."""

    __slots__ = ("_asyncio_future_blocking", "_context", "_future", "_release", "_wakeup", "left")

    def __init__(self, future: asyncio.Future, release: Callable[[], None]) -> None:
        self._asyncio_future_blocking = False
        self._future = future
        self._release = release
        self._wakeup: Callable[..., None] | None = None
        self._context: Any = None
        self.left = False

    def __await__(self) -> Generator[Any, None, None]:
        future = self._future
        if future.done():
            return
        self._asyncio_future_blocking = True
        try:
            yield self
        except BaseException as exc:
            if self.left or not _is_outcome_of(future, exc):
                raise
            # gRPC's future failed: the read coroutine reports that itself.

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._future.get_loop()

    def add_done_callback(self, fn: Callable[..., None], *, context: Any = None) -> None:
        self._wakeup, self._context = fn, context
        self._future.add_done_callback(fn, context=context)

    def result(self) -> None:
        if self.left:
            raise asyncio.CancelledError()

    def cancel(self, msg: Any = None) -> bool:
        if self.left or self._future.done() or self._wakeup is None:
            return False
        self.left = True
        self._future.remove_done_callback(self._wakeup)
        self._release()
        self._future.get_loop().call_soon(self._wakeup, self, context=self._context)
        return True


def _is_outcome_of(future: asyncio.Future, exc: BaseException) -> bool:
    """Whether ``exc`` is what waiting on ``future`` raised (not a cancel of the waiter)."""
    if not future.done():
        return False
    if future.cancelled():
        return isinstance(exc, asyncio.CancelledError)
    return future.exception() is exc


class StreamReader:
    """Keeps one read in flight on a stream and hands each message to ``on_message``.

    ``on_error`` hears once of a failed read or the end of the stream
    (``EOFError``). ``wait(waiter)`` is how a caller waits for a future
    that a message will complete.
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
        self._coro: Coroutine[Any, Any, Any] | None = None
        self._future: asyncio.Future | None = None
        self._driven = False
        self._closed = False

    def start(self) -> None:
        """Put a read in flight, unless one is."""
        if self._coro is not None or self._closed:
            return
        self._coro = self._read()
        self._step()

    async def wait(self, waiter: asyncio.Future[T]) -> T:
        """``waiter``'s result, reading the stream meanwhile if no other task is."""
        while not waiter.done():
            if self._driven or self._closed:
                return await waiter
            if self._coro is None:
                self.start()
                continue
            future = self._future
            assert future is not None
            if future.done():
                self._advance()
                continue
            future.remove_done_callback(self._on_done)
            self._driven = True
            guard = _Guard(future, self._release)
            try:
                await guard
            except BaseException:
                if not guard.left:
                    self._release()
                raise
            self._driven = False
            if self._future is future:
                self._advance()
        return waiter.result()

    def close(self) -> None:
        """Stop reading; a read in flight is cancelled (which ends the RPC)."""
        self._closed = True
        coro, future, self._coro, self._future = self._coro, self._future, None, None
        if future is not None:
            future.cancel()
        if coro is not None:
            try:
                coro.send(None)
            except BaseException:
                pass

    def _release(self) -> None:
        self._driven = False
        if self._future is not None and not self._closed:
            self._future.add_done_callback(self._on_done)

    def _on_done(self, future: asyncio.Future) -> None:
        if future is self._future and not self._driven:
            self._advance()

    def _advance(self) -> None:
        """Resume the read coroutine now that the future it waits on is done."""
        self._future = None
        self._step()

    def _step(self) -> None:
        coro = self._coro
        assert coro is not None
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            self._coro = None
            message = stop.value
        except BaseException as exc:
            self._coro = None
            self._fail(exc)
            return
        else:
            if yielded is None:  # a bare yield: resume on the next step, as a task would
                yielded = self._loop.create_future()
                yielded.set_result(None)
            yielded._asyncio_future_blocking = False
            self._future = yielded
            if not self._driven:
                yielded.add_done_callback(self._on_done)
            return
        if message is self._eof:
            self._fail(EOFError("the stream ended"))
            return
        try:
            self._on_message(message)
        except Exception as exc:
            self._fail(exc)
            return
        # The next read starts after the waiting task has run, off its path.
        self._loop.call_soon(self.start)

    def _fail(self, exc: BaseException) -> None:
        if not self._closed:
            self._closed = True
            self._on_error(exc)
