"""What ``%wool status`` shows, and how a ``wool.WorkerPool`` displays in a notebook.

Both read one :class:`~wool.MeshStatistics` snapshot and render it with
:mod:`wool_jupyter.render`, the renderer the live widget uses, so the status,
the widget and a displayed pool always show the same figures in the same
layout: the totals (calls from this kernel with their round trip, nested calls
worker to worker, runs on workers with their run time), then one row per peer
(id, host, how it was found, address, pid, tags, state, in flight, completed,
failed, calls sent to peers, run time, CPU, memory), then the recent joins and
leaves when a :class:`~wool_jupyter.peerlog.PeerLog` is kept.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from IPython.core.interactiveshell import InteractiveShell

import wool
from wool_jupyter.peerlog import PeerEvent, PeerLog
from wool_jupyter.render import render_html, render_text

__all__ = ["MeshStatus", "pool_status", "register_pool_display", "unregister_pool_display"]

SNAPSHOT_TIMEOUT = 1.0
"""Seconds a status waits for the peers' own figures; silent peers show their last ones."""


class MeshStatus:
    """A snapshot of the mesh: HTML where the front end renders it, aligned text elsewhere."""

    def __init__(
        self,
        snapshot: wool.MeshStatistics | None,
        *,
        status: str | None = None,
        note: str | None = None,
        sources: Mapping[str, str] | None = None,
        events: Sequence[PeerEvent] = (),
    ) -> None:
        self.snapshot = snapshot
        self.status = status
        self.note = note
        self.sources = dict(sources or {})
        self.events = tuple(events)

    def _repr_html_(self) -> str:
        return render_html(
            self.snapshot,
            status=self.status,
            note=self.note,
            sources=self.sources,
            events=self.events,
        )

    def __repr__(self) -> str:
        return render_text(
            self.snapshot,
            status=self.status,
            note=self.note,
            sources=self.sources,
            events=self.events,
        )


def pool_status(
    pool: wool.WorkerPool, timeout: float = SNAPSHOT_TIMEOUT, *, log: PeerLog | None = None
) -> MeshStatus:
    """A :class:`MeshStatus` of ``pool``; returns within about ``timeout`` seconds.

    With ``log``, the pool's workers are compared with the log's last view
    first, and the status shows the log's joins and leaves. A snapshot that
    cannot be read becomes a status without figures whose note says why, so
    displaying a pool never raises.
    """
    status = "running" if pool.running else "stopped"
    workers = pool.workers
    sources = {w.id: w.source for w in workers}
    events: Sequence[PeerEvent] = ()
    if log is not None:
        log.observe(workers)
        sources = {**log.sources, **sources}
        events = log.events
    try:
        snapshot = pool.statistics_sync(timeout=timeout)
    except Exception as exc:
        note = f"no statistics: {type(exc).__name__}: {exc}"
        return MeshStatus(None, status=status, note=note, sources=sources, events=events)
    return MeshStatus(snapshot, status=status, sources=sources, events=events)


def _pool_html(pool: wool.WorkerPool) -> str:
    return pool_status(pool)._repr_html_()


def _pool_text(pool: wool.WorkerPool, printer: Any, cycle: bool) -> None:
    printer.text(repr(pool) if cycle else repr(pool_status(pool)))


def _formatters(shell: InteractiveShell) -> dict[str, Any]:
    display = shell.display_formatter
    return display.formatters if display is not None else {}


def register_pool_display(shell: InteractiveShell) -> None:
    """Make ``wool.WorkerPool`` objects display as their status in ``shell``."""
    formatters = _formatters(shell)
    if not formatters:
        return
    formatters["text/html"].for_type(wool.WorkerPool, _pool_html)
    formatters["text/plain"].for_type(wool.WorkerPool, _pool_text)


def unregister_pool_display(shell: InteractiveShell) -> None:
    """Undo :func:`register_pool_display` (only the entries it made)."""
    formatters = _formatters(shell)
    for mime, printer in (("text/html", _pool_html), ("text/plain", _pool_text)):
        formatter = formatters.get(mime)
        if formatter is not None and formatter.type_printers.get(wool.WorkerPool) is printer:
            formatter.pop(wool.WorkerPool)
