"""Wool beside Ray, Dask, ipyparallel, the original wool and the floors: one command.

    python benchmarks/peers/bench_peers.py                 # what `make bench-peers` runs
    python benchmarks/peers/bench_peers.py --sizes tiny --passes 1 --only wool,tcp

Each system's script (``run_*.py``) runs in that system's own virtualenv (``envs.py``,
created and pinned by this script under ``$WOOL_PEERS_DIR`` or ``/tmp/wool-peers``), in a
process of its own, one system after another, for ``--passes`` passes in an order that
rotates from pass to pass; then the no-op latency from a Jupyter kernel cell per system
(``kernels.py``). This project and the floors use the interpreter running this script.
It writes ``peers.json``, ``peers.md`` and the charts into ``--out`` (``report.py``,
``charts.py``). See ``benchmarks/README.md``.

Every process a system starts is this script's descendant: the script makes itself the
child subreaper, so even a daemon that detaches (Ray's, ipyparallel's engines) stays
under it. After each system it waits for its descendants to exit (bounded), stops any
left by PID and records them in the results.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import envs
import kernels
import report
import workload

PEERS_DIR = Path(__file__).resolve().parent
REPO = PEERS_DIR.parent.parent
DEFAULT_OUT = PEERS_DIR.parent / "results"
#: Bound on one system's whole script (all its workloads, start and stop).
RUN_TIMEOUT = 900.0
#: Bound on waiting for a system's processes to exit by themselves after its script.
SETTLE_TIMEOUT = 20.0
PR_SET_CHILD_SUBREAPER = 36


@dataclasses.dataclass(frozen=True)
class System:
    """One column: which venv (``None``: this interpreter), script and adapter."""

    name: str
    env: str | None
    module: str
    floor: bool = False
    kernel: bool = True


SYSTEMS = [
    System("wool", None, "run_wool"),
    System("wool-pypi", "wool-pypi", "run_wool_pypi"),
    System("ray", "ray", "run_ray"),
    System("dask", "dask", "run_dask"),
    System("ipyparallel", "ipyparallel", "run_ipyparallel"),
    System("pool", None, "run_floors", floor=True, kernel=False),
    System("grpc", None, "run_floors", floor=True, kernel=False),
    System("tcp", None, "run_floors", floor=True, kernel=False),
]


def become_subreaper() -> bool:
    """Make orphaned descendants reparent to this process (Linux); ``False`` elsewhere."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def descendants() -> list[Any]:
    """Live descendants of this process (psutil processes); zombies are reaped."""
    import psutil

    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                with contextlib.suppress(psutil.Error):
                    child.wait(0)
                continue
            found.append(child)
        except psutil.Error:
            continue
    return found


def settle(timeout: float) -> list[str]:
    """Wait for every descendant to exit; stop survivors by PID; describe them."""
    import psutil

    deadline = time.monotonic() + timeout
    while (left := descendants()) and time.monotonic() < deadline:
        psutil.wait_procs(left, timeout=min(1.0, max(0.0, deadline - time.monotonic())))
    left = descendants()
    described = []
    for proc in left:
        with contextlib.suppress(psutil.Error):
            described.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
            proc.terminate()
    _, alive = psutil.wait_procs(left, timeout=5.0)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5.0)
    return described


def child_env(root: Path) -> dict[str, str]:
    """The environment of every system's process: this folder importable, state in scratch."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(PEERS_DIR),
        WOOL_PEERS_DIR=str(root),
        IPYTHONDIR=str(root / "ipython"),
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONUNBUFFERED="1",
    )
    env.pop("VIRTUAL_ENV", None)
    return env


def python_for(system: System, root: Path) -> Path:
    """The interpreter ``system`` runs with, its venv created first when needed."""
    return Path(sys.executable) if system.env is None else envs.ensure(system.env, root)


def run_system(system: System, python: Path, sizes: str, root: Path, log: Path) -> dict[str, Any]:
    """Run ``system``'s script once; return its result (``errors`` says what failed)."""
    script = PEERS_DIR / f"{system.module}.py"
    command = [str(python), str(script), "--target", system.name, "--sizes", sizes]
    started = time.perf_counter()
    with log.open("a") as err:
        err.write(f"\n==== {system.name} {datetime.datetime.now(datetime.UTC).isoformat()}\n")
        err.flush()
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=child_env(root),
            cwd=str(root),
            text=True,
        )
        try:
            out, _ = proc.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate(timeout=30)
            result: dict[str, Any] = {"errors": {"run": f"timed out after {RUN_TIMEOUT:g} s"}}
        else:
            result = {"errors": {"run": f"no result (exit status {proc.returncode})"}}
    for line in out.splitlines():
        if line.startswith(workload.MARK):
            result = json.loads(line[len(workload.MARK) :])
    result["name"] = system.name
    result["wall_s"] = time.perf_counter() - started
    leftovers = settle(SETTLE_TIMEOUT)
    if leftovers:
        result["leftovers"] = leftovers
    return result


