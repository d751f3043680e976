"""The mesh that ``%wool start`` runs inside a kernel.

:class:`KernelMesh` is the :class:`~wool_jupyter.backend.WoolBackend` the
extension uses by default. It owns one ``wool.WorkerPool`` of local workers,
started with ``astart(default=True)`` so that it is the process-wide mesh:
every cell runs in a fresh copy of the context, so a mesh installed in a
context variable by one cell would be invisible to the next. While the pool
runs, routines' output is forwarded into the cells that call them
(:mod:`wool_jupyter.output`), and :meth:`KernelMesh.widget` offers a live
:class:`~wool_jupyter.widget.MeshWidget` reading ``pool.statistics_sync``.
``%wool status`` and a displayed pool render the same snapshots with the
same renderer (:mod:`wool_jupyter.status`).

Everything the workers do is the runtime's business; this module only uses
wool's public API. Workers exit with the kernel however it ends (shutdown,
restart, ``kill -9``): the runtime binds each worker to its parent process.
"""

import asyncio
import contextlib
import logging
import time
from typing import Any

from IPython.core.interactiveshell import InteractiveShell

import wool
from wool_jupyter.backend import NOT_RUNNING
from wool_jupyter.cells import CellProgram
from wool_jupyter.config import Wool
from wool_jupyter.fanout import cancel_all, outcomes
from wool_jupyter.output import OutputForwarder, peer_label
from wool_jupyter.status import pool_status
from wool_jupyter.tracebacks import RUNTIME, frames_without
from wool_jupyter.widget import MeshWidget

__all__ = ["KernelMesh"]

_log = logging.getLogger(__name__)

WIDGET_STOP_TIMEOUT = 3.0
"""Seconds to wait for the widget's polling thread when the mesh stops."""


class KernelMesh:
    """A background mesh of local workers for one IPython shell.

    ``%%wool --all`` results are dicts keyed by **worker id** (the ``id``
    column of ``%wool status``, and what ``routine.options(worker=...)``
    takes), and each line a peer prints is prefixed with ``[id]``.
    """

    def __init__(self, shell: InteractiveShell, settings: Wool) -> None:
        self._shell = shell
        self._settings = settings
        self._pool: wool.WorkerPool | None = None
        self._widget: MeshWidget | None = None
        self._output = OutputForwarder(shell, settings)
        self._size = 0
        self._tags: list[str] = []

    @property
    def pool(self) -> wool.WorkerPool | None:
        """The running pool, or ``None``; a notebook displays it as its status."""
        pool = self._pool
        return pool if pool is not None and pool.running else None

    def describe(self) -> str | None:
        pool = self.pool
        if pool is None:
            return None
        workers = pool.workers
        text = f"{len(workers)} local worker{'s' if len(workers) != 1 else ''}"
        addresses = [w.address for w in workers if w.address]
        if addresses:
            text += " at " + ", ".join(addresses)
        if pool.tags:
            text += f" tagged {', '.join(pool.tags)}"
        lost = sum(1 for w in workers if w.state == "lost")
        if lost:
            text += f" ({lost} lost)"
        return text

    async def start(self, workers: int, tags: list[str]) -> str:
        began = time.perf_counter()
        pool = wool.WorkerPool(
            *tags, spawn=workers, start_timeout=float(self._settings.start_timeout)
        )
        await pool.astart(default=True)
        self._pool = pool
        self._size, self._tags = workers, list(tags)
        self._output.install()
        took = time.perf_counter() - began
        return f"Wool is running: {self.describe()} (started in {took:.1f}s)."

    async def stop(self) -> str:
        pool, self._pool = self._pool, None
        widget, self._widget = self._widget, None
        count = len(pool.workers) if pool is not None else 0
        if pool is not None:
            await pool.astop()
        if widget is not None:
            # After the pool: the widget's last reading then shows the stopped mesh.
            await asyncio.to_thread(_stop_widget, widget)
        self._output.uninstall()
        if pool is None:
            return NOT_RUNNING
        return f"Stopped {count} local worker{'s' if count != 1 else ''}."

    async def restart(self) -> str:
        size, tags = self._size, list(self._tags)
        await self.stop()
        return await self.start(size, tags)

    def status(self) -> object:
        pool = self.pool
        if pool is None:
            return NOT_RUNNING
        return pool_status(pool)

    def widget(self) -> MeshWidget | None:
        pool = self.pool
        if pool is None:
            return None
        current = self._widget
        if current is None or not current.running:
            current = MeshWidget(
                source=pool.statistics_sync, interval=float(self._settings.refresh_interval)
            ).start()
            self._widget = current
        return current

    async def run_cell(
        self,
        program: CellProgram,
        *,
        all_peers: bool,
        tags: list[str],
        timeout: float | None,
    ) -> object:
        __tracebackhide__ = True
        pool = self.pool
        if pool is None:
            raise wool.MeshNotRunning("%%wool")
        routine = wool.routine(program.function)
        try:
            with wool.timeout(timeout):
                if not all_peers:
                    target = routine.options(tags=tags) if tags else routine
                    return await target(**program.arguments)
                return await _run_on_every_peer(pool, routine, program.arguments, tags)
        except Exception as error:
            # The cell's own frames (run remotely) matter; wool's dispatch frames do not.
            error.__traceback__ = frames_without(error.__traceback__, RUNTIME)
            raise

    def close(self) -> None:
        pool, self._pool = self._pool, None
        widget, self._widget = self._widget, None
        if widget is not None:
            _stop_widget(widget)
        self._output.uninstall()
        if pool is not None:
            try:
                pool.stop()
            except Exception:
                _log.warning("stopping the wool pool failed", exc_info=True)

    def __repr__(self) -> str:
        return f"<KernelMesh {self.describe() or 'stopped'}>"


def _stop_widget(widget: MeshWidget) -> None:
    with contextlib.suppress(Exception):
        widget.stop(timeout=WIDGET_STOP_TIMEOUT)


async def _run_on_every_peer(
    pool: wool.WorkerPool,
    routine: wool.Routine[Any, Any],
    arguments: dict[str, object],
    tags: list[str],
) -> dict[str, object]:
    """``routine(**arguments)`` once on each ready worker carrying ``tags``, concurrently.

    Waits for every peer. If any failed, raises the first failure in peer
    order, noting which other peers failed; cancelling this cancels them all.
    """
    __tracebackhide__ = True
    wanted = set(tags)
    peers = [w for w in pool.workers if w.state == "ready" and wanted.issubset(w.tags)]
    if not peers:
        what = f"carrying {', '.join(sorted(wanted))}" if wanted else "in this mesh"
        raise wool.NoWorkersAvailable(f"no ready worker {what} to run the cell on")

    async def one(worker: wool.WorkerInfo) -> object:
        with peer_label(worker.id):
            return await routine.options(worker=worker.id)(**arguments)

    tasks = [asyncio.ensure_future(one(worker)) for worker in peers]
    try:
        await asyncio.wait(tasks)
    except BaseException:
        await cancel_all(tasks)
        raise
    values, failures = outcomes(tasks)
    if failures:
        error = failures[0][1]
        if len(failures) > 1:
            names = ", ".join(f"{peers[i].id} ({type(e).__name__})" for i, e in failures)
            error.add_note(f"[wool] {len(failures)} of {len(peers)} peers failed: {names}")
        raise error
    return {worker.id: value for worker, value in zip(peers, values, strict=True)}
