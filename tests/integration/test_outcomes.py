"""Every call on a live stream ends with an outcome, and one bad call fails only itself.

Sizes are tested against a lowered message limit (``WOOL_MESSAGE_LIMIT`` in
the workers, ``frames.LIMIT`` here), so no test needs gigabytes; the real
4 GiB case was checked by hand (see the issue note).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import psutil
import pytest
import routines_outcomes as ro
from support import alive, until

import wool
from wool import codec
from wool.protocol import frames
from wool.routine import Routine

pytestmark = pytest.mark.timeout(90)

BOUND = 10.0
"""Seconds any one of these calls may take: a call that would hang fails the test instead."""

LIMIT = 64 << 10


@pytest.fixture(scope="module")
def limited() -> Iterator[wool.WorkerPool]:
    """One worker started with ``WOOL_MESSAGE_LIMIT`` lowered to 64 KiB."""
    saved = os.environ.get("WOOL_MESSAGE_LIMIT")
    os.environ["WOOL_MESSAGE_LIMIT"] = str(LIMIT)
    try:
        shared = wool.WorkerPool(spawn=1).start()
    finally:
        if saved is None:
            del os.environ["WOOL_MESSAGE_LIMIT"]
        else:
            os.environ["WOOL_MESSAGE_LIMIT"] = saved
    pids = [w.pid for w in shared.workers]
    try:
        yield shared
    finally:
        shared.stop()
        _, left = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], 5)
        assert not left, f"workers still running after stop: {left}"


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's limit, lowered to match the ``limited`` pool's."""
    monkeypatch.setattr(frames, "LIMIT", LIMIT, raising=False)


async def _in_flight(pool: wool.WorkerPool, count: int) -> None:
    async with asyncio.timeout(BOUND):
        while sum(p.executed.in_flight for p in (await pool.statistics()).peers) != count:
            await asyncio.sleep(0.01)


async def _fails_alone(
    pool: wool.WorkerPool, tmp_path: Path, bad: Callable[[], Awaitable[object]], match: str
) -> wool.SerializationError:
    """``bad()`` raises SerializationError while three other calls wait on the same worker;
    they then complete, the worker stays ready and serves the next call."""
    release = tmp_path / "release"
    others = [asyncio.create_task(ro.wait_for_file(str(release))) for _ in range(3)]
    try:
        await _in_flight(pool, 3)
        async with asyncio.timeout(BOUND):
            with pytest.raises(wool.SerializationError, match=match) as info:
                await bad()
            assert not any(t.done() for t in others), "the other calls were still in flight"
            release.touch()
            assert await asyncio.gather(*others) == [pool.workers[0].pid] * 3
            assert await ro.length(b"ab") == 2
    finally:
        release.touch()
        async with asyncio.timeout(BOUND):
            await asyncio.gather(*others, return_exceptions=True)
    assert [w.state for w in pool.workers] == ["ready"]
    return info.value


# -- 1. every call ends with an outcome -------------------------------------------


async def test_unbounded_recursion_and_a_raise_990_frames_down_reach_the_caller(
    pool: wool.WorkerPool,
) -> None:
    async with pool, asyncio.timeout(BOUND):
        with pytest.raises(RecursionError):
            await ro.recurse_forever()
        with pytest.raises(ValueError, match="frames down") as info:
            await ro.raise_from_deep_down()
        assert await ro.length(b"ab") == 2
    remote = traceback.extract_tb(info.value.__traceback__)
    assert remote[-1].name == "_recurse", "the innermost remote frames are kept"


async def test_an_exception_whose_str_raises_reaches_the_caller(pool: wool.WorkerPool) -> None:
    async with pool, asyncio.timeout(BOUND):
        with pytest.raises(ro.BadStr):
            await ro.raise_bad_str()
        stream = ro.yield_then_raise_bad_str()
        assert await anext(stream) == 1
        with pytest.raises(ro.BadStr):
            await anext(stream)


async def test_a_generator_called_with_wrong_arguments_reaches_the_caller(
    pool: wool.WorkerPool,
) -> None:
    async with pool, asyncio.timeout(BOUND):
        with pytest.raises(TypeError, match="receive_until_closed"):
            await anext(ro.receive_until_closed("a", "b"))  # type: ignore[call-arg]
        assert await ro.length(b"ab") == 2


async def test_a_stream_the_worker_cannot_write_to_fails_its_calls_at_once(
    tmp_path: Path,
) -> None:
    async with wool.WorkerPool(spawn=1) as pool:
        waiting = asyncio.create_task(ro.wait_for_file(str(tmp_path / "never")))
        await _in_flight(pool, 1)
        async with asyncio.timeout(BOUND):
            with pytest.raises(wool.WorkerLost, match="cannot write"):
                await ro.break_my_stream()
            with pytest.raises(wool.WorkerLost, match="cannot write"):
                await waiting
            # The worker ended one stream and serves on: it is not lost, new calls reach it.
            assert [w.state for w in pool.workers] == ["ready"]
            assert await ro.length(b"abc") == 3


# -- 2. one bad call fails alone ------------------------------------------------------


async def test_an_argument_over_the_limit_fails_before_anything_is_sent(
    limited: wool.WorkerPool, small_limit: None, tmp_path: Path
) -> None:
    async with limited:
        assert await ro.limit() == LIMIT
        before = (await limited.statistics()).executed.started
        await _fails_alone(
            limited,
            tmp_path,
            lambda: ro.length(b"x" * LIMIT),
            r"^length\(\): the arguments come to \d+ bytes, over the 65536 bytes",
        )
        after = (await limited.statistics()).executed.started
    assert after == before + 3 + 1, "only the three waiting calls and the last one ran"


