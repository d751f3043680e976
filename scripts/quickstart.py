"""Wool in one screen: routines on a local mesh, nested peer-to-peer calls, streaming.

Run with `make demo` (or `python scripts/quickstart.py` once installed).
"""

import asyncio
import os
import time

import wool


@wool.routine
async def add(x: int, y: int) -> int:
    return x + y


@wool.routine
async def fib(n: int) -> int:
    """Each call below the top runs on some worker and fans out to its peers."""
    if n <= 1:
        return n
    async with asyncio.TaskGroup() as tg:
        a = tg.create_task(fib(n - 1))
        b = tg.create_task(fib(n - 2))
    return a.result() + b.result()


@wool.routine
async def count(n: int):
    for i in range(n):
        yield i, os.getpid()


async def main() -> None:
    started = time.perf_counter()
    async with wool.WorkerPool(spawn=4) as pool:
        print(f"mesh of {len(pool.workers)} workers up in {time.perf_counter() - started:.2f}s:")
        for w in pool.workers:
            print(f"  {w.id}  {w.address:<22} pid {w.pid}")

        assert await add(1, 2) == 3
        print("add(1, 2) =", await add(1, 2))

        t = time.perf_counter()
        assert await fib(15) == 610
        print(f"fib(15) = 610 in {time.perf_counter() - t:.2f}s (1,973 routine calls)")

        items = [item async for item in count(5)]
        assert [i for i, _ in items] == [0, 1, 2, 3, 4]
        print("count(5) streamed from pid", items[0][1], "->", [i for i, _ in items])

        stats = await pool.statistics()
        print("\nwho did the work (nested calls go peer to peer):")
        for peer in stats.peers:
            print(
                f"  {peer.id}  ran {peer.executed.completed:>5}  "
                f"sent {peer.dispatched.completed:>5}  p50 {peer.executed.latency.p50_ms:.2f} ms"
            )
        print(f"  caller sent {stats.caller.completed} calls itself")
    print("mesh stopped; no worker left behind.")


if __name__ == "__main__":
    asyncio.run(main())
