"""``WorkerPool.scale``: workers join and leave a running pool while calls run."""

from __future__ import annotations

import asyncio

import pytest
import routines
from support import alive, until, wait_until

import wool

pytestmark = pytest.mark.timeout(90)


class Load:
    """Keeps a few calls in flight until stopped; records each outcome."""

    def __init__(self) -> None:
        self.pids: list[int] = []
        self.errors: list[BaseException] = []
        self._halt = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Load:
        self._task = asyncio.ensure_future(self._run())
        return self

    async def _run(self) -> None:
        while not self._halt.is_set():
            calls = [routines.pid_then_sleep(0.05) for _ in range(6)]
            for result in await asyncio.gather(*calls, return_exceptions=True):
                if isinstance(result, BaseException):
                    self.errors.append(result)
                else:
                    self.pids.append(result)

    async def stop(self) -> None:
        self._halt.set()
        assert self._task is not None
        async with asyncio.timeout(30):
            await self._task


def _live(pool: wool.WorkerPool) -> list[wool.WorkerInfo]:
    return [w for w in pool.workers if w.state == "ready"]


async def test_grow_one_to_three_and_shrink_back_while_calls_run() -> None:
    async with wool.WorkerPool(spawn=1) as pool:
        first = pool.workers[0]
        load = Load().start()
        await until(lambda: len(load.pids) >= 6, 20, "calls on the first worker")

        async with asyncio.timeout(40):
            added, removed = await pool.ascale(3)
        assert len(added) == 2 and removed == []
        assert {w.id for w in _live(pool)} == {first.id, *added}
        assert all(w.source == "spawned" for w in pool.workers)
        new_pids = {w.pid for w in pool.workers if w.id in added}
        await until(
            lambda: new_pids <= set(load.pids), 20, "calls from this process on both newcomers"
        )

        await load.stop()
        assert all(isinstance(e, wool.WorkerLost) for e in load.errors), load.errors

        # The first worker learned the newcomers: its nested calls reach them.
        before = {p.id: p.executed.started for p in (await pool.statistics()).peers}
        async with asyncio.timeout(20):
            assert await routines.fib.options(worker=first.id)(12) == 144
        after = {p.id: p for p in (await pool.statistics()).peers}
        assert after[first.id].dispatched.started > 0
        assert sum(after[i].executed.started - before[i] for i in added) > 0

        load = Load().start()
        await until(lambda: len(load.pids) >= 6, 20, "calls on the grown pool")

        async with asyncio.timeout(40):
            added, removed = await pool.ascale(1)
        assert added == [] and len(removed) == 2
        gone = [w for w in pool.workers if w.id in removed]
        assert all(w.state == "stopped" for w in gone)
        assert len(_live(pool)) == 1
        pids = [w.pid for w in gone]
        wait_until(lambda: not any(alive(p) for p in pids), 10, f"removed workers {pids} to exit")

        survivor = _live(pool)[0].pid
        mark = len(load.pids)
        await until(lambda: len(load.pids) >= mark + 12, 20, "calls after the shrink")
        await load.stop()
        assert set(load.pids[mark:]) == {survivor}
        assert all(isinstance(e, wool.WorkerLost) for e in load.errors), load.errors
        assert len(load.pids) > 0
    assert all(not alive(w.pid) for w in pool.workers)


async def test_shrink_drains_calls_on_the_removed_worker() -> None:
    async with wool.WorkerPool(spawn=2) as pool:
        a, b = pool.workers
        calls = [
            asyncio.ensure_future(routines.pid_then_sleep.options(worker=w.id)(1.0)) for w in (a, b)
        ]
        await until(
            lambda: sum(p.executed.in_flight for p in pool.statistics_sync().peers) == 2,
            10,
            "both calls running",
        )
        async with asyncio.timeout(30):
            _, removed = await pool.ascale(1, drain=20.0)
        assert removed == [b.id]  # equally busy: the newest goes
        async with asyncio.timeout(10):
            assert await asyncio.gather(*calls) == [a.pid, b.pid]
        wait_until(lambda: not alive(b.pid), 10, "the removed worker to exit")


async def test_shrink_without_drain_fails_its_calls_with_worker_lost() -> None:
    async with wool.WorkerPool(spawn=2) as pool:
        a, b = pool.workers
        short = asyncio.ensure_future(routines.pid_then_sleep.options(worker=a.id)(1.0))
        long = asyncio.ensure_future(routines.pid_then_sleep.options(worker=b.id)(60.0))
        await until(
            lambda: sum(p.executed.in_flight for p in pool.statistics_sync().peers) == 2,
            10,
            "both calls running",
        )
        async with asyncio.timeout(30):
            _, removed = await pool.ascale(1, drain=0.0)
        assert removed == [b.id]
        with pytest.raises(wool.WorkerLost):
            async with asyncio.timeout(10):
                await long
        async with asyncio.timeout(10):
            assert await short == a.pid
            assert await routines.pid_then_sleep(0.0) == a.pid


async def test_shrink_prefers_an_idle_worker() -> None:
    async with wool.WorkerPool(spawn=2) as pool:
        a, b = pool.workers
        call = asyncio.ensure_future(routines.pid_then_sleep.options(worker=b.id)(1.0))
        await until(
            lambda: sum(p.executed.in_flight for p in pool.statistics_sync().peers) == 1,
            10,
            "the call running",
        )
        async with asyncio.timeout(30):
            _, removed = await pool.ascale(1, drain=0.0)
        assert removed == [a.id]
        async with asyncio.timeout(10):
            assert await call == b.pid


def test_scale_refuses_bad_sizes_and_stopped_pools() -> None:
    pool = wool.WorkerPool(spawn=1)
    with pytest.raises(RuntimeError, match="new"):
        pool.scale(2)
    pool.start()
    try:
        for bad in (0, -1, 1.5, True):
            with pytest.raises(ValueError, match="scale"):
                pool.scale(bad)  # type: ignore[arg-type]
        assert pool.scale(1) == ([], [])
    finally:
        pool.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        pool.scale(2)