async def test_an_argument_whose_frame_does_not_fit_fails_alone(
    limited: wool.WorkerPool, small_limit: None, tmp_path: Path
) -> None:
    overhead = len(codec.encode_call("length", (b"x" * 300,), {})) - 300
    data = b"x" * (LIMIT - overhead)  # passes codec's check; its Dispatch frame does not fit
    assert len(codec.encode_call("length", (data,), {})) == LIMIT
    async with limited:
        await _fails_alone(
            limited, tmp_path, lambda: ro.length(data), r"length\(\) could not be sent to worker"
        )


async def test_a_return_value_over_the_limit_fails_alone(
    limited: wool.WorkerPool, small_limit: None, tmp_path: Path
) -> None:
    async with limited:
        error = await _fails_alone(
            limited, tmp_path, lambda: ro.blob(LIMIT + 1), r"a bytes value is 65537 bytes, over the"
        )
    assert "raised remotely on worker" in " ".join(error.__notes__)


async def test_a_return_value_whose_frame_does_not_fit_fails_alone(
    limited: wool.WorkerPool, small_limit: None, tmp_path: Path
) -> None:
    async with limited:
        await _fails_alone(
            limited, tmp_path, ro.blob_at_limit, "the value it returned could not be sent back"
        )


async def test_a_value_sent_into_a_remote_generator_that_cannot_be_encoded_ends_it(
    pool: wool.WorkerPool, tmp_path: Path
) -> None:
    marker = tmp_path / "ended"
    async with pool, asyncio.timeout(BOUND):
        stream = ro.receive_until_closed(str(marker))
        assert await anext(stream) is None
        assert await stream.asend(1) == 1
        with pytest.raises(wool.SerializationError, match=r"'generator'"):
            await stream.asend(i for i in range(3))
        await until(marker.exists, BOUND, "the remote generator's finally")


async def test_a_yielded_value_whose_frame_does_not_fit_fails_and_ends_the_generator(
    limited: wool.WorkerPool, small_limit: None, tmp_path: Path
) -> None:
    marker = tmp_path / "ended"
    async with limited:
        await _fails_alone(
            limited,
            tmp_path,
            lambda: anext(ro.yield_at_limit(str(marker))),
            "the value it yielded could not be sent back",
        )
        await until(marker.exists, BOUND, "the remote generator's finally")


# -- 6. SystemExit in a routine never ends the caller ------------------------------

_CHILD = """
import asyncio
import wool
import routines_outcomes as ro

async def main():
    async with wool.WorkerPool(spawn=1) as pool:
        print("worker", pool.workers[0].pid, flush=True)
        (gathered,) = await asyncio.gather(ro.exit_three(), return_exceptions=True)
        print("gather", type(gathered).__name__, gathered.type_name, flush=True)
        for how in ("create_task", "wait_for"):
            try:
                if how == "create_task":
                    await asyncio.create_task(ro.exit_three())
                else:
                    await asyncio.wait_for(ro.exit_three(), 10)
            except wool.RemoteError as exc:
                print(how, type(exc).__name__, exc.type_name, "sys.exit(3)" in str(exc), flush=True)
    print("survived", flush=True)

asyncio.run(main())
"""


def test_sys_exit_in_a_routine_does_not_end_the_callers_process() -> None:
    here = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, *sys.path])}
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHILD)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    lines = child.stdout.splitlines()
    worker = int(lines[0].split()[1]) if lines and lines[0].startswith("worker") else 0
    try:
        assert child.returncode == 0, child.stderr[-2000:]
        assert lines[1:] == [
            "gather RemoteError builtins.SystemExit",
            "create_task RemoteError builtins.SystemExit True",
            "wait_for RemoteError builtins.SystemExit True",
            "survived",
        ]
    finally:
        if worker:
            _gone_within(worker, 10)


def _gone_within(pid: int, seconds: float) -> None:
    try:
        psutil.Process(pid).wait(seconds)
    except psutil.NoSuchProcess:
        pass
    assert not alive(pid), f"the child's worker {pid} outlived it"


# -- 8. what cannot be decoded or must not be copied ----------------------------------


async def test_a_return_value_that_cannot_be_rebuilt_names_the_routine_and_worker(
    pool: wool.WorkerPool,
) -> None:
    async with pool, asyncio.timeout(BOUND):
        with pytest.raises(
            wool.SerializationError,
            match=r"return_unrebuildable\(\) returned on worker \w+ .*cannot be rebuilt here: "
            r"TypeError",
        ):
            await ro.return_unrebuildable()
        stream = ro.yield_unrebuildable()
        with pytest.raises(wool.SerializationError, match=r"yield_unrebuildable\(\) yielded"):
            await anext(stream)
        assert await ro.length(b"ab") == 2


async def test_garbage_code_sent_by_value_is_a_serialization_error(
    pool: wool.WorkerPool,
) -> None:
    code = b"not a pickle at all"
    garbage: Routine = Routine.from_code(
        uuid.uuid4().hex, codec.digest_of(code), code, "garbage", False
    )
    async with pool, asyncio.timeout(BOUND):
        with pytest.raises(
            wool.SerializationError, match=r"could not load the code sent by value of garbage\(\)"
        ):
            await garbage()
        assert await ro.length(b"ab") == 2


async def test_a_lock_is_refused_not_copied_both_ways(pool: wool.WorkerPool) -> None:
    async with pool, asyncio.timeout(BOUND):
        before = (await pool.statistics()).executed.started
        with pytest.raises(
            wool.SerializationError,
            match=r"length\(\): positional argument 0 \(lock\) .*'_thread\.lock'",
        ):
            await ro.length(threading.Lock())  # type: ignore[arg-type]
        assert (await pool.statistics()).executed.started == before, "nothing was sent"
        with pytest.raises(wool.SerializationError, match=r"'_thread\.lock'"):
            await ro.return_lock()
