"""Entry point of a worker process: ``python -m wool.worker --owner PID --id ID``.

The secret and settings arrive as one JSON line on stdin (never on the
command line, where other users could read them); the worker reports its
addresses on the ``ready`` pipe, then takes peer-table updates as further
stdin lines. End of stdin, SIGTERM, or the parent's death stop it, within
the bounds ``lifeline`` keeps whatever the routines are doing. It listens
on loopback only.

Two servers: the dispatch server runs on the main thread's loop, which is
also where routines run; the control server (statistics) is gRPC's
threaded server, so it keeps answering while a routine blocks.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import signal
import sys
from concurrent import futures
from typing import Any

import grpc
import grpc.aio

from wool.mesh import context
from wool.mesh.client import MeshClient
from wool.protocol.frames import PeerRecord
from wool.worker import lifeline, output
from wool.worker.executor import Executor
from wool.worker.service import SERVER_OPTIONS, ControlService, DispatchService, Gate

SHUTDOWN_GRACE = 0.3
HARD_EXIT_AFTER = 5.0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m wool.worker", description=__doc__)
    parser.add_argument("--owner", type=int, default=0, help="pid of the spawning process")
    parser.add_argument("--id", required=True, help="worker id within its mesh")
    parser.add_argument("--tag", action="append", default=[], help="capability tag")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if not _is_loopback(args.host):
        parser.error(
            f"refusing --host {args.host}: a worker runs any code its callers send, over "
            "unencrypted gRPC, so until mutual TLS is built in it listens on loopback only; "
            "use --host 127.0.0.1"
        )
    return args


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _start_control(host: str, handler: grpc.GenericRpcHandler) -> tuple[grpc.Server, str]:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="wool-control"),
        options=SERVER_OPTIONS,
    )
    port = server.add_insecure_port(f"{host}:0")
    server.add_generic_rpc_handlers((handler,))
    server.start()
    return server, f"{host}:{port}"


def _peers(message: dict) -> list[PeerRecord]:
    return [
        PeerRecord(p["id"], p["address"], p["pid"], tuple(p["tags"]), p.get("control", ""))
        for p in message["peers"]
    ]


async def serve(args: argparse.Namespace, config: dict[str, Any], report: Any | None) -> None:
    """Serve until told to stop; ``report`` is the ready pipe (None for a durable worker)."""
    gate = Gate(bytes.fromhex(config["secret"]))
    loop = asyncio.get_running_loop()
    mesh = MeshClient(gate.secret)
    context.set_default(mesh)
    executor = Executor(loop, args.id)

    server = grpc.aio.server(options=SERVER_OPTIONS)
    port = server.add_insecure_port(f"{args.host}:{args.port}")
    server.add_generic_rpc_handlers((DispatchService(gate, executor).handler(),))
    await server.start()
    address = f"{args.host}:{port}"

    identity = PeerRecord(args.id, address, os.getpid(), tuple(args.tag))
    control = ControlService(gate, identity, executor, mesh)
    control_server, control_address = _start_control(args.host, control.handler())
    control.identity = identity = PeerRecord(
        args.id, address, os.getpid(), tuple(args.tag), control_address
    )
    output.install()

    stop = asyncio.Event()
    watch = lifeline.Lifeline(loop, stop.set, args.owner, HARD_EXIT_AFTER)
    watch.watch_sigterm()

    def on_line(line: str) -> None:
        message = json.loads(line)
        if "peers" in message:
            mesh.set_peers(_peers(message))
            if report is not None:
                report.write(json.dumps({"ack": message.get("version", 0)}) + "\n")
                report.flush()

    if report is not None:
        watch.watch_control_pipe(on_line)
        ready = {"id": args.id, "address": address, "control": control_address}
        report.write(json.dumps({**ready, "pid": os.getpid()}) + "\n")
        report.flush()
    await stop.wait()

    executor.cancel_all()
    control_server.stop(0)
    await server.stop(grace=SHUTDOWN_GRACE)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a kernel interrupt is not for workers
    line = sys.stdin.readline()
    if not line:
        os._exit(0)
    config = json.loads(line)
    lifeline.bind_to_parent(args.owner, config.get("death_signal", True))
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
