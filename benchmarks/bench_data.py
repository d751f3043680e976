"""Data-sized work (issue 12): payload sweep, head-of-line blocking, memory, scaling, fan-out.

Sections, each printed as it finishes:

* **payload sweep**: round trips (the routine returns its argument) of 1 KiB .. 256 MiB as
  ``bytes`` and as a numpy float64 array on ``WorkerPool(spawn=1)``, beside the raw gRPC
  stream floor and the raw TCP echo floor measured in the same run; medians and ratios.
* **no-op under a transfer**: sequential no-ops on the same single worker while a
  256 MiB round trip is in flight; p50/p99 against the stated bound.
* **backpressure**: peak RSS of the caller and of each worker (sampled every 50 ms) for
  100,000 concurrent no-ops, a slow consumer of a stream of 50 x 10 MiB, and 1,000
  concurrent 1 MiB calls; then RSS after 3 s idle.
* **scaling**: no-op and short CPU-bound throughput and no-op p50 with 1, 2, 4, 8 workers.
* **nested fan-out**: ``fib(10)`` .. ``fib(20)``, routine calls per second.

It writes ``data_payload.png``, ``data_scaling.png``, ``data_fib.png``, ``data.md`` and
``data.json`` to ``--out`` (default ``benchmarks/results``).

    python benchmarks/bench_data.py            # ~2-4 min on the 2-core VM
    python benchmarks/bench_data.py --quick    # smoke run: small sizes, no 256 MiB

Exit status: 0 when every section was measured, 2 when one failed (the others still run
and are reported), 3 when the run passed its deadline (see ``procs.Watchdog``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import platform
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402
from bench_dispatch import _fib_value, _setup_paths, fib_calls, percentile  # noqa: E402
from floors import GrpcEchoTarget  # noqa: E402
from procs import Watchdog, reap_descendants  # noqa: E402
from tcp_bulk import TcpBulkFloor  # noqa: E402

KIB, MIB = 1 << 10, 1 << 20
#: The gRPC floor sends a payload above this as a stream of messages of this size (the
#: echo server refuses messages over 64 MiB; Wool's chunks are 512 KiB by default).
GRPC_CHUNK = MIB
#: The stated bound on a no-op's p99 while a 256 MiB transfer shares its worker.
HOL_P99_BOUND_MS = 5.0
#: Targets printed beside the sweep's ratios.
TCP_TARGET, GRPC_TARGET, TCP_FROM = 1.3, 1.5, 16 * MIB
SAMPLE_EVERY = 0.05


@dataclasses.dataclass(frozen=True)
class Config:
    """Sizes of one run."""

    sizes: tuple[int, ...] = (KIB, 64 * KIB, MIB, 16 * MIB, 256 * MIB)
    #: Round trips per size are about ``sweep_bytes / size``, clamped to ``sweep_reps``.
    sweep_bytes: int = 256 * MIB
    sweep_reps: tuple[int, int] = (2, 200)
    hol_bytes: int = 256 * MIB
    hol_transfers: int = 2
    burst_calls: int = 100_000
    stream_items: int = 50
    stream_item_bytes: int = 10 * MIB
    stream_delay: float = 0.05
    mib_calls: int = 1000
    idle_s: float = 3.0
    workers: tuple[int, ...] = (1, 2, 4, 8)
    scale_burst: int = 5000
    scale_cpu_calls: int = 400
    spin_iterations: int = 10_000
    scale_latency_calls: int = 1000
    fib_range: tuple[int, int] = (10, 20)
    deadline: float = 1200.0


QUICK = Config(
    sizes=(KIB, 64 * KIB, MIB),
    sweep_bytes=4 * MIB,
    sweep_reps=(2, 20),
    hol_bytes=8 * MIB,
    hol_transfers=1,
    burst_calls=2000,
    stream_items=5,
    stream_item_bytes=MIB,
    stream_delay=0.01,
    mib_calls=50,
    idle_s=1.0,
    workers=(1, 2),
    scale_burst=300,
    scale_cpu_calls=20,
    spin_iterations=1000,
    scale_latency_calls=100,
    fib_range=(4, 8),
    deadline=240.0,
)


def human(size: int) -> str:
    """``1 KiB``, ``64 KiB``, ``256 MiB``."""
    return f"{size // MIB} MiB" if size >= MIB else f"{size // KIB} KiB"


def reps_for(size: int, config: Config) -> int:
    """Round trips at ``size``: about ``sweep_bytes`` in all, within ``sweep_reps``."""
    low, high = config.sweep_reps
    return max(low, min(high, config.sweep_bytes // size))


async def timed(call: Callable[[], Awaitable[object]], reps: int) -> float:
    """Median seconds of ``reps`` sequential ``call()``s."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        await call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


