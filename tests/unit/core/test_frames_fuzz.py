"""Property-based fuzzing of frame decoding: malformed bytes raise ProtocolError, nothing else.

Covers the worker's ``decode`` and the caller's ``Connection._receive``.
200 examples per property in the default run (derandomized, so a run is
repeatable); ``WOOL_FUZZ_EXAMPLES=5000`` runs that many, randomly (add
``--timeout=0``: about 30 s per property).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wool.errors import ProtocolError, WorkerLost
from wool.mesh.connection import Connection, PendingCall
from wool.protocol import frames as f

_ASKED = int(os.environ.get("WOOL_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=_ASKED or 200,
    deadline=None,
    database=None,
    derandomize=not _ASKED,
    suppress_health_check=[HealthCheck.too_slow],
)

calls = st.integers(0, 3) | st.integers(0, 2**64 - 1)
small = st.integers(0, 255)
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
payloads = st.binary(max_size=48)
outcomes = st.builds(f.Outcome, calls, small, payloads) | st.builds(
    f.Outcome, calls, st.just(f.RAISE), payloads, texts, texts, texts
)
dispatches = st.builds(
    f.Dispatch, calls, texts, texts, payloads, payloads, texts, payloads,
    st.booleans(), st.floats(allow_nan=False), texts, st.booleans(), payloads,
)  # fmt: skip
frame = st.one_of(
    dispatches,
    st.builds(f.Resume, calls, small, payloads),
    st.builds(f.Cancel, calls),
    outcomes,
    st.builds(f.NeedCode, calls, payloads),
    st.builds(f.Output, calls, small, texts),
    st.builds(f.Value, calls, payloads, payloads),
    st.builds(f.Context, calls, payloads),
)
frame_lists = st.lists(frame, min_size=1, max_size=4)


@st.composite
def malformed(draw: st.DrawFn) -> bytes:
    """Random, truncated, bit-flipped, oversized-length or spliced versions of valid messages."""
    message = bytearray(f.encode(draw(frame_lists)))
    how = draw(st.sampled_from(["random", "truncate", "flip", "length", "splice"]))
    if how == "random":
        return draw(st.binary(max_size=200))
    if how == "truncate":
        return bytes(message[: draw(st.integers(0, len(message) - 1))])
    if how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            bit = draw(st.integers(0, 8 * len(message) - 1))
            message[bit // 8] ^= 1 << (bit % 8)
    elif how == "length":
        at = draw(st.integers(1, max(1, len(message) - 4)))
        big = draw(
            st.sampled_from([2**32 - 1, 2**31, len(message) + 1]) | st.integers(0, 2**32 - 1)
        )
        message[at : at + 4] = big.to_bytes(4, "big")
    else:
        at = draw(st.integers(1, len(message)))
        message[at:at] = draw(st.binary(min_size=1, max_size=16))
    return bytes(message)


@FUZZ
@given(frame_lists)
def test_every_valid_message_round_trips(sent: list[f.Frame]) -> None:
    assert f.decode(f.encode(sent)) == sent


@FUZZ
@given(malformed())
def test_malformed_bytes_decode_to_frames_or_raise_protocol_error(data: bytes) -> None:
    try:
        received = f.decode(data)
    except ProtocolError:
        return
    assert all(type(frame) in f.Frame.__args__ for frame in received)  # type: ignore[attr-defined]


def test_an_oversized_length_in_each_field_is_a_protocol_error() -> None:
    dispatch = f.Dispatch(1, "m", "q", b"d", b"c", "u", b"args", False, 0.0, "p")
    message = f.encode([dispatch])
    head = 1 + f._DISPATCH.size - 8 * 4
    for field in range(8):
        at = head + 4 * field
        bad = message[:at] + (2**32 - 1).to_bytes(4, "big") + message[at + 4 :]
        try:
            f.decode(bad)
        except ProtocolError as exc:
            assert "overruns" in str(exc)
        else:
            raise AssertionError(f"length field {field} set to 2**32-1 was accepted")


def _connection(output: list[tuple[int, int, str]]) -> Connection:
    """A connection to no one, with calls 0-3 waiting, as the reader would drive it."""
    lost: list[WorkerLost] = []
    conn = Connection(
        f.PeerRecord("fuzz", "127.0.0.1:9", 1), b"secret", lambda c, e: lost.append(e)
    )
    loop = asyncio.get_running_loop()
    for call in range(4):
        sink = lambda stream, text, call=call: output.append((call, stream, text))  # noqa: E731
        conn.pending[call] = PendingCall(None, cast(Any, None), loop.create_future(), sink)
    return conn


async def _receive(data: bytes) -> None:
    output: list[tuple[int, int, str]] = []
    conn = _connection(output)
    waiters = {call: entry.waiter for call, entry in conn.pending.items()}
    try:
        conn._receive(data)
    except ProtocolError:
        return
    for call, waiter in waiters.items():
        if waiter.done():
            outcome = waiter.result()
            assert isinstance(outcome, f.Outcome) and outcome.call == call
            assert call not in conn.pending or outcome.kind == f.YIELD
        else:
            assert call in conn.pending
    assert all(call in waiters for call, _, _ in output)
    assert all(call in waiters for call in conn.contexts)  # kept only for calls in flight


def test_the_callers_receive_raises_only_protocol_errors() -> None:
    loop = asyncio.new_event_loop()

    @FUZZ
    @given(malformed() | frame_lists.map(f.encode))
    def check(data: bytes) -> None:
        loop.run_until_complete(_receive(data))

    try:
        check()
    finally:
        loop.close()
