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

``serve_durable`` runs the same servers for ``wool worker`` (a worker no
process owns, on any address the policy in ``config.py`` allows): its peers
come from ``--join``/``--discovery`` instead of stdin, and SIGTERM drains it
(no new calls, in-flight ones get ``--drain-grace`` seconds, the rest are
cancelled) before it exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys
import time
import types
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from wool.credentials import WorkerCredentials
from wool.errors import WoolError, WorkerLost
from wool.mesh import context, transport
from wool.mesh.client import MeshClient
from wool.protocol.frames import Dispatch, Frame, PeerRecord
from wool.worker import lifeline, output
from wool.worker.config import WorkerConfig, is_loopback, is_wildcard, join_address
from wool.worker.executor import Executor, Session, raise_frame
from wool.worker.service import SERVER_OPTIONS, ControlService, DispatchService, Gate

SHUTDOWN_GRACE = 0.3
HARD_EXIT_AFTER = 5.0
DRAIN_MARGIN = 5.0
"""Seconds past ``--drain-grace`` a durable worker has to stop before it exits hard
(telling peers it leaves, cancelling what is left, closing streams take about 2 s at worst)."""
LEAVE_TIMEOUT = 2.0
"""Bound on telling peers this worker leaves."""

_log = logging.getLogger("wool")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m wool.worker", description=__doc__)
    parser.add_argument("--owner", type=int, default=0, help="pid of the spawning process")
    parser.add_argument("--id", required=True, help="worker id within its mesh")
    parser.add_argument("--tag", action="append", default=[], help="capability tag")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if not is_loopback(args.host):
        parser.error(
            f"refusing --host {args.host}: a worker runs any code its callers send, over "
            "unencrypted gRPC, so a spawned worker listens on loopback only; use --host "
            "127.0.0.1, or `wool worker` (with mutual TLS) for a worker other hosts reach"
        )
    return args


def _start_control(
    host: str, handler: grpc.GenericRpcHandler, credentials: Any = None
) -> tuple[grpc.Server, int]:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="wool-control"),
        options=SERVER_OPTIONS,
    )
    port = transport.add_port(server, join_address(host, 0), credentials)
    server.add_generic_rpc_handlers((handler,))
    server.start()
    return server, port


def _peers(message: dict) -> list[PeerRecord]:
    return [
        PeerRecord(p["id"], p["address"], p["pid"], tuple(p["tags"]), p.get("control", ""))
        for p in message["peers"]
    ]


async def serve(args: argparse.Namespace, config: dict[str, Any], report: Any | None) -> None:
    """Serve until told to stop; ``report`` is the ready pipe (None: report nothing)."""
    gate = Gate(bytes.fromhex(config["secret"]))
    tls = config.get("tls")  # PEM strings, only ever on stdin
    credentials = WorkerCredentials.from_config(tls) if tls else None
    loop = asyncio.get_running_loop()
    mesh = MeshClient(gate.secret, credentials=credentials)
    context.set_default(mesh)
    executor = Executor(loop, args.id)

    server = grpc.aio.server(options=SERVER_OPTIONS)
    port = transport.add_port(server, f"{args.host}:{args.port}", credentials)
    server.add_generic_rpc_handlers((DispatchService(gate, executor).handler(),))
    await server.start()
    address = f"{args.host}:{port}"

    identity = PeerRecord(args.id, address, os.getpid(), tuple(args.tag))
    control = ControlService(gate, identity, executor, mesh)
    control_server, control_port = _start_control(args.host, control.handler(), credentials)
    control_address = f"{args.host}:{control_port}"
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


class _DrainingExecutor(Executor):
    """An executor that, once ``draining``, answers new calls with ``WorkerLost`` at once.

    Calls already running go on; callers holding a stream to a draining
    worker learn why their new call did not run (it never started, so it is
    safe to send elsewhere).
    """

    draining = False

    def receive(self, session: Session, frames: list[Frame]) -> None:
        if not self.draining:
            super().receive(session, frames)
            return
        refused = {frame.call for frame in frames if type(frame) is Dispatch}
        super().receive(session, [f for f in frames if type(f) is not Dispatch])
        for call in refused:
            session.contexts.pop(call, None)  # the Context that came with it: never used
            error = WorkerLost(f"worker {self.worker_id} is shutting down and took no new call")
            session.emit(raise_frame(call, error))


