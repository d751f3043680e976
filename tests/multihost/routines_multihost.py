"""Routines the multi-host tests run; workers import this module by reference (PYTHONPATH)."""

from __future__ import annotations

import asyncio
import os

import wool


@wool.routine
async def fib(n: int) -> int:
    """Naive Fibonacci whose two halves are nested calls, so work spreads peer to peer."""
    if n <= 1:
        return n
    async with asyncio.TaskGroup() as tg:
        a = tg.create_task(fib(n - 1))
        b = tg.create_task(fib(n - 2))
    return a.result() + b.result()


@wool.routine
async def hold(seconds: float) -> int:
    """Stay in flight for ``seconds``; returns the worker's pid."""
    await asyncio.sleep(seconds)
    return os.getpid()


@wool.routine
async def whoami() -> int:
    return os.getpid()


@wool.routine
async def known_peers() -> list[str]:
    """The ids of the peers this worker would dispatch nested calls to now."""
    from wool.mesh import context

    return sorted(p.id for p in context.current().live)
