"""The floors Wool is measured against, behind one small interface (:class:`Target`).

* :class:`GrpcEchoTarget`: a raw ``grpc.aio`` bidirectional-stream echo to a server in
  another process (``echo_server.py``), over TCP on 127.0.0.1 or a unix-domain socket.
  Every call goes over ONE long-lived stream.
* :class:`PoolTarget`: ``concurrent.futures.ProcessPoolExecutor(2)`` driven from asyncio
  through ``loop.run_in_executor``.

A target's ``start`` returns its cold start: seconds from creating the processes to the
first no-op result.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Protocol

import grpc
import pool_tasks
from echo_server import FULL_METHOD, GRPC_OPTIONS
from procs import reap, stop_subprocess

ECHO_SERVER = Path(__file__).with_name("echo_server.py")
#: The gRPC floor's no-op message: a few bytes, echoed.
NOOP_MESSAGE = b"noop"
#: Bound on starting a process, shutting one down, and any single setup step.
STEP_TIMEOUT = 30.0


class Target(Protocol):
    """What the benchmark drives: Wool or a floor."""

    name: str

    async def start(self) -> float:
        """Start the processes; return seconds to the first no-op result (cold start)."""
        ...

    async def noop(self) -> None:
        """One no-op round trip."""
        ...

    async def echo(self, data: bytes) -> bytes:
        """Send ``data`` and return what came back."""
        ...

    async def burst(self, count: int) -> None:
        """``count`` no-op round trips, all in flight at once."""
        ...

    async def close(self) -> None:
        """Stop everything ``start`` started (bounded)."""
        ...


class GrpcEchoTarget:
    """Raw ``grpc.aio`` floor: echo over one bidirectional stream to a server process."""

    def __init__(self, transport: str = "tcp") -> None:
        if transport not in ("tcp", "uds"):
            raise ValueError(f"unknown transport {transport!r}")
        self.transport = transport
        self.name = "grpc" if transport == "tcp" else "grpc_uds"
        self.server_ready_s: float | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._channel: grpc.aio.Channel | None = None
        self._call: grpc.aio.StreamStreamCall | None = None
        self._tmpdir: str | None = None

    async def start(self) -> float:
        """Start the server process, open the channel and the stream, echo once."""
        if self.transport == "uds":
            self._tmpdir = tempfile.mkdtemp(prefix="wool-bench-")
            bind = f"unix:{self._tmpdir}/echo.sock"
        else:
            bind = "127.0.0.1:0"
        started = time.perf_counter()
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ECHO_SERVER),
            "--bind",
            bind,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), STEP_TIMEOUT)
        if not line.startswith(b"READY "):
            raise RuntimeError(f"echo server did not start (said {line!r})")
        self.server_ready_s = time.perf_counter() - started
        target = line.split(None, 1)[1].decode().strip()
        self._channel = grpc.aio.insecure_channel(target, options=GRPC_OPTIONS)
        self._call = self._channel.stream_stream(FULL_METHOD)()
        await asyncio.wait_for(self.noop(), STEP_TIMEOUT)
        return time.perf_counter() - started

    async def noop(self) -> None:
        """Write one small message and read its echo."""
        call = self._call
        assert call is not None
        await call.write(NOOP_MESSAGE)
        if await call.read() is grpc.aio.EOF:
            raise RuntimeError("echo stream ended early")

    async def echo(self, data: bytes) -> bytes:
        """Write ``data`` and return its echo."""
        call = self._call
        assert call is not None
        await call.write(data)
        reply = await call.read()
        if reply is grpc.aio.EOF:
            raise RuntimeError("echo stream ended early")
        return reply

    async def burst(self, count: int) -> None:
        """Write ``count`` messages from one task while another reads ``count`` echoes."""
        call = self._call
        assert call is not None

        async def writer() -> None:
            for _ in range(count):
                await call.write(NOOP_MESSAGE)

        async def reader() -> None:
            for _ in range(count):
                if await call.read() is grpc.aio.EOF:
                    raise RuntimeError("echo stream ended early")

        async with asyncio.TaskGroup() as group:
            group.create_task(writer())
            group.create_task(reader())

    async def close(self) -> None:
        """Half-close the stream, close the channel, stop the server by PID."""
        try:
            if self._call is not None:
                try:
                    await asyncio.wait_for(self._call.done_writing(), 5.0)
                    while await asyncio.wait_for(self._call.read(), 5.0) is not grpc.aio.EOF:
                        pass
                except (grpc.aio.AioRpcError, TimeoutError, asyncio.InvalidStateError):
                    self._call.cancel()
            if self._channel is not None:
                await asyncio.wait_for(self._channel.close(), 5.0)
        finally:
            self._call = self._channel = None
            if self._proc is not None:
                await stop_subprocess(self._proc)
                self._proc = None
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
                self._tmpdir = None


class PoolTarget:
    """``ProcessPoolExecutor(2)`` floor, called through ``loop.run_in_executor``."""

    name = "pool"

    def __init__(self, workers: int = 2, context: str = "spawn") -> None:
        self.workers = workers
        self.context = context
        self._executor: ProcessPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> float:
        """Create the executor and wait for its first no-op result."""
        self._loop = asyncio.get_running_loop()
        started = time.perf_counter()
        self._executor = ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context(self.context)
        )
        await asyncio.wait_for(self.noop(), STEP_TIMEOUT)
        return time.perf_counter() - started

    async def noop(self) -> None:
        """Run ``pool_tasks.noop`` in a worker process."""
        await self._loop.run_in_executor(self._executor, pool_tasks.noop)

    async def echo(self, data: bytes) -> bytes:
        """Send ``data`` to a worker process and back."""
        return await self._loop.run_in_executor(self._executor, pool_tasks.echo, data)

    async def burst(self, count: int) -> None:
        """Submit ``count`` no-ops at once and wait for all of them."""
        loop, executor = self._loop, self._executor
        await asyncio.gather(
            *(loop.run_in_executor(executor, pool_tasks.noop) for _ in range(count))
        )

    async def close(self) -> None:
        """Shut the executor down (bounded), then stop any worker still alive by PID."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        # The executor's own record of its worker processes (a private attribute).
        pids = list(getattr(executor, "_processes", None) or {})
        try:
            await asyncio.wait_for(
                asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True),
                STEP_TIMEOUT,
            )
        except TimeoutError:
            print("warning: ProcessPoolExecutor.shutdown timed out", file=sys.stderr)
        finally:
            alive = [pid for pid in pids if _alive(pid)]
            if alive:
                reap(alive)


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
