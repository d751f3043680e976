"""No-op latency from a Jupyter kernel cell, against the same call from this script.

``bench_dispatch.py --kernel`` runs this after its rounds. It starts one ``python3``
kernel through ``jupyter_client`` (a child of this process, on 127.0.0.1), loads the
extension and runs ``%wool start -n 2`` there with the widget off. Each round then times
the same sequential ``await routines.noop()`` loop (:func:`time_noops`, the code the main
benchmark's latency measurement uses) in three places, in an order that rotates from
round to round:

* ``script``: this process, inside ``async with wool.WorkerPool(spawn=2)``;
* ``kernel``: a kernel cell, on the kernel's own event loop, without the widget;
* ``kernel+widget``: the same cell while the live mesh widget is displayed and polling.

The kernel cell times itself and prints one line starting with :data:`MARK` followed by
JSON, which this side parses, so the numbers exclude Jupyter's messaging. The target is
kernel p50 ≤ 1.3x script p50; the widget's cost is reported as kernel+widget / kernel.

The kernel imports this module and ``routines`` through ``PYTHONPATH`` (set by
``bench_dispatch.py``), so the workers it spawns import ``routines`` by reference exactly
as the script's do.
"""

from __future__ import annotations

import asyncio
import gc
import json
import queue
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

#: Start of the line a kernel cell prints with its measurement.
MARK = "WOOL_KERNEL_LATENCY "
#: Bound on starting the kernel, and on each setup cell.
START_TIMEOUT = 60.0
#: The three places the no-op is timed from, in the order of the first round.
PLACES = ("script", "kernel", "kernel+widget")
#: Target for kernel p50 / script p50.
KERNEL_FACTOR = 1.3


async def time_noops(noop: Callable[[], Awaitable[None]], warmup: int, calls: int) -> list[int]:
    """``calls`` sequential no-op round trips after ``warmup`` untimed ones, in nanoseconds."""
    for _ in range(warmup):
        await noop()
    gc.collect()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        t0 = clock()
        await noop()
        samples.append(clock() - t0)
    return samples


def summarize(samples: list[int]) -> dict[str, float]:
    """p50/p90/p99 of nanosecond samples, in microseconds."""
    from bench_dispatch import percentile

    ordered = sorted(samples)
    return {f"p{q}_us": percentile(ordered, q) / 1e3 for q in (50, 90, 99)}


async def script_latency(warmup: int, calls: int, workers: int = 2) -> dict[str, float]:
    """The no-op from this process, on a fresh ``WorkerPool(spawn=workers)``."""
    import routines

    import wool

    async with wool.WorkerPool(spawn=workers):
        return summarize(await time_noops(routines.noop, warmup, calls))


def kernel_cell(warmup: int, calls: int) -> str:
    """The cell that measures inside the kernel and prints the :data:`MARK` line."""
    return (
        "import routines, kernel_latency\n"
        f"_samples = await kernel_latency.time_noops(routines.noop, {warmup}, {calls})\n"
        "print(kernel_latency.MARK + json.dumps(kernel_latency.summarize(_samples)))\n"
    )


class KernelSession:
    """One kernel with ``%wool start -n 2`` done; runs cells and reads their output."""

    def __init__(self, workers: int = 2, timeout: float = 300.0) -> None:
        self.workers = workers
        self.timeout = timeout
        self._km: Any = None
        self._kc: Any = None
        self._widget_shown = False

    def start(self) -> KernelSession:
        from jupyter_client import KernelManager

        self._km = KernelManager(kernel_name="python3")
        self._km.start_kernel()
        self._kc = self._km.blocking_client()
        self._kc.start_channels()
        self._kc.wait_for_ready(timeout=START_TIMEOUT)
        self.run("import json\n%load_ext wool\n%config Wool.show_widget = False", START_TIMEOUT)
        self.run(f"%wool start -n {self.workers}", START_TIMEOUT)
        return self

    def run(self, code: str, timeout: float | None = None) -> str:
        """Run ``code``; return its stdout. Raises on an error or past ``timeout``."""
        limit = self.timeout if timeout is None else timeout
        return run_cell(self._kc, self._km, code, limit)

    def latency(self, warmup: int, calls: int) -> dict[str, float]:
        """Run :func:`kernel_cell` and parse its measurement."""
        text = self.run(kernel_cell(warmup, calls))
        for line in text.splitlines():
            if line.startswith(MARK):
                return json.loads(line[len(MARK) :])
        raise RuntimeError(f"the kernel cell printed no measurement: {text!r}")

    def widget(self, shown: bool) -> None:
        """Display the live widget (it polls until stopped), or stop the one displayed."""
        if shown == self._widget_shown:
            return
        if shown:
            self.run("%wool widget")
        else:
            self.run("get_ipython().find_line_magic('wool').__self__.backend.widget().stop()")
        self._widget_shown = shown

    def close(self) -> None:
        """Stop the mesh and shut the kernel down (bounded); its processes are reaped
        by PID afterwards in any case."""
        if self._kc is not None:
            try:
                self.run("%wool stop", 30.0)
            except Exception:
                pass
            self._kc.stop_channels()
        if self._km is not None:
            self._km.shutdown_kernel(now=True)


