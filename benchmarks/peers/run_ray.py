"""Ray on the peer workloads: tasks awaited as ``await ref``, async actors for nesting.

``ray.init(num_cpus=2)`` starts a local cluster on 127.0.0.1 (no dashboard), so the
no-op tasks run on two worker processes. Nested ``fib`` uses two async actors that call
each other: a plain task that waits for its subtasks holds a CPU slot, and Ray works
around that only by starting more worker processes, so actors are Ray's idiomatic way
to nest without blocking.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Any

import ray
import workload

#: Ray's session files, under the harness's scratch directory when it set one.
TEMP_DIR = os.path.join(os.environ.get("WOOL_PEERS_DIR", "/tmp/wool-peers"), "ray-tmp")


@ray.remote
def noop() -> None:
    return None


@ray.remote
def echo(data: bytes) -> bytes:
    return data


@ray.remote(max_concurrency=1000)
class Fib:
    """An async actor computing ``fib`` by calling itself and its peers."""

    def __init__(self) -> None:
        self.peers: list[Any] = []
        self.turn = 0

    def set_peers(self, peers: list[Any]) -> None:
        self.peers = peers

    async def fib(self, n: int) -> int:
        if n <= 1:
            return n
        self.turn += 1
        a = self.peers[self.turn % len(self.peers)].fib.remote(n - 1)
        b = self.peers[(self.turn + 1) % len(self.peers)].fib.remote(n - 2)
        x, y = await asyncio.gather(a, b)
        return x + y


class RayAdapter:
    """A local Ray cluster with two CPUs."""

    name = "ray"
    no_nesting: str | None = None

    def __init__(self) -> None:
        self._actors: list[Any] = []

    def versions(self) -> dict[str, str]:
        return {"ray": ray.__version__, "python": sys.version.split()[0]}

    async def start(self) -> None:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=TEMP_DIR,
            log_to_driver=False,
            configure_logging=False,
        )

    async def noop(self) -> None:
        await noop.remote()

    async def echo(self, data: bytes) -> bytes:
        return await echo.remote(data)

    async def burst(self, count: int) -> None:
        await asyncio.gather(*(noop.remote() for _ in range(count)))

    async def fib(self, n: int) -> int:
        if not self._actors:
            # Two actors, each holding one of the two CPUs' worth of slots.
            self._actors = [Fib.options(num_cpus=0).remote() for _ in range(2)]
            await asyncio.gather(*(a.set_peers.remote(self._actors) for a in self._actors))
        return await self._actors[0].fib.remote(n)

    async def close(self) -> None:
        """Kill the actors and shut down the cluster this process started."""
        for actor in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self._actors = []
        if ray.is_initialized():
            await asyncio.to_thread(ray.shutdown)


ADAPTERS = {"ray": RayAdapter}

if __name__ == "__main__":
    workload.main(ADAPTERS)