async def interleaved(
    calls: Mapping[str, Callable[[], Awaitable[object]]], reps: int
) -> dict[str, float]:
    """Median seconds per call of ``reps`` turns, the order rotating each turn.

    Taking turns makes the machine's drift (tens of percent within minutes on this
    shared VM) hit every target alike.
    """
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for turn in range(reps):
        shift = turn % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = time.perf_counter()
            await calls[name]()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(values) for name, values in times.items()}


# -- floors -------------------------------------------------------------------------------


class GrpcFloor(GrpcEchoTarget):
    """The raw gRPC stream floor; payloads over ``GRPC_CHUNK`` go as pipelined messages."""

    async def round_trip(self, data: bytes) -> bytearray | bytes:
        """Send ``data`` and get it back whole (reassembled, as a receiver must)."""
        if len(data) <= GRPC_CHUNK:
            return await self.echo(data)
        call: grpc.aio.StreamStreamCall | None = self._call
        assert call is not None
        out = bytearray(len(data))

        async def write() -> None:
            for start in range(0, len(data), GRPC_CHUNK):
                await call.write(data[start : start + GRPC_CHUNK])

        async def read() -> None:
            got = 0
            while got < len(data):
                part = await call.read()
                if part is grpc.aio.EOF:
                    raise RuntimeError("echo stream ended early")
                out[got : got + len(part)] = part
                got += len(part)

        async with asyncio.TaskGroup() as group:
            group.create_task(write())
            group.create_task(read())
        return out

    async def close(self) -> None:
        """As the floor's, skipping the half-close when the stream has already ended."""
        if self._call is not None and self._call.done():  # type: ignore[has-type]
            self._call = None
        await super().close()


# -- RSS sampling -------------------------------------------------------------------------


class RssSampler:
    """Peak RSS per process, sampled from a thread every ``SAMPLE_EVERY`` seconds."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def sample(self) -> dict[str, int]:
        """Current RSS per process (0 for one that is gone)."""
        now = {}
        for name, proc in self.procs.items():
            try:
                now[name] = proc.memory_info().rss
            except psutil.Error:
                now[name] = 0
        return now

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, rss in self.sample().items():
                self.peak[name] = max(self.peak[name], rss)
            self._stop.wait(SAMPLE_EVERY)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        for name, rss in self.sample().items():
            self.peak[name] = max(self.peak[name], rss)


def mb(value: float) -> str:
    return f"{value / 1e6:,.0f} MB"


# -- sections -----------------------------------------------------------------------------


@contextmanager
def section(title: str, errors: dict[str, str], key: str) -> Iterator[None]:
    """Print ``title``; record a failure under ``key`` instead of ending the run."""
    print(f"\n== {title} ==", flush=True)
    started = time.perf_counter()
    try:
        yield
    except Exception as exc:
        errors[key] = f"{type(exc).__name__}: {exc}"
        print(f"  FAILED: {errors[key]}", flush=True)
        traceback.print_exc()
    finally:
        print(f"  ({time.perf_counter() - started:.1f} s)", flush=True)
        leftovers = reap_descendants()
        if leftovers:
            print(f"  stopped leftover processes {leftovers}", flush=True)


def make_payloads(size: int) -> tuple[bytes, np.ndarray]:
    """Random ``bytes`` and a random float64 array, both ``size`` bytes."""
    rng = np.random.default_rng(size)
    array = rng.random(max(1, size // 8))
    return rng.bytes(size), array


async def sweep(config: Config) -> list[dict[str, Any]]:
    """Median round trip per size: Wool bytes, Wool numpy, gRPC floor, TCP floor."""
    import routines

    import wool

    rows = []
    grpc_floor, tcp_floor = GrpcFloor("tcp"), TcpBulkFloor()
    await grpc_floor.start()
    try:
        await tcp_floor.start()
        async with wool.WorkerPool(spawn=1):
            await routines.noop()
            for size in config.sizes:
                data, array = make_payloads(size)
                reps = reps_for(size, config)
                row: dict[str, Any] = {"size": size, "reps": reps}
                if await routines.echo(data) != data:
                    raise RuntimeError(f"wool: {human(size)} bytes came back changed")
                if not np.array_equal(await routines.echo(array), array):
                    raise RuntimeError(f"wool: {human(size)} array came back changed")
                if bytes(await grpc_floor.round_trip(data)) != data:
                    raise RuntimeError(f"grpc floor: {human(size)} came back changed")
                if await tcp_floor.echo(data) != data:
                    raise RuntimeError(f"tcp floor: {human(size)} came back changed")
                gc.collect()
                calls = {
                    "wool_bytes_s": partial(routines.echo, data),
                    "wool_numpy_s": partial(routines.echo, array),
                    "grpc_s": partial(grpc_floor.round_trip, data),
                    "tcp_s": partial(tcp_floor.echo, data),
                }
                row.update(await interleaved(calls, reps))
                del data, array, calls
                gc.collect()
                rows.append(row)
                print("  " + sweep_line(row), flush=True)
    finally:
        await tcp_floor.close()
        await grpc_floor.close()
    return rows


def _check(ratio: float, target: float) -> str:
    return "PASS" if ratio <= target else "MISS"


def sweep_line(row: dict[str, Any]) -> str:
    """One size's medians, ratios and the target that applies to it."""
    size, wool_b, wool_n = row["size"], row["wool_bytes_s"], row["wool_numpy_s"]
    grpc_s, tcp_s = row["grpc_s"], row["tcp_s"]
    if size >= TCP_FROM:
        target = f"target <= {TCP_TARGET}x TCP: {_check(max(wool_b, wool_n) / tcp_s, TCP_TARGET)}"
    else:
        target = (
            f"target <= {GRPC_TARGET}x gRPC: {_check(max(wool_b, wool_n) / grpc_s, GRPC_TARGET)}"
        )
    return (
        f"{human(size):>8} x{row['reps']:<4} wool bytes {wool_b * 1e3:9.2f} ms  "
        f"numpy {wool_n * 1e3:9.2f} ms  gRPC {grpc_s * 1e3:9.2f} ms  TCP {tcp_s * 1e3:9.2f} ms  "
        f"bytes/gRPC {wool_b / grpc_s:5.2f}x  bytes/TCP {wool_b / tcp_s:5.2f}x  "
        f"numpy/gRPC {wool_n / grpc_s:5.2f}x  numpy/TCP {wool_n / tcp_s:5.2f}x  {target}"
    )


