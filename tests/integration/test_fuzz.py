"""Property-based fuzzing of a real worker's authenticated dispatch stream.

Each example opens an authenticated stream to a worker and sends one
random, truncated, oversized-length, spliced or bit-flipped version of a
valid message. A message that does not decode gets INVALID_ARGUMENT; one
that does gets an answer to every call it dispatches (a RAISE with a typed
error when its contents are bad) and the stream then ends normally. A
routine that does not exist never has its arguments unpickled (a tripwire
pickle would create a file), and after the batch the worker, same
process, serves a normal call on a fresh connection.

A hundred examples in the default run (derandomized, so repeatable);
``WOOL_FUZZ_EXAMPLES=5000`` runs that many, randomly (add ``--timeout=0``).
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import pickle

import grpc
import grpc.aio
import pytest
import routines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wool
from wool import codec
from wool.errors import ProtocolError
from wool.protocol import auth
from wool.protocol import frames as f

pytestmark = pytest.mark.timeout(120)

_ASKED = int(os.environ.get("WOOL_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=_ASKED or 100,
    deadline=None,
    database=None,
    derandomize=not _ASKED,
    suppress_health_check=[HealthCheck.too_slow],
)
ANSWER_BOUND = 10.0
MISSING = "routines_fuzz_missing"


class _Tripwire:
    """Unpickling this creates a file: proof that bytes were unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def _valid_messages(tripwire: pathlib.Path) -> list[bytes]:
    trap = pickle.dumps(((_Tripwire(str(tripwire)),), {}))
    echo = codec.encode_call("echo", (b"fuzz",), {})
    three = codec.encode_call("count", (3,), {})
    return [
        f.encode([f.Dispatch(1, MISSING, "nothing", b"", b"", "", trap)]),
        f.encode([f.Dispatch(2, "routines", "echo", b"", b"", "", echo, timeout=5.0)]),
        f.encode(
            [
                f.Dispatch(3, "routines", "count", b"", b"", "", three, generator=True),
                f.Resume(3, f.NEXT),
                f.Cancel(3),
            ]
        ),
        f.encode([f.Dispatch(4, "", "by_value", b"d" * 16, b"", "uid", echo)]),
        f.encode([f.Cancel(9), f.Resume(10, f.SEND, b"junk"), f.Outcome(11, f.RETURN, b"x")]),
    ]


@st.composite
def _mutated(draw: st.DrawFn, valid: list[bytes]) -> bytes:
    message = bytearray(draw(st.sampled_from(valid)))
    how = draw(st.sampled_from(["random", "truncate", "flip", "length", "splice", "intact"]))
    if how == "random":
        return draw(st.binary(min_size=1, max_size=200))
    if how == "truncate":
        return bytes(message[: draw(st.integers(1, len(message) - 1))])
    if how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            bit = draw(st.integers(8, 8 * len(message) - 1))
            message[bit // 8] ^= 1 << (bit % 8)
    elif how == "length":
        at = draw(st.integers(1, len(message) - 4))
        big = draw(st.sampled_from([2**32 - 1, 2**31, len(message)]) | st.integers(0, 2**32 - 1))
        message[at : at + 4] = big.to_bytes(4, "big")
    elif how == "splice":
        at = draw(st.integers(1, len(message)))
        message[at:at] = draw(st.binary(min_size=1, max_size=16))
    return bytes(message)


def _may_unpickle_the_trap(received: list[f.Frame], tripwire: pathlib.Path) -> bool:
    """Whether a well-formed frame legitimately asks the worker to unpickle the trap.

    Only a routine that resolves runs, and only code sent by value is loaded:
    a mutation could move the trap into either (an authenticated peer may
    run code). A call of a routine that does not exist never qualifies.
    """
    marker = str(tripwire).encode()
    for frame in received:
        if type(frame) is not f.Dispatch:
            continue
        if frame.digest and marker in bytes(frame.code):
            return True
        if frame.module == "routines" and hasattr(routines, frame.qualname):
            return marker in bytes(frame.args)
    return False


def _owed(received: list[f.Frame]) -> set[int]:
    """Calls the worker must answer: every call dispatched, cancelled ones included."""
    return {fr.call for fr in received if type(fr) is f.Dispatch}


async def _exchange(
    address: str, secret: bytes, data: bytes, expected: set[int]
) -> tuple[grpc.StatusCode, dict]:
    """Send ``data`` on a fresh authenticated stream; the final status and the answers.

    Reads until each call in ``expected`` has an answer, then half-closes
    and reads to the end; all bounded by ANSWER_BOUND.
    """
    answers: dict[int, f.Frame] = {}
    metadata = auth.client_metadata(secret)
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.stream_stream(f.DISPATCH_METHOD)(metadata=metadata)
        assert auth.verify_worker(await call.initial_metadata(), secret, metadata)
        try:
            async with asyncio.timeout(ANSWER_BOUND):
                await call.write(data)
                while expected - answers.keys():
                    message = await call.read()
                    if message is grpc.aio.EOF:
                        break
                    for frame in f.decode(message):
                        if type(frame) in (f.Outcome, f.NeedCode):
                            answers.setdefault(frame.call, frame)
                await call.done_writing()
                while await call.read() is not grpc.aio.EOF:
                    pass
        except grpc.aio.AioRpcError as exc:
            return exc.code(), answers
        return await call.code(), answers


def test_malformed_frames_get_invalid_argument_and_the_worker_serves_on(
    pool: wool.WorkerPool, tmp_path: pathlib.Path
) -> None:
    target = pool.workers[0]
    tripwire = tmp_path / "unpickled"
    valid = _valid_messages(tripwire)
    loop = asyncio.new_event_loop()
    seen: dict[str, int] = {}

    @FUZZ
    @given(_mutated(valid))
    def check(data: bytes) -> None:
        try:
            received = f.decode(data)
        except ProtocolError:
            received = None
        owed = set() if received is None else _owed(received)
        status, answers = loop.run_until_complete(
            _exchange(target.address, pool._secret, data, owed)
        )
        if received is None:
            assert status == grpc.StatusCode.INVALID_ARGUMENT
            seen["refused"] = seen.get("refused", 0) + 1
        else:
            assert status == grpc.StatusCode.OK
            assert owed <= answers.keys(), "a dispatched call got no answer"
            for answer in answers.values():
                if type(answer) is f.Outcome and answer.kind == f.RAISE:
                    assert answer.error_type, "an error without a type"
            seen["answered"] = seen.get("answered", 0) + 1
        if tripwire.exists():
            assert received is not None and _may_unpickle_the_trap(received, tripwire)
            tripwire.unlink()

    async def call_after() -> object:
        async with pool:
            return await routines.echo.options(worker=target.id)("still serving")

    try:
        check()
        print(f"fuzz outcomes: {seen}")
        assert seen.get("refused") and seen.get("answered"), "both kinds of message were sent"
        assert loop.run_until_complete(call_after()) == "still serving"
    finally:
        loop.close()
    after = next(w for w in pool.workers if w.id == target.id)
    assert (after.pid, after.state) == (target.pid, "ready"), "the worker is the same process"


async def test_a_call_cancelled_in_the_message_that_dispatched_it_is_answered(
    pool: wool.WorkerPool,
) -> None:
    args = pickle.dumps(((1, 2), {}))
    data = f.encode([f.Dispatch(7, "routines", "add", b"", b"", "", args), f.Cancel(7)])
    code, answers = await _exchange(pool.workers[0].address, pool._secret, data, {7})
    assert code == grpc.StatusCode.OK
    assert type(answers[7]) is f.Outcome and answers[7].kind == f.CANCELLED
