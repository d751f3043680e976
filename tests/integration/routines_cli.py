"""Routines the `wool worker` tests dispatch to a durable worker."""

from __future__ import annotations

import asyncio
import os
import pathlib
import time

import wool


@wool.routine
async def add(a: int, b: int) -> int:
    return a + b


@wool.routine
async def pid() -> int:
    return os.getpid()


@wool.routine
async def nap(seconds: float, started: str) -> str:
    """Touches ``started`` once running, then sleeps; returns the path (its label)."""
    pathlib.Path(started).touch()
    await asyncio.sleep(seconds)
    return started


@wool.routine
async def block(seconds: float, started: str) -> str:
    """Touches ``started``, then blocks the worker's loop (a C-level sleep)."""
    pathlib.Path(started).touch()
    time.sleep(seconds)
    return started


@wool.routine
async def pid_on(worker: str) -> int:
    """The pid of ``worker``, reached through this worker's own peer table (a nested call)."""
    return await pid.options(worker=worker)()
