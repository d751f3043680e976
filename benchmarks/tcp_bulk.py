"""Raw TCP echo floor for large payloads: the server process and its client.

Run as ``python benchmarks/tcp_bulk.py``: listens on 127.0.0.1 (an ephemeral port),
prints ``READY <port>`` and echoes frames (an 8-byte big-endian length, then the
payload) back unchanged; it exits when its stdin closes, or on SIGTERM. Both ends read a
frame straight into one preallocated buffer with ``loop.sock_recv_into`` and send with
``loop.sock_sendall``: the least any transport does to move N bytes and get them back.
(``peers/tcp_echo_server.py`` reads through ``asyncio.StreamReader``, which here took
about 7 s for a 256 MiB round trip, five times the gRPC floor, so it is no floor there.)
Standard library only.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
from pathlib import Path

HEADER = 8
SERVER = Path(__file__).resolve()


async def recv_frame(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytearray | None:
    """One frame's payload, or ``None`` at end of stream."""
    header = bytearray(HEADER)
    if not await _fill(loop, sock, memoryview(header)):
        return None
    payload = bytearray(int.from_bytes(header, "big"))
    if not await _fill(loop, sock, memoryview(payload)):
        raise ConnectionError("stream ended inside a frame")
    return payload


async def _fill(loop: asyncio.AbstractEventLoop, sock: socket.socket, view: memoryview) -> bool:
    got = 0
    while got < len(view):
        n = await loop.sock_recv_into(sock, view[got:])
        if n == 0:
            return False
        got += n
    return True


async def send_frame(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, data: bytes | bytearray
) -> None:
    """Send one frame: the length, then ``data`` without copying it."""
    await loop.sock_sendall(sock, len(data).to_bytes(HEADER, "big"))
    await loop.sock_sendall(sock, data)


class TcpBulkFloor:
    """Client of the server above: one connection, one frame out and one back per call."""

    name = "tcp"

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._sock: socket.socket | None = None

    async def start(self) -> None:
        """Start the server process and connect to it."""
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SERVER),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), 30.0)
        if not line.startswith(b"READY "):
            raise RuntimeError(f"tcp echo server did not start (said {line!r})")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", int(line.split()[1])))
        self._sock = sock

    async def echo(self, data: bytes) -> bytearray:
        """Send ``data`` and return its echo, written and read concurrently."""
        loop, sock = asyncio.get_running_loop(), self._sock
        assert sock is not None
        send = asyncio.create_task(send_frame(loop, sock, data))
        try:
            reply = await recv_frame(loop, sock)
        finally:
            await send
        if reply is None:
            raise ConnectionError("tcp echo server closed the connection")
        return reply

    async def close(self) -> None:
        """Close the connection, then stop the server by PID (bounded)."""
        from procs import stop_subprocess

        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            await stop_subprocess(self._proc)
            self._proc = None


async def _serve_client(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    with sock:
        while (payload := await recv_frame(loop, sock)) is not None:
            await send_frame(loop, sock, payload)


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    try:
        while sys.stdin.buffer.read(65536):
            pass
    except (OSError, ValueError):
        pass
    loop.call_soon_threadsafe(stop.set)


async def serve() -> None:
    """Accept connections on 127.0.0.1 until stdin closes or SIGTERM arrives."""
    loop = asyncio.get_running_loop()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    threading.Thread(target=_watch_stdin, args=(loop, stop), daemon=True).start()
    print(f"READY {listener.getsockname()[1]}", flush=True)
    tasks: set[asyncio.Task[None]] = set()

    async def accept() -> None:
        while True:
            sock, _ = await loop.sock_accept(listener)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            task = asyncio.create_task(_serve_client(sock))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    acceptor = asyncio.create_task(accept())
    await stop.wait()
    acceptor.cancel()
    listener.close()


if __name__ == "__main__":
    asyncio.run(serve())
    os._exit(0)