def measure(rounds: int, warmup: int, calls: int, timeout: float) -> dict[str, Any]:
    """Every round of the three places; returns per-round numbers, medians and ratios."""
    session = KernelSession(timeout=timeout).start()
    per_round: list[dict[str, dict[str, float]]] = []
    try:
        for index in range(rounds):
            shift = index % len(PLACES)
            order = PLACES[shift:] + PLACES[:shift]
            this_round: dict[str, dict[str, float]] = {}
            print(f"kernel round {index + 1}/{rounds}: ", end="", flush=True)
            for place in order:
                if place == "script":
                    result = asyncio.run(script_latency(warmup, calls))
                else:
                    session.widget(place == "kernel+widget")
                    result = session.latency(warmup, calls)
                this_round[place] = result
                print(f"{place} p50 {result['p50_us']:.0f} µs", end="  ", flush=True)
            session.widget(False)
            per_round.append(this_round)
            print(flush=True)
    finally:
        session.close()
    medians = {
        place: {
            key: statistics.median(r[place][key] for r in per_round) for key in per_round[0][place]
        }
        for place in PLACES
    }
    script, kernel, widget = (medians[p]["p50_us"] for p in PLACES)
    return {
        "rounds": per_round,
        "medians": medians,
        "kernel_over_script": kernel / script,
        "widget_over_kernel": widget / kernel,
        "target": f"kernel p50 ≤ {KERNEL_FACTOR}x script p50",
        "result": "PASS" if kernel <= KERNEL_FACTOR * script else "MISS",
    }


def render(report: dict[str, Any]) -> str:
    """The kernel section of the results table."""
    medians = report["medians"]
    lines = [
        f"kernel no-op latency, medians of {len(report['rounds'])} round(s) (µs):",
        f"  {'from':<14} {'p50':>7} {'p90':>7} {'p99':>7}",
    ]
    for place in PLACES:
        m = medians[place]
        lines.append(f"  {place:<14} {m['p50_us']:>7.0f} {m['p90_us']:>7.0f} {m['p99_us']:>7.0f}")
    lines.append(
        f"  kernel / script p50 = {report['kernel_over_script']:.2f}x "
        f"(target ≤ {KERNEL_FACTOR}x: {report['result']}); "
        f"kernel+widget / kernel p50 = {report['widget_over_kernel']:.2f}x"
    )
    return "\n".join(lines)


def run_cell(kc: Any, km: Any, code: str, timeout: float) -> str:
    """Execute ``code`` in a kernel; its stdout. Raises on an error, interrupts past ``timeout``."""
    msg_id = kc.execute(code)
    deadline = time.monotonic() + timeout
    out: list[str] = []
    error: str | None = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            km.interrupt_kernel()
            raise TimeoutError(f"kernel cell took over {timeout:g} s: {code.splitlines()[0]}")
        try:
            msg = kc.get_iopub_msg(timeout=min(left, 1.0))
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream" and content["name"] == "stdout":
            out.append(content["text"])
        elif kind == "error":
            error = f"{content['ename']}: {content['evalue']}"
        elif kind == "status" and content["execution_state"] == "idle":
            break
    if error is not None:
        raise RuntimeError(f"kernel cell failed: {error}")
    return "".join(out)
