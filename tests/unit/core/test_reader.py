"""StreamReader: the waiting task reads its own answer, and cancelling it never cancels the read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from wool.protocol.reader import StreamReader

pytestmark = pytest.mark.timeout(10)
EOF_MARK = object()


class FakeStream:
    """A stream whose reads wait on futures the test completes; counts cancelled reads."""

    def __init__(self) -> None:
        self.reads: list[asyncio.Future] = []
        self.cancelled_reads = 0

    async def read(self) -> object:
        await asyncio.sleep(0)  # a bare yield first, as some awaitables do
        future = asyncio.get_running_loop().create_future()
        self.reads.append(future)
        try:
            return await future
        except asyncio.CancelledError:
            self.cancelled_reads += 1
            raise

    async def deliver(self, message: object, *, fail: bool = False) -> None:
        """Complete (or fail) the read in flight, once there is one."""
        for _ in range(100):
            if self.reads and not self.reads[-1].done():
                if fail:
                    self.reads[-1].set_exception(message)  # type: ignore[arg-type]
                else:
                    self.reads[-1].set_result(message)
                return
            await asyncio.sleep(0)
        raise AssertionError("no read in flight")


async def settle(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition`` holds (bounded)."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def make(stream: FakeStream) -> tuple[StreamReader, dict[str, asyncio.Future], list]:
    loop = asyncio.get_running_loop()
    waiters = {name: loop.create_future() for name in ("a", "b")}
    errors: list[BaseException] = []

    def on_message(message: object) -> None:
        waiters[message].set_result(f"answer {message}")  # type: ignore[index]

    reader = StreamReader(stream.read, EOF_MARK, on_message, errors.append)
    reader.start()
    return reader, waiters, errors


async def test_a_waiting_task_gets_its_answer_and_others_get_theirs() -> None:
    stream = FakeStream()
    reader, waiters, errors = make(stream)
    a = asyncio.create_task(reader.wait(waiters["a"]))
    b = asyncio.create_task(reader.wait(waiters["b"]))
    await asyncio.sleep(0)
    await stream.deliver("b")
    assert await b == "answer b"
    await asyncio.sleep(0)
    await stream.deliver("a")
    assert await a == "answer a"
    assert not errors


async def test_cancelling_the_reading_task_leaves_the_read_in_flight() -> None:
    stream = FakeStream()
    reader, waiters, errors = make(stream)
    a = asyncio.create_task(reader.wait(waiters["a"]))
    await asyncio.sleep(0)
    a.cancel()
    with pytest.raises(asyncio.CancelledError):
        await a
    assert stream.cancelled_reads == 0, "the stream's read was not cancelled"
    b = asyncio.create_task(reader.wait(waiters["b"]))
    await asyncio.sleep(0)
    await stream.deliver("b")
    assert await b == "answer b"
    stream_reads = len(stream.reads)
    await asyncio.sleep(0)
    await stream.deliver("a")  # a late answer for the cancelled call still reaches on_message
    await asyncio.wait_for(waiters["a"], 1)
    assert len(stream.reads) >= stream_reads
    assert not errors


async def test_an_answer_nobody_waits_for_is_read_by_callbacks() -> None:
    stream = FakeStream()
    _reader, waiters, errors = make(stream)
    await asyncio.sleep(0)
    await stream.deliver("a")
    assert await asyncio.wait_for(waiters["a"], 1) == "answer a"
    assert not errors


async def test_end_of_stream_and_failures_are_reported_once() -> None:
    stream = FakeStream()
    reader, waiters, errors = make(stream)
    await asyncio.sleep(0)
    await stream.deliver(EOF_MARK)
    await settle(lambda: bool(errors))
    assert len(errors) == 1 and isinstance(errors[0], EOFError)

    failing = FakeStream()
    reader, waiters, errors = make(failing)
    waiting = asyncio.create_task(reader.wait(waiters["a"]))
    await asyncio.sleep(0)
    await failing.deliver(ConnectionError("gone"), fail=True)
    await settle(lambda: bool(errors))
    assert [type(e) for e in errors] == [ConnectionError]
    waiters["a"].set_exception(RuntimeError("failed by the owner"))
    with pytest.raises(RuntimeError, match="failed by the owner"):
        await waiting


async def test_close_cancels_the_read_in_flight_and_releases_its_waiter() -> None:
    stream = FakeStream()
    reader, waiters, errors = make(stream)
    waiting = asyncio.create_task(reader.wait(waiters["a"]))
    await asyncio.sleep(0)
    reader.close()
    waiters["a"].set_exception(ConnectionError("closed"))
    with pytest.raises(ConnectionError):
        await waiting
    assert stream.cancelled_reads == 1
    assert not errors
