"""The workloads every peer script runs, through one small adapter interface.

Each ``run_*.py`` script defines an adapter per system (:class:`Adapter`) and calls
:func:`main`, which runs every workload on a fresh two-worker cluster and prints one line,
:data:`MARK` followed by JSON, that ``bench_peers.py`` reads. A Jupyter kernel cell calls
:func:`kernel_latency` instead. Only the standard library is imported here: this module
runs in every system's own virtualenv.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

#: Start of the line a script (or a kernel cell) prints with its measurements.
MARK = "PEERS_RESULT "
#: Bound on starting a cluster, on closing it, and on every single workload step.
STEP_TIMEOUT = 240.0


class Adapter(Protocol):
    """One system, driven through its idiomatic async API, with two workers on 127.0.0.1."""

    name: str
    #: Why nested ``fib`` is not run on this system, or ``None`` when it is.
    no_nesting: str | None

    def versions(self) -> dict[str, str]:
        """Package versions that matter for this system."""
        ...

    async def start(self) -> None:
        """Start the cluster (the caller times it, together with the first no-op)."""
        ...

    async def noop(self) -> None:
        """One no-op call on a worker."""
        ...

    async def echo(self, data: bytes) -> bytes:
        """Send ``data`` to a worker and return what came back."""
        ...

    async def burst(self, count: int) -> None:
        """``count`` no-op calls, all in flight at once."""
        ...

    async def fib(self, n: int) -> int:
        """Nested ``fib(n)``: every call above 1 makes two more calls on the workers."""
        ...

    async def close(self) -> None:
        """Stop everything ``start`` started and wait until its processes are gone."""
        ...


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How many calls each workload makes."""

    warmup: int = 200
    latency_calls: int = 2000
    burst: int = 5000
    burst_reps: int = 3
    mib_calls: int = 20
    big_calls: int = 3
    big_bytes: int = 64 << 20
    fib_n: int = 12
    fib_reps: int = 3


SIZES = {
    "full": Sizes(),
    "quick": Sizes(
        warmup=50, latency_calls=300, burst=1000, burst_reps=1, mib_calls=5, big_calls=1
    ),
    "tiny": Sizes(
        warmup=5,
        latency_calls=30,
        burst=40,
        burst_reps=1,
        mib_calls=2,
        big_calls=1,
        big_bytes=4 << 20,
        fib_n=5,
        fib_reps=1,
    ),
}


