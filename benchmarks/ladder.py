"""Where no-op latency goes: Wool and the gRPC floor, with the rungs between them.

Each rung runs in a driver process of its own, all of them up at once, and they
take turns of sequential no-op calls, in rotating order, so the drift of a shared
machine hits every rung alike (a plain run-one-after-the-other comparison drifts by
more than the differences measured here). Rungs:

* ``floor``: the gRPC floor of ``bench_dispatch.py`` (``echo_server.py``; write one
  message, read its echo).
* ``floor+tuned``: the same, both processes with the gRPC settings Wool gives its
  workers (``wool.tuning.GRPC_EXPERIMENTS``).
* ``mux``: a stream multiplexed the way any runtime has to: a reader task and a
  future per call on the client, a task per call and batched writes on the server
  (``mux_server.py``). No pickling, framing or routing.
* ``wool``: ``WorkerPool(spawn=1)`` and a no-op routine, as a user runs it (workers
  tuned, the caller's process left alone).
* ``wool+tuned``: the same with the caller's process tuned as well.

    python benchmarks/ladder.py                 # 3 rounds x 30 turns of 200 calls per rung
    python benchmarks/ladder.py --rounds 1 --turns 10 --rungs floor,wool

Each round starts every rung's processes afresh (where the scheduler places a
process moves its numbers by tens of percent on a 2-core VM); the table shows the
median over rounds of each rung's p50 and p90, and of its ratio to the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNGS = ("floor", "floor+tuned", "mux", "wool", "wool+tuned")
WARMUP = 300
STEP_TIMEOUT = 60.0
NOOP = b"noop"


# -- driver side: one rung, in its own process ------------------------------------


Rung = tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]
"""A rung's (one call, close)."""


async def _grpc_rung(server: str, multiplexed: bool) -> Rung:
    import grpc
    from echo_server import FULL_METHOD, GRPC_OPTIONS

    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / server), stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdin is not None
    line = await asyncio.wait_for(proc.stdout.readline(), STEP_TIMEOUT)
    if not line.startswith(b"READY "):
        raise RuntimeError(f"{server} did not start (said {line!r})")
    channel = grpc.aio.insecure_channel(line.split()[1].decode(), options=GRPC_OPTIONS)
    call = channel.stream_stream(FULL_METHOD)()
    loop = asyncio.get_running_loop()

    if not multiplexed:

        async def one() -> None:
            await call.write(NOOP)
            await call.read()

        reader = None
    else:
        from mux_server import eager_writer

        writer = eager_writer(call.write)
        waiters: list[asyncio.Future[bytes]] = []

        async def read_all() -> None:
            while True:
                message = await call.read()
                if message is grpc.aio.EOF:
                    return
                waiters.pop(0).set_result(message)

        reader = loop.create_task(read_all())

        async def one() -> None:
            waiter = loop.create_future()
            waiters.append(waiter)
            writer.send(NOOP)
            await waiter

    async def close() -> None:
        if reader is not None:
            reader.cancel()
        call.cancel()
        await channel.close()
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), STEP_TIMEOUT)

    return one, close


async def _wool_rung() -> Rung:
    import routines

    import wool

    pool = wool.WorkerPool(spawn=1)
    await pool.__aenter__()

    async def one() -> None:
        await routines.noop()

    async def close() -> None:
        await pool.__aexit__(None, None, None)

    return one, close


async def drive(rung: str) -> None:
    """Serve turns on stdin: a line N runs N timed calls and prints their times (ns)."""
    base = rung.split("+")[0]
    if base == "wool":
        one, close = await _wool_rung()
    else:
        one, close = await _grpc_rung(
            "mux_server.py" if base == "mux" else "echo_server.py", base == "mux"
        )
    loop = asyncio.get_running_loop()
    try:
        for _ in range(WARMUP):
            await one()
        print("ready", flush=True)
        while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            times = []
            for _ in range(int(line)):
                started = time.perf_counter_ns()
                await one()
                times.append(time.perf_counter_ns() - started)
            print(json.dumps(times), flush=True)
    finally:
        await close()