def run_kernel(
    system: System, python: Path, sizes: workload.Sizes, root: Path, log: Path
) -> dict[str, Any]:
    """The kernel cell's no-op latency for ``system``; errors are recorded."""
    try:
        result = kernels.measure(
            root=root,
            peers_dir=PEERS_DIR,
            name=system.name,
            python=python,
            module=system.module,
            target=system.name,
            warmup=sizes.warmup,
            calls=sizes.latency_calls,
            env=child_env(root),
            timeout=RUN_TIMEOUT,
            log=log,
        )
    except Exception as exc:
        result = {"name": system.name, "error": f"{type(exc).__name__}: {exc}"}
    leftovers = settle(SETTLE_TIMEOUT)
    if leftovers:
        result["leftovers"] = leftovers
    return result


def wait_quiet(max_load: float, until: float, quiet: bool = False) -> dict[str, Any]:
    """Poll the 1-minute load average until it is below ``max_load`` or ``until`` passes."""
    first = os.getloadavg()[0]
    while (load := os.getloadavg()[0]) >= max_load and time.time() < until:
        if not quiet:
            print(f"load {load:.2f} >= {max_load}: waiting", flush=True)
        time.sleep(min(10.0, max(1.0, until - time.time())))
    return {"load_before_wait": first, "load_at_start": load, "quiet": load < max_load}


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, IndexError, ValueError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def commit() -> str:
    """This checkout's commit (with ``+dirty`` when it has changes), or ``unknown``."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    names = [s.name for s in SYSTEMS]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=2, help="passes over every system")
    parser.add_argument("--sizes", choices=sorted(workload.SIZES), default="full")
    parser.add_argument("--only", default=",".join(names), help=f"subset of {names}")
    parser.add_argument("--no-kernel", action="store_true", help="skip the kernel cells")
    parser.add_argument("--no-charts", action="store_true", help="skip the PNG charts")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    parser.add_argument("--max-load", type=float, default=1.5, help="wait for load below")
    parser.add_argument(
        "--quiet-wait", type=float, default=600.0, help="longest wait for it (seconds)"
    )
    parser.add_argument(
        "--system-wait",
        type=float,
        default=60.0,
        help="longest wait for the load to fall before each system (seconds)",
    )
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(names)
    if unknown:
        parser.error(f"unknown systems: {sorted(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = envs.scratch_dir()
    root.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    systems = [s for s in SYSTEMS if s.name in args.only.split(",")]
    if not become_subreaper():
        print("warning: could not become the child subreaper", file=sys.stderr)
    pythons = {s.name: python_for(s, root) for s in systems}
    sizes = workload.SIZES[args.sizes]
    log = root / "bench-peers.log"
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "commit": commit(),
        "sizes": args.sizes,
        "sizes_detail": dataclasses.asdict(sizes),
        "pins": {s.name: envs.PINS[s.env] for s in systems if s.env is not None},
        "floors": [s.name for s in systems if s.floor],
        "passes": [],
        "kernel_passes": [],
    }
    results.update(wait_quiet(args.max_load, time.time() + args.quiet_wait))
    print(f"load {results['load_at_start']:.2f}; stderr of every system: {log}", flush=True)
    for index in range(args.passes):
        order = systems[index % len(systems) :] + systems[: index % len(systems)]
        this_pass: dict[str, Any] = {}
        for system in order:
            print(f"pass {index + 1}/{args.passes}: {system.name} ...", end=" ", flush=True)
            load = wait_quiet(args.max_load, time.time() + args.system_wait, quiet=True)
            result = run_system(system, pythons[system.name], args.sizes, root, log)
            result["load"] = load["load_at_start"]
            this_pass[system.name] = result
            print(report.one_line(result), flush=True)
        results["passes"].append(this_pass)
        if not args.no_kernel:
            kernel_pass: dict[str, Any] = {}
            for system in [s for s in order if s.kernel]:
                print(f"pass {index + 1}: kernel {system.name} ...", end=" ", flush=True)
                wait_quiet(args.max_load, time.time() + args.system_wait, quiet=True)
                kernel_pass[system.name] = run_kernel(
                    system, pythons[system.name], sizes, root, log
                )
                print(report.one_line(kernel_pass[system.name]), flush=True)
            results["kernel_passes"].append(kernel_pass)
    results["load_at_end"] = os.getloadavg()[0]
    (args.out / "peers.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "peers.md").write_text(report.render(results))
    print(f"wrote {args.out / 'peers.md'}")
    if not args.no_charts:
        charts_python = envs.ensure("charts", root)
        subprocess.run(
            [str(charts_python), str(PEERS_DIR / "charts.py"), str(args.out / "peers.json")],
            check=True,
            timeout=300,
        )
    failed = [
        name
        for run in results["passes"]
        for name, result in run.items()
        if result.get("errors") or result.get("leftovers")
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
