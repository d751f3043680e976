"""Large payloads in chunks: split by the writers, reassembled by ``Assembler``, in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from wool import codec
from wool.errors import ProtocolError, SerializationError
from wool.protocol import chunks, frames
from wool.protocol.buffers import Received
from wool.protocol.chunks import Assembler
from wool.protocol.frames import (
    RETURN,
    YIELD,
    Cancel,
    Chunk,
    Context,
    Dispatch,
    Frame,
    Outcome,
    Parts,
    Value,
)
from wool.protocol.plain import PlainWriter
from wool.protocol.writer import FrameWriter, Salvage

pytestmark = pytest.mark.timeout(10)

WRITERS = [FrameWriter, PlainWriter]
CHUNK = 1000


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames, "CHUNK", CHUNK)


class Wire:
    """Records each message; writes wait for ``release()`` while ``hold`` is set.

    Like a receiver, it credits the chunk bytes of each message once the write
    completes, unless ``credits`` is False.
    """

    def __init__(self, hold: bool = False, credits: bool = True) -> None:
        self.messages: list[list[Frame]] = []
        self.errors: list[BaseException] = []
        self.gate = asyncio.Event()
        self.credits = credits
        self.writer: Any = None
        if not hold:
            self.gate.set()

    async def write(self, data: bytes) -> None:
        message = frames.decode(data)
        self.messages.append(message)
        await asyncio.sleep(0)
        await self.gate.wait()
        taken = sum(len(f.data) for f in message if type(f) is Chunk)
        if taken and self.credits:
            asyncio.get_running_loop().call_soon(self.writer.credit, taken)

    async def until(self, done: Any) -> None:
        async with asyncio.timeout(5):
            while not done():
                await asyncio.sleep(0)

    def received(self) -> list[Frame]:
        """Every frame as a receiver sees it, chunks assembled (``messages`` stay as sent)."""
        assembler = Assembler()
        out: list[Frame] = []
        for message in self.messages:
            out += assembler.feed(frames.decode(frames.encode(message)))
        assert not assembler.open
        return out

    def index(self, match: Any) -> int:
        """The number of the first message holding a frame ``match`` accepts."""
        return next(i for i, m in enumerate(self.messages) if any(match(f) for f in m))

    def last(self, match: Any) -> int:
        return max(i for i, m in enumerate(self.messages) if any(match(f) for f in m))


def writer_for(kind: type, wire: Wire) -> Any:
    writer: Any = None
    salvage = Salvage(frames.encode, lambda frame, error: None, lambda fs: writer.requeue(fs))
    writer = kind(wire.write, wire.errors.append, salvage)
    wire.writer = writer
    return writer


def pattern(size: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed) % 251 for i in range(size))


def dispatch(call: int, args: frames.Payload) -> Dispatch:
    return Dispatch(call, "m", "f", b"", b"", f"u{call}", args)


@pytest.mark.parametrize("kind", WRITERS)
async def test_a_parts_payload_is_split_and_reassembled_byte_exact(kind: type) -> None:
    wire = Wire()
    writer = writer_for(kind, wire)
    head, body = pattern(10, 1), pattern(3500, 2)
    original = dispatch(1, Parts([head, memoryview(body)[100:]]))
    writer.send(original)
    await wire.until(lambda: any(type(f) is Dispatch for m in wire.messages for f in m))
    assert sum(type(f) is Chunk for m in wire.messages for f in m) == 4
    assert all(len(frames.encode(m)) < CHUNK + 200 for m in wire.messages)
    (received,) = wire.received()
    assert type(received) is Dispatch and isinstance(received.args, bytearray)
    assert received.args == head + body[100:]
    assert original.args.size == 3410  # type: ignore[union-attr]  # the sender's frame is intact
    assert writer.queued_bytes == 0 and wire.errors == []
    writer.close()


@pytest.mark.parametrize("kind", WRITERS)
async def test_small_frames_overtake_a_transfer_but_never_their_own_call(kind: type) -> None:
    wire = Wire(hold=True)
    writer = writer_for(kind, wire)
    writer.send(Outcome(9, RETURN, b"first"))  # in flight: what follows queues
    await wire.until(lambda: wire.messages)
    big, later = pattern(5 * CHUNK), pattern(3 * CHUNK, 5)
    writer.send(Outcome(1, YIELD, big))
    writer.send(Outcome(2, RETURN, b"no-op"))  # another call: must not wait for call 1
    writer.send(Outcome(1, YIELD, b"small"))  # call 1 again: must stay behind its big yield
    writer.send(Context(3, b"ctx", Outcome(3, RETURN, later)))
    writer.send(Outcome(4, RETURN, b"no-op"))
    wire.gate.set()
    await wire.until(lambda: writer.queued_bytes == 0 and not writer.outbox and not writer.writing)

    def chunk_of(call: int) -> Any:
        return lambda f: type(f) is Chunk and f.call == call

    assert wire.index(lambda f: type(f) is Outcome and f.call == 2) < wire.last(chunk_of(1))
    assert wire.index(lambda f: type(f) is Outcome and f.call == 4) < wire.last(chunk_of(3))
    # at most one chunk per transfer in a message, and no more than CHUNK bytes of chunks
    for message in wire.messages:
        sent = [f for f in message if type(f) is Chunk]
        assert len({f.call for f in sent}) == len(sent)
        assert sum(len(f.data) for f in sent) <= CHUNK
    received = wire.received()
    ones = [f for f in received if f.call == 1]
    assert [bytes(f.value) for f in ones] == [big, b"small"]  # type: ignore[union-attr]  # in order
    threes = [f for f in received if f.call == 3]
    assert [type(f) for f in threes] == [Context, Outcome]  # the Context right before its frame
    assert bytes(threes[1].value) == later  # type: ignore[union-attr]
    writer.close()


@pytest.mark.parametrize("kind", WRITERS)
async def test_frames_queued_before_a_transfer_leave_before_its_chunks(kind: type) -> None:
    wire = Wire(hold=True)
    writer = writer_for(kind, wire)
    writer.send(Outcome(9, RETURN, b"first"))
    await wire.until(lambda: wire.messages)
    writer.send(Value(1, b"d" * 16, b"global"))  # small, same call, sent before the big one
    writer.send(dispatch(1, pattern(3 * CHUNK + 1)))
    wire.gate.set()
    await wire.until(lambda: writer.queued_bytes == 0 and not writer.writing)
    received = wire.received()
    assert [type(f) for f in received] == [Outcome, Value, Dispatch]
    assert bytes(received[1].data) == b"global"  # type: ignore[union-attr]
    assert bytes(received[2].args) == pattern(3 * CHUNK + 1)  # type: ignore[union-attr]
    writer.close()


@pytest.mark.parametrize("kind", WRITERS)
async def test_a_cancel_stops_its_transfer_and_the_receiver_drops_the_partial(kind: type) -> None:
    wire = Wire(hold=True)
    writer = writer_for(kind, wire)
    writer.send(dispatch(1, pattern(10 * CHUNK)))
    await wire.until(lambda: wire.messages)  # the first chunk is in flight
    writer.send(Cancel(1))
    wire.gate.set()
    await wire.until(lambda: not writer.writing and not writer.outbox)
    assert writer.queued_bytes == 0
    sent = [f for m in wire.messages for f in m]
    assert sum(type(f) is Chunk for f in sent) == 1 and type(sent[-1]) is Cancel
    assembler = Assembler()
    assert [type(f) for m in wire.messages for f in assembler.feed(m)] == [Cancel]
    assert not assembler.open
    writer.close()


def test_small_payloads_and_other_frames_are_not_chunked() -> None:
    assert chunks.payload_of(Outcome(1, RETURN, b"x" * (CHUNK // 16 - 1))) is None
    whole = chunks.payload_of(Outcome(1, RETURN, b"x" * (2 * CHUNK + CHUNK // 2)))
    assert whole is not None and not chunks.chunked(whole)  # heavy, sent whole
    assert chunks.payload_of(b"raw bytes") is None
    assert chunks.payload_of(Cancel(1)) is None
    big = chunks.payload_of(Context(1, b"", dispatch(1, b"x" * (2 * CHUNK + CHUNK // 2 + 1))))
    assert big is not None and chunks.chunked(big)


@pytest.mark.parametrize("kind", WRITERS)
async def test_heavy_frames_too_small_to_chunk_leave_a_few_per_message(kind: type) -> None:
    wire = Wire(hold=True)
    writer = writer_for(kind, wire)
    writer.send(Outcome(99, RETURN, b"first"))  # in flight: what follows queues
    await wire.until(lambda: wire.messages)
    for call in range(1, 9):
        writer.send(Outcome(call, RETURN, pattern(CHUNK // 2, call)))
    writer.send(Outcome(50, RETURN, b"no-op"))
    assert writer.queued_bytes == 8 * (CHUNK // 2)
    wire.gate.set()
    await wire.until(lambda: writer.queued_bytes == 0 and not writer.outbox and not writer.writing)
    sizes = [sum(len(f.value) for f in m if type(f) is Outcome) for m in wire.messages[1:]]
    assert max(sizes) <= CHUNK + len(b"no-op"), sizes  # never all eight in one message
    assert len(wire.messages) >= 5
    writer.close()


async def test_a_last_sliver_rides_with_the_chunk_before_it() -> None:
    wire = Wire()
    writer = writer_for(FrameWriter, wire)
    writer.send(Outcome(1, RETURN, pattern(3 * CHUNK + 100)))
    await wire.until(lambda: writer.queued_bytes == 0 and not writer.writing)
    sizes = [len(f.data) for m in wire.messages for f in m if type(f) is Chunk]
    assert sizes == [CHUNK, CHUNK, CHUNK + 100]
    assert bytes(wire.received()[0].value) == pattern(3 * CHUNK + 100)  # type: ignore[union-attr]
    writer.close()


def test_a_payload_over_the_message_limit_is_left_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames, "LIMIT", 5000)
    assert chunks.payload_of(Outcome(1, RETURN, b"x" * 5001)) is None  # fails alone at encode


def test_chunk_frames_round_trip_through_the_codec() -> None:
    sent = [Chunk(5, 12, Parts([b"ab", memoryview(b"cdef")])), Chunk(5, 12, b"ghijkl")]
    decoded = frames.decode(frames.encode(sent))  # type: ignore[arg-type]
    assert [(f.call, f.total, bytes(f.data)) for f in decoded] == [  # type: ignore[union-attr]
        (5, 12, b"abcdef"),
        (5, 12, b"ghijkl"),
    ]


@pytest.mark.parametrize(
    ("sequence", "why"),
    [
        ([Chunk(1, 4, b"abc"), Chunk(1, 4, b"de")], "overrun"),
        ([Chunk(1, 4, b"ab"), Chunk(1, 5, b"cd")], "overrun"),
        ([Chunk(1, 1 << 40, b"ab")], "over the"),
        ([Chunk(1, 4, b"ab"), Outcome(1, RETURN)], "after 2 of its 4 bytes"),
        ([Chunk(1, 2, b"ab"), Outcome(1, RETURN, b"whole")], "both in chunks and whole"),
    ],
)
def test_malformed_chunk_sequences_are_protocol_errors(sequence: list[Frame], why: str) -> None:
    assembler = Assembler()
    with pytest.raises(ProtocolError, match=why):
        assembler.feed(frames.decode(frames.encode(sequence)))


@pytest.mark.parametrize("preallocate", [0, 1 << 20])
def test_a_payload_is_assembled_writable_and_exact_in_either_kind_of_buffer(
    preallocate: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chunks, "_PREALLOCATE", preallocate)
    data = pattern(2500)
    sent = [Chunk(1, 2500, data[i : i + 1000]) for i in range(0, 2500, 1000)]
    (done,) = Assembler().feed([*sent, Value(1, b"d", b"")])
    assembled = done.data  # type: ignore[union-attr]
    assert len(assembled) == 2500 and bytes(assembled) == data
    assert not memoryview(assembled).readonly
    assert type(assembled) is bytearray


def test_a_payload_frame_of_another_call_passes_through_untouched() -> None:
    assembler = Assembler()
    out = assembler.feed([Chunk(1, 4, b"ab"), Outcome(2, RETURN, b"v")])
    assert out == [Outcome(2, RETURN, b"v")] and 1 in assembler.open
    (done,) = assembler.feed([Chunk(1, 4, b"cd"), Outcome(1, RETURN)])
    assert done.value == bytearray(b"abcd")  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", WRITERS)
async def test_drain_waits_above_the_high_water_mark_and_releases_below_half(
    kind: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chunks, "HIGH_WATER", 6 * CHUNK)
    wire = Wire(hold=True)
    writer = writer_for(kind, wire)
    await writer.drain()  # nothing queued: returns at once
    for call in (1, 2, 3):
        writer.send(Outcome(call, RETURN, pattern(3 * CHUNK, call)))
    await wire.until(lambda: wire.messages)
    assert writer.queued_bytes > chunks.HIGH_WATER
    draining = asyncio.ensure_future(writer.drain())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not draining.done()  # the writes are held: nothing moved
    wire.gate.set()
    async with asyncio.timeout(5):
        await draining
    assert writer.queued_bytes < chunks.HIGH_WATER // 2
    await wire.until(lambda: writer.queued_bytes == 0 and not writer.writing)
    received = wire.received()
    assert sorted(bytes(f.value) for f in received) == sorted(  # type: ignore[union-attr]
        pattern(3 * CHUNK, call) for call in (1, 2, 3)
    )
    writer.close()


@pytest.mark.parametrize("kind", WRITERS)
async def test_close_releases_drain_waiters(kind: type, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunks, "HIGH_WATER", CHUNK)
    wire = Wire(hold=True)
    writer = writer_for(kind, wire)
    writer.send(Outcome(1, RETURN, pattern(3 * CHUNK)))
    draining = asyncio.ensure_future(writer.drain())
    await asyncio.sleep(0)
    writer.close()
    async with asyncio.timeout(5):
        await draining
    assert writer.queued_bytes == 0
    wire.gate.set()


@pytest.mark.parametrize("kind", WRITERS)
async def test_a_large_global_is_never_overtaken_by_the_calls_that_need_it(kind: type) -> None:
    wire = Wire(hold=True)
    writer = writer_for(kind, wire)
    writer.send(Outcome(99, RETURN, b"first"))  # in flight: what follows queues
    await wire.until(lambda: wire.messages)
    writer.send(Value(1, b"digest", pattern(5 * CHUNK)))
    writer.send(dispatch(2, b"uses the global"))
    wire.gate.set()
    await wire.until(lambda: writer.queued_bytes == 0 and not writer.outbox and not writer.writing)
    assert not any(type(f) is Chunk for m in wire.messages for f in m)
    order = [type(f) for f in wire.received()]
    assert order.index(Value) < order.index(Dispatch)
    writer.close()


async def test_drain_waiters_check_again_before_going_on() -> None:
    splitter = chunks.Splitter()
    splitter.queued = chunks.HIGH_WATER + 1
    waiters = [asyncio.ensure_future(splitter.drain()) for _ in range(2)]
    await asyncio.sleep(0)
    splitter.queued = chunks.HIGH_WATER // 2 - 1
    splitter._release()
    splitter.queued = chunks.HIGH_WATER + 1  # the first one woken queued again
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    splitter.close()
    async with asyncio.timeout(5):
        await asyncio.gather(*waiters)


@pytest.mark.parametrize("kind", WRITERS)
async def test_chunks_in_flight_stop_at_the_window_until_credited(
    kind: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chunks, "MIXED_FOR", 60.0)
    wire = Wire(credits=False)
    writer = writer_for(kind, wire)
    writer.send(dispatch(1, pattern(10 * CHUNK)))

    def chunk_bytes() -> int:
        return sum(len(f.data) for m in wire.messages for f in m if type(f) is Chunk)

    await wire.until(lambda: chunk_bytes() == 2 * CHUNK and not writer.writing)
    await asyncio.sleep(0.05)  # nothing more leaves while the window (two chunks) is full
    assert chunk_bytes() == 2 * CHUNK
    writer.send(Outcome(2, RETURN, b"no-op"))  # a small frame is never held by the window
    await wire.until(lambda: any(type(f) is Outcome for m in wire.messages for f in m))
    writer.credit(CHUNK)  # mixed with small frames now: one chunk in flight, not two
    await asyncio.sleep(0.05)
    assert chunk_bytes() == 2 * CHUNK
    writer.credit(CHUNK)
    await wire.until(lambda: chunk_bytes() == 3 * CHUNK and not writer.writing)
    monkeypatch.setattr(chunks, "MIXED_FOR", 0.0)  # quiet again: back to two
    writer.credit(CHUNK)
    await wire.until(lambda: chunk_bytes() == 5 * CHUNK and not writer.writing)
    wire.credits = True
    writer.credit(2 * CHUNK)
    await wire.until(lambda: any(type(f) is Dispatch for m in wire.messages for f in m))
    assert bytes(wire.received()[1].args) == pattern(10 * CHUNK)  # type: ignore[union-attr]
    writer.close()


def test_a_window_set_by_the_user_holds_throughout_and_is_never_below_a_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (chunks.window(), chunks.window(mixed=True)) == (2 * CHUNK, CHUNK)
    monkeypatch.setattr(frames, "WINDOW", CHUNK // 2)
    assert chunks.window() == chunks.window(mixed=True) == CHUNK
    monkeypatch.setattr(frames, "WINDOW", 7 * CHUNK)
    assert chunks.window() == chunks.window(mixed=True) == 7 * CHUNK


def test_the_receiver_credits_every_chunk_byte_it_takes_in() -> None:
    assembler = Assembler()
    assert assembler.credit == 0
    data = pattern(3 * CHUNK)
    assembler.feed([Chunk(1, len(data), data[:CHUNK]), Chunk(1, len(data), data[CHUNK:])])
    credit = assembler.take_credit()
    assert credit.size == 3 * CHUNK and credit.call == 0
    assert assembler.credit == 0
    encoded = frames.decode(frames.encode([credit]))
    assert encoded == [credit]


def _assembled(payload: frames.Payload, pieces: int = 5) -> Any:
    """``payload`` as a receiver gets it after chunks of ``len // pieces`` bytes."""
    data = bytes(payload)
    step = max(1, len(data) // pieces)
    assembler = Assembler()
    received = [Chunk(1, len(data), data[i : i + step]) for i in range(0, len(data), step)]
    (frame,) = assembler.feed([*received, Outcome(1, RETURN, b"")])
    return frame.value  # type: ignore[union-attr]


def test_large_bytes_arrive_as_the_assembled_object_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chunks, "_PREALLOCATE", 1 << 16)  # the no-copy path from 64 KiB
    blob, array = pattern(200_000, 3), bytearray(pattern(150_000, 4))
    sent = codec.encode_call("f", (blob, array, b"small"), {})
    value = _assembled(sent)
    assert type(value) is Received
    decoded, _ = codec.decode_call(value)
    assert decoded == (blob, array, b"small")
    assert decoded[0] is value.buffers[0] and type(decoded[0]) is bytes  # no copy after the wire
    assert decoded[1] is value.buffers[1] and type(decoded[1]) is bytearray
    assert bytes(value) == bytes(sent)
    assert hash(decoded[0]) == hash(bytes(blob))