def _advertised(config: WorkerConfig, port: int) -> tuple[str, str]:
    """(address peers dial, host for the control address) once ``port`` is bound."""
    host = config.host
    if is_wildcard(host):
        host = socket.gethostname()
    if config.advertise:
        return config.advertise, config.advertise.rpartition(":")[0].strip("[]")
    return join_address(host, port), host


def _write_ready(path: Path, ready: dict[str, Any]) -> None:
    """Write the ready file whole (a reader never sees half of it)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(ready) + "\n")
    os.replace(partial, path)


class _Peers:
    """A durable worker's membership (``--join``) and discovery (``--discovery``).

    Every durable worker gossips, so the first one (no ``--join``) is the
    seed the others join through. Gossip runs on threads of its own; the
    blocking ``leave`` runs off the routine loop, so a drain never stalls
    running calls. Discovery is read once at start: peers that appear later
    find this worker through its own published record and gossip to it.
    """

    def __init__(
        self, config: WorkerConfig, me: PeerRecord, mesh: MeshClient, control: ControlService
    ) -> None:
        self._config = config
        self._me = me
        self._mesh = mesh
        self._control = control
        self._membership: Any = None
        self._discovery: Any = None

    async def start(self) -> None:
        config = self._config
        from wool.mesh.membership import Membership

        seeds = list(config.seeds)
        if config.discovery:
            self._discovery = _discovery(config.discovery)
            # Off the loop: LanDiscovery (zeroconf) refuses to block a running event loop.
            await asyncio.to_thread(self._discovery.publish, self._me)
            seeds.extend(a for a in await self._discovery.find() if a != self._me.address)
        assert config.secret is not None
        membership = Membership(
            self._me, self._mesh, secret=config.secret, credentials=config.credentials
        )
        self._control.membership = self._mesh.membership = membership  # Gossip on both servers
        membership.start(seeds)
        self._membership = membership
        if seeds:
            _log.info("wool worker %s joining through %s", config.id, ", ".join(seeds))
        elif config.discovery:
            _log.info("wool worker %s: %s discovery found nobody yet", config.id, config.discovery)

    async def leave(self) -> None:
        """Tell peers this worker leaves (bounded); it takes no new peers after this."""
        try:
            async with asyncio.timeout(LEAVE_TIMEOUT + 1.0):
                if self._discovery is not None:
                    await asyncio.to_thread(self._discovery.unpublish, self._me)
                if self._membership is not None:
                    await asyncio.to_thread(self._membership.leave, LEAVE_TIMEOUT / 2)
                    _log.info("wool worker %s told its peers it leaves", self._config.id)
        except Exception as exc:  # peers notice a silent leave anyway, just later
            _log.warning("wool worker %s: could not tell peers it leaves: %r", self._me.id, exc)

    async def stop(self) -> None:
        if self._discovery is not None:
            self._discovery.close()


def _discovery(spec: str) -> Any:
    import wool.discovery as discovery

    if spec == "lan":
        return discovery.LanDiscovery()
    return discovery.LocalDiscovery(spec.partition(":")[2])


async def serve_durable(config: WorkerConfig) -> int:
    """Serve a durable worker until SIGTERM/SIGINT, drain, and return its exit status (0).

    ``config`` must be ``load()``-ed (secret and credentials read). Callers
    can rely on: the ready file (if any) appears only once both servers
    listen; after a stop signal no new call starts, calls in flight get
    ``config.drain_grace`` seconds, the rest are cancelled (their callers
    get ``WorkerLost``), peers are told it leaves, and the process is gone
    within ``drain_grace + DRAIN_MARGIN`` seconds whatever routines do.
    """
    assert config.secret is not None, "serve_durable needs a loaded WorkerConfig"
    for warning in config.warnings():
        _log.warning("wool worker %s: %s", config.id, warning)
    loop = asyncio.get_running_loop()
    gate = Gate(config.secret)
    mesh = MeshClient(config.secret, credentials=config.credentials)
    context.set_default(mesh)
    executor = _DrainingExecutor(loop, config.id)

    server = grpc.aio.server(options=SERVER_OPTIONS)
    port = transport.add_port(server, config.listen, config.credentials)
    address, control_host = _advertised(config, port)
    identity = PeerRecord(config.id, address, os.getpid(), config.tags)
    control = ControlService(gate, identity, executor, mesh)
    server.add_generic_rpc_handlers((DispatchService(gate, executor).handler(),))
    await server.start()
    control_server, control_port = _start_control(
        config.host, control.handler(), config.credentials
    )
    control.identity = identity = PeerRecord(
        config.id, address, os.getpid(), config.tags, join_address(control_host, control_port)
    )

    stop = asyncio.Event()
    watch = lifeline.Lifeline(loop, stop.set, 0, config.drain_grace + DRAIN_MARGIN, durable=True)
    watch.watch_sigterm()
    peers = _Peers(config, identity, mesh, control)
    await peers.start()
    output.install()
    _log.info(
        "wool worker %s listening on %s (advertised as %s; %s; tags: %s; pid %d)",
        config.id,
        join_address(config.host, port),
        address,
        "mutual TLS" if config.credentials is not None else "no TLS",
        ", ".join(config.tags) or "none",
        os.getpid(),
    )
    if config.ready_file is not None:
        _write_ready(
            config.ready_file,
            {"id": config.id, "address": address, "control": identity.control, "pid": os.getpid()},
        )
    await stop.wait()
    await _drain(config, executor, server, peers)
    control_server.stop(0)
    await mesh.close_loop()
    _log.info("wool worker %s stopped", config.id)
    return 0


async def _drain(
    config: WorkerConfig, executor: _DrainingExecutor, server: grpc.aio.Server, peers: _Peers
) -> None:
    """Refuse new calls and streams, let running calls finish within the grace, cancel the rest."""
    executor.draining = True
    running = executor.executed.in_flight
    _log.info(
        "wool worker %s draining: %d call(s) in flight, up to %gs to finish",
        config.id,
        running,
        config.drain_grace,
    )
    deadline = time.monotonic() + config.drain_grace
    refusing = asyncio.ensure_future(server.stop(config.drain_grace + 1.0))
    await peers.leave()
    finished = await _until(lambda: executor.executed.in_flight == 0, deadline - time.monotonic())
    if not finished:
        left = executor.executed.in_flight
        _log.warning("wool worker %s: drain grace over, cancelling %d call(s)", config.id, left)
        _cancel_routines({refusing})
        await _until(lambda: executor.executed.in_flight == 0, 1.0)
    await asyncio.sleep(SHUTDOWN_GRACE / 3)  # the last outcomes leave with the writer's batch
    await server.stop(SHUTDOWN_GRACE)
    try:
        async with asyncio.timeout(SHUTDOWN_GRACE):
            await refusing
    except TimeoutError:
        pass
    await peers.stop()


def _cancel_routines(keep: set[asyncio.Future[None]]) -> None:
    """``Executor.cancel_all``, sparing the tasks in ``keep`` (the server's stop)."""
    me = asyncio.current_task()
    for running in asyncio.all_tasks():
        if running is me or running in keep:
            continue
        if isinstance(running.get_coro(), types.CoroutineType):
            running.cancel()


async def _until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def run_durable(config: WorkerConfig) -> int:
    """Run ``serve_durable`` on a fresh loop; the process exits with its status."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    status = 1
    try:
        status = loop.run_until_complete(serve_durable(config))
    except (RuntimeError, ValueError, ImportError, WoolError) as exc:  # cannot bind, no extra
        _log.error("wool worker %s: %s", config.id, exc)
    except Exception:  # anything else still says why the worker could not run
        _log.exception("wool worker %s failed", config.id)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(status)
    return status
