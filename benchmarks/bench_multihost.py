"""Wool between two hosts vs the raw gRPC floor over the same link, plain and with mutual TLS.

Run as root: ``python benchmarks/bench_multihost.py [--rounds 3]``. It makes two hosts in
network namespaces joined by a veth pair through a bridge (``tests/multihost/netns.py``;
no packet can leave the machine), and on the server host starts:

* ``echo_server.py`` (the gRPC floor: one bidirectional stream, bytes echoed), plaintext;
* the same echo handler on a mutual-TLS port (``serve-tls-echo`` below), the TLS floor;
* ``wool worker --insecure`` and ``wool worker`` with mutual TLS (certificates from
  ``wool.certs.init``).

The client host then measures all four in one process (``measure``), in interleaved rounds:
the no-op round trip's p50 over sequential calls and the throughput of a burst of no-ops
all in flight. Targets (issue 11): Wool's p50 <= 1.4x the floor's with the same transport
security, Wool's throughput >= the floor's. Every process it starts is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path[:0] = [str(BENCH_DIR), str(REPO / "tests" / "multihost")]

import grpc  # noqa: E402
import grpc.aio  # noqa: E402
from bench_dispatch import latency_turn, percentile  # noqa: E402
from echo_server import GRPC_OPTIONS, METHOD, SERVICE, _echo  # noqa: E402
from floors import GrpcEchoTarget  # noqa: E402

PORTS = {"grpc": 7801, "grpc_tls": 7802, "wool": 7700, "wool_tls": 7701}
P50_TARGET = 1.4
STEP = 30.0


def credentials(certs: Path, role: str) -> Any:
    from wool.credentials import WorkerCredentials

    return WorkerCredentials.from_files(
        ca_path=certs / "ca.pem", key_path=certs / f"{role}.key", cert_path=certs / f"{role}.pem"
    )


# -- server host ---------------------------------------------------------------------


async def serve_tls_echo(bind: str, certs: Path) -> None:
    """``echo_server``'s handler on a mutual-TLS port, until SIGTERM."""
    import signal

    from wool.mesh import transport

    server = grpc.aio.server(options=[*GRPC_OPTIONS, ("grpc.so_reuseport", 0)])
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {METHOD: grpc.stream_stream_rpc_method_handler(_echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    transport.add_port(server, bind, credentials(certs, "worker"))
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(f"READY {bind}", flush=True)
    await stop.wait()
    await server.stop(grace=None)


# -- client host ---------------------------------------------------------------------


class RemoteEcho(GrpcEchoTarget):
    """The gRPC floor against an echo server already running on another host."""

    def __init__(self, name: str, address: str, creds: Any) -> None:
        super().__init__("tcp")
        self.name, self.address, self.creds = name, address, creds

    async def start(self) -> float:
        from wool.mesh import transport

        started = time.perf_counter()
        self._channel = transport.aio_channel(self.address, self.creds, GRPC_OPTIONS)
        await asyncio.wait_for(self._channel.channel_ready(), STEP)
        self._call = self._channel.stream_stream(f"/{SERVICE}/{METHOD}")()
        await asyncio.wait_for(self.noop(), STEP)
        return time.perf_counter() - started


class RemoteWool:
    """Wool's no-op routine on a ``wool worker`` on another host, through a durable pool."""

    def __init__(self, name: str, address: str, creds: Any, secret: bytes) -> None:
        self.name, self.address, self.creds, self.secret = name, address, creds, secret
        self.pool: Any = None

    async def start(self) -> float:
        import routines

        import wool
        from wool.discovery import SeedDiscovery

        started = time.perf_counter()
        self.pool = wool.WorkerPool(
            discovery=SeedDiscovery([self.address]), credentials=self.creds, secret=self.secret
        )
        await self.pool.astart()
        async with self.pool:
            await asyncio.wait_for(routines.noop(), STEP)
        return time.perf_counter() - started

    async def noop(self) -> None:
        import routines

        await routines.noop()

    async def burst(self, count: int) -> None:
        import routines

        async with asyncio.TaskGroup() as group:
            for _ in range(count):
                group.create_task(routines.noop())

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.astop()


async def turn(target: Any, calls: int, burst: int) -> tuple[float, float]:
    """p50 (µs) of ``calls`` sequential no-ops after a warm-up, and a burst's calls/s."""
    await latency_turn(target, 100)
    samples = sorted(await latency_turn(target, calls))
    t0 = time.perf_counter()
    await target.burst(burst)
    return percentile(samples, 50) / 1e3, burst / (time.perf_counter() - t0)


async def measure(args: argparse.Namespace) -> None:
    from wool.worker.config import read_secret

    certs = Path(args.certs)
    secret = read_secret(certs / "mesh.secret")
    client = credentials(certs, "client")
    host = args.server
    targets: list[Any] = [
        RemoteEcho("grpc", f"{host}:{PORTS['grpc']}", None),
        RemoteEcho("grpc_tls", f"{host}:{PORTS['grpc_tls']}", client),
        RemoteWool("wool", f"{host}:{PORTS['wool']}", None, secret),
        RemoteWool("wool_tls", f"{host}:{PORTS['wool_tls']}", client, secret),
    ]
    results: dict[str, dict[str, list[float]]] = {t.name: {"p50": [], "cps": []} for t in targets}
    errors: dict[str, str] = {}
    live = []
    for target in targets:
        try:
            await target.start()
            live.append(target)
        except Exception as exc:
            errors[target.name] = f"{type(exc).__name__}: {exc}"
    try:
        for _ in range(args.rounds):
            for target in live:
                if isinstance(target, RemoteWool):
                    async with target.pool:
                        p50, cps = await turn(target, args.calls, args.burst)
                else:
                    p50, cps = await turn(target, args.calls, args.burst)
                results[target.name]["p50"].append(p50)
                results[target.name]["cps"].append(cps)
    finally:
        for target in live:
            await asyncio.wait_for(target.close(), STEP)
    medians = {
        name: {metric: statistics.median(v) for metric, v in m.items() if v}
        for name, m in results.items()
    }
    print(json.dumps({"medians": medians, "errors": errors, "rounds": args.rounds}))


# -- orchestration (root namespace) --------------------------------------------------


def render(report: dict[str, Any]) -> str:
    m = report["medians"]
    lines = [
        f"{'security':10} {'target':6} {'no-op p50 µs':>13} {'calls/s':>10} "
        f"{'p50 / floor':>12} {'calls/s / floor':>16}"
    ]
    for security, floor, ours in (
        ("plain", "grpc", "wool"),
        ("mutual TLS", "grpc_tls", "wool_tls"),
    ):
        f, w = m.get(floor, {}), m.get(ours, {})
        for name, row in (("gRPC", f), ("Wool", w)):
            lines.append(
                f"{security:10} {name:6} {row.get('p50', float('nan')):13.0f} "
                f"{row.get('cps', float('nan')):10.0f}"
                + (
                    f" {w['p50'] / f['p50']:11.2f}x {w['cps'] / f['cps']:15.2f}x"
                    if name == "Wool" and "p50" in w and "p50" in f
                    else ""
                )
            )
        if "p50" in w and "p50" in f:
            ok_p50 = w["p50"] <= P50_TARGET * f["p50"]
            ok_cps = w["cps"] >= f["cps"]
            lines.append(
                f"{'':10} targets: p50 <= {P50_TARGET}x floor {'met' if ok_p50 else 'MISSED'}, "
                f"throughput >= floor {'met' if ok_cps else 'MISSED'}"
            )
    for name, error in report["errors"].items():
        lines.append(f"{name}: could not start: {error}")
    return "\n".join(lines)


def orchestrate(args: argparse.Namespace) -> int:
    import netns
    from mesh import tls_args

    from wool import certs as make_certs

    why = netns.can_run()
    if why is not None:
        print(f"bench_multihost: {why}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="wool-bench-multihost-"))
    make_certs.init(workdir / "certs")
    certs = workdir / "certs"
    net = netns.Network(2, suffix=f"b{os.getpid() % 10**7}", logs=workdir)
    env = {"PYTHONPATH": os.pathsep.join([str(BENCH_DIR), str(REPO)])}
    try:
        server, client = net.hosts
        at = server.address
        py = sys.executable
        server.spawn([py, str(BENCH_DIR / "echo_server.py"), "--bind", f"{at}:{PORTS['grpc']}"],
                     env=env, stdin=subprocess.PIPE, log=workdir / "echo.log")  # fmt: skip
        server.spawn([py, __file__, "serve-tls-echo", "--bind", f"{at}:{PORTS['grpc_tls']}",
                      "--certs", str(certs)], env=env, log=workdir / "echo-tls.log")  # fmt: skip
        worker = [py, "-m", "wool", "worker", "--drain-grace", "1"]
        server.spawn([*worker, "--listen", f"{at}:{PORTS['wool']}", "--id", "plain", "--insecure",
                      "--secret-file", str(certs / "mesh.secret")],
                     env=env, log=workdir / "wool.log")  # fmt: skip
        server.spawn([*worker, "--listen", f"{at}:{PORTS['wool_tls']}", "--id", "tls",
                      *tls_args(certs)], env=env, log=workdir / "wool-tls.log")  # fmt: skip
        report = client.python(
            __file__, "measure", "--server", at, "--certs", str(certs), "--rounds",
            str(args.rounds), "--calls", str(args.calls), "--burst", str(args.burst),
            timeout=900, env=env,
        )  # fmt: skip
    finally:
        left = net.close()
    load = os.getloadavg()[0]
    print(f"two namespace hosts over a veth link; medians of {args.rounds} round(s); "
          f"load average {load:.2f} at the end")  # fmt: skip
    print(render(report))
    if left:
        print(f"processes left (by PID): {left}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "mode", nargs="?", default="run", choices=["run", "measure", "serve-tls-echo"]
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=2000, help="sequential no-ops per round")
    parser.add_argument("--burst", type=int, default=2000, help="no-ops in flight per burst")
    parser.add_argument("--server", default="")
    parser.add_argument("--bind", default="")
    parser.add_argument("--certs", default="")
    args = parser.parse_args(argv)
    if args.mode == "serve-tls-echo":
        asyncio.run(serve_tls_echo(args.bind, Path(args.certs)))
        return 0
    if args.mode == "measure":
        asyncio.run(measure(args))
        return 0
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