async def noop_latencies(stop: Callable[[], bool], limit: int | None = None) -> list[float]:
    """Sequential no-op latencies (seconds) until ``stop()`` or ``limit`` calls."""
    import routines

    samples: list[float] = []
    while not stop() and (limit is None or len(samples) < limit):
        t0 = time.perf_counter()
        await routines.noop()
        samples.append(time.perf_counter() - t0)
    return samples


def quantiles_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": percentile(ordered, 50) * 1e3,
        "p99_ms": percentile(ordered, 99) * 1e3,
        "max_ms": ordered[-1] * 1e3 if ordered else float("nan"),
        "calls": len(ordered),
    }


async def head_of_line(config: Config) -> dict[str, Any]:
    """No-op latency on one worker, idle and while a large round trip shares it."""
    import routines

    import wool

    data = np.random.default_rng(1).bytes(config.hol_bytes)
    async with wool.WorkerPool(spawn=1):
        await noop_latencies(lambda: False, 200)
        idle = await noop_latencies(lambda: False, 1000)
        busy: list[float] = []
        transfers = []
        for _ in range(config.hol_transfers):
            big = asyncio.create_task(routines.echo(data))
            t0 = time.perf_counter()
            busy += await noop_latencies(big.done)
            result = await big
            transfers.append(time.perf_counter() - t0)
            if result != data:
                raise RuntimeError(
                    f"the {human(len(data))} round trip came back changed "
                    f"({type(result).__name__} of {len(result) if result is not None else 0} bytes)"
                )
            del result
    out = {
        "size": config.hol_bytes,
        "idle": quantiles_ms(idle),
        "busy": quantiles_ms(busy),
        "transfer_s": statistics.median(transfers),
        "bound_ms": HOL_P99_BOUND_MS,
    }
    print(f"  {hol_text(out)}", flush=True)
    return out


def hol_text(out: dict[str, Any]) -> str:
    idle, busy = out["idle"], out["busy"]
    verdict = "PASS" if busy["p99_ms"] <= out["bound_ms"] else "MISS"
    return (
        f"idle: p50 {idle['p50_ms']:.3f} ms, p99 {idle['p99_ms']:.3f} ms; "
        f"during a {human(out['size'])} round trip ({out['transfer_s']:.2f} s): "
        f"p50 {busy['p50_ms']:.3f} ms, p99 {busy['p99_ms']:.3f} ms, max {busy['max_ms']:.1f} ms "
        f"over {busy['calls']} calls; bound p99 <= {out['bound_ms']:g} ms: {verdict}"
    )


