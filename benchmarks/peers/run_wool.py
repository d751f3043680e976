"""This project's Wool on the peer workloads: ``async with wool.WorkerPool(spawn=2)``.

Run by ``bench_peers.py`` with the project's own virtualenv; ``run_wool_pypi.py`` runs the
same adapter against the original ``wool`` from PyPI in a virtualenv of its own.
"""

from __future__ import annotations

import contextlib
import sys
from importlib import metadata
from typing import Any

import workload


class WoolAdapter:
    """``wool.WorkerPool(spawn=2)`` and the routines in ``wool_routines.py``."""

    name = "wool"
    no_nesting: str | None = None

    def __init__(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self._routines: Any = None

    def versions(self) -> dict[str, str]:
        import wool

        version = getattr(wool, "__version__", None) or metadata.version("wool")
        return {"wool": str(version), "python": sys.version.split()[0]}

    async def start(self) -> None:
        import wool_routines

        import wool

        self._routines = wool_routines
        await self._stack.enter_async_context(wool.WorkerPool(spawn=2))

    async def noop(self) -> None:
        await self._routines.noop()

    async def echo(self, data: bytes) -> bytes:
        return await self._routines.echo(data)

    async def burst(self, count: int) -> None:
        import asyncio

        noop = self._routines.noop
        async with asyncio.TaskGroup() as group:
            for _ in range(count):
                group.create_task(noop())

    async def fib(self, n: int) -> int:
        return await self._routines.fib(n)

    async def close(self) -> None:
        """Leave the pool: it stops its workers and waits for them."""
        await self._stack.aclose()


ADAPTERS = {"wool": WoolAdapter}

if __name__ == "__main__":
    workload.main(ADAPTERS)
