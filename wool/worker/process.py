"""Entry point of a worker process: ``python -m wool.worker --owner PID --id ID``.

The secret and settings arrive as one JSON line on stdin (never on the
command line, where other users could read them); the worker reports its
address on the ``ready`` pipe, then takes peer-table updates as further
stdin lines. End of stdin, SIGTERM, or the parent's death stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any

import grpc.aio

from wool.mesh import context
from wool.mesh.client import MeshClient
from wool.protocol.frames import PeerRecord
from wool.worker import lifeline, output
from wool.worker.executor import Executor, start_routine_loop
from wool.worker.service import SERVER_OPTIONS, WorkerService

SHUTDOWN_GRACE = 0.3
HARD_EXIT_AFTER = 5.0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m wool.worker", description=__doc__)
    parser.add_argument("--owner", type=int, default=0, help="pid of the spawning process")
    parser.add_argument("--id", required=True, help="worker id within its mesh")
    parser.add_argument("--tag", action="append", default=[], help="capability tag")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace, config: dict[str, Any], report: Any | None) -> None:
    """Serve until told to stop; ``report`` is the ready pipe (None for a durable worker)."""
    secret = bytes.fromhex(config["secret"])
    loop = asyncio.get_running_loop()
    routine_loop, _ = start_routine_loop("wool-routines")
    mesh = MeshClient(secret)
    context.set_default(mesh)
    executor = Executor(routine_loop, args.id)

    server = grpc.aio.server(options=SERVER_OPTIONS)
    port = server.add_insecure_port(f"{args.host}:{args.port}")
    identity = PeerRecord(args.id, f"{args.host}:{port}", os.getpid(), tuple(args.tag))
    service = WorkerService(identity, secret, executor, mesh)
    server.add_generic_rpc_handlers((service.handler(),))
    await server.start()
    output.install()

    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def on_line(line: str) -> None:
        message = json.loads(line)
        if "peers" in message:
            mesh.set_peers(PeerRecord(p["id"], p["address"], p["pid"], tuple(p["tags"]))
                           for p in message["peers"])  # fmt: skip
            if report is not None:
                report.write(json.dumps({"ack": message.get("version", 0)}) + "\n")
                report.flush()

    if report is not None:
        lifeline.watch_control_pipe(on_line, lambda: loop.call_soon_threadsafe(stop.set))
        report.write(json.dumps({"id": args.id, "address": identity.address, "pid": os.getpid()}))
        report.write("\n")
        report.flush()
    await stop.wait()

    lifeline.exit_after(HARD_EXIT_AFTER)
    routine_loop.call_soon_threadsafe(executor.cancel_all)
    await server.stop(grace=SHUTDOWN_GRACE)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a kernel interrupt is not for workers
    lifeline.bind_to_parent(args.owner)
    line = sys.stdin.readline()
    if not line:
        os._exit(0)
    config = json.loads(line)
    for entry in reversed(config.get("sys_path", [])):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    report = os.fdopen(config["ready_fd"], "w", buffering=1) if "ready_fd" in config else None
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(serve(args, config, report))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
