"""Wool routines the dispatch benchmark calls.

They live in an importable module (not ``__main__``) so Wool's worker processes can
import them; ``bench_dispatch.py`` puts this folder on ``sys.path`` and ``PYTHONPATH``
before importing it as ``routines``.
"""

from __future__ import annotations

import asyncio
import os

import wool


@wool.routine
async def noop() -> None:
    """Do nothing: Wool's no-op call."""
    return None


@wool.routine
async def echo(data: bytes) -> bytes:
    """Return ``data`` unchanged: Wool's payload round trip."""
    return data


@wool.routine
async def fib(n: int) -> int:
    """Fibonacci by nested routine calls: each call above 1 dispatches two more."""
    if n <= 1:
        return n
    async with asyncio.TaskGroup() as group:
        a = group.create_task(fib(n - 1))
        b = group.create_task(fib(n - 2))
    return a.result() + b.result()


@wool.routine
async def worker_pid() -> int:
    """The PID of the process the routine ran in (to check it left the caller)."""
    return os.getpid()
