"""Dask distributed on the peer workloads: ``LocalCluster`` and ``await client.submit``.

Two worker processes with one thread each on 127.0.0.1, no dashboard. Every submit
passes ``pure=False``, else Dask would return the first result for identical calls.
Nested ``fib`` uses ``worker_client``, which secedes the task from the worker's thread
pool while it waits for its subtasks, so nesting does not deadlock.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import dask
import distributed
import workload
from distributed import Client, LocalCluster, worker_client


def noop() -> None:
    return None


def echo(data: bytes) -> bytes:
    return data


def fib(n: int) -> int:
    if n <= 1:
        return n
    with worker_client() as client:
        a = client.submit(fib, n - 1, pure=False)
        b = client.submit(fib, n - 2, pure=False)
        return a.result() + b.result()


class DaskAdapter:
    """``LocalCluster(n_workers=2, threads_per_worker=1)`` with an asynchronous client."""

    name = "dask"
    no_nesting: str | None = None

    def __init__(self) -> None:
        self._cluster: Any = None
        self._client: Any = None

    def versions(self) -> dict[str, str]:
        return {
            "dask": dask.__version__,
            "distributed": distributed.__version__,
            "python": sys.version.split()[0],
        }

    async def start(self) -> None:
        self._cluster = await LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            asynchronous=True,
        )
        self._client = await Client(self._cluster, asynchronous=True)

    async def noop(self) -> None:
        await self._client.submit(noop, pure=False)

    async def echo(self, data: bytes) -> bytes:
        return await self._client.submit(echo, data, pure=False)

    async def burst(self, count: int) -> None:
        client = self._client
        await client.gather([client.submit(noop, pure=False) for _ in range(count)])

    async def fib(self, n: int) -> int:
        return await self._client.submit(fib, n, pure=False)

    async def close(self) -> None:
        """Close the client, then the cluster (which stops and waits for its workers)."""
        try:
            if self._client is not None:
                await self._client.close()
        finally:
            if self._cluster is not None:
                await self._cluster.close()
            await asyncio.sleep(0)


ADAPTERS = {"dask": DaskAdapter}

if __name__ == "__main__":
    workload.main(ADAPTERS)
