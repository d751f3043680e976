"""Wool routines the data benchmark (``bench_data.py``) calls.

Workers import routines by reference, so these live in an importable module;
``bench_data.py`` puts this folder on ``sys.path`` and ``PYTHONPATH``. The no-op, echo
and fib routines come from ``routines.py``; this module adds what only the data
benchmark needs.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import wool


@wool.routine
async def length(data: bytes) -> int:
    """Receive ``data`` and return only its size, so results hold no payload."""
    return len(data)


@wool.routine
async def chunks(count: int, size: int) -> AsyncGenerator[bytes, None]:
    """Yield ``count`` fresh buffers of ``size`` bytes, one per pull."""
    for index in range(count):
        yield bytes([index % 251]) * size


@wool.routine
async def spin(iterations: int) -> int:
    """A short CPU-bound routine: ``iterations`` steps of integer arithmetic."""
    total = 0
    for i in range(iterations):
        total = (total + i * i) % 1_000_003
    return total
