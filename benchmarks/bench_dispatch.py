"""Dispatch benchmark: Wool against two floors measured alongside it on this machine.

Floors: a raw ``grpc.aio`` bidirectional-stream echo between two processes (the gRPC
floor) and ``ProcessPoolExecutor(2)`` through ``loop.run_in_executor`` (the pool floor).
Each round runs every target in turn (the order rotates from round to round so drift
hits all of them), each in a fresh set of processes: cold start, warm-up, no-op latency,
concurrent no-op throughput, 1 MiB round trip and, for Wool, nested ``fib`` tasks. The
table shows the median over rounds and Wool's ratio to the floors. ``--kernel`` adds the
no-op's latency from a Jupyter kernel cell, with and without the live widget, against
the same loop run from this script (``kernel_latency.py``).

    python benchmarks/bench_dispatch.py                 # everything, 3 rounds
    python benchmarks/bench_dispatch.py --only wool --kernel
    python benchmarks/bench_dispatch.py --only floors   # floors only
    python benchmarks/bench_dispatch.py --quick --json /tmp/bench.json

See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from floors import Target

# Only the standard library is imported at module level: with the "spawn" start method
# the pool floor's worker processes import this file too, and should start fast.

BENCH_DIR = Path(__file__).resolve().parent
#: Bound on closing one target (its processes are reaped by PID afterwards regardless).
CLOSE_TIMEOUT = 30.0

#: metric key -> (label, unit, higher is better)
METRICS: dict[str, tuple[str, str, bool]] = {
    "cold_start_s": ("cold start", "s", False),
    "noop_p50_us": ("no-op p50", "µs", False),
    "noop_p90_us": ("no-op p90", "µs", False),
    "noop_p99_us": ("no-op p99", "µs", False),
    "throughput_cps": ("no-op throughput (higher=better)", "calls/s", True),
    "payload_ms": ("1 MiB round trip", "ms", False),
    "fib_tasks_per_s": ("fib tasks (higher=better)", "tasks/s", True),
}


@dataclasses.dataclass(frozen=True)
class Goal:
    """One target Wool should meet: against the gRPC floor (``factor``) or absolute."""

    metric: str
    text: str
    factor: float | None = None
    limit: float | None = None

    def check(self, wool: float | None, floor: float | None) -> str:
        """``PASS``, ``MISS``, or ``n/a`` when a number is missing."""
        if wool is None:
            return "n/a"
        higher_better = METRICS[self.metric][2]
        if self.limit is not None:
            bound = self.limit
        elif floor is None or self.factor is None:
            return "n/a"
        else:
            bound = self.factor * floor
        ok = wool >= bound if higher_better else wool <= bound
        return "PASS" if ok else "MISS"


GOALS = [
    Goal("noop_p50_us", "≤ 1.2x gRPC", factor=1.2),
    Goal("throughput_cps", "≥ 1.0x gRPC", factor=1.0),
    Goal("payload_ms", "≤ 1.5x gRPC", factor=1.5),
    Goal("cold_start_s", "≤ 0.25 s", limit=0.25),
]


@dataclasses.dataclass(frozen=True)
class Config:
    """Sizes of one run."""

    rounds: int = 3
    warmup: int = 200
    latency_calls: int = 2000
    burst: int = 5000
    burst_reps: int = 3
    payload_calls: int = 50
    payload_bytes: int = 1 << 20
    fib_n: int = 12
    fib_reps: int = 3
    cold_reps: int = 3
    session_timeout: float = 300.0


QUICK = Config(
    rounds=1,
    warmup=50,
    latency_calls=300,
    burst=500,
    burst_reps=1,
    payload_calls=10,
    fib_reps=1,
    cold_reps=1,
)


def fib_calls(n: int) -> int:
    """Routine calls ``fib(n)`` makes, counting itself: ``2 * F(n + 1) - 1``."""
    a, b = 0, 1
    for _ in range(n + 1):
        a, b = b, a + b
    return 2 * a - 1


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of sorted values, linearly interpolated."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


class WoolTarget:
    """Wool itself: ``WorkerPool(spawn=2)`` and the routines in ``routines.py``."""

    name = "wool"

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers
        self._stack = contextlib.AsyncExitStack()
        self._routines: Any = None
        self.worker_pids: list[int] = []

    async def start(self) -> float:
        """Enter ``WorkerPool(spawn=2)``; return seconds to the first no-op result."""
        # Imported here so a runtime that is missing or broken fails this target only.
        import routines

        import wool

        self._routines = routines
        started = time.perf_counter()
        await self._stack.enter_async_context(wool.WorkerPool(spawn=self.workers))
        await routines.noop()
        elapsed = time.perf_counter() - started
        pids = await asyncio.gather(*(routines.worker_pid() for _ in range(4 * self.workers)))
        self.worker_pids = sorted(set(pids))
        if os.getpid() in self.worker_pids:
            print("\n  warning: a wool routine ran in the benchmark's own process", end=" ")
        return elapsed

    async def noop(self) -> None:
        """One no-op routine call."""
        await self._routines.noop()

    async def echo(self, data: bytes) -> bytes:
        """Round trip ``data`` through the ``echo`` routine."""
        return await self._routines.echo(data)

    async def burst(self, count: int) -> None:
        """``count`` no-op routine calls, all in flight at once."""
        noop = self._routines.noop
        async with asyncio.TaskGroup() as group:
            for _ in range(count):
                group.create_task(noop())

    async def fib(self, n: int) -> int:
        """Nested ``fib(n)``: ``fib_calls(n)`` routine calls in all."""
        return await self._routines.fib(n)

    async def close(self) -> None:
        """Leave the worker pool."""
        await self._stack.aclose()


async def close_target(target: Target) -> None:
    """Close ``target`` within ``CLOSE_TIMEOUT``; a failure is only reported."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await target.close()
    except Exception as exc:
        print(f"\n  warning: closing {target.name} failed: {exc!r}", end=" ", flush=True)


