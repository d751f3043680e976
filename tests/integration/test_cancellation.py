"""Cancelling a caller cancels the remote routine; deadlines per call and per block."""

from __future__ import annotations

import asyncio
import pathlib

import pytest
import routines
from support import until

import wool

pytestmark = pytest.mark.timeout(60)


async def _running_remotely(pool: wool.WorkerPool, count: int) -> None:
    """Wait (bounded) until the workers report ``count`` routines running."""
    async with asyncio.timeout(5):
        while (await pool.statistics()).executed.in_flight != count:
            await asyncio.sleep(0.01)


async def test_cancelling_the_caller_cancels_the_remote_routine(
    pool: wool.WorkerPool, tmp_path: pathlib.Path
) -> None:
    marker = tmp_path / "cancel"
    async with pool:
        call = asyncio.create_task(routines.sleep_then_mark(30, str(marker)))
        await _running_remotely(pool, 1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await until(marker.exists, 2, "the remote CancelledError handler")
        assert marker.read_text() == "cancelled"
        assert await routines.add(1, 1) == 2, "the stream is still usable"


async def test_cancelling_the_call_reading_the_stream_spares_the_others_on_it(
    pool: wool.WorkerPool, tmp_path: pathlib.Path
) -> None:
    """The first call waiting on a stream reads it; cancelling it must not end the stream."""
    marker = tmp_path / "cancel"
    async with pool:
        worker = pool.workers[0]
        pinned = routines.sleep_then_mark.options(worker=worker.id)
        other = routines.pid_then_sleep.options(worker=worker.id)
        reading = asyncio.create_task(pinned(30, str(marker)))
        await _running_remotely(pool, 1)
        waiting = asyncio.create_task(other(2.0))  # long enough for the poll below to see it
        await _running_remotely(pool, 2)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        assert await waiting == worker.pid, "the other call on the stream completed"
        await until(marker.exists, 2, "the remote CancelledError handler")
        assert marker.read_text() == "cancelled"
        assert await other(0) == worker.pid


async def test_asyncio_timeout_around_a_call_cancels_it_remotely(
    pool: wool.WorkerPool, tmp_path: pathlib.Path
) -> None:
    marker = tmp_path / "timeout"
    async with pool:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await routines.sleep_then_mark(30, str(marker))
        await until(marker.exists, 2, "the remote cancellation")
    assert marker.read_text() == "cancelled"


async def test_per_call_timeout(pool: wool.WorkerPool, tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "per-call"
    async with pool:
        with pytest.raises(wool.DispatchTimeout, match="deadline"):
            await routines.sleep_then_mark.options(timeout=0.2)(30, str(marker))
        await until(marker.exists, 2, "the remote cancellation")
        assert await routines.sleep_then_mark.options(timeout=5)(0.01, str(marker)) == "finished"


async def test_per_block_timeout_reaches_nested_calls(pool: wool.WorkerPool) -> None:
    async with pool:
        with wool.timeout(10):
            left = await routines.remote_time_left()
        assert left is not None and 0 < left <= 10
        assert await routines.remote_time_left() is None
        with wool.timeout(0.3), pytest.raises(wool.DispatchTimeout):
            await routines.sleep_then_mark(30, "/dev/null")
        with pytest.raises(ValueError), wool.timeout(0):
            pass


async def test_generator_cancelled_mid_stream(
    pool: wool.WorkerPool, tmp_path: pathlib.Path
) -> None:
    marker = tmp_path / "gen-cancel"

    async def consume() -> None:
        async for _ in routines.ticker(str(marker)):
            await asyncio.sleep(0.01)

    async with pool:
        task = asyncio.create_task(consume())
        await _running_remotely(pool, 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(marker.exists, 3, "the remote generator's finally")


async def test_output_printed_while_unwinding_reaches_the_callers_handler(
    pool: wool.WorkerPool, tmp_path: pathlib.Path
) -> None:
    marker = tmp_path / "running"
    received: list[str] = []
    async with pool:
        with wool.output_handler(lambda stream, text: received.append(text)):
            call = asyncio.create_task(routines.print_while_cancelled(str(marker)))
        await until(marker.exists, 5, "the routine to start")
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await until(lambda: "cleaning up\n" in "".join(received), 5, "the finally's print")
    assert "".join(received) == "started\ncleaning up\n"


async def test_a_deadline_bounds_a_whole_stream_not_each_step(pool: wool.WorkerPool) -> None:
    async with pool:
        received: list[int] = []
        started = asyncio.get_running_loop().time()
        with pytest.raises(wool.DispatchTimeout), wool.timeout(0.5):
            async for i in routines.slow_steps(6, 0.2):
                received.append(i)
        print(f"the stream ended {asyncio.get_running_loop().time() - started:.2f}s in")
        # Steps of 0.2 s each never reach a 0.5 s deadline on their own, so only a deadline
        # on the whole stream stops it; how many steps fit first depends on the machine,
        # but none yielded 0.6 s or more after the call began can come before it.
        assert received == list(range(len(received))) and len(received) <= 2, received
        with wool.timeout(5):
            (left,) = [x async for x in routines.time_left_in_stream()]
        assert left is not None and 0 < left <= 5, "calls inside a stream inherit its deadline"


async def test_a_stream_called_after_its_deadline_is_not_sent(pool: wool.WorkerPool) -> None:
    async with pool:
        before = (await pool.statistics()).executed.started
        with wool.timeout(0.01):
            await asyncio.sleep(0.05)
            with pytest.raises(wool.DispatchTimeout, match="after its deadline"):
                [i async for i in routines.count(3)]
        assert (await pool.statistics()).executed.started == before


async def test_an_error_in_the_remote_finally_comes_out_of_aclose(pool: wool.WorkerPool) -> None:
    async with pool:
        stream = routines.failing_cleanup()
        assert await anext(stream) == 1
        with pytest.raises(RuntimeError, match="cleanup failed"):
            await stream.aclose()
