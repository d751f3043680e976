"""Writers under ``Salvage``: a frame that cannot be encoded fails alone, never its stream."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import wool
from wool.protocol import frames
from wool.protocol.frames import RAISE, RETURN, Frame, Outcome
from wool.protocol.plain import PlainWriter
from wool.protocol.writer import FrameWriter, Salvage

pytestmark = pytest.mark.timeout(10)

WRITERS = [FrameWriter, PlainWriter]
LIMIT = 1000


class Stream:
    """Records each message written; the first write stays in flight until ``release()``."""

    def __init__(self) -> None:
        self.messages: list[list[Frame]] = []
        self.errors: list[BaseException] = []
        self.rejected: list[tuple[Frame, Exception]] = []
        self._gate = asyncio.Event()

    async def write(self, data: bytes) -> None:
        self.messages.append(frames.decode(data))
        await self._gate.wait()

    def release(self) -> None:
        self._gate.set()

    def reject(self, frame: Frame, error: Exception) -> Frame | None:
        self.rejected.append((frame, error))
        return Outcome(frame.call, RAISE, b"", "wool.errors.SerializationError", str(error))

    async def until(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.messages) < count:
                await asyncio.sleep(0)


def value(call: int, size: int) -> Outcome:
    return Outcome(call, RETURN, b"v" * size)


def calls(message: list[Frame]) -> list[tuple[int, int]]:
    return [(f.call, f.kind) for f in message if isinstance(f, Outcome)]


@pytest.fixture(autouse=True)
def small_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames, "LIMIT", LIMIT)


def writer_for(kind: type, stream: Stream, reject: Callable | None = None) -> Any:
    """A writer of ``kind`` encoding through Salvage, which requeues into it (as owners do)."""
    writer: Any = None
    salvage = Salvage(frames.encode, reject or stream.reject, lambda fs: writer.requeue(fs))
    writer = kind(stream.write, stream.errors.append, salvage)
    return writer


def test_encode_refuses_a_message_over_the_limit() -> None:
    assert frames.decode(frames.encode([value(1, LIMIT - 100)]))
    with pytest.raises(wool.SerializationError, match=f"over the {LIMIT}-byte limit"):
        frames.encode([value(1, LIMIT)])


@pytest.mark.parametrize("kind", WRITERS)
async def test_a_frame_too_large_fails_alone_and_the_stream_goes_on(kind: type) -> None:
    stream = Stream()
    writer = writer_for(kind, stream)
    writer.send(value(1, 10))
    await stream.until(1)  # call 1 is in flight; the next three wait and leave together
    for frame in (value(2, 10), value(3, 2 * LIMIT), value(4, 10)):
        writer.send(frame)
    stream.release()
    await stream.until(2)
    assert [calls(m) for m in stream.messages] == [
        [(1, RETURN)],
        [(2, RETURN), (3, RAISE), (4, RETURN)],
    ]
    ((frame, error),) = stream.rejected
    assert frame.call == 3 and isinstance(error, wool.SerializationError)
    assert stream.errors == [] and not writer.closed
    writer.send(value(5, 10))
    await stream.until(3)
    assert calls(stream.messages[2]) == [(5, RETURN)]
    writer.close()


@pytest.mark.parametrize("kind", WRITERS)
async def test_frames_that_fit_alone_but_not_together_leave_one_message_each(kind: type) -> None:
    stream = Stream()
    writer = writer_for(kind, stream)
    writer.send(value(1, 10))
    await stream.until(1)
    for call in (2, 3, 4):
        writer.send(value(call, LIMIT // 2))
    stream.release()
    await stream.until(4)
    assert [calls(m) for m in stream.messages] == [[(c, RETURN)] for c in (1, 2, 3, 4)]
    assert stream.rejected == [] and stream.errors == []
    writer.close()


@pytest.mark.parametrize("kind", WRITERS)
async def test_a_replacement_that_cannot_be_encoded_fails_the_stream(kind: type) -> None:
    stream = Stream()
    writer = writer_for(kind, stream, reject=lambda frame, error: value(frame.call, 2 * LIMIT))
    stream.release()
    writer.send(value(1, 2 * LIMIT))
    async with asyncio.timeout(5):
        while not stream.errors:
            await asyncio.sleep(0)
    assert writer.closed and stream.messages == []
    assert isinstance(stream.errors[0], wool.SerializationError)


def test_frames_split_apart_go_back_to_the_head_of_the_outbox_at_once() -> None:
    requeued: list[Frame] = []
    salvage = Salvage(frames.encode, Stream().reject, requeued.extend)
    sent = frames.decode(salvage([value(2, LIMIT // 2), value(3, LIMIT // 2)]))
    assert calls(sent) == [(2, RETURN)]
    # Back before the encode returns, so a frame sent afterwards cannot overtake call 3.
    assert [f.call for f in requeued] == [3]
