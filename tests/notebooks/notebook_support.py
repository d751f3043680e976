"""Shared helpers for the notebook tests: run a notebook, read its outputs, find workers.

The kernel is started by ``notebooks/run.py`` (the same code ``make demo``
uses), loaded here as the module ``notebook_runner``. Workers are found by
their command line: ``python -m wool.worker --owner PID``, where PID is the
kernel that spawned them, so only this test's workers are ever looked at.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

import psutil
import pytest
from nbformat import NotebookNode

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
WORKERS_EXIT_TIMEOUT = 15.0


def _load_runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("notebook_runner", NOTEBOOKS / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


runner = _load_runner()


def notebook_paths() -> list[Path]:
    """Every notebook shipped in ``notebooks/``."""
    return sorted(NOTEBOOKS.glob("*.ipynb"))


DURABLE_MARK = "wool-multihost-"
"""In the work directory of every ``wool worker`` the multihost notebook starts."""


def workers_of(owner: int) -> list[psutil.Process]:
    """Live ``wool.worker`` processes started by the process ``owner``, and durable workers
    a notebook started (they have no owner to watch, and outlive a kernel that dies)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "worker" in cmdline and any(DURABLE_MARK in arg for arg in cmdline):
            found.append(proc)
            continue
        if "wool.worker" not in cmdline or "--owner" not in cmdline:
            continue
        at = cmdline.index("--owner")
        if cmdline[at + 1 : at + 2] == [str(owner)]:
            found.append(proc)
    return found


def assert_no_workers_left(owner: int | None, timeout: float = WORKERS_EXIT_TIMEOUT) -> None:
    """Fail if a worker of ``owner`` is still alive after ``timeout``; kill those (by PID)."""
    if owner is None:
        return
    deadline = time.monotonic() + timeout
    left = workers_of(owner)
    while left and time.monotonic() < deadline:
        _, alive = psutil.wait_procs(left, timeout=0.2)
        left = [proc for proc in alive if proc.is_running()]
    if left:
        pids = sorted(proc.pid for proc in left)
        for proc in left:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        pytest.fail(f"wool workers of kernel {owner} outlived it: {pids}")


def outputs_of(notebook: NotebookNode, source: str) -> str:
    """The text of every output of the first code cell whose source contains ``source``."""
    for cell in notebook.cells:
        if cell.cell_type == "code" and source in cell.source:
            return "\n".join(runner.output_text(output) for output in cell.outputs)
    raise AssertionError(f"no code cell contains {source!r}")


def mime_types_of(notebook: NotebookNode, source: str) -> set[str]:
    """The MIME types displayed by the first code cell whose source contains ``source``."""
    for cell in notebook.cells:
        if cell.cell_type == "code" and source in cell.source:
            return {mime for output in cell.outputs for mime in output.get("data", {})}
    raise AssertionError(f"no code cell contains {source!r}")