#: The no-op latency calls of a round are split into this many turns per target, taken
#: in rotating order while every target is up, so the machine's drift (tens of percent
#: within minutes here) hits the targets alike instead of whichever ran in a bad minute.
LATENCY_TURNS = 10


async def start(
    factory: Callable[[], Target], config: Config, payload: bytes
) -> tuple[Target, dict[str, Any]]:
    """Cold starts (fresh processes each), then one warmed-up session, left open."""
    result: dict[str, Any] = {}
    colds: list[float] = []
    target = factory()
    try:
        for _ in range(config.cold_reps - 1):
            gc.collect()
            try:
                colds.append(await target.start())
            finally:
                await close_target(target)
            target = factory()
        # No pause before a cold start: on this VM, idle time before one makes it
        # slower and noisier (probably idle vCPUs being woken), not more accurate.
        gc.collect()
        colds.append(await target.start())
        result["cold_start_s"] = statistics.median(colds)
        result["cold_samples_s"] = colds
        ready = getattr(target, "server_ready_s", None)
        if ready is not None:
            result["server_ready_s"] = ready  # of the last start
        pids = getattr(target, "worker_pids", None)
        if pids is not None:
            result["worker_pids"] = pids
        for _ in range(config.warmup):
            await target.noop()
        await target.burst(config.warmup)
        if await target.echo(payload) != payload:
            raise RuntimeError(f"{target.name}: payload came back changed")
    except BaseException:
        await close_target(target)
        raise
    return target, result


async def latency_turn(target: Target, calls: int) -> list[int]:
    """``calls`` sequential no-ops, each timed (ns)."""
    samples = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        t0 = clock()
        await target.noop()
        samples.append(clock() - t0)
    return samples


async def measure_rest(
    target: Target, config: Config, payload: bytes, result: dict[str, Any]
) -> None:
    """Throughput, payload round trip and (Wool) nested fib, into ``result``."""
    rates = []
    for _ in range(config.burst_reps):
        gc.collect()
        t0 = time.perf_counter()
        await target.burst(config.burst)
        rates.append(config.burst / (time.perf_counter() - t0))
    result["throughput_cps"] = statistics.median(rates)

    gc.collect()
    times = []
    for _ in range(config.payload_calls):
        t0 = time.perf_counter()
        await target.echo(payload)
        times.append(time.perf_counter() - t0)
    result["payload_ms"] = statistics.median(times) * 1e3

    fib = getattr(target, "fib", None)
    if fib is not None:
        expected = _fib_value(config.fib_n)
        if await fib(config.fib_n) != expected:  # warm-up and check
            raise RuntimeError(f"fib({config.fib_n}) gave a wrong answer")
        times = []
        for _ in range(config.fib_reps):
            gc.collect()
            t0 = time.perf_counter()
            await fib(config.fib_n)
            times.append(time.perf_counter() - t0)
        result["fib_tasks_per_s"] = fib_calls(config.fib_n) / statistics.median(times)


