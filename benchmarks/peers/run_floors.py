"""The floors on the peer workloads, run with the project's virtualenv.

* ``pool``: ``ProcessPoolExecutor(2)`` through ``loop.run_in_executor`` (``floors.py``);
* ``grpc``: a raw ``grpc.aio`` bidirectional-stream echo to a server process, every call
  on one stream (``floors.py``, ``echo_server.py``);
* ``tcp``: a raw asyncio TCP echo of length-prefixed frames on one connection
  (``tcp_echo_server.py``).

None of them is a task system: nested ``fib`` is not run on them.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import workload

BENCH_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH_DIR))

from floors import GrpcEchoTarget, PoolTarget  # noqa: E402
from procs import stop_subprocess  # noqa: E402

TCP_SERVER = Path(__file__).with_name("tcp_echo_server.py")
NOOP_FRAME = len(b"noop").to_bytes(4, "big") + b"noop"


class _TargetAdapter:
    """A ``floors.Target`` behind the peer adapter interface."""

    name = ""
    no_nesting: str | None = "a floor, not a task system: no nesting"

    def __init__(self, target: Any) -> None:
        self._target = target

    def versions(self) -> dict[str, str]:
        import grpc

        return {"grpcio": grpc.__version__, "python": sys.version.split()[0]}

    async def start(self) -> None:
        await self._target.start()

    async def noop(self) -> None:
        await self._target.noop()

    async def echo(self, data: bytes) -> bytes:
        return await self._target.echo(data)

    async def burst(self, count: int) -> None:
        await self._target.burst(count)

    async def fib(self, n: int) -> int:
        raise NotImplementedError(self.no_nesting)

    async def close(self) -> None:
        await self._target.close()


class PoolAdapter(_TargetAdapter):
    name = "pool"
    no_nesting = "a floor: pool workers cannot submit to the pool"

    def __init__(self) -> None:
        super().__init__(PoolTarget(2))


class GrpcAdapter(_TargetAdapter):
    name = "grpc"

    def __init__(self) -> None:
        super().__init__(GrpcEchoTarget("tcp"))


class TcpAdapter:
    """Raw asyncio TCP echo: one connection, length-prefixed frames."""

    name = "tcp"
    no_nesting: str | None = "a floor, not a task system: no nesting"

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    def versions(self) -> dict[str, str]:
        return {"python": sys.version.split()[0]}

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(TCP_SERVER),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        line = await self._proc.stdout.readline()
        if not line.startswith(b"READY "):
            raise RuntimeError(f"tcp echo server did not start (said {line!r})")
        port = int(line.split()[1])
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)

    async def _read_frame(self) -> bytes:
        reader = self._reader
        assert reader is not None
        header = await reader.readexactly(4)
        return await reader.readexactly(int.from_bytes(header, "big"))

    async def noop(self) -> None:
        writer = self._writer
        assert writer is not None
        writer.write(NOOP_FRAME)
        await writer.drain()
        await self._read_frame()

    async def echo(self, data: bytes) -> bytes:
        writer = self._writer
        assert writer is not None
        writer.write(len(data).to_bytes(4, "big"))
        writer.write(data)
        await writer.drain()
        return await self._read_frame()

    async def burst(self, count: int) -> None:
        writer = self._writer
        assert writer is not None

        async def write_all() -> None:
            for _ in range(count):
                writer.write(NOOP_FRAME)
                await writer.drain()

        async def read_all() -> None:
            for _ in range(count):
                await self._read_frame()

        async with asyncio.TaskGroup() as group:
            group.create_task(write_all())
            group.create_task(read_all())

    async def fib(self, n: int) -> int:
        raise NotImplementedError(self.no_nesting)

    async def close(self) -> None:
        """Close the connection, then stop the server by PID (bounded)."""
        try:
            if self._writer is not None:
                self._writer.close()
                try:
                    async with asyncio.timeout(5.0):
                        await self._writer.wait_closed()
                except (TimeoutError, ConnectionError):
                    pass
        finally:
            if self._proc is not None:
                await stop_subprocess(self._proc)
                self._proc = None


ADAPTERS: dict[str, Any] = {"pool": PoolAdapter, "grpc": GrpcAdapter, "tcp": TcpAdapter}

if __name__ == "__main__":
    workload.main(ADAPTERS)
