"""Routines for both Wools: this project's and the original ``wool`` from PyPI.

Both expose ``@wool.routine`` and ``wool.WorkerPool(spawn=N)``; ``import wool`` resolves to
whichever is installed in the virtualenv the script runs in. The module is importable by
name (the harness puts this folder on ``PYTHONPATH``) so workers load it by reference.
"""

from __future__ import annotations

import asyncio

import wool


@wool.routine
async def noop() -> None:
    """Do nothing."""
    return None


@wool.routine
async def echo(data: bytes) -> bytes:
    """Return ``data`` unchanged."""
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
