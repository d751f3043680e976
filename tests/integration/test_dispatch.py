"""Routines dispatched to real workers: results, nesting, generators, methods."""

from __future__ import annotations

import asyncio
import pathlib

import pytest
import routines
from support import until

import wool

pytestmark = pytest.mark.timeout(60)


async def test_the_quickstart_program_runs(pool: wool.WorkerPool) -> None:
    async with pool:
        assert await routines.add(1, 2) == 3
        assert await routines.fib(15) == 610
        assert [i async for i in routines.count(5)] == [0, 1, 2, 3, 4]


async def test_calls_spread_over_both_workers(pool: wool.WorkerPool) -> None:
    async with pool:
        pids = await asyncio.gather(*(routines.pid_then_sleep(0.05) for _ in range(20)))
    assert set(pids) == {w.pid for w in pool.workers}


async def test_calls_made_one_after_another_stay_on_one_warm_worker(
    pool: wool.WorkerPool,
) -> None:
    async with pool:
        pids = [await routines.whoami() for _ in range(20)]
        assert len(set(pids)) == 1, "an idle worker used last is used again"
        concurrent = await asyncio.gather(*(routines.pid_then_sleep(0.05) for _ in range(8)))
        assert set(concurrent) == {w.pid for w in pool.workers}, "concurrent calls still spread"


async def test_values_round_trip(pool: wool.WorkerPool) -> None:
    payload = {"bytes": b"\x00" * 1024, "nested": [1, 2.5, ("x", None)], "set": {1, 2}}
    async with pool:
        assert await routines.echo(payload) == payload
        assert await routines.echo(None) is None
        big = bytes(range(256)) * 4096
        assert await routines.echo(big) == big


async def test_nested_fib_20_completes_on_two_workers() -> None:
    async with asyncio.timeout(50), wool.WorkerPool(spawn=2) as pool:
        assert await routines.fib(20) == 6765
        stats = await pool.statistics()
    executed = sum(p.executed.completed for p in stats.peers)
    assert executed == 21891
    assert all(p.executed.completed > 1000 for p in stats.peers), "both peers did the work"
    assert stats.caller.completed == 1, "nested calls went peer to peer, not through the caller"
    assert sum(p.dispatched.completed for p in stats.peers) == 21890


async def test_generator_send_throw_and_close(
    pool: wool.WorkerPool, tmp_path: pathlib.Path
) -> None:
    marker = tmp_path / "closed"
    async with pool:
        stream = routines.accumulate(str(marker))
        assert await anext(stream) == 0
        assert await stream.asend(5) == 5
        assert await stream.asend(10) == 15
        assert await stream.athrow(ValueError("reset")) == 0
        assert await stream.asend(3) == 3
        await stream.aclose()
        assert marker.read_text() == "closed at 3", "aclose() returns after the remote finally ran"


async def test_generator_exception_escapes_athrow(pool: wool.WorkerPool) -> None:
    async with pool:
        stream = routines.accumulate()
        await anext(stream)
        with pytest.raises(KeyError):
            await stream.athrow(KeyError("not handled remotely"))
        with pytest.raises(StopAsyncIteration):
            await anext(stream)


async def test_leaving_async_for_early_closes_the_remote_generator(
    pool: wool.WorkerPool, tmp_path: pathlib.Path
) -> None:
    marker = tmp_path / "ticker"
    async with pool:
        async for i in routines.ticker(str(marker)):
            if i == 3:
                break
        await until(marker.exists, 5, "the remote generator's finally")
    assert marker.read_text() == "finally ran"


async def test_methods_class_and_static(pool: wool.WorkerPool) -> None:
    async with pool:
        greeting = await routines.Greeter("hello").greet("ada")
        assert greeting.startswith("hello, ada from ")
        assert int(greeting.rsplit(" ", 1)[1]) in {w.pid for w in pool.workers}
        assert await routines.Greeter.kind() == "Greeter"
        assert await routines.Greeter.kind_outer() == "outer Greeter"
        assert await routines.Greeter.shout("hi") == "HI"
        assert await routines.Greeter("x").shout("yo") == "YO"


async def test_many_concurrent_calls_share_one_stream_per_peer(pool: wool.WorkerPool) -> None:
    async with pool:
        results = await asyncio.gather(*(routines.add(i, i) for i in range(3000)))
    assert results == [2 * i for i in range(3000)]


async def test_no_mesh_raises_a_clear_error() -> None:
    with pytest.raises(wool.MeshNotRunning, match="WorkerPool"):
        await routines.add(1, 2)
    with pytest.raises(wool.NoWorkersAvailable):
        [i async for i in routines.count(2)]


