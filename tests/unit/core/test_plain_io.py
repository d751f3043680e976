"""The plain reader and writer tasks keep the fast path's contract; WOOL_PLAIN_IO selects them.

Contract tests run against both implementations (``StreamReader``/``PlainReader``,
``FrameWriter``/``PlainWriter``) with fake read and write coroutines, so the
two paths cannot drift apart.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from wool.protocol import plain
from wool.protocol.plain import PlainReader, PlainWriter, Reader, Writer
from wool.protocol.reader import StreamReader
from wool.protocol.writer import FrameWriter, Salvage

pytestmark = pytest.mark.timeout(10)
EOF_MARK = object()
READERS = [StreamReader, PlainReader]
WRITERS = [FrameWriter, PlainWriter]


async def settle(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition`` holds (bounded)."""
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def stream_tasks() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("wool-stream")]


class FakeStream:
    """Reads messages the test puts; counts reads that were cancelled."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[object] = asyncio.Queue()
        self.cancelled_reads = 0
        self.in_flight = 0

    async def read(self) -> object:
        self.in_flight += 1
        try:
            message = await self.messages.get()
        except asyncio.CancelledError:
            self.cancelled_reads += 1
            raise
        finally:
            self.in_flight -= 1
        if isinstance(message, BaseException):
            raise message
        return message


class Receiver:
    """A connection's receiving side: one future per call id, completed by messages."""

    def __init__(self, kind: type, stream: FakeStream) -> None:
        loop = asyncio.get_running_loop()
        self.waiters = {name: loop.create_future() for name in "abc"}
        self.received: list[object] = []
        self.errors: list[BaseException] = []
        self.reader: Reader = kind(stream.read, EOF_MARK, self.on_message, self.on_error)
        self.reader.start()

    def on_message(self, message: object) -> None:
        self.received.append(message)
        if message == "bad":
            raise ValueError("undecodable")
        waiter = self.waiters[message]  # type: ignore[index]
        if not waiter.done():
            waiter.set_result(f"answer {message}")

    def on_error(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.reader.close()  # as Connection._fail does, from inside the reader


@pytest.mark.parametrize("kind", READERS)
async def test_messages_reach_waiting_callers_in_order(kind: type) -> None:
    stream = FakeStream()
    rx = Receiver(kind, stream)
    callers = [asyncio.create_task(rx.reader.wait(rx.waiters[n])) for n in "abc"]
    for name in "cab":
        stream.messages.put_nowait(name)
    assert await asyncio.wait_for(asyncio.gather(*callers), 5) == [
        "answer a",
        "answer b",
        "answer c",
    ]
    assert rx.received == ["c", "a", "b"]
    assert not rx.errors
    rx.reader.close()


@pytest.mark.parametrize("kind", READERS)
async def test_end_of_stream_is_reported_once_and_reading_stops(kind: type) -> None:
    stream = FakeStream()
    rx = Receiver(kind, stream)
    stream.messages.put_nowait("a")
    stream.messages.put_nowait(EOF_MARK)
    stream.messages.put_nowait("b")
    await settle(lambda: bool(rx.errors))
    await settle(lambda: not stream_tasks())
    assert [type(e) for e in rx.errors] == [EOFError]
    assert rx.received == ["a"]
    assert stream.messages.qsize() == 1, "nothing is read after the end"


@pytest.mark.parametrize("kind", READERS)
@pytest.mark.parametrize("bad", ["read", "message"])
async def test_a_failure_is_reported_once(kind: type, bad: str) -> None:
    stream = FakeStream()
    rx = Receiver(kind, stream)
    caller = asyncio.create_task(rx.reader.wait(rx.waiters["a"]))
    stream.messages.put_nowait(ConnectionError("gone") if bad == "read" else "bad")
    stream.messages.put_nowait(ConnectionError("again"))
    await settle(lambda: bool(rx.errors))
    await settle(lambda: not stream_tasks())
    assert [type(e) for e in rx.errors] == [ConnectionError if bad == "read" else ValueError]
    assert not caller.done(), "the owner, not the reader, fails the callers"
    rx.waiters["a"].set_exception(RuntimeError("failed by the owner"))
    with pytest.raises(RuntimeError, match="failed by the owner"):
        await asyncio.wait_for(caller, 5)


@pytest.mark.parametrize("kind", READERS)
async def test_cancelling_a_waiting_caller_leaves_the_stream_reading(kind: type) -> None:
    stream = FakeStream()
    rx = Receiver(kind, stream)
    a = asyncio.create_task(rx.reader.wait(rx.waiters["a"]))
    await settle(lambda: stream.in_flight == 1)
    a.cancel()
    with pytest.raises(asyncio.CancelledError):
        await a
    assert stream.cancelled_reads == 0
    b = asyncio.create_task(rx.reader.wait(rx.waiters["b"]))
    stream.messages.put_nowait("b")
    assert await asyncio.wait_for(b, 5) == "answer b"
    stream.messages.put_nowait("a")  # the cancelled call's late answer is still read
    await settle(lambda: rx.received == ["b", "a"])
    assert stream.cancelled_reads == 0
    assert not rx.errors
    rx.reader.close()


@pytest.mark.parametrize("kind", READERS)
async def test_close_cancels_the_read_in_flight_quietly(kind: type) -> None:
    stream = FakeStream()
    rx = Receiver(kind, stream)
    caller = asyncio.create_task(rx.reader.wait(rx.waiters["a"]))
    await settle(lambda: stream.in_flight == 1)
    rx.reader.close()
    await settle(lambda: stream.cancelled_reads == 1)
    rx.waiters["a"].set_exception(ConnectionError("closed"))
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(caller, 5)
    await settle(lambda: not stream_tasks())
    assert not rx.errors


async def test_a_read_cancelled_by_grpc_is_a_failure_not_a_silent_stop() -> None:
    # grpc.aio's read raises CancelledError once the call is cancelled under it.
    stream = FakeStream()
    rx = Receiver(PlainReader, stream)
    stream.messages.put_nowait(asyncio.CancelledError())
    await settle(lambda: bool(rx.errors))
    assert [type(e) for e in rx.errors] == [asyncio.CancelledError]


class FakeWire:
    """A write coroutine that records each message; while ``hold`` is set, a write waits."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.gates: list[asyncio.Future[None]] = []
        self.hold = False
        self.failure: BaseException | None = None

    async def write(self, data: bytes) -> None:
        self.written.append(data)
        if self.failure is not None:
            raise self.failure
        if self.hold:
            gate = asyncio.get_running_loop().create_future()
            self.gates.append(gate)
            await gate
        else:
            await asyncio.sleep(0)

    def release(self) -> None:
        self.gates[-1].set_result(None)


def joined(frames: list[bytes]) -> bytes:
    return b"|".join(frames)


def make_writer(kind: type, wire: FakeWire, errors: list[BaseException]) -> Writer[bytes]:
    return kind(wire.write, errors.append, joined)


@pytest.mark.parametrize("kind", WRITERS)
async def test_frames_queued_during_a_write_leave_together_in_order(kind: type) -> None:
    wire, errors = FakeWire(), []
    writer = make_writer(kind, wire, errors)
    wire.hold = True
    writer.send(b"1")
    await settle(lambda: len(wire.gates) == 1)
    for frame in (b"2", b"3", b"4"):
        writer.send(frame)
    await asyncio.sleep(0)
    assert wire.written == [b"1"], "one write in flight at a time"
    wire.release()
    await settle(lambda: len(wire.gates) == 2)
    writer.send(b"5")
    wire.release()
    await settle(lambda: len(wire.gates) == 3)
    wire.release()
    assert wire.written == [b"1", b"2|3|4", b"5"]
    assert not errors
    writer.close()
    await settle(lambda: not stream_tasks())


@pytest.mark.parametrize("kind", WRITERS)
async def test_a_failed_write_is_reported_once_and_later_frames_are_dropped(kind: type) -> None:
    wire, errors = FakeWire(), []
    writer = make_writer(kind, wire, errors)
    wire.failure = ConnectionError("stream broken")
    writer.send(b"1")
    await settle(lambda: bool(errors))
    writer.send(b"2")
    writer.send(b"3")
    await settle(lambda: not stream_tasks())
    await asyncio.sleep(0)
    assert [type(e) for e in errors] == [ConnectionError]
    assert wire.written == [b"1"]


@pytest.mark.parametrize("kind", WRITERS)
async def test_a_failed_encode_is_reported_once_and_nothing_is_written(kind: type) -> None:
    wire, errors = FakeWire(), []

    def encode(frames: list[bytes]) -> bytes:
        raise OverflowError("too large for the length field")

    writer = kind(wire.write, errors.append, encode)
    writer.send(b"1")
    await settle(lambda: bool(errors))
    writer.send(b"2")
    await settle(lambda: not stream_tasks())
    await asyncio.sleep(0)
    assert [type(e) for e in errors] == [OverflowError]
    assert wire.written == []


@pytest.mark.parametrize("kind", WRITERS)
async def test_a_frame_that_cannot_be_encoded_fails_alone_under_salvage(kind: type) -> None:
    wire, errors = FakeWire(), []

    def encode(frames: list[bytes]) -> bytes:
        if b"bad" in frames:
            raise OverflowError("too large for the length field")
        return joined(frames)

    def reject(frame: bytes, error: Exception) -> bytes:
        return b"rejected:" + type(error).__name__.encode()

    writer: Writer[bytes] = kind(wire.write, errors.append, Salvage(encode, reject, lambda _: None))
    wire.hold = True
    writer.send(b"0")
    await settle(lambda: len(wire.gates) == 1)
    for frame in (b"1", b"bad", b"3"):
        writer.send(frame)
    wire.release()
    await settle(lambda: len(wire.gates) == 2)
    wire.release()
    assert wire.written == [b"0", b"1|rejected:OverflowError|3"]
    assert not errors
    writer.close()
    await settle(lambda: not stream_tasks())


@pytest.mark.parametrize("kind", WRITERS)
async def test_close_lets_the_write_in_flight_finish_and_drops_the_rest(kind: type) -> None:
    wire, errors = FakeWire(), []
    writer = make_writer(kind, wire, errors)
    wire.hold = True
    writer.send(b"1")
    await settle(lambda: len(wire.gates) == 1)
    writer.send(b"2")
    writer.close()
    writer.send(b"3")
    wire.release()
    await settle(lambda: not stream_tasks())
    assert wire.written == [b"1"]
    assert not errors


async def test_cancelling_a_sender_never_cancels_the_writer() -> None:
    wire, errors = FakeWire(), []
    writer = make_writer(PlainWriter, wire, errors)
    wire.hold = True

    async def sender() -> None:
        writer.send(b"1")
        await asyncio.Event().wait()

    task = asyncio.create_task(sender())
    await settle(lambda: len(wire.gates) == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    writer.send(b"2")
    wire.release()
    await settle(lambda: len(wire.gates) == 2)
    wire.release()
    assert wire.written == [b"1", b"2"]
    assert not wire.gates[0].cancelled()
    assert not errors
    writer.close()


async def test_the_switch_picks_the_implementation(monkeypatch: pytest.MonkeyPatch) -> None:
    stream, wire = FakeStream(), FakeWire()
    for enabled, reader_kind, writer_kind in (
        (False, StreamReader, FrameWriter),
        (True, PlainReader, PlainWriter),
    ):
        monkeypatch.setattr(plain, "ENABLED", enabled)
        reader = plain.make_reader(stream.read, EOF_MARK, print, print)
        writer = plain.make_writer(wire.write, print, joined)
        assert (type(reader), type(writer)) == (reader_kind, writer_kind)
        reader.close()
        writer.close()
    await settle(lambda: not stream_tasks())


@pytest.mark.parametrize(("value", "expected"), [("1", "True"), ("0", "False"), (None, "False")])
def test_the_switch_is_read_from_the_environment(value: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WOOL_PLAIN_IO"}
    if value is not None:
        env["WOOL_PLAIN_IO"] = value
    out = subprocess.run(
        [sys.executable, "-c", "from wool.protocol import plain; print(plain.ENABLED)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert out.stdout.strip() == expected
