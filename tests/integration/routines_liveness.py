"""Routines the liveness tests dispatch (worker lifetime, stall detection, load spread)."""

from __future__ import annotations

import asyncio
import pathlib
import time

import wool


def _spin(seconds: float) -> None:
    """Pure-Python CPU work: holds the GIL except at the interpreter's switch points."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@wool.routine
async def sleep_blocking(seconds: float) -> None:
    """Blocks the worker's event loop in a C-level sleep."""
    time.sleep(seconds)


@wool.routine
async def spin_blocking(seconds: float) -> str:
    """Blocks the worker's event loop with a busy loop; returns the worker id."""
    _spin(seconds)
    task = wool.current_task()
    assert task is not None
    return task.worker


@wool.routine
async def wait_then_mark(path: str) -> None:
    """Waits on the loop (leaving it free); its finally leaves ``path`` behind."""
    try:
        await asyncio.sleep(3600)
    finally:
        pathlib.Path(path).write_text("finally ran")


@wool.routine
async def wait(seconds: float) -> None:
    await asyncio.sleep(seconds)


@wool.routine
async def which_worker() -> str:
    task = wool.current_task()
    assert task is not None
    return task.worker
