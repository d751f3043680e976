"""Routines for the data-sized tests; workers import this module by name.

Nothing here imports numpy or pandas: the values arrive as whatever the
caller sent, and only the buffer protocol is used on them.
"""

from __future__ import annotations

import hashlib
import pathlib
from collections.abc import AsyncGenerator

import wool


@wool.routine
async def size_of(value: object) -> int:
    """The number of bytes in ``value``'s buffer, as the worker received it."""
    return memoryview(value).nbytes  # type: ignore[arg-type]


@wool.routine
async def sha256_of(value: object) -> str:
    """The SHA-256 of ``value``'s bytes, computed on the worker (C order)."""
    return hashlib.sha256(memoryview(value).cast("B")).hexdigest()  # type: ignore[arg-type]


@wool.routine
async def blocks(count: int, size: int, marker: str) -> AsyncGenerator[bytes, None]:
    """Yields ``count`` fresh blocks of ``size`` bytes, block ``i`` filled with ``i % 256``.

    Before making block ``i`` it writes ``i + 1`` to ``marker``, so the caller
    can see how far the generator has run.
    """
    path = pathlib.Path(marker)
    scratch = path.with_name(path.name + ".tmp")
    for i in range(count):
        scratch.write_text(str(i + 1))
        scratch.replace(path)  # atomic, so a reader never sees a half-written file
        yield bytes([i % 256]) * size


@wool.routine
async def zeros(size: int) -> bytes:
    """``size`` zero bytes, made on the worker."""
    return bytes(size)
