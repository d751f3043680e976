"""Routines for test_outcomes.py: outcomes that resist encoding, and calls that wait on a file."""

from __future__ import annotations

import asyncio
import gc
import os
import pathlib
import pickle
import sys
import threading
import traceback
from collections.abc import AsyncIterator

import wool
from wool.protocol import frames


def _recurse(depth: int) -> None:
    if depth:
        _recurse(depth - 1)
    raise ValueError(f"raised {depth} frames down")


def _forever(n: int) -> int:
    return _forever(n + 1)


@wool.routine
async def recurse_forever() -> int:
    return _forever(0)


@wool.routine
async def raise_from_deep_down() -> None:
    # As deep as the worker's stack allows: about 990 frames on a worker.
    _recurse(sys.getrecursionlimit() - len(traceback.extract_stack()) - 15)


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


@wool.routine
async def raise_bad_str() -> None:
    raise BadStr("hidden")


@wool.routine
async def yield_then_raise_bad_str() -> AsyncIterator[int]:
    yield 1
    raise BadStr("hidden")


class NeedsTwo(Exception):
    """Pickles as ``NeedsTwo(message)``, which its __init__ refuses: it cannot be rebuilt."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a} and {b}")


@wool.routine
async def return_unrebuildable() -> NeedsTwo:
    return NeedsTwo(1, 2)


@wool.routine
async def yield_unrebuildable() -> AsyncIterator[NeedsTwo]:
    yield NeedsTwo(1, 2)


@wool.routine
async def return_lock() -> threading.Lock:
    return threading.Lock()


@wool.routine
async def exit_three() -> None:
    sys.exit(3)


@wool.routine
async def limit() -> int:
    return frames.LIMIT


@wool.routine
async def blob(size: int) -> bytes:
    return b"x" * size


@wool.routine
async def blob_at_limit() -> bytes:
    """A value whose pickle is exactly ``frames.LIMIT`` bytes: it passes codec's check, but
    its Outcome frame does not fit one message."""
    overhead = len(pickle.dumps(b"x" * 300, pickle.HIGHEST_PROTOCOL)) - 300
    return b"x" * (frames.LIMIT - overhead)


@wool.routine
async def yield_at_limit(marker: str) -> AsyncIterator[bytes]:
    """Yields a value like blob_at_limit's, then waits; touches ``marker`` when it ends."""
    try:
        overhead = len(pickle.dumps(b"x" * 300, pickle.HIGHEST_PROTOCOL)) - 300
        yield b"x" * (frames.LIMIT - overhead)
        yield b"never asked for"
    finally:
        pathlib.Path(marker).touch()


@wool.routine
async def length(data: bytes) -> int:
    return len(data)


@wool.routine
async def wait_for_file(path: str, bound: float = 30) -> int:
    """Wait (at most ``bound`` seconds) until ``path`` exists: a call the test keeps in flight."""
    async with asyncio.timeout(bound):
        while not pathlib.Path(path).exists():
            await asyncio.sleep(0.01)
    return os.getpid()


@wool.routine
async def break_my_stream() -> None:
    """Make every later write on the stream this call came on fail, as a broken stream would."""
    from wool.worker.executor import Session

    me = asyncio.current_task()
    (session,) = [s for s in gc.get_objects() if isinstance(s, Session) and me in s.tasks.values()]

    async def broken(data: bytes) -> None:
        raise ConnectionResetError("the stream broke")

    session.writer._write = broken  # type: ignore[attr-defined]


@wool.routine
async def receive_until_closed(marker: str) -> AsyncIterator[object]:
    """Yields back what it is sent; touches ``marker`` when it ends, however it ends."""
    try:
        received = None
        while True:
            received = yield received
    finally:
        pathlib.Path(marker).touch()
