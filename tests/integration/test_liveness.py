"""Liveness: workers end with their caller, a stalled worker is lost within a bound and
may rejoin, a busy one is not lost, and the first burst of calls spreads over idle workers.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import IO

import pytest
import routines_liveness as r
from support import alive, until

import wool

pytestmark = pytest.mark.timeout(90)

KILLED_CALLER = pathlib.Path(__file__).with_name("killed_caller.py")
EXIT_BOUND = 3.0
"""Seconds within which workers must be gone once their caller is killed (nominal: 1 s)."""
LOST_BOUND = 6.0
"""wool/README.md, Liveness: a stopped worker's calls fail with WorkerLost within this."""


def _read_line(stream: IO[str], timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        raise AssertionError(f"the caller printed nothing within {timeout}s")
    return stream.readline()


def _kill_caller(mode: str, marks: pathlib.Path) -> dict[str, int]:
    """Run killed_caller.py in ``mode``, SIGKILL it, and wait (bounded) for its workers."""
    workers: dict[str, int] = {}
    with subprocess.Popen(
        [sys.executable, str(KILLED_CALLER), mode, str(marks)], stdout=subprocess.PIPE, text=True
    ) as caller:
        try:
            assert caller.stdout is not None
            workers = json.loads(_read_line(caller.stdout, 60))
            assert len(workers) == 2 and all(alive(pid) for pid in workers.values())
            os.kill(caller.pid, signal.SIGKILL)
            killed = time.monotonic()
            caller.wait(5)
            while any(alive(pid) for pid in workers.values()):
                if time.monotonic() - killed > EXIT_BOUND:
                    break
                time.sleep(0.01)
            took = time.monotonic() - killed
            print(f"{mode}: workers gone {took:.3f}s after their caller was killed")
            left = [pid for pid in workers.values() if alive(pid)]
            assert not left, f"workers {left} outlived their killed caller by {EXIT_BOUND}s"
        finally:
            if caller.poll() is None:
                caller.kill()
                caller.wait(5)
            for pid in workers.values():
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while any(alive(pid) for pid in workers.values()) and time.monotonic() < deadline:
                time.sleep(0.01)
    return workers


@pytest.mark.parametrize("mode", ["sleep", "spin"])
def test_killing_the_caller_ends_workers_whose_loop_a_routine_blocks(
    mode: str, tmp_path: pathlib.Path
) -> None:
    _kill_caller(mode, tmp_path / "mark")


def test_killing_the_caller_lets_routines_on_a_free_loop_run_their_finally(
    tmp_path: pathlib.Path,
) -> None:
    workers = _kill_caller("wait", tmp_path / "mark")
    for worker_id in workers:
        assert (tmp_path / f"mark-{worker_id}").read_text() == "finally ran"


def _state(pool: wool.WorkerPool, worker_id: str) -> str:
    return next(w.state for w in pool.workers if w.id == worker_id)


async def test_a_stopped_worker_is_lost_within_the_bound_and_rejoins_once_continued() -> None:
    async with asyncio.timeout(80), wool.WorkerPool(spawn=2) as pool:
        stalled, other = pool.workers
        call = asyncio.ensure_future(r.wait.options(worker=stalled.id)(600))
        # Frames on one stream are handled in order: once this answers, `call` runs there.
        assert await r.which_worker.options(worker=stalled.id)() == stalled.id
        os.kill(stalled.pid, signal.SIGSTOP)
        try:
            stopped = time.monotonic()
            with pytest.raises(wool.WorkerLost):
                async with asyncio.timeout(LOST_BOUND * 4):
                    await call
            took = time.monotonic() - stopped
            print(f"the stopped worker's call failed with WorkerLost after {took:.2f}s")
            assert took < LOST_BOUND
            assert _state(pool, stalled.id) == "lost"
            assert await r.which_worker() == other.id, "new calls go to the live worker"
        finally:
            os.kill(stalled.pid, signal.SIGCONT)
        await until(lambda: _state(pool, stalled.id) == "ready", 30, "the worker to rejoin")
        assert await r.which_worker.options(worker=stalled.id)() == stalled.id
        ran = await asyncio.gather(*(r.spin_blocking(0.02) for _ in range(8)))
        assert set(ran) == {stalled.id, other.id}, "unpinned calls reach it again"


@pytest.mark.parametrize("grpc_endpoints", ["tuned", "event_engine"])
async def test_a_worker_busy_on_cpu_for_twice_the_bound_is_not_lost(
    grpc_endpoints: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GRPC_EXPERIMENTS", raising=False)
    if grpc_endpoints == "event_engine":
        monkeypatch.setenv("WOOL_TUNE_GRPC", "0")
    async with asyncio.timeout(60), wool.WorkerPool(spawn=1) as pool:
        (worker,) = pool.workers
        assert await r.spin_blocking(2 * LOST_BOUND) == worker.id
        assert pool.workers[0].state == "ready"
        assert await r.which_worker() == worker.id


async def test_the_first_burst_spreads_over_idle_workers_while_a_connection_opens() -> None:
    async with asyncio.timeout(60), wool.WorkerPool(spawn=2) as pool:
        await r.which_worker()
        opened = pool._mesh._connections()
        assert len(opened) == 1, "one connection open before the burst"
        ran = await asyncio.gather(*(r.spin_blocking(0.05) for _ in range(40)))
        split = Counter(ran)
        print(f"40 concurrent calls split {sorted(split.values())}")
        assert set(split) == {w.id for w in pool.workers}
        assert all(12 <= n <= 28 for n in split.values()), split


def test_a_worker_refuses_to_listen_beyond_loopback() -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "wool.worker", "--id", "x", "--host", "0.0.0.0"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 2
    assert "refusing --host 0.0.0.0" in refused.stderr
    assert "127.0.0.1" in refused.stderr