async def test_older_size_spelling_and_tags() -> None:
    async with wool.WorkerPool("gpu", "fast", size=1) as pool:
        assert [w.tags for w in pool.workers] == [("gpu", "fast")]
        assert await routines.add(2, 2) == 4
        assert pool.workers[0].address.startswith("127.0.0.1:")


def test_default_pool_for_plain_threads() -> None:
    """start(default=True) serves calls made outside any `async with`, e.g. from asyncio.run."""
    pool = wool.WorkerPool(spawn=1).start(default=True)
    try:
        assert asyncio.run(routines.add(20, 22)) == 42
        assert asyncio.run(routines.add(1, 1)) == 2, "a second event loop gets its own stream"
        stats = pool.statistics_sync()
        assert stats.executed.completed == 2
    finally:
        pool.stop()
    with pytest.raises(wool.MeshNotRunning):
        asyncio.run(routines.add(1, 1))


async def test_calls_pinned_to_a_worker_or_to_tags(pool: wool.WorkerPool) -> None:
    first, second = pool.workers
    async with pool:
        for worker in (first, second):
            pinned = routines.whoami.options(worker=worker.id)
            assert {await pinned() for _ in range(5)} == {worker.pid}
        with pytest.raises(wool.NoWorkersAvailable, match="nope"):
            await routines.whoami.options(worker="nope")()
        with pytest.raises(wool.NoWorkersAvailable, match="gpu"):
            await routines.whoami.options(tags=["gpu"])()


async def test_remote_output_is_forwarded_in_order_while_the_call_runs(
    pool: wool.WorkerPool,
) -> None:
    received: list[tuple[str, str]] = []
    async with pool:
        with wool.output_handler(lambda stream, text: received.append((stream, text))):
            assert await routines.chatty(50) == 50
        text = "".join(t for s, t in received if s == "stdout")
        assert text == "".join(f"line {i}\n" for i in range(50))
        received.clear()
        assert await routines.chatty(3) == 3, "outside the block output stays on the worker"
    assert received == []


async def test_a_raising_output_handler_does_not_break_the_call(
    pool: wool.WorkerPool, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(stream: str, text: str) -> None:
        raise RuntimeError("handler bug")

    async with pool:
        previous = wool.set_output_handler(broken)
        try:
            assert await routines.chatty(2) == 2
        finally:
            assert wool.set_output_handler(previous) is broken
        assert await routines.add(1, 2) == 3
    assert "output handler raised" in caplog.text


async def test_concurrent_tasks_each_enter_and_leave_the_same_pool(pool: wool.WorkerPool) -> None:
    both_inside = asyncio.Barrier(2)
    first_left = asyncio.Event()

    async def first() -> int:
        async with pool:
            await both_inside.wait()
            result = await routines.add(1, 1)
        first_left.set()
        return result

    async def second() -> int:
        async with pool:
            await both_inside.wait()
            await first_left.wait()  # the other task has left the pool: this one still calls
            return await routines.add(2, 2)

    async with asyncio.timeout(20):
        assert await asyncio.gather(first(), second()) == [2, 4]


async def test_leaving_a_nested_block_keeps_calls_of_the_outer_block_alive(
    tmp_path: pathlib.Path,
) -> None:
    marker = tmp_path / "outer"
    async with wool.WorkerPool(spawn=1) as pool:
        # A stream that has yielded is running on the worker, however slow the machine,
        # so it is certainly in flight while the nested block ends.
        outer = routines.accumulate(str(marker))
        assert await anext(outer) == 0
        async with pool:
            assert await routines.add(2, 2) == 4
        assert await outer.asend(5) == 5, "the outer block's call kept its remote state"
        await outer.aclose()
    assert marker.read_text() == "closed at 5"


def test_a_pool_started_from_a_short_lived_thread_outlives_that_thread() -> None:
    import threading

    holder: list[wool.WorkerPool] = []
    starter = threading.Thread(target=lambda: holder.append(wool.WorkerPool(spawn=1).start()))
    starter.start()
    starter.join(30)
    (pool,) = holder
    try:
        assert asyncio.run(asyncio.wait_for(_pinned_add(pool), 10)) == 3
        assert [w.state for w in pool.workers] == ["ready"]
    finally:
        pool.stop()


async def _pinned_add(pool: wool.WorkerPool) -> int:
    async with pool:
        return await routines.add(1, 2)
