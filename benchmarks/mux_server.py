"""Echo server for the ladder's ``mux`` rung: the least a multiplexed runtime does per call.

Run as ``python benchmarks/mux_server.py``; prints ``READY <target>`` and serves
``/bench.Echo/Stream`` until stdin closes. Unlike ``echo_server.py`` (the floor),
each message gets its own task, as a routine would, and answers go out through Wool's
batching writer (writes start in the sender's step, no writer task). No pickling,
no framing, no routing: what is left between this and the floor is what multiplexing
one stream over gRPC's asyncio API costs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import grpc
from echo_server import GRPC_OPTIONS, METHOD, SERVICE

from wool.protocol.writer import FrameWriter


def eager_writer(write: Callable[[bytes], Coroutine[Any, Any, None]]) -> FrameWriter[bytes]:
    """Wool's own writer (one write in flight, no writer task), joining raw messages."""
    return FrameWriter(write, lambda exc: None, b"".join)


async def _echo(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> None:
    writer = eager_writer(context.write)
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