def _fib_value(n: int) -> int:
    """``F(n)``, computed locally to check the routine's answer."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def make_targets(args: argparse.Namespace) -> list[tuple[str, Callable[[], Target]]]:
    """The targets this run measures, as ``(name, factory)``."""
    from floors import GrpcEchoTarget, PoolTarget

    targets: list[tuple[str, Callable[[], Target]]] = []
    if args.only in ("floors", "all"):
        targets.append(("grpc", lambda: GrpcEchoTarget("tcp")))
        if args.uds:
            targets.append(("grpc_uds", lambda: GrpcEchoTarget("uds")))
        targets.append(("pool", lambda: PoolTarget(2, args.pool_context)))
    if args.only in ("wool", "all"):
        targets.append(("wool", WoolTarget))
    return targets


async def run(args: argparse.Namespace, config: Config) -> dict[str, Any]:
    """All rounds; returns per-round results and errors.

    A round starts every target (cold starts, warm-up), times the no-op in turns
    across the targets, then measures the rest target by target, and closes them all.
    A target that fails or runs past the session timeout drops out of the run.
    """
    from procs import reap_descendants

    targets = make_targets(args)
    payload = os.urandom(config.payload_bytes)
    rounds: list[dict[str, dict[str, Any]]] = []
    errors: dict[str, str] = {}

    def failed(name: str, exc: BaseException) -> None:
        if isinstance(exc, TimeoutError):
            errors[name] = f"TimeoutError: over {config.session_timeout:g} s"
        else:
            errors[name] = f"{type(exc).__name__}: {exc}"
        print(f"round {index + 1}/{config.rounds}: {name:<8} FAILED ({errors[name]})", flush=True)
        if name == "wool":
            print(_wool_failure_message(exc), file=sys.stderr, flush=True)
        elif not isinstance(exc, TimeoutError):
            traceback.print_exc()

    for index in range(config.rounds):
        shift = index % len(targets)
        order = [(n, f) for n, f in targets[shift:] + targets[:shift] if n not in errors]
        live: dict[str, tuple[Target, dict[str, Any]]] = {}
        try:
            for name, factory in order:
                try:
                    async with asyncio.timeout(config.session_timeout):
                        live[name] = await start(factory, config, payload)
                except Exception as exc:
                    failed(name, exc)
            samples: dict[str, list[int]] = {name: [] for name in live}
            per_turn = max(1, config.latency_calls // LATENCY_TURNS)
            for turn in range(LATENCY_TURNS):
                names = list(live)
                for name in names[turn % len(names) :] + names[: turn % len(names)]:
                    try:
                        async with asyncio.timeout(config.session_timeout):
                            samples[name] += await latency_turn(live[name][0], per_turn)
                    except Exception as exc:
                        failed(name, exc)
                        await close_target(live.pop(name)[0])
            for name in list(live):
                target, result = live[name]
                values = sorted(samples[name])
                for q in (50, 90, 99):
                    result[f"noop_p{q}_us"] = percentile(values, q) / 1e3
                try:
                    async with asyncio.timeout(config.session_timeout):
                        await measure_rest(target, config, payload, result)
                except Exception as exc:
                    failed(name, exc)
                    await close_target(live.pop(name)[0])
                    continue
                print(
                    f"round {index + 1}/{config.rounds}: {name:<8} "
                    f"cold {result['cold_start_s']:.3f} s, p50 {result['noop_p50_us']:.0f} µs, "
                    f"{result['throughput_cps']:.0f} calls/s, 1 MiB {result['payload_ms']:.2f} ms"
                    + (
                        f", fib {result['fib_tasks_per_s']:.0f} tasks/s"
                        if "fib_tasks_per_s" in result
                        else ""
                    ),
                    flush=True,
                )
        finally:
            for target, _ in live.values():
                await close_target(target)
            leftovers = await asyncio.to_thread(reap_descendants)
            if leftovers:
                print(f"  stopped leftover processes {leftovers}", flush=True)
        rounds.append({name: result for name, (_, result) in live.items()})
    return {"rounds": rounds, "errors": errors}


def run_kernel(config: Config, errors: dict[str, str]) -> dict[str, Any] | None:
    """The kernel rounds (see ``kernel_latency.py``); a failure is recorded in ``errors``."""
    from kernel_latency import measure as measure_kernel
    from procs import reap_descendants

    try:
        return measure_kernel(
            config.rounds, config.warmup, config.latency_calls, config.session_timeout
        )
    except Exception as exc:
        errors["kernel"] = f"{type(exc).__name__}: {exc}"
        print(f"\nkernel: FAILED ({errors['kernel']})", flush=True)
        traceback.print_exc()
        return None
    finally:
        leftovers = reap_descendants()
        if leftovers:
            print(f"  stopped leftover processes {leftovers}", flush=True)


def _wool_failure_message(exc: BaseException) -> str:
    """A clear note for a Wool failure; the floors are still reported."""
    where = "import" if isinstance(exc, ImportError | AttributeError) else "run"
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return (
        f"  wool: not measured ({where} failed: {detail}).\n"
        "  The Wool runtime may not be ready yet; the floors are reported without it."
    )


def summarize(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Median over rounds, and spread ((max - min) / median), per target and metric."""
    values: dict[str, dict[str, list[float]]] = {}
    for this_round in rounds:
        for name, result in this_round.items():
            for metric, value in result.items():
                if not isinstance(value, float):
                    continue
                values.setdefault(name, {}).setdefault(metric, []).append(value)
    medians = {
        name: {metric: statistics.median(vs) for metric, vs in metrics.items()}
        for name, metrics in values.items()
    }
    spread = {
        name: {
            metric: (max(vs) - min(vs)) / statistics.median(vs) if statistics.median(vs) else 0.0
            for metric, vs in metrics.items()
        }
        for name, metrics in values.items()
    }
    return {"values": values, "medians": medians, "spread": spread}


