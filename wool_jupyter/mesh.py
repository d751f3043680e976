"""The mesh that ``%wool start`` runs inside a kernel.

:class:`KernelMesh` is the :class:`~wool_jupyter.backend.WoolBackend` the
extension uses by default. It owns one ``wool.WorkerPool`` of local workers,
started with ``astart(default=True)`` so that it is the process-wide mesh:
every cell runs in a fresh copy of the context, so a mesh installed in a
context variable by one cell would be invisible to the next.

``start`` returns at once: the pool starts on a thread of its own (its own
event loop), so neither the kernel's loop nor the cell waits, and ``%wool
start`` works wherever a line magic can stand. Until the pool is ready, a
routine call waits for it (bounded by :meth:`KernelMesh.wait_ready`), through
the runtime's hook for a default mesh that is still starting
(``wool.mesh.context.set_starting``, the one non-public part of wool used
here). A start that fails is kept: calls waiting get a ``WorkerStartError``
naming the cause, and ``%wool status`` shows it until the next start.

While the pool runs, routines' output is forwarded into the cells that call
them (:mod:`wool_jupyter.output`), and :meth:`KernelMesh.widget` offers a live
:class:`~wool_jupyter.widget.MeshWidget` reading ``pool.statistics_sync``.
``%wool status`` and a displayed pool render the same snapshots with the
same renderer (:mod:`wool_jupyter.status`).

The mesh is elastic: ``%wool scale N`` grows or shrinks the local pool while
it runs (``WorkerPool.ascale``), and ``%wool connect`` makes the kernel's mesh
a remote one instead, found through seed addresses
(:class:`~wool_jupyter.remote.RemoteMesh`); ``%wool disconnect`` leaves it.
A :class:`~wool_jupyter.peerlog.PeerLog` notices peers joining and leaving
each time the status, the widget or a scale looks at the workers.

Workers exit with the kernel however it ends (shutdown, restart, ``kill
-9``): the runtime binds each worker to its parent process.
"""

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from typing import Any

from IPython.core.interactiveshell import InteractiveShell

import wool
from wool.mesh import context
from wool_jupyter.backend import NOT_RUNNING
from wool_jupyter.cells import CellProgram
from wool_jupyter.config import Wool
from wool_jupyter.fanout import cancel_all, outcomes
from wool_jupyter.output import OutputForwarder, peer_label
from wool_jupyter.peerlog import PeerLog
from wool_jupyter.remote import RemoteMesh
from wool_jupyter.status import MeshStatus, pool_status
from wool_jupyter.tracebacks import RUNTIME, frames_without
from wool_jupyter.widget import MeshWidget

__all__ = ["KernelMesh"]

_log = logging.getLogger(__name__)

WIDGET_STOP_TIMEOUT = 3.0
"""Seconds to wait for the widget's polling thread when the mesh stops."""
START_SLACK = 5.0
"""Seconds a call waits for a starting mesh beyond the two phases bounded by
``Wool.start_timeout`` (workers up, then peer tables sent)."""

SPAWN_WAIT = 10.0
"""Seconds ``start`` waits for the worker processes to be launched (not ready)."""

_closing: set["asyncio.Task[None]"] = set()


def _workers(n: int) -> str:
    return f"{n} local worker{'s' if n != 1 else ''}"


class StartFailed:
    """A start that did not come up: what it was and why, for ``status`` and callers."""

    def __init__(self, what: str, error: BaseException, retry: str = "%wool start") -> None:
        self.what = what
        self.error = error
        self.retry = retry

    def __str__(self) -> str:
        return (
            f"Wool did not start ({self.what}): {type(self.error).__name__}: {self.error}\n"
            f"Run {self.retry} to try again."
        )