def fib_value(n: int) -> int:
    """``fib(n)`` computed locally, to check the nested result."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def fib_calls(n: int) -> int:
    """Calls a nested ``fib(n)`` makes, counting itself: ``2 * F(n + 1) - 1``."""
    return 2 * fib_value(n + 1) - 1


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of sorted values, linearly interpolated."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def median(values: list[float]) -> float:
    """The median of ``values`` (``nan`` when empty)."""
    ordered = sorted(values)
    return percentile(ordered, 50) if ordered else math.nan


async def time_noops(noop: Callable[[], Awaitable[None]], warmup: int, calls: int) -> list[int]:
    """``calls`` sequential no-ops after ``warmup`` untimed ones, each in nanoseconds."""
    for _ in range(warmup):
        await noop()
    gc.collect()
    clock = time.perf_counter_ns
    samples = []
    for _ in range(calls):
        t0 = clock()
        await noop()
        samples.append(clock() - t0)
    return samples


def latency_summary(samples: list[int]) -> dict[str, float]:
    """p50/p90/p99 of nanosecond samples, in microseconds."""
    ordered = sorted(samples)
    return {f"noop_p{q}_us": percentile(ordered, q) / 1e3 for q in (50, 90, 99)}


async def _round_trips(adapter: Adapter, size: int, calls: int) -> float:
    """Median milliseconds of ``calls`` round trips of ``size`` random bytes."""
    data = os.urandom(size)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        back = await adapter.echo(data)
        times.append(time.perf_counter() - t0)
        if len(back) != size or back != data:
            raise RuntimeError(f"echo of {size} bytes came back different")
    return median(times) * 1e3


async def measure(adapter: Adapter, sizes: Sizes) -> dict[str, Any]:
    """Every workload on one fresh cluster; a workload that fails is recorded, not fatal."""
    result: dict[str, Any] = {"name": adapter.name, "errors": {}, "notes": {}}

    async def step(key: str, work: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        try:
            async with asyncio.timeout(STEP_TIMEOUT):
                result.update(await work())
        except Exception as exc:
            result["errors"][key] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)

    async def warm_and_latency() -> dict[str, Any]:
        samples = await time_noops(adapter.noop, sizes.warmup, 0)
        await adapter.burst(min(sizes.burst, 200))
        samples = await time_noops(adapter.noop, 0, sizes.latency_calls)
        return latency_summary(samples)

    async def throughput() -> dict[str, Any]:
        rates = []
        for _ in range(sizes.burst_reps):
            t0 = time.perf_counter()
            await adapter.burst(sizes.burst)
            rates.append(sizes.burst / (time.perf_counter() - t0))
        return {"throughput_cps": median(rates)}

    async def payloads() -> dict[str, Any]:
        return {"mib_ms": await _round_trips(adapter, 1 << 20, sizes.mib_calls)}

    async def big_payloads() -> dict[str, Any]:
        return {"big_ms": await _round_trips(adapter, sizes.big_bytes, sizes.big_calls)}

    async def nested() -> dict[str, Any]:
        await adapter.fib(2)  # untimed: lets a system set up what nesting needs
        rates = []
        for _ in range(sizes.fib_reps):
            t0 = time.perf_counter()
            value = await adapter.fib(sizes.fib_n)
            rates.append(fib_calls(sizes.fib_n) / (time.perf_counter() - t0))
            if value != fib_value(sizes.fib_n):
                raise RuntimeError(f"fib({sizes.fib_n}) returned {value!r}")
        return {"fib_tasks_per_s": median(rates)}

    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(STEP_TIMEOUT):
            await adapter.start()
            await adapter.noop()
        result["cold_start_s"] = time.perf_counter() - t0
        result["versions"] = adapter.versions()
        await step("latency", warm_and_latency)
        await step("throughput", throughput)
        await step("mib", payloads)
        await step("big", big_payloads)
        if adapter.no_nesting is None:
            await step("fib", nested)
        else:
            result["notes"]["fib"] = adapter.no_nesting
    except Exception as exc:
        result["errors"]["start"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc(file=sys.stderr)
    finally:
        try:
            async with asyncio.timeout(STEP_TIMEOUT):
                await adapter.close()
        except Exception as exc:
            result["errors"]["close"] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)
    return result


async def kernel_latency(adapter: Adapter, warmup: int, calls: int) -> dict[str, Any]:
    """The no-op latency workload alone, for a Jupyter kernel cell (the kernel's loop)."""
    try:
        async with asyncio.timeout(STEP_TIMEOUT):
            await adapter.start()
            samples = await time_noops(adapter.noop, warmup, calls)
        return {"name": adapter.name, **latency_summary(samples)}
    finally:
        async with asyncio.timeout(STEP_TIMEOUT):
            await adapter.close()


def main(adapters: dict[str, Callable[[], Adapter]]) -> None:
    """Command line of every ``run_*.py``: ``--target NAME --sizes full|quick|tiny``."""
    parser = argparse.ArgumentParser(description="Run the peer workloads on one system.")
    parser.add_argument("--target", choices=sorted(adapters), default=next(iter(adapters)))
    parser.add_argument("--sizes", choices=sorted(SIZES), default="full")
    args = parser.parse_args()
    result = asyncio.run(measure(adapters[args.target](), SIZES[args.sizes]))
    result["sizes"] = args.sizes
    print(MARK + json.dumps(result), flush=True)
    # Skip interpreter teardown: some runtimes' threads make it slow; the harness waits.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
