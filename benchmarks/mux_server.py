"""Echo server for the ladder's ``mux`` rung: the least a multiplexed runtime does per call.

Run as ``python benchmarks/mux_server.py``; prints ``READY <target>`` and serves
``/bench.Echo/Stream`` until stdin closes. Unlike ``echo_server.py`` (the floor),
each message gets its own task, as a routine would, and answers go out through a
batching writer whose writes start in the sender's step, as Wool's do. No pickling,
no framing, no routing: what is left between this and the floor is what multiplexing
one stream over gRPC's asyncio API costs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from functools import partial
from typing import Any

import grpc
from echo_server import GRPC_OPTIONS, METHOD, SERVICE


class EagerWriter:
    """One write in flight; messages sent meanwhile leave together; no writer task."""

    def __init__(self, write: Callable[[bytes], Coroutine[Any, Any, None]]) -> None:
        self._write = write
        self._loop = asyncio.get_running_loop()
        self._outbox: list[bytes] = []
        self._writing = False

    def send(self, message: bytes) -> None:
        self._outbox.append(message)
        if not self._writing:
            self._next()

    def _next(self) -> None:
        data = b"".join(self._outbox)
        self._outbox.clear()
        self._writing = True
        self._drive(self._write(data))

    def _drive(self, write: Coroutine[Any, Any, None], _waited: object = None) -> None:
        try:
            yielded = write.send(None)
        except StopIteration:
            self._writing = False
            if self._outbox:
                self._next()
            return
        if yielded is None:
            self._loop.call_soon(self._drive, write)
        else:
            yielded._asyncio_future_blocking = False
            yielded.add_done_callback(partial(self._drive, write))


async def _echo(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> None:
    writer = EagerWriter(context.write)
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task] = set()

    async def answer(message: bytes) -> None:
        writer.send(message)

    async for message in requests:
        task = loop.create_task(answer(message))
        running.add(task)
        task.add_done_callback(running.discard)


async def serve() -> None:
    server = grpc.aio.server(options=[*GRPC_OPTIONS, ("grpc.so_reuseport", 0)])
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {METHOD: grpc.stream_stream_rpc_method_handler(_echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def watch_stdin() -> None:
        while sys.stdin.buffer.read(65536):
            pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    print(f"READY 127.0.0.1:{port}", flush=True)
    await stop.wait()
    await server.stop(grace=None)


if __name__ == "__main__":
    asyncio.run(serve())
    os._exit(0)