def test_arrays_assembled_on_their_own_memory_are_writable() -> None:
    np = pytest.importorskip("numpy")
    first, second = np.arange(40_000, dtype=np.float64), np.ones((300, 70), dtype=np.int32)
    value = _assembled(codec.encode_value({"a": first, "b": second}))
    assert type(value) is Received and [len(b) for b in value.buffers] == [320_000, 84_000]
    got = codec.decode_value(value)
    assert np.array_equal(got["a"], first) and np.array_equal(got["b"], second)
    assert got["a"].flags.writeable and got["b"].flags.writeable
    for array, memory in zip((got["a"], got["b"]), value.buffers, strict=True):
        assert np.shares_memory(array, np.frombuffer(memory, dtype=np.uint8))
    got["a"][0] = -1.0  # its own memory, not the sender's
    assert first[0] == 0.0


@pytest.mark.parametrize(
    "head",
    [
        b"W" + b"\xff" * 11,  # a buffer count far past the chunk
        b"W\x00\x00\x00\x01" + b"\x00" * 8 + b"\xff" * 8,  # a buffer running past the payload
        b"W\x00\x00\x10\x00" + b"\x00" * 8 + b"\x00" * 8 * 4096,  # 4,096 empty buffers
        b"W\x00\x00\x00\x02" + b"\x00" * 8 + b"\x00" * 8 + (5136).to_bytes(8, "big"),  # one empty
    ],
)
def test_a_payload_whose_head_does_not_add_up_is_assembled_whole(head: bytes) -> None:
    value = _assembled(head + pattern(5000), pieces=3)
    assert type(value) is bytearray and bytes(value) == head + pattern(5000)
    with pytest.raises((SerializationError, EOFError)):  # what the decoder says of the payload
        codec.decode_value(value)


def test_a_first_chunk_given_as_parts_is_read_like_bytes() -> None:
    blob = pattern(70_000, 6)
    sent = bytes(codec.encode_call("f", (blob,), {}, None))
    incoming = chunks._Incoming(1, len(sent), Parts([sent[:3], memoryview(sent)[3:4000]]))
    incoming.add(Parts([sent[:3], memoryview(sent)[3:4000]]))
    incoming.add(sent[4000:])
    value = incoming.payload()
    assert type(value) is Received and bytes(value) == sent
    assert codec.decode_call(value) == ((blob,), {})