def _fmt(value: float | None, unit: str) -> str:
    """A number formatted for its unit, or ``-``."""
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3f}"
    if unit == "ms":
        return f"{value:.2f}"
    return f"{value:,.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    """``a / b`` as ``1.23x``, or ``-``."""
    if a is None or not b:
        return "-"
    return f"{a / b:.2f}x"


def render_table(
    medians: dict[str, dict[str, float]], show_uds: bool
) -> tuple[str, list[dict[str, Any]]]:
    """The results table, and the goal checks as records for the JSON file."""

    def get(name: str, metric: str) -> float | None:
        return medians.get(name, {}).get(metric)

    header = ["metric", "unit", "wool", "gRPC floor"]
    if show_uds:
        header.append("gRPC UDS")
    header += ["pool floor", "wool/gRPC", "wool/pool", "target", "result"]
    rows = [header]
    goals = {goal.metric: goal for goal in GOALS}
    checks = []
    for metric, (label, unit, _higher) in METRICS.items():
        wool, grpc, pool = get("wool", metric), get("grpc", metric), get("pool", metric)
        row = [label, unit, _fmt(wool, unit), _fmt(grpc, unit)]
        if show_uds:
            row.append(_fmt(get("grpc_uds", metric), unit))
        row += [_fmt(pool, unit), _ratio(wool, grpc), _ratio(wool, pool)]
        goal = goals.get(metric)
        if goal is None:
            row += ["", ""]
        else:
            verdict = goal.check(wool, grpc)
            row += [goal.text, verdict]
            checks.append(
                {
                    "metric": metric,
                    "target": goal.text,
                    "wool": wool,
                    "grpc": grpc,
                    "result": verdict,
                }
            )
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines), checks


def render_spread(summary: dict[str, Any]) -> str:
    """Round-to-round spread of each target's numbers, as a percentage of the median."""
    lines = ["round-to-round spread, (max - min) / median:"]
    for name, metrics in summary["spread"].items():
        parts = [
            f"{METRICS[m][0].split(' (')[0]} {v * 100:.0f}%"
            for m, v in metrics.items()
            if m in METRICS
        ]
        lines.append(f"  {name:<8} " + ", ".join(parts))
    return "\n".join(lines)


