"""Raw ``grpc.aio`` echo server: the gRPC floor's server process.

Run as ``python benchmarks/echo_server.py --bind 127.0.0.1:0`` (or ``--bind unix:/path``).
It serves one bidirectional-stream method, ``/bench.Echo/Stream``, through a generic
handler with no (de)serializers, so messages are plain bytes echoed back unchanged. Once
listening it prints ``READY <target>`` on stdout, where ``<target>`` is what a client
passes to ``grpc.aio.insecure_channel``. It exits when its stdin reaches end of file, so
it never outlives the benchmark that started it, and on SIGTERM.

Only the standard library and grpcio are imported: its start-up time is part of the
gRPC floor's cold start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator

import grpc

SERVICE = "bench.Echo"
METHOD = "Stream"
FULL_METHOD = f"/{SERVICE}/{METHOD}"

#: Options shared by the server and the client: no message size limit below 64 MiB and
#: never route loopback traffic through an HTTP proxy named in the environment.
GRPC_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.enable_http_proxy", 0),
]


async def _echo(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
) -> AsyncIterator[bytes]:
    """Yield every request message back, in order."""
    async for message in requests:
        yield message


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set ``stop`` once stdin is closed (the parent exited or closed the pipe)."""
    try:
        while sys.stdin.buffer.read(65536):
            pass
    except (OSError, ValueError):
        pass
    loop.call_soon_threadsafe(stop.set)


async def serve(bind: str) -> None:
    """Serve the echo method on ``bind`` until stdin closes or SIGTERM arrives."""
    server = grpc.aio.server(options=[*GRPC_OPTIONS, ("grpc.so_reuseport", 0)])
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {METHOD: grpc.stream_stream_rpc_method_handler(_echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(bind)
    target = bind if bind.startswith("unix:") else f"{bind.rsplit(':', 1)[0]}:{port}"
    await server.start()

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    threading.Thread(target=_watch_stdin, args=(loop, stop), daemon=True).start()
    print(f"READY {target}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop(grace=None)


def main() -> None:
    """Parse ``--bind`` and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="127.0.0.1:0", help="host:port or unix:/path")
    args = parser.parse_args()
    asyncio.run(serve(args.bind))
    # Skip interpreter teardown (grpc's threads can make it slow); the parent waits for us.
    os._exit(0)


if __name__ == "__main__":
    main()