# -- coordinator ----------------------------------------------------------------------


def _environment(rung: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env.setdefault("GRPC_VERBOSITY", "ERROR")
    if rung.endswith("+tuned"):
        from wool.tuning import GRPC_EXPERIMENTS

        env["GRPC_EXPERIMENTS"] = GRPC_EXPERIMENTS
    return env


def measure(rungs: list[str], turns: int, calls: int) -> dict[str, list[int]]:
    drivers: dict[str, subprocess.Popen[str]] = {}
    times: dict[str, list[int]] = {rung: [] for rung in rungs}
    try:
        for rung in rungs:
            proc = subprocess.Popen(
                [sys.executable, __file__, "--rung", rung],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=_environment(rung),
            )
            drivers[rung] = proc
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"rung {rung} did not start")
        for turn in range(turns):
            shift = turn % len(rungs)
            for rung in rungs[shift:] + rungs[:shift]:
                proc = drivers[rung]
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write(f"{calls}\n")
                proc.stdin.flush()
                times[rung].extend(json.loads(proc.stdout.readline()))
    finally:
        for proc in drivers.values():
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in drivers.values():
            try:
                proc.wait(STEP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
    return times


def summarize(times: dict[str, list[int]]) -> dict[str, tuple[float, float]]:
    """Per rung: (p50, p90) in µs for one round."""
    return {
        rung: (statistics.median(v) / 1000, statistics.quantiles(v, n=10)[-1] / 1000)
        for rung, v in times.items()
    }


def render(rounds: list[dict[str, tuple[float, float]]]) -> str:
    def floor_of(rung: str) -> str | None:
        name = "floor+tuned" if rung.endswith("+tuned") else "floor"
        return name if name in rounds[0] else None

    lines = [
        f"{'rung':<12} {'p50 µs':>8} {'p90 µs':>8} {'/ floor':>8} {'/ floor, same settings':>23}",
        "-" * 63,
    ]
    for rung in rounds[0]:
        p50 = statistics.median(r[rung][0] for r in rounds)
        p90 = statistics.median(r[rung][1] for r in rounds)
        cells = []
        for floor in ("floor" if "floor" in rounds[0] else None, floor_of(rung)):
            if floor is None:
                cells.append("-")
            else:
                ratio = statistics.median(r[rung][0] / r[floor][0] for r in rounds)
                cells.append(f"{ratio:.2f}x")
        lines.append(f"{rung:<12} {p50:8.1f} {p90:8.1f} {cells[0]:>8} {cells[1]:>23}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes each (default 3)")
    parser.add_argument("--turns", type=int, default=30, help="turns per rung (default 30)")
    parser.add_argument("--calls", type=int, default=200, help="calls per turn (default 200)")
    parser.add_argument("--rungs", default=",".join(RUNGS), help="comma-separated subset")
    parser.add_argument("--rung", help=argparse.SUPPRESS)  # driver mode
    args = parser.parse_args(argv)
    if args.rung:
        sys.path.insert(0, str(HERE))
        asyncio.run(drive(args.rung))
        return 0
    rungs = [r for r in args.rungs.split(",") if r]
    unknown = set(rungs) - set(RUNGS)
    if unknown:
        parser.error(f"unknown rungs: {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    rounds = []
    for number in range(1, args.rounds + 1):
        rounds.append(summarize(measure(rungs, args.turns, args.calls)))
        print(
            f"round {number}: "
            + ", ".join(f"{rung} {p50:.0f}" for rung, (p50, _) in rounds[-1].items())
            + " µs p50",
            flush=True,
        )
    print(render(rounds))
    print(
        f"medians of {args.rounds} rounds of {args.turns} turns x {args.calls} calls per rung, "
        f"interleaved; {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
