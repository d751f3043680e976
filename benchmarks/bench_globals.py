"""What reading globals costs a by-value routine, and the price of seeing them current.

A routine defined in ``__main__`` (a notebook, a script) goes by value; since
issue 10 each call carries the current values of the globals it reads. Rows:

* ``base``: a no-op by-value routine reading no globals, on the session-start
  code (``--base``, a tree extracted with
  ``git archive f5636d1 | tar -x -C /tmp/wool-base``).
* ``none``: the same routine on this tree. Must stay within 3% of ``base``.
* ``five``: a no-op reading five small globals (four immutable, one small dict,
  which is pickled again at every call to notice mutation).
* ``array``: a routine reading an unchanged 100 MB numpy array (skipped with a
  message when numpy is absent); after the turns the worker reports the bytes
  of values sent to it, proving the array went once.

As ``ladder.py`` does, each row runs in a driver process of its own, all up
at once, taking turns of sequential calls in rotating order, so a shared
machine's drift hits every row alike; each round starts fresh processes, and
the table shows medians over rounds.

    python benchmarks/bench_globals.py                  # 3 rounds x 30 turns x 200 calls
    python benchmarks/bench_globals.py --rows base,none --rounds 5
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
ROOT = HERE.parent
ROWS = ("base", "none", "five", "array")
WARMUP = 300
ARRAY_BYTES = 100 * 10**6
ARRAY_CALLS = 5
STEP_TIMEOUT = 120.0

# -- driver side: one row, in its own process; its routines live in __main__ --------

A, B, C, D = 7, 2.5, "label", (1, 2, 3)
E: dict[str, int] = {"k": 1}
ARRAY = None


async def _setup(
    row: str,
) -> tuple[Callable[[], Awaitable[object]], Callable[[], Awaitable[object]]]:
    """(one call, the worker's value-cache figures) for ``row``."""
    import wool

    global ARRAY

    @wool.routine
    async def noop() -> None:
        return None

    @wool.routine
    async def five() -> object:
        return A if B and C and D and E else None

    @wool.routine
    async def array() -> object:
        return ARRAY.shape  # type: ignore[attr-defined]

    @wool.routine
    async def figures() -> object:
        try:
            from wool.callglobals import values
        except ImportError:  # a base tree from before the move
            from wool.codec import values  # type: ignore[attr-defined,no-redef]

        return {"offered": values.offered, "hits": values.hits}

    for made in (noop, five, array, figures):
        made.__qualname__ = made.__name__  # a notebook's routines: __main__, no <locals>
    if row == "array":
        import numpy

        ARRAY = numpy.ones(ARRAY_BYTES // 8)
    return {"base": noop, "none": noop, "five": five, "array": array}[row], figures


async def drive(row: str) -> None:
    """Serve turns on stdin: a line N runs N timed calls and prints their times (ns)."""
    import wool

    one, figures = await _setup(row)
    pool = wool.WorkerPool(spawn=1)
    await pool.__aenter__()
    loop = asyncio.get_running_loop()
    try:
        for _ in range(ARRAY_CALLS if row == "array" else WARMUP):
            await one()
        print(json.dumps({"ready": wool.__file__}), flush=True)
        while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            if line == "figures":
                print(json.dumps(await figures()), flush=True)
                continue
            times = []
            for _ in range(int(line)):
                started = time.perf_counter_ns()
                await one()
                times.append(time.perf_counter_ns() - started)
            print(json.dumps(times), flush=True)
    finally:
        await pool.__aexit__(None, None, None)


# -- coordinator ----------------------------------------------------------------------


def _environment(row: str, base: Path) -> dict[str, str]:
    env = dict(os.environ)
    tree = base if row == "base" else ROOT
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    env.setdefault("GRPC_VERBOSITY", "ERROR")
    return env


def measure(
    rows: list[str], turns: int, calls: int, base: Path
) -> tuple[dict[str, list[int]], dict[str, object]]:
    drivers: dict[str, subprocess.Popen[str]] = {}
    times: dict[str, list[int]] = {row: [] for row in rows}
    figures: dict[str, object] = {}
    try:
        for row in rows:
            proc = subprocess.Popen(
                [sys.executable, __file__, "--row", row],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=_environment(row, base),
                cwd=str(base if row == "base" else ROOT),
            )
            drivers[row] = proc
            assert proc.stdout is not None
            ready = json.loads(proc.stdout.readline() or "{}").get("ready", "")
            want = base if row == "base" else ROOT
            if not ready.startswith(str(want)):
                raise RuntimeError(f"row {row} did not start on {want} (wool from {ready!r})")
        for turn in range(turns):
            shift = turn % len(rows)
            for row in rows[shift:] + rows[:shift]:
                proc = drivers[row]
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write(f"{ARRAY_CALLS if row == 'array' else calls}\n")
                proc.stdin.flush()
                times[row].extend(json.loads(proc.stdout.readline()))
        if "array" in drivers:
            proc = drivers["array"]
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("figures\n")
            proc.stdin.flush()
            figures = json.loads(proc.stdout.readline())
            figures["calls"] = ARRAY_CALLS * (turns + 1)
    finally:
        for proc in drivers.values():
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in drivers.values():
            try:
                proc.wait(STEP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STEP_TIMEOUT)
    return times, figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes each (default 3)")
    parser.add_argument("--turns", type=int, default=30, help="turns per row (default 30)")
    parser.add_argument("--calls", type=int, default=200, help="calls per turn (default 200)")
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated subset")
    parser.add_argument("--base", type=Path, default=Path("/tmp/wool-base"))
    parser.add_argument("--row", help=argparse.SUPPRESS)  # driver mode
    args = parser.parse_args(argv)
    if args.row:
        asyncio.run(drive(args.row))
        return 0
    rows = [r for r in args.rows.split(",") if r]
    if "base" in rows and not (args.base / "wool" / "codec.py").exists():
        print(f"base row skipped: no tree at {args.base} (see the docstring)")
        rows.remove("base")
    if "array" in rows:
        try:
            import numpy  # noqa: F401
        except ImportError:
            print("array row skipped: numpy is not installed (pip install numpy)")
            rows.remove("array")
    started = time.perf_counter()
    rounds: list[dict[str, float]] = []
    shown: dict[str, object] = {}
    for number in range(1, args.rounds + 1):
        times, figures = measure(rows, args.turns, args.calls, args.base)
        rounds.append({row: statistics.median(v) / 1000 for row, v in times.items()})
        shown = figures or shown
        print(
            f"round {number}: "
            + ", ".join(f"{r} {p:.1f}" for r, p in rounds[-1].items())
            + " µs p50",
            flush=True,
        )
    print(f"{'row':<8} {'p50 µs':>10} {'/ base':>8}")
    for row in rows:
        p50 = statistics.median(r[row] for r in rounds)
        ratio = (
            f"{statistics.median(r[row] / r['base'] for r in rounds):.3f}x"
            if "base" in rows
            else "-"
        )
        print(f"{row:<8} {p50:10.1f} {ratio:>8}")
    if shown:
        print(
            f"array: the worker was sent {shown['offered']} bytes of values in "
            f"{shown['calls']} calls of its last round (the array pickles to "
            f"{ARRAY_BYTES} bytes); value-cache hits {shown['hits']}"
        )
    print(
        f"medians of {args.rounds} rounds of {args.turns} turns x {args.calls} calls per row "
        f"({ARRAY_CALLS} for array), interleaved; {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
