"""A live view of the mesh for Jupyter, refreshed from a background thread.

A thread rather than an asyncio task keeps the view moving while a cell blocks
the kernel's event loop (``time.sleep``, a synchronous ``pool.run``). ipykernel
routes messages sent from other threads through its IOPub thread and
attributes them to the most recent request, so updates reach the browser while
any cell runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ipywidgets import HTML, VBox
from traitlets import Int, Unicode

from wool import MeshStatistics
from wool_jupyter.peerlog import JOINED, PeerEvent, PeerLog
from wool_jupyter.render import History, mesh_totals, nested_totals, render_html, render_text

__all__ = ["MeshWidget"]

_log = logging.getLogger(__name__)


class MeshWidget(VBox):
    """Mesh totals, a throughput sparkline and a row per peer, kept up to date.

    ``source`` returns a fresh :class:`~wool.MeshStatistics` each call (for
    instance ``pool.statistics_sync``); it is called from the polling thread and
    from whichever thread calls :meth:`refresh`, :meth:`start` or :meth:`stop`.
    The view renders once at construction, so it never shows an empty box.

    Besides the HTML, the headline figures are synced traits (``peers``,
    ``ready``, ``lost``; ``dispatched``: calls from this kernel; ``nested``:
    calls workers sent to peers; ``executed``: runs on workers; ``completed``,
    ``failed``, ``cancelled``, ``in_flight`` of the runs on workers; and
    ``status``: ``"idle"``, ``"running"`` or ``"stopped"``), so they appear in
    saved widget state and in tests.

    With ``log``, each peer shows how it was found and the view lists the
    log's recent joins and leaves (counted in the ``joins`` and ``leaves``
    traits). The widget only reads the log: whoever supplies ``source`` feeds
    it (``KernelMesh`` observes the pool's workers on every read).
    """

    peers = Int(0).tag(sync=True)
    ready = Int(0).tag(sync=True)
    lost = Int(0).tag(sync=True)
    dispatched = Int(0).tag(sync=True)
    nested = Int(0).tag(sync=True)
    executed = Int(0).tag(sync=True)
    completed = Int(0).tag(sync=True)
    failed = Int(0).tag(sync=True)
    cancelled = Int(0).tag(sync=True)
    in_flight = Int(0).tag(sync=True)
    status = Unicode("idle").tag(sync=True)
    joins = Int(0).tag(sync=True)
    leaves = Int(0).tag(sync=True)

    def __init__(
        self,
        source: Callable[[], MeshStatistics],
        interval: float = 0.5,
        *,
        window: float = 60.0,
        log: PeerLog | None = None,
        **kwargs: Any,
    ) -> None:
        self._source = source
        self._log = log
        self._interval = interval
        self._history = History(window)
        self._snapshot: MeshStatistics | None = None
        self._note: str | None = None
        self._lock = threading.RLock()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._html = HTML()
        super().__init__(children=(self._html,), **kwargs)
        self.refresh()

    @property
    def snapshot(self) -> MeshStatistics | None:
        """The latest snapshot read from ``source``, if any."""
        return self._snapshot

    @property
    def running(self) -> bool:
        """Whether the polling thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> MeshWidget:
        """Poll ``source`` every ``interval`` seconds until :meth:`stop`.

        Renders once before returning; if that read fails the widget shows it
        as stopped and no thread starts. Returns ``self`` so that
        ``MeshWidget(src).start()`` can end a cell. Calling it twice is harmless.
        """
        with self._lock:
            if self.running:
                return self
            self._halt.clear()
            self._note = None
            self.status = "running"
            if not self.refresh():
                return self
            self._thread = threading.Thread(
                target=self._run, name=f"wool-mesh-widget-{self.model_id[:8]}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0, *, note: str | None = None) -> None:
        """Stop polling, wait up to ``timeout`` s for the thread, render a final state.

        The thread notices at once unless it is inside ``source()``. The final
        render reads ``source`` once more so late completions show; if that read
        fails the last good figures stay, marked as stopped. ``note`` (say, why
        the mesh stopped) is shown under the figures.
        """
        self._join(timeout)
        with self._lock:
            if note is not None:
                self._note = note
            if self.status != "stopped":
                self.status = "stopped"
                self.refresh()
            elif note is not None:
                self._publish()

    def close(self) -> None:
        """Stop polling and close the widget; ``source`` is not read again.

        The front end drops a closed widget's views, and ipywidgets makes a
        closed widget display nothing, so there is no final render to do.
        """
        self._join(5.0)
        with self._lock:
            self.status = "stopped"
        self._html.close()
        super().close()

    def __del__(self) -> None:
        # ipywidgets closes widgets on collection; at interpreter exit module
        # globals may already be gone, and that must not print a traceback.
        try:
            self.close()
        except Exception:
            pass

    def _join(self, timeout: float) -> None:
        self._halt.set()
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        if thread is not threading.current_thread():
            thread.join(timeout)

    def refresh(self) -> bool:
        """Read ``source`` once and update the view; False if the read failed.

        A failed read keeps the last snapshot, marks the view stopped with the
        error as a note and ends polling; a failing ``source`` never raises here.
        """
        try:
            snapshot = self._source()
        except Exception as exc:
            self._halt.set()
            with self._lock:
                self._note = f"polling stopped: {type(exc).__name__}: {exc}"
                self.status = "stopped"
                self._publish()
            return False
        with self._lock:
            self._snapshot = snapshot
            self._history.add(snapshot)
            self._publish()
        return True

    def _run(self) -> None:
        try:
            while not self._halt.wait(self._interval):
                if not self.refresh():
                    return
        except Exception as exc:
            # Widget plumbing failing (kernel shutting down, comm gone) must not
            # surface as an unhandled thread exception in the user's session.
            _log.debug("mesh widget refresher failed", exc_info=True)
            try:
                with self._lock:
                    self._note = f"refresh failed: {type(exc).__name__}: {exc}"
                    self.status = "stopped"
            except Exception:
                pass

    def _status_label(self) -> str | None:
        return None if self.status == "idle" else self.status

    def _publish(self) -> None:
        """Push the current figures to the front end, sending only what changed."""
        snapshot = self._snapshot
        sources, events = self._peers()
        value = render_html(
            snapshot,
            self._history,
            status=self._status_label(),
            note=self._note,
            sources=sources,
            events=events,
        )
        with self.hold_sync():
            self.joins = sum(1 for e in events if e.kind == JOINED)
            self.leaves = len(events) - self.joins
            if snapshot is not None:
                totals = mesh_totals(snapshot)
                self.peers = len(snapshot.peers)
                self.ready = snapshot.ready_peers
                self.lost = sum(1 for p in snapshot.peers if p.state == "lost")
                self.dispatched = snapshot.caller.started
                self.nested = nested_totals(snapshot).started
                self.executed = snapshot.executed.started
                self.completed = totals.completed
                self.failed = totals.failed
                self.cancelled = totals.cancelled
                self.in_flight = totals.in_flight
            if self._html.value != value:
                self._html.value = value

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        """The widget view plus text/html and text/plain of the current figures.

        Front ends without a widget manager (terminal IPython, nbconvert
        without saved widget state) fall back to these instead of showing an
        empty box or the widget's constructor-style repr.
        """
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        with self._lock:
            snapshot, history = self._snapshot, self._history
            status, note = self._status_label(), self._note
            sources, events = self._peers()
            bundle["text/plain"] = render_text(
                snapshot, history, status=status, note=note, sources=sources, events=events
            )
            bundle["text/html"] = render_html(
                snapshot, history, status=status, note=note, sources=sources, events=events
            )
        return bundle

    def _peers(self) -> tuple[dict[str, str], tuple[PeerEvent, ...]]:
        log = self._log
        if log is None:
            return {}, ()
        return dict(log.sources), log.events
