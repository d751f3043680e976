"""ipyparallel on the peer workloads: ``Cluster(n=2)``, ``await`` on each AsyncResult.

An ``AsyncResult`` is a ``concurrent.futures.Future``; ``asyncio.wrap_future`` makes it
awaitable on the running loop.

The controller and two engines run on 127.0.0.1; calls go through a load-balanced view.
Nested ``fib`` is not run: an engine runs one task at a time, and a task that waits for
subtasks holds its engine, so with two engines ``fib(12)`` (twelve levels of waiting
tasks) deadlocks.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import ipyparallel
import workload


def noop() -> None:
    return None


def echo(data: bytes) -> bytes:
    return data


class IpyparallelAdapter:
    """``ipyparallel.Cluster(n=2)`` and a load-balanced view."""

    name = "ipyparallel"
    no_nesting: str | None = (
        "cannot nest: an engine runs one task at a time and a waiting task holds it, "
        "so fib(12) on 2 engines deadlocks"
    )

    def __init__(self) -> None:
        self._cluster: Any = None
        self._client: Any = None
        self._view: Any = None

    def versions(self) -> dict[str, str]:
        return {"ipyparallel": ipyparallel.__version__, "python": sys.version.split()[0]}

    async def start(self) -> None:
        self._cluster = ipyparallel.Cluster(n=2, controller_ip="127.0.0.1", log_level=40)
        self._client = await self._cluster.start_and_connect()
        self._view = self._client.load_balanced_view()

    async def noop(self) -> None:
        await asyncio.wrap_future(self._view.apply_async(noop))

    async def echo(self, data: bytes) -> bytes:
        return await asyncio.wrap_future(self._view.apply_async(echo, data))

    async def burst(self, count: int) -> None:
        view = self._view
        await asyncio.gather(*(asyncio.wrap_future(view.apply_async(noop)) for _ in range(count)))

    async def fib(self, n: int) -> int:
        raise NotImplementedError(self.no_nesting)

    async def close(self) -> None:
        """Close the client, then stop the controller and engines and wait for them."""
        try:
            if self._client is not None:
                self._client.close()
        finally:
            if self._cluster is not None:
                await self._cluster.stop_cluster()


ADAPTERS = {"ipyparallel": IpyparallelAdapter}

if __name__ == "__main__":
    workload.main(ADAPTERS)
