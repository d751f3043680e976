"""The no-op latency from a Jupyter kernel cell, with a kernel from each system's venv.

A kernel spec under ``<scratch>/kernels/<system>`` points at that virtualenv's Python
(``python -m ipykernel_launcher``); ``jupyter_client`` from the harness's environment
starts it on 127.0.0.1. One cell starts the system's two-worker cluster on the kernel's
own event loop, times the sequential no-ops (:func:`workload.kernel_latency`), stops the
cluster and prints one :data:`workload.MARK` line, so Jupyter's messaging is not counted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import workload

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kernel_latency import run_cell

#: Bound on the kernel starting and answering its first request.
START_TIMEOUT = 120.0


def write_spec(root: Path, name: str, python: Path) -> Path:
    """Write the kernel spec for ``name``; return the folder holding every spec."""
    kernels = root / "kernels"
    spec = kernels / name
    spec.mkdir(parents=True, exist_ok=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": f"peers {name}", "language": "python"})
    )
    return kernels


def cell(peers_dir: Path, module: str, target: str, warmup: int, calls: int) -> str:
    """The code of the measuring cell."""
    return (
        "import json, sys\n"
        f"sys.path.insert(0, {str(peers_dir)!r})\n"
        f"import workload, {module}\n"
        f"_adapter = {module}.ADAPTERS[{target!r}]()\n"
        f"_r = await workload.kernel_latency(_adapter, {warmup}, {calls})\n"
        "print(workload.MARK + json.dumps(_r))\n"
    )


def measure(
    *,
    root: Path,
    peers_dir: Path,
    name: str,
    python: Path,
    module: str,
    target: str,
    warmup: int,
    calls: int,
    env: dict[str, str],
    timeout: float,
    log: Path,
) -> dict[str, Any]:
    """Start a kernel from ``python``, run the measuring cell, shut the kernel down."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    specs = write_spec(root, name, python)
    km = KernelManager(
        kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(specs)])
    )
    km.ip = "127.0.0.1"
    kc = None
    try:
        with log.open("a") as out:
            km.start_kernel(env=env, cwd=str(root), stdout=out, stderr=out)
        kc = km.blocking_client()
        kc.start_channels()
        kc.wait_for_ready(timeout=START_TIMEOUT)
        text = run_cell(kc, km, cell(peers_dir, module, target, warmup, calls), timeout)
        for line in text.splitlines():
            if line.startswith(workload.MARK):
                return dict(json.loads(line[len(workload.MARK) :]))
        raise RuntimeError(f"the kernel cell printed no measurement: {text[-500:]!r}")
    finally:
        if kc is not None:
            kc.stop_channels()
        km.shutdown_kernel(now=True)