class KernelMesh:
    """A background mesh of local workers for one IPython shell.

    ``%%wool --all`` results are dicts keyed by **worker id** (the ``id``
    column of ``%wool status``, and what ``routine.options(worker=...)``
    takes), and each line a peer prints is prefixed with ``[id]``.
    """

    def __init__(self, shell: InteractiveShell, settings: Wool) -> None:
        self._shell = shell
        self._settings = settings
        self._lock = threading.Lock()
        self._pool: wool.WorkerPool | None = None
        self._ready: concurrent.futures.Future[float] | None = None
        self._failed: StartFailed | None = None
        self._widget: MeshWidget | None = None
        self._output = OutputForwarder(shell, settings)
        self._size = 0
        self._tags: list[str] = []
        self._remote: RemoteMesh | None = None
        self._remote_left: RemoteMesh | None = None
        self._log = PeerLog()

    @property
    def pool(self) -> wool.WorkerPool | None:
        """The pool ``%wool start`` made, while it starts or runs; else ``None``."""
        pool = self._pool
        if pool is None or self._failed is not None:
            return None
        ready = self._ready
        return pool if pool.running or (ready is not None and not ready.done()) else None

    @property
    def starting(self) -> bool:
        """Whether a start is under way and not finished yet."""
        ready = self._ready
        return self._pool is not None and ready is not None and not ready.done()

    @property
    def failed(self) -> StartFailed | None:
        """The last start, if it failed (until the next start)."""
        return self._failed

    @property
    def remote(self) -> RemoteMesh | None:
        """The remote mesh ``%wool connect`` joined, while connected (or connecting)."""
        return self._remote if self.pool is not None else None

    @property
    def log(self) -> PeerLog:
        """Joins and leaves seen in the current mesh."""
        return self._log

    def describe(self) -> str | None:
        pool = self.pool
        if pool is None:
            return None
        remote = self._remote
        if remote is not None:
            if not pool.running:
                return f"{remote.describe()}, still connecting"
            peers = [w for w in pool.workers if w.state == "ready"]
            return f"{remote.describe()}: {len(peers)} peer{'s' if len(peers) != 1 else ''} ready"
        if not pool.running:
            return f"{_workers(self._size)}, still starting"
        workers = [w for w in pool.workers if w.state != "stopped"]
        text = _workers(len(workers))
        addresses = [w.address for w in workers if w.address]
        if addresses:
            text += " at " + ", ".join(addresses)
        if pool.tags:
            text += f" tagged {', '.join(pool.tags)}"
        lost = sum(1 for w in workers if w.state == "lost")
        if lost:
            text += f" ({lost} lost)"
        return text

    @property
    def wait_bound(self) -> float:
        """Longest a call waits for a starting mesh, in seconds."""
        return 2 * float(self._settings.start_timeout) + START_SLACK

    def start(self, workers: int, tags: list[str]) -> str:
        """Begin starting ``workers`` local workers in the background; returns at once."""
        pool = wool.WorkerPool(
            *tags, spawn=workers, start_timeout=float(self._settings.start_timeout)
        )
        self._size, self._tags = workers, list(tags)
        self._launch(pool, None, _workers(workers), "%wool start")
        return (
            f"Wool is starting {_workers(workers)} in the background; "
            f"routine calls made meanwhile wait for them (up to {self.wait_bound:g}s)."
        )

    def connect(self, remote: RemoteMesh) -> str:
        """Begin joining the mesh behind ``remote`` in the background; returns at once.

        Bad arguments or unreadable files raise here (``wool.CredentialsError``,
        ``wool.UnsupportedArgument``), before anything is dialled; a mesh that
        cannot be reached fails like a start that fails (see :meth:`status`).
        """
        pool = remote.pool(start_timeout=float(self._settings.start_timeout))
        self._size, self._tags = 0, []
        self._launch(pool, remote, remote.describe(), "%wool connect")
        return (
            f"Wool is joining the {remote.describe()} in the background; routine calls "
            f"made meanwhile wait for it (up to {self.wait_bound:g}s)."
        )

    def _launch(
        self, pool: wool.WorkerPool, remote: RemoteMesh | None, what: str, retry: str
    ) -> None:
        ready: concurrent.futures.Future[float] = concurrent.futures.Future()
        with self._lock:
            self._pool, self._ready, self._failed = pool, ready, None
            self._remote = remote
            self._log = PeerLog()
        context.set_starting(self.wait_ready)
        self._output.install()
        spawned = threading.Event()
        threading.Thread(
            target=self._start_in_background,
            args=(pool, ready, (what, retry), spawned),
            name="wool-start",
            daemon=True,
        ).start()
        # Only the processes' launch, so their PIDs exist once this returns.
        spawned.wait(SPAWN_WAIT)

    def _start_in_background(
        self,
        pool: wool.WorkerPool,
        ready: "concurrent.futures.Future[float]",
        failed: tuple[str, str],
        spawned: threading.Event,
    ) -> None:
        began = time.perf_counter()

        async def start() -> None:
            task = asyncio.ensure_future(pool.astart(default=True))
            await asyncio.sleep(0)  # astart launches the processes before its first await
            spawned.set()
            await task

        try:
            asyncio.run(start())
        except BaseException as exc:
            spawned.set()
            with self._lock:
                current = self._pool is pool
                if current:
                    self._failed = StartFailed(failed[0], exc, failed[1])
                    context.set_starting(None)
            ready.set_exception(exc)
            if current:
                self._stop_widget_after_failure()
            return
        with self._lock:
            if self._pool is pool:
                context.set_starting(None)
        ready.set_result(time.perf_counter() - began)

    async def wait_ready(self, routine: str = "") -> None:
        """Return once the mesh being started is ready; raise a typed error if it never is.

        ``wool.WorkerStartError`` when the start failed or overran
        :attr:`wait_bound`; ``wool.MeshNotRunning`` when it was stopped meanwhile.
        """
        __tracebackhide__ = True
        pool, ready = self._pool, self._ready
        if pool is None or ready is None:
            raise wool.MeshNotRunning(routine)
        what = f"{routine}()" if routine and " " not in routine else (routine or "the call")
        magic = "%wool connect" if self._remote is not None else "%wool start"
        try:
            async with asyncio.timeout(self.wait_bound):
                await asyncio.shield(asyncio.wrap_future(ready))
        except TimeoutError:
            raise wool.WorkerStartError(
                f"{what} waited {self.wait_bound:g}s for the mesh {magic} began, "
                "and it is still not ready. See %wool status."
            ) from None
        except Exception as exc:
            if self._pool is not pool:
                raise wool.MeshNotRunning(routine) from None
            raise wool.WorkerStartError(
                f"{what} could not run: the mesh {magic} began did not start "
                f"({type(exc).__name__}: {exc}). Run {magic} to try again."
            ) from exc

    async def scale(self, workers: int) -> str:
        """Grow or shrink the running local pool to ``workers``; resolves to what changed.

        Waits for a mesh still starting. Removed workers drain first (see
        ``wool.WorkerPool.scale``); a call still running on one when it stops
        fails with ``wool.WorkerLost``.
        """
        if self.starting:
            await self.wait_ready("%wool scale")
        pool = self.pool
        if pool is None or not pool.running:
            return NOT_RUNNING
        if self._remote is not None:
            return (
                f"This kernel is connected to a {self._remote.describe()}; %wool scale changes "
                "local workers only. Scale the remote workers where they run, or "
                "%wool disconnect and %wool start local ones."
            )
        added, removed = await pool.ascale(workers, drain=float(self._settings.start_timeout))
        self._size = workers
        self._log.observe(pool.workers)
        if added:
            return f"Added {_workers(len(added))} ({', '.join(added)}): now {workers}."
        if removed:
            return f"Removed {_workers(len(removed))} ({', '.join(removed)}): now {workers}."
        return f"Wool already runs {_workers(workers)}."

    async def disconnect(self) -> str:
        """Leave the remote mesh (its workers keep running); resolves to a message."""
        remote = self.remote
        if remote is None:
            return "This kernel is not connected to a remote mesh" + (
                "; %wool stop stops its local workers." if self.pool is not None else "."
            )
        return await self.stop()

    async def stop(self) -> str:
        pool, count = self._detach()
        widget, self._widget = self._widget, None
        if pool is not None:
            await pool.astop()
        if widget is not None:
            # After the pool: the widget's last reading then shows the stopped mesh.
            await asyncio.to_thread(_stop_widget, widget)
        return self._after_stop(pool, count)

    def close(self) -> str:
        """Stop the mesh without awaiting (bounded; blocks for as long as the workers take)."""
        pool, count = self._detach()
        widget, self._widget = self._widget, None
        if pool is not None:
            try:
                pool.stop()
            except Exception:
                _log.warning("stopping the wool pool failed", exc_info=True)
            _close_connections_later(pool)
        if widget is not None:
            _stop_widget(widget)
        return self._after_stop(pool, count)

    def _detach(self) -> tuple[wool.WorkerPool | None, int]:
        with self._lock:
            pool, self._pool = self._pool, None
            failed, self._failed = self._failed, None
            self._ready = None
            self._remote_left, self._remote = self._remote, None
            context.set_starting(None)
        if failed is not None:
            pool = None  # it stopped itself when its start failed
        count = sum(1 for w in pool.workers if w.state != "stopped") if pool is not None else 0
        return pool, count

    def _after_stop(self, pool: wool.WorkerPool | None, count: int) -> str:
        self._output.uninstall()
        if pool is None:
            return NOT_RUNNING
        left, self._remote_left = self._remote_left, None
        if left is not None:
            return f"Disconnected from the {left.describe()}; its workers keep running."
        return f"Stopped {_workers(count)}."

    def _stop_widget_after_failure(self) -> None:
        widget = self._widget
        failed = self._failed
        if widget is not None and failed is not None:
            with contextlib.suppress(Exception):
                widget.stop(timeout=WIDGET_STOP_TIMEOUT, note=str(failed).splitlines()[0])

    def status(self) -> object:
        failed = self._failed
        if failed is not None:
            return str(failed)
        pool = self.pool
        if pool is None:
            return NOT_RUNNING
        log = self._log
        if not pool.running:
            return MeshStatus(pool.statistics_sync(), status="starting", events=log.events)
        return pool_status(pool, log=log)

    def widget(self) -> MeshWidget | None:
        pool = self.pool
        if pool is None:
            return None
        current = self._widget
        if current is None or not current.running:
            log = self._log

            def read() -> wool.MeshStatistics:
                snapshot = pool.statistics_sync()
                log.observe(pool.workers)
                return snapshot

            current = MeshWidget(
                source=read, interval=float(self._settings.refresh_interval), log=log
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
        if self.starting:
            await self.wait_ready("this %%wool cell")
        pool = self.pool
        if pool is None or not pool.running:
            raise wool.MeshNotRunning("this %%wool cell")
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

    def __repr__(self) -> str:
        return f"<KernelMesh {self.describe() or 'stopped'}>"


def _close_connections_later(pool: wool.WorkerPool) -> None:
    """Close the calling loop's connections to a pool stopped without awaiting, if a loop runs."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    task = loop.create_task(_close_quietly(pool))
    _closing.add(task)
    task.add_done_callback(_closing.discard)


async def _close_quietly(pool: wool.WorkerPool) -> None:
    try:
        await pool.astop()
    except Exception:
        _log.debug("closing a stopped pool's connections failed", exc_info=True)


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
