"""Raw asyncio TCP echo server: the plain-socket floor's server process.

Run as ``python tcp_echo_server.py``; it listens on 127.0.0.1 (an ephemeral port), prints
``READY <port>`` and echoes length-prefixed frames (a 4-byte big-endian length, then the
payload) back unchanged. It exits when its stdin reaches end of file, so it never
outlives the harness, and on SIGTERM. Standard library only.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading

HEADER = 4


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo every frame on one connection until the client closes it."""
    try:
        while True:
            header = await reader.readexactly(HEADER)
            payload = await reader.readexactly(int.from_bytes(header, "big"))
            if len(payload) < 65536:
                writer.write(header + payload)
            else:
                writer.write(header)
                writer.write(payload)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set ``stop`` once stdin is closed (the harness exited or closed the pipe)."""
    try:
        while sys.stdin.buffer.read(65536):
            pass
    except (OSError, ValueError):
        pass
    loop.call_soon_threadsafe(stop.set)


async def serve() -> None:
    """Serve on 127.0.0.1 until stdin closes or SIGTERM arrives."""
    server = await asyncio.start_server(_echo, "127.0.0.1", 0, limit=1 << 20)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    threading.Thread(target=_watch_stdin, args=(loop, stop), daemon=True).start()
    print(f"READY {port}", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve())
    os._exit(0)
