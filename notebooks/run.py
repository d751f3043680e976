"""Run a notebook headless in a fresh kernel and print what each cell showed.

    python notebooks/run.py notebooks/quickstart.ipynb [--timeout S] [--output OUT.ipynb]

The kernel runs on the interpreter running this script (so it sees the same
installed packages), with the notebook's folder as its working directory.
Each code cell is printed as it finishes: its first lines, then its text
outputs. The exit status is 0 when every cell ran and 1 when a cell raised,
ran past its timeout or the kernel died. The notebook file itself is never
changed; ``--output`` saves the executed copy elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellControlSignal, DeadKernelError
from nbformat import NotebookNode

__all__ = ["Run", "execute", "format_cell", "kernel_manager", "main", "output_text", "summarize"]

KERNEL_NAME = "python3"
DEFAULT_TIMEOUT = 120.0
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_SOURCE_LINES = 3
_OUTPUT_CHARS = 2000


class _InterpreterSpecs(KernelSpecManager):
    """Answers every kernel name with an IPython kernel on one given interpreter."""

    def __init__(self, python: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._python = python

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        argv = [self._python, "-Xfrozen_modules=off", "-m", "ipykernel_launcher"]
        # Log level ERROR: keep the kernel's start-up chatter out of the summary.
        options = ["--IPKernelApp.log_level=ERROR", "-f", "{connection_file}"]
        return KernelSpec(
            name=kernel_name,
            argv=[*argv, *options],
            display_name=f"Python ({self._python})",
            language="python",
            metadata={"debugger": False},
        )


def kernel_manager(python: str = sys.executable) -> AsyncKernelManager:
    """A kernel manager whose kernels run ``python -m ipykernel_launcher``."""
    return AsyncKernelManager(
        kernel_name=KERNEL_NAME, kernel_spec_manager=_InterpreterSpecs(python)
    )


@dataclass
class Run:
    """One execution of a notebook: the executed copy and how it went."""

    notebook: NotebookNode
    seconds: float
    kernel_pid: int | None
    error: str | None = None
    """``None`` when every cell ran; otherwise what went wrong."""

    @property
    def ok(self) -> bool:
        return self.error is None


def _text(value: str | list[str]) -> str:
    return "".join(value) if isinstance(value, list) else value


def _clip(text: str) -> str:
    text = _ANSI.sub("", text).rstrip()
    if len(text) > _OUTPUT_CHARS:
        text = text[:_OUTPUT_CHARS] + f"\n... ({len(text) - _OUTPUT_CHARS:,} more characters)"
    return text


def output_text(output: NotebookNode) -> str:
    """The readable text of one output, or a short note on what it is."""
    kind = output.get("output_type")
    if kind == "stream":
        return _clip(_text(output.get("text", "")))
    if kind == "error":
        trace = "\n".join(output.get("traceback") or [])
        return _clip(trace or f"{output.get('ename')}: {output.get('evalue')}")
    data = output.get("data", {})
    plain = _clip(_text(data.get("text/plain", "")))
    if WIDGET_MIME in data:
        label = f"[widget {data[WIDGET_MIME].get('model_id', '')}]"
        return f"{label} {plain}" if plain and "\n" not in plain else label
    if plain:
        return plain
    kinds = ", ".join(sorted(data)) or "nothing"
    return f"[{kinds}]"


def format_cell(cell: NotebookNode, index: int) -> str:
    """A code cell as ``[n] first source lines`` followed by its indented text outputs.

    ``n`` is the cell's execution count, or ``#index`` in the notebook when it has none.
    """
    lines = _text(cell.get("source", "")).strip().splitlines()
    head = lines[:_SOURCE_LINES] + (["..."] if len(lines) > _SOURCE_LINES else [])
    count = cell.get("execution_count")
    label = f"[{count}] " if count is not None else f"[#{index}] "
    parts = [label + ("\n" + " " * len(label)).join(head)]
    for output in cell.get("outputs", []):
        text = output_text(output)
        if text:
            parts.append(textwrap.indent(text, "    | ", lambda _line: True))
    return "\n".join(parts)


def summarize(notebook: NotebookNode) -> str:
    """Every code cell of an executed notebook, formatted by :func:`format_cell`."""
    return "\n\n".join(
        format_cell(cell, index)
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
    )


def _read(path: Path) -> tuple[Path, NotebookNode]:
    path = Path(path).resolve()
    return path, nbformat.read(path, as_version=4)


async def execute(
    path: Path,
    *,
    python: str = sys.executable,
    timeout: float = DEFAULT_TIMEOUT,
    on_cell: Callable[[NotebookNode, int], None] | None = None,
    env: dict[str, str] | None = None,
) -> Run:
    """Execute the notebook at ``path`` in a new kernel on ``python``; never raises for a cell.

    ``timeout`` bounds each cell in seconds. ``on_cell(cell, index)`` is called
    after each code cell runs, failing ones included. ``env`` replaces the
    kernel's environment (default: this process's). The kernel is shut down
    (gracefully, then killed) before this returns.
    """
    path, notebook = await asyncio.to_thread(_read, path)
    km = kernel_manager(python)

    def executed(cell: NotebookNode, cell_index: int, **_: Any) -> None:
        if on_cell is not None:
            on_cell(cell, cell_index)

    client = NotebookClient(
        notebook,
        km=km,
        timeout=timeout,
        startup_timeout=60,
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_executed=executed,
    )
    started = time.perf_counter()
    pid: int | None = None
    error: str | None = None
    try:
        await km.start_kernel(cwd=str(path.parent), env=dict(os.environ if env is None else env))
        pid = getattr(km.provisioner, "pid", None)
        await client.async_execute()
    except CellControlSignal as failed:  # a cell raised or timed out
        error = _clip(str(failed))
    except DeadKernelError as died:
        error = f"the kernel died: {died}"
    finally:
        if client.kc is not None:
            client.kc.stop_channels()
        try:
            if km.has_kernel:
                await km.shutdown_kernel(now=False)
        finally:
            await km.cleanup_resources()
    return Run(notebook, time.perf_counter() - started, pid, error)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds each cell may take (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument("--output", type=Path, help="also save the executed notebook here")
    args = parser.parse_args(argv)
    if not args.notebook.is_file():
        parser.error(f"no such notebook: {args.notebook}")

    print(f"running {args.notebook} (each cell may take {args.timeout:g}s)\n", flush=True)

    def show(cell: NotebookNode, index: int) -> None:
        print(format_cell(cell, index) + "\n", flush=True)

    run = asyncio.run(execute(args.notebook, timeout=args.timeout, on_cell=show))
    if args.output is not None:
        nbformat.write(run.notebook, args.output)
    cells = sum(1 for cell in run.notebook.cells if cell.cell_type == "code")
    if run.ok:
        print(f"ok: {args.notebook} ran {cells} code cells in {run.seconds:.1f}s")
        return 0
    print(f"FAILED: {args.notebook} after {run.seconds:.1f}s\n\n{run.error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
