"""A durable-style worker for the membership tests: the worker's own servers plus Membership,
wired as ``process.serve_durable`` wires them (the default mesh client carries it).

``python membership_worker.py --id ID [--seed ADDR] [--tag T] [--tls DIR]``, the mesh
secret (hex) in ``WOOL_TEST_SECRET``. Prints one JSON line (id, address,
control, pid) once serving. SIGTERM leaves the mesh and exits; so does the
end of stdin, so a crashed test leaves nothing behind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path

import grpc
import grpc.aio

from wool.credentials import WorkerCredentials
from wool.mesh import context, transport
from wool.mesh.client import MeshClient
from wool.mesh.membership import Membership
from wool.protocol.frames import PeerRecord
from wool.worker.executor import Executor
from wool.worker.service import SERVER_OPTIONS, ControlService, DispatchService, Gate


async def serve(args: argparse.Namespace) -> None:
    secret = bytes.fromhex(os.environ["WOOL_TEST_SECRET"])
    loop = asyncio.get_running_loop()
    gate = Gate(secret)
    mesh = MeshClient(secret)
    context.set_default(mesh)
    executor = Executor(loop, args.id)
    control = ControlService(gate, PeerRecord(args.id, "", os.getpid()), executor, mesh)

    creds = None
    if args.tls:
        tls = Path(args.tls)
        creds = WorkerCredentials.from_files(
            ca_path=tls / "ca.pem", key_path=tls / "worker.key", cert_path=tls / "worker.pem"
        )
    server = grpc.aio.server(options=SERVER_OPTIONS)
    port = transport.add_port(server, "127.0.0.1:0", creds)
    server.add_generic_rpc_handlers((DispatchService(gate, executor).handler(),))
    await server.start()
    threaded = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=SERVER_OPTIONS)
    control_port = transport.add_port(threaded, "127.0.0.1:0", creds)
    threaded.add_generic_rpc_handlers((control.handler(),))
    threaded.start()

    address, control_address = f"127.0.0.1:{port}", f"127.0.0.1:{control_port}"
    me = PeerRecord(args.id, address, os.getpid(), tuple(args.tag), control_address)
    control.identity = me
    membership = Membership(
        me, mesh, secret=secret, credentials=creds
    )  # both servers find it through `mesh`
    membership.start(args.seed)

    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def watch_stdin() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    ready = {"id": args.id, "address": address, "control": control_address, "pid": os.getpid()}
    print(json.dumps(ready), flush=True)
    await stop.wait()
    await asyncio.to_thread(membership.leave)
    threaded.stop(0)
    await server.stop(0.2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--id", required=True)
    parser.add_argument("--seed", action="append", default=[])
    parser.add_argument("--tag", action="append", default=[])
    parser.add_argument("--tls", default="", help="a `wool certs init` directory: mutual TLS")
    asyncio.run(serve(parser.parse_args()))
    os._exit(0)


if __name__ == "__main__":
    main()