def _setup_paths() -> None:
    """Make this folder's modules importable here and in every child process."""
    here = str(BENCH_DIR)
    if here not in sys.path:
        sys.path.insert(0, here)
    existing = os.environ.get("PYTHONPATH", "")
    if here not in existing.split(os.pathsep):
        os.environ["PYTHONPATH"] = here + (os.pathsep + existing if existing else "")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Wool dispatch benchmark against a raw grpc.aio floor and a process pool."
    )
    parser.add_argument("--quick", action="store_true", help="fewer calls, 1 round: a smoke run")
    parser.add_argument("--only", choices=("floors", "wool", "all"), default="all")
    parser.add_argument("--json", metavar="PATH", type=Path, help="write the numbers here")
    parser.add_argument("--rounds", type=int, help="rounds (default 3, or 1 with --quick)")
    parser.add_argument(
        "--uds",
        action="store_true",
        help="also measure the gRPC floor over a unix-domain socket (extra column)",
    )
    parser.add_argument(
        "--pool-context",
        choices=("spawn", "forkserver", "fork"),
        default="spawn",
        help="start method of the pool floor (default spawn, like Wool's workers)",
    )
    parser.add_argument(
        "--kernel",
        action="store_true",
        help=(
            "also time the no-op from a Jupyter kernel cell against this script, with and "
            "without the live widget (see kernel_latency.py)"
        ),
    )
    parser.add_argument(
        "--session-timeout",
        type=float,
        help="limit on one target's session in one round, in seconds (default 300)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        help="hard limit on the whole run in seconds (default 1500, or 300 with --quick)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON file.

    Exit status: 0 when everything asked for was measured, 1 when a floor failed, 2 when
    only Wool failed (the floors are still printed).
    """
    args = parse_args(argv)
    config = QUICK if args.quick else Config()
    if args.rounds is not None:
        config = dataclasses.replace(config, rounds=max(1, args.rounds))
    if args.session_timeout is not None:
        config = dataclasses.replace(config, session_timeout=args.session_timeout)
    deadline = args.deadline or (300.0 if args.quick else 1500.0)
    _setup_paths()
    import grpc
    from procs import Watchdog, reap_descendants

    print(
        f"wool dispatch benchmark: python {platform.python_version()}, grpcio {grpc.__version__}, "
        f"{os.cpu_count()} CPUs, {config.rounds} round(s), only={args.only}"
        + (" (quick)" if args.quick else ""),
        flush=True,
    )
    started = time.time()
    kernel: dict[str, Any] | None = None
    try:
        with Watchdog(deadline):
            outcome = asyncio.run(run(args, config))
            if args.kernel:
                kernel = run_kernel(config, outcome["errors"])
    finally:
        leftovers = reap_descendants()
        if leftovers:
            print(f"stopped leftover processes {leftovers}", file=sys.stderr)

    summary = summarize(outcome["rounds"])
    table, checks = render_table(summary["medians"], show_uds=args.uds)
    print()
    print(f"medians of {config.rounds} round(s):")
    print(table)
    print(
        "wool/gRPC and wool/pool divide Wool's number by the floor's: for latencies and cold "
        "start lower is better, for calls/s and tasks/s (marked higher=better) ≥ 1 is good."
    )
    if "grpc" in summary["medians"] and "server_ready_s" in summary["medians"]["grpc"]:
        ready = summary["medians"]["grpc"]["server_ready_s"]
        print(f"gRPC floor cold start: echo server printed READY after {ready:.3f} s (median).")
    if config.rounds > 1:
        print(render_spread(summary))
    if kernel is not None:
        from kernel_latency import render as render_kernel

        print(render_kernel(kernel))
    for name, error in outcome["errors"].items():
        print(f"{name}: not measured: {error}")

    if args.json is not None:
        report = {
            "meta": {
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                "seconds": round(time.time() - started, 1),
                "python": platform.python_version(),
                "grpcio": grpc.__version__,
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "argv": sys.argv[1:] if argv is None else argv,
                "config": dataclasses.asdict(config),
                "pool_context": args.pool_context,
                "fib_calls": fib_calls(config.fib_n),
            },
            "rounds": outcome["rounds"],
            "medians": summary["medians"],
            "spread": summary["spread"],
            "checks": checks,
            "errors": outcome["errors"],
            "kernel": kernel,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    if any(name not in ("wool", "kernel") for name in outcome["errors"]):
        return 1
    return 2 if {"wool", "kernel"} & outcome["errors"].keys() else 0


if __name__ == "__main__":
    sys.exit(main())