async def backpressure(config: Config) -> dict[str, Any]:
    """Peak RSS of the caller and each worker per case, then RSS after idling."""
    import routines
    import routines_data

    import wool
    from wool import tuning

    results: dict[str, Any] = {}
    async with wool.WorkerPool(spawn=2) as pool:
        await asyncio.gather(*(routines.noop() for _ in range(50)))
        pids = {"caller": os.getpid()}
        pids.update({f"worker {i}": w.pid for i, w in enumerate(pool.workers)})
        gc.collect()
        tuning.trim()  # what earlier sections left in this process's heap is not this one's
        results["baseline"] = RssSampler(pids).sample()
        blob = np.random.default_rng(2).bytes(MIB)

        async def burst() -> None:
            async with asyncio.TaskGroup() as group:
                for _ in range(config.burst_calls):
                    group.create_task(routines.noop())

        async def slow_stream() -> None:
            count = 0
            async for item in routines_data.chunks(config.stream_items, config.stream_item_bytes):
                count += len(item)
                del item
                await asyncio.sleep(config.stream_delay)
            if count != config.stream_items * config.stream_item_bytes:
                raise RuntimeError("the stream came back short")

        async def mib_calls() -> None:
            sizes = await asyncio.gather(
                *(routines_data.length(blob) for _ in range(config.mib_calls))
            )
            if set(sizes) != {MIB}:
                raise RuntimeError("a 1 MiB call saw the wrong size")

        cases: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            (f"{config.burst_calls:,} concurrent no-ops", burst),
            (
                f"slow consumer, {config.stream_items} x {human(config.stream_item_bytes)}",
                slow_stream,
            ),
            (f"{config.mib_calls:,} concurrent 1 MiB calls", mib_calls),
        ]
        for name, case in cases:
            gc.collect()
            t0 = time.perf_counter()
            with RssSampler(pids) as sampler:
                await case()
            results[name] = {"peak": sampler.peak, "seconds": time.perf_counter() - t0}
            print(f"  {rss_line(name, results[name]['peak'])} ({results[name]['seconds']:.1f} s)")
        gc.collect()
        await asyncio.sleep(config.idle_s)
        idle = f"after {config.idle_s:g} s idle"
        results[idle] = {"peak": RssSampler(pids).sample()}
        print(f"  {rss_line(idle, results[idle]['peak'])}")
        print(f"  {rss_line('baseline (before the cases)', results['baseline'])}", flush=True)
    return results


def rss_line(name: str, peak: dict[str, int]) -> str:
    return f"{name:<40} " + ", ".join(f"{who} {mb(rss)}" for who, rss in peak.items())


async def scaling(config: Config) -> list[dict[str, Any]]:
    """Throughput (no-op and CPU-bound batches) and no-op p50 per worker count."""
    import routines
    import routines_data

    import wool

    rows = []
    for count in config.workers:
        async with wool.WorkerPool(spawn=count):
            await asyncio.gather(*(routines.noop() for _ in range(max(200, 20 * count))))
            await asyncio.gather(*(routines_data.spin(10) for _ in range(4 * count)))

            async def noops() -> None:
                await asyncio.gather(*(routines.noop() for _ in range(config.scale_burst)))

            async def spins() -> None:
                n = config.spin_iterations
                await asyncio.gather(
                    *(routines_data.spin(n) for _ in range(config.scale_cpu_calls))
                )

            gc.collect()
            noop_s = await timed(noops, 3)
            cpu_s = await timed(spins, 3)
            latencies = sorted(await noop_latencies(lambda: False, config.scale_latency_calls))
        row = {
            "workers": count,
            "noop_cps": config.scale_burst / noop_s,
            "cpu_cps": config.scale_cpu_calls / cpu_s,
            "p50_us": percentile(latencies, 50) * 1e6,
        }
        rows.append(row)
        print(
            f"  {count} worker(s): no-op {row['noop_cps']:,.0f} calls/s, "
            f"spin({config.spin_iterations}) {row['cpu_cps']:,.0f} calls/s, "
            f"no-op p50 {row['p50_us']:.0f} µs",
            flush=True,
        )
        reap_descendants()
    return rows


