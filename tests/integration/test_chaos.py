"""Chaos: kill -9 a random worker every second under nested load; a respawning pool copes.

Every call completes or fails with WorkerLost/NoWorkersAvailable within a
bound, no call runs twice (each run leaves a line in a file named by the
call's token), and no worker, replacements included, outlives the pool.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import signal
import threading
import time
import uuid

import pytest
import routines_chaos
from support import alive, until, wait_until

import wool

pytestmark = pytest.mark.timeout(90)

WORKERS = 3
CLIENTS = 6
CHAOS_SECONDS = 10
CALL_BOUND = 15.0
"""Seconds within which every call must end, one way or the other."""


def _runs(directory: str, token: str, step: str) -> int:
    try:
        with open(routines_chaos.runs_path(directory, token, step)) as f:
            return len(f.read().splitlines())
    except FileNotFoundError:
        return 0


async def test_kill_9_every_second_under_nested_load_runs_no_call_twice(tmp_path) -> None:
    directory = str(tmp_path)
    seed = random.randrange(1 << 32)
    print(f"chaos seed {seed}")
    rng = random.Random(seed)
    outcomes: dict[str, str] = {}
    stopping = asyncio.Event()

    async def client() -> None:
        while not stopping.is_set():
            token = uuid.uuid4().hex
            outcomes[token] = "pending"
            try:
                async with asyncio.timeout(CALL_BOUND):
                    await routines_chaos.outer(directory, token)
            except (wool.WorkerLost, wool.NoWorkersAvailable) as exc:
                outcomes[token] = type(exc).__name__
                await asyncio.sleep(0.05)  # pacing: a call that fails at once must not spin
            except TimeoutError:
                outcomes[token] = "timed out"
            except Exception as exc:
                outcomes[token] = f"unexpected {exc!r}"
            else:
                outcomes[token] = "done"

    killed: list[int] = []
    async with wool.WorkerPool(spawn=WORKERS, respawn=True) as pool:
        started = time.monotonic()
        clients = [asyncio.create_task(client()) for _ in range(CLIENTS)]
        for _ in range(CHAOS_SECONDS):
            await asyncio.sleep(1.0)  # the kill cadence under test, not a synchronization
            ready = [w for w in pool.workers if w.state == "ready"]
            if ready:
                victim = rng.choice(ready)
                os.kill(victim.pid, signal.SIGKILL)
                killed.append(victim.pid)
        stopping.set()
        async with asyncio.timeout(CALL_BOUND + 5):
            await asyncio.gather(*clients)
        print(f"chaos: {len(killed)} kills in {time.monotonic() - started:.1f}s")

        await until(
            lambda: sum(w.state == "ready" for w in pool.workers) == WORKERS,
            30,
            "the pool to be back to full strength",
        )
        after = [uuid.uuid4().hex for _ in range(2 * WORKERS)]
        async with asyncio.timeout(CALL_BOUND):
            await asyncio.gather(*(routines_chaos.outer(directory, t) for t in after))
        outcomes.update(dict.fromkeys(after, "done"))
        history = pool.workers

    tally = collections.Counter(
        o if not o.startswith("unexpected") else "unexpected" for o in outcomes.values()
    )
    print(f"chaos outcomes: {dict(tally)}")
    assert [o for o in outcomes.values() if o == "timed out" or o.startswith("unexpected")] == []
    assert "pending" not in tally
    assert len(killed) >= CHAOS_SECONDS // 2, f"too few ready workers to kill: {killed}"
    assert tally["WorkerLost"] > 0, "the kills never hit a call in flight: nothing was tested"
    assert tally["done"] > len(after)

    twice = {
        token: (_runs(directory, token, "outer"), _runs(directory, token, "inner"))
        for token in outcomes
        if max(_runs(directory, token, "outer"), _runs(directory, token, "inner")) > 1
    }
    assert twice == {}, f"calls that ran more than once: {twice}"
    not_run = [
        token
        for token, outcome in outcomes.items()
        if outcome == "done"
        and (_runs(directory, token, "outer"), _runs(directory, token, "inner")) != (1, 1)
    ]
    assert not_run == [], "completed calls whose side effects are missing"
    strangers = {name.split(".")[0] for name in os.listdir(directory)} - set(outcomes)
    assert strangers == set(), "side effects of calls the test never made"

    pids = [w.pid for w in history]
    assert len(pids) >= WORKERS + len(killed), "every killed worker was replaced"
    assert set(killed) <= set(pids)
    wait_until(lambda: not any(alive(p) for p in pids), 10, "every worker ever spawned to exit")


async def test_stop_during_a_respawn_stops_the_replacement_too() -> None:
    async with wool.WorkerPool(spawn=2, respawn=True) as pool:
        os.kill(pool.workers[0].pid, signal.SIGKILL)
        await until(lambda: len(pool.workers) == 3, 10, "a replacement to be spawned")
        history = pool.workers  # the replacement may be starting or ready: stop ends it either way
    pids = [w.pid for w in history]
    wait_until(lambda: not any(alive(p) for p in pids), 10, "every worker ever spawned to exit")
    assert len(pool.workers) == 3, "no replacement started after stop"
    assert not [t for t in threading.enumerate() if t.name == "wool-respawn"]


async def test_without_respawn_a_killed_worker_stays_lost(tmp_path) -> None:
    async with wool.WorkerPool(spawn=2) as pool:
        victim = pool.workers[0]
        os.kill(victim.pid, signal.SIGKILL)
        await until(lambda: pool.workers[0].state == "lost", 10, "the worker to be seen lost")
        assert await routines_chaos.inner(str(tmp_path), "after") != victim.pid
        assert [w.pid for w in pool.workers] == [victim.pid, pool.workers[1].pid]
