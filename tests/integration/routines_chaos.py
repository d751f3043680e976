"""Routines for the chaos test; each run leaves one line in a file named by its token."""

from __future__ import annotations

import asyncio
import os

import wool


def runs_path(directory: str, token: str, step: str) -> str:
    return os.path.join(directory, f"{token}.{step}")


def _record_run(directory: str, token: str, step: str) -> None:
    """Append one line per run: at-most-once means no file ever holds two."""
    fd = os.open(runs_path(directory, token, step), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
    finally:
        os.close(fd)


@wool.routine
async def inner(directory: str, token: str) -> int:
    _record_run(directory, token, "inner")
    await asyncio.sleep(0.01)
    return os.getpid()


@wool.routine
async def outer(directory: str, token: str) -> tuple[int, int]:
    """Records its own run, then calls ``inner`` (a nested call, peer to peer)."""
    _record_run(directory, token, "outer")
    return os.getpid(), await inner(directory, token)