async def fanout(config: Config) -> list[dict[str, Any]]:
    """Nested ``fib(n)``: routine calls per second against the number of calls."""
    import routines

    import wool

    rows = []
    low, high = config.fib_range
    async with wool.WorkerPool(spawn=2):
        if await routines.fib(low) != _fib_value(low):
            raise RuntimeError(f"fib({low}) gave a wrong answer")
        for n in range(low, high + 1):
            calls = fib_calls(n)
            reps = 3 if calls < 2000 else 2
            gc.collect()
            seconds = await timed(partial(routines.fib, n), reps)
            rows.append({"n": n, "calls": calls, "seconds": seconds, "cps": calls / seconds})
            print(f"  fib({n}): {calls:,} calls in {seconds:.3f} s, {calls / seconds:,.0f} calls/s")
    return rows


# -- plots and summary --------------------------------------------------------------------


def plot(results: dict[str, Any], out: Path) -> list[Path]:
    """The PNG charts of whatever sections were measured; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    written = []
    rows = results.get("sweep")
    if rows:
        sizes = [r["size"] for r in rows]
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
        for key, label, style in (
            ("wool_bytes_s", "Wool, bytes", "o-"),
            ("wool_numpy_s", "Wool, numpy float64", "s-"),
            ("grpc_s", "raw gRPC stream (floor)", "^--"),
            ("tcp_s", "raw TCP echo (floor)", "v--"),
        ):
            ax.plot(sizes, [r[key] * 1e3 for r in rows], style, label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(sizes, [human(s) for s in sizes])
        ax.yaxis.set_major_formatter(plain)
        ax.set_xlabel("payload (round trip: sent and returned)")
        ax.set_ylabel("median round trip, ms")
        ax.set_title("Payload sweep: one worker, 127.0.0.1", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        written.append(_save(fig, out / "data_payload.png", plt))
    rows = results.get("scaling")
    if rows:
        counts = [r["workers"] for r in rows]
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8), dpi=100)
        left.plot(counts, [r["noop_cps"] for r in rows], "o-", label="no-op batch")
        left.plot(counts, [r["cpu_cps"] for r in rows], "s-", label="CPU-bound batch")
        left.set_yscale("log")
        left.yaxis.set_major_formatter(plain)
        left.yaxis.set_minor_formatter(NullFormatter())
        left.set_ylabel("calls/s")
        left.set_title("Throughput", fontsize=10)
        left.legend(fontsize=8)
        right.plot(counts, [r["p50_us"] for r in rows], "o-")
        right.set_ylabel("µs")
        right.set_ylim(bottom=0)
        right.set_title("Sequential no-op p50", fontsize=10)
        for ax in (left, right):
            ax.set_xscale("log", base=2)
            ax.set_xticks(counts, [str(c) for c in counts])
            ax.set_xlabel(f"workers ({os.cpu_count()} CPUs)")
            ax.grid(True, which="both", alpha=0.3)
        written.append(_save(fig, out / "data_scaling.png", plt))
    rows = results.get("fib")
    if rows:
        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        ax.plot([r["calls"] for r in rows], [r["cps"] for r in rows], "o-")
        for r in rows:
            ax.annotate(
                f"fib({r['n']})",
                (r["calls"], r["cps"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(plain)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("routine calls per fib(n)")
        ax.set_ylabel("calls/s")
        ax.set_title("Nested fan-out: fib(n) on 2 workers", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        written.append(_save(fig, out / "data_fib.png", plt))
    return written


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def summary(results: dict[str, Any]) -> str:
    """The numbers as markdown."""
    meta = results["meta"]
    lines = [
        "# Data-sized work: benchmark results",
        "",
        f"{meta['started']}, python {meta['python']}, grpcio {meta['grpcio']}, "
        f"{meta['cpus']} CPUs, load average at start {meta['load']}"
        + (" (quick run)" if meta["quick"] else "")
        + ". Written by `benchmarks/bench_data.py`.",
    ]
    if rows := results.get("sweep"):
        lines += [
            "",
            "## Payload sweep (median round trip, ms; one worker)",
            "",
            "| size | reps | Wool bytes | Wool numpy | gRPC floor | TCP floor | bytes/gRPC "
            "| bytes/TCP | numpy/gRPC | numpy/TCP | target |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for r in rows:
            b, n, g, t = r["wool_bytes_s"], r["wool_numpy_s"], r["grpc_s"], r["tcp_s"]
            worst = max(b, n)
            if r["size"] >= TCP_FROM:
                target = f"≤ {TCP_TARGET}x TCP: {_check(worst / t, TCP_TARGET)}"
            else:
                target = f"≤ {GRPC_TARGET}x gRPC: {_check(worst / g, GRPC_TARGET)}"
            lines.append(
                f"| {human(r['size'])} | {r['reps']} | {b * 1e3:.2f} | {n * 1e3:.2f} | "
                f"{g * 1e3:.2f} | {t * 1e3:.2f} | {b / g:.2f}x | {b / t:.2f}x | {n / g:.2f}x | "
                f"{n / t:.2f}x | {target} |"
            )
    if hol := results.get("hol"):
        lines += ["", "## No-op on a worker carrying a large transfer", "", hol_text(hol)]
    if bp := results.get("backpressure"):
        lines += [
            "",
            "## Backpressure: peak RSS",
            "",
            "| case | " + " | ".join(bp["baseline"]) + " |",
        ]
        lines.append("| --- |" + " ---: |" * len(bp["baseline"]))
        for name, value in bp.items():
            peak = value if name == "baseline" else value["peak"]
            label = "baseline (before the cases)" if name == "baseline" else name
            lines.append(f"| {label} | " + " | ".join(mb(v) for v in peak.values()) + " |")
    if rows := results.get("scaling"):
        lines += [
            "",
            "## Scaling",
            "",
            "| workers | no-op calls/s | CPU-bound calls/s | no-op p50 µs |",
            "| ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {r['workers']} | {r['noop_cps']:,.0f} | {r['cpu_cps']:,.0f} | {r['p50_us']:.0f} |"
            for r in rows
        ]
    if rows := results.get("fib"):
        lines += ["", "## Nested fan-out (2 workers)", "", "| n | calls | s | calls/s |"]
        lines.append("| ---: | ---: | ---: | ---: |")
        lines += [
            f"| {r['n']} | {r['calls']:,} | {r['seconds']:.3f} | {r['cps']:,.0f} |" for r in rows
        ]
    for key, error in results["errors"].items():
        lines += ["", f"**{key}: not measured**: {error}"]
    return "\n".join(lines) + "\n"


# -- main ---------------------------------------------------------------------------------


SECTIONS: list[tuple[str, str, Callable[[Config], Awaitable[Any]]]] = [
    ("sweep", "payload sweep", sweep),
    ("hol", "no-op under a transfer", head_of_line),
    ("backpressure", "backpressure: peak RSS", backpressure),
    ("scaling", "scaling with workers", scaling),
    ("fib", "nested fan-out", fanout),
]


async def run(config: Config, only: list[str], results: dict[str, Any]) -> None:
    """Every section asked for, in order; a failure is recorded and the next runs."""
    for key, title, measure in SECTIONS:
        if key not in only:
            continue
        with section(title, results["errors"], key):
            results[key] = await measure(config)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, no 256 MiB: a smoke run")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="output folder")
    parser.add_argument(
        "--only", default=",".join(k for k, *_ in SECTIONS), help="comma-separated sections"
    )
    parser.add_argument("--deadline", type=float, help="hard limit on the whole run, seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the sections, print them, write the charts and the summary."""
    args = parse_args(argv)
    config = QUICK if args.quick else Config()
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - {k for k, *_ in SECTIONS}
    if unknown:
        print(f"unknown sections: {sorted(unknown)}", file=sys.stderr)
        return 2
    _setup_paths()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "meta": {
            "started": time.strftime("%Y-%m-%d %H:%M %Z"),
            "python": platform.python_version(),
            "grpcio": grpc.__version__,
            "numpy": np.__version__,
            "cpus": os.cpu_count(),
            "load": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
            "quick": args.quick,
        },
        "errors": {},
    }
    print(
        f"wool data benchmark: python {results['meta']['python']}, grpcio {grpc.__version__}, "
        f"{os.cpu_count()} CPUs, load {results['meta']['load']}"
        + (" (quick)" if args.quick else ""),
        flush=True,
    )
    started = time.perf_counter()
    try:
        with Watchdog(args.deadline or config.deadline):
            asyncio.run(run(config, only, results))
    finally:
        leftovers = reap_descendants()
        if leftovers:
            print(f"stopped leftover processes {leftovers}", file=sys.stderr)
    results["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    written = plot(results, args.out)
    (args.out / "data.md").write_text(summary(results))
    (args.out / "data.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    files = [*written, args.out / "data.md", args.out / "data.json"]
    print(f"\nwrote {', '.join(str(p) for p in files)}")
    print(f"total {results['meta']['seconds']:.0f} s")
    return 2 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
