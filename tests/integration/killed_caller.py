"""A caller the lifetime tests kill with SIGKILL: ``python killed_caller.py MODE [PATH]``.

It starts a two-worker pool, pins one routine to each worker (MODE: ``sleep``
blocks the loop in time.sleep, ``spin`` in a pure-Python busy loop, ``wait``
leaves the loop free with a finally that writes PATH-<worker id>), waits
until both run, prints the worker pids as one JSON line, and waits to be killed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import routines_liveness as r

import wool

START_BOUND = 30.0


async def main(mode: str, path: str) -> None:
    pool = wool.WorkerPool(spawn=2)
    async with pool:
        calls = []
        for worker in pool.workers:
            if mode == "sleep":
                call = r.sleep_blocking.options(worker=worker.id)(100_000)
            elif mode == "spin":
                call = r.spin_blocking.options(worker=worker.id)(100_000)
            else:
                call = r.wait_then_mark.options(worker=worker.id)(f"{path}-{worker.id}")
            calls.append(asyncio.ensure_future(call))
        deadline = time.monotonic() + START_BOUND
        while not all(p.executed.in_flight == 1 for p in (await pool.statistics()).peers):
            if time.monotonic() > deadline:
                raise SystemExit("the routines did not start in time")
            await asyncio.sleep(0.02)
        print(json.dumps({w.id: w.pid for w in pool.workers}), flush=True)
        await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""))
