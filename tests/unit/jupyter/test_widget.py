"""MeshWidget with a scripted statistics source and no kernel (ipywidgets uses a dummy comm)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from wool import DispatchCounters, MeshStatistics, PeerStatistics
from wool_jupyter.widget import MeshWidget

DEADLINE_S = 5.0


def make_snapshot(completed: int, in_flight: int = 0, t: float | None = None) -> MeshStatistics:
    peers = (
        PeerStatistics(id="a", address="127.0.0.1:7001", pid=11, tags=("<cpu>",)),
        PeerStatistics(id="b", address="127.0.0.1:7002", pid=12),
        PeerStatistics(id="c", address="127.0.0.1:7003", pid=13, state="lost"),
    )
    counters = DispatchCounters(started=completed + in_flight, completed=completed)
    return MeshStatistics(
        taken_at=time.time() if t is None else t, peers=peers, caller=counters, executed=counters
    )


class Source:
    """A thread-safe stand-in for ``pool.statistics_sync`` that can be told to fail."""

    def __init__(self, snapshot: MeshStatistics) -> None:
        self._lock = threading.Lock()
        self._snapshot = snapshot
        self._error: Exception | None = None
        self.calls = 0

    def set(self, snapshot: MeshStatistics) -> None:
        with self._lock:
            self._snapshot = snapshot

    def fail(self, error: Exception) -> None:
        with self._lock:
            self._error = error

    def __call__(self) -> MeshStatistics:
        with self._lock:
            self.calls += 1
            if self._error is not None:
                raise self._error
            return self._snapshot


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def html_of(widget: MeshWidget) -> str:
    return widget.children[0].value


@pytest.fixture
def widgets() -> Iterator[list[MeshWidget]]:
    made: list[MeshWidget] = []
    yield made
    for widget in made:
        widget.close()


def test_renders_synchronously_at_construction(widgets: list[MeshWidget]) -> None:
    widget = MeshWidget(Source(make_snapshot(completed=42, in_flight=3)))
    widgets.append(widget)
    assert not widget.running and widget.status == "idle"
    assert 'data-completed="42"' in html_of(widget)
    assert (widget.peers, widget.ready, widget.lost) == (3, 2, 1)
    assert (widget.completed, widget.in_flight, widget.dispatched) == (42, 3, 45)
    assert (widget.executed, widget.nested) == (45, 0)


def test_thread_follows_the_source(widgets: list[MeshWidget]) -> None:
    source = Source(make_snapshot(completed=1))
    widget = MeshWidget(source, interval=0.02)
    widgets.append(widget)
    assert widget.start() is widget and widget.running
    source.set(make_snapshot(completed=7, in_flight=2))
    wait_for(lambda: 'data-completed="7"' in html_of(widget), "the HTML to show 7 completed")
    assert 'data-inflight="2"' in html_of(widget)
    assert widget.completed == 7 and widget.in_flight == 2
    assert widget.status == "running"


def test_unchanged_source_sends_no_updates(widgets: list[MeshWidget]) -> None:
    source = Source(make_snapshot(completed=5, t=1000.0))
    widget = MeshWidget(source, interval=0.01)
    widgets.append(widget)
    widget.start()
    changes: list[str] = []
    widget.children[0].observe(lambda change: changes.append(change["new"]), names="value")
    seen = source.calls
    wait_for(lambda: source.calls >= seen + 5, "five more polls")
    assert changes == []


def test_close_stops_promptly_and_the_thread_is_gone(widgets: list[MeshWidget]) -> None:
    widget = MeshWidget(Source(make_snapshot(completed=1)), interval=30.0)
    widget.start()
    (thread,) = [t for t in threading.enumerate() if t.name.startswith("wool-mesh-widget")]
    started = time.monotonic()
    widget.close()
    print(f"close took {time.monotonic() - started:.3f}s")
    # The thread sleeps 30 s between polls: it is gone only if close woke it.
    assert not thread.is_alive() and not widget.running
    assert widget.status == "stopped"


def test_stop_renders_a_final_state(widgets: list[MeshWidget]) -> None:
    source = Source(make_snapshot(completed=1))
    widget = MeshWidget(source, interval=30.0)
    widgets.append(widget)
    widget.start()
    source.set(make_snapshot(completed=99))
    widget.stop()
    assert not widget.running
    assert widget.completed == 99 and widget.status == "stopped"
    assert 'data-status="stopped"' in html_of(widget)


def test_failing_source_keeps_last_state_marked_stopped(widgets: list[MeshWidget]) -> None:
    source = Source(make_snapshot(completed=12))
    widget = MeshWidget(source, interval=0.02)
    widgets.append(widget)
    widget.start()
    source.fail(RuntimeError("mesh stopped <now>"))
    wait_for(lambda: widget.status == "stopped", "the widget to notice the failure")
    wait_for(lambda: not widget.running, "the refresher thread to end")
    markup = html_of(widget)
    assert 'data-status="stopped"' in markup and 'data-completed="12"' in markup
    assert "mesh stopped &lt;now&gt;" in markup
    calls = source.calls
    widget.stop()  # already stopped: no further read, nothing raised
    assert source.calls == calls and widget.completed == 12


def test_source_failing_at_construction_never_starts(widgets: list[MeshWidget]) -> None:
    source = Source(make_snapshot(completed=0))
    source.fail(ConnectionError("no mesh"))
    widget = MeshWidget(source)
    widgets.append(widget)
    assert "no statistics yet" in html_of(widget)
    widget.start()
    assert not widget.running and widget.status == "stopped"


def test_mimebundle_has_html_and_text_fallbacks(widgets: list[MeshWidget]) -> None:
    widget = MeshWidget(Source(make_snapshot(completed=31)))
    widgets.append(widget)
    bundle = widget._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == widget.model_id
    assert 'class="wool-mesh"' in bundle["text/html"]
    assert 'data-completed="31"' in bundle["text/html"]
    assert "&lt;cpu&gt;" in bundle["text/html"]
    assert bundle["text/plain"].startswith("wool mesh")
    assert re.search(r"^on workers\s+31\s+31\s", bundle["text/plain"], re.MULTILINE)
    assert "LOST" in bundle["text/plain"]


def test_a_stopped_widget_s_html_and_text_agree_there_is_no_throughput(
    widgets: list[MeshWidget],
) -> None:
    source = Source(make_snapshot(completed=10, t=100.0))
    widget = MeshWidget(source, interval=30.0)
    widgets.append(widget)
    source.set(make_snapshot(completed=60, t=102.0))
    widget.refresh()
    running = widget._repr_mimebundle_()
    assert "25.0/s" in running["text/plain"] and "25.0/s" in running["text/html"]
    widget.stop()
    stopped = widget._repr_mimebundle_()
    assert "25.0/s" not in stopped["text/plain"] and "25.0/s" not in stopped["text/html"]
    assert "throughput \u2013" in stopped["text/plain"]


def test_final_read_failing_in_stop_keeps_last_figures(widgets: list[MeshWidget]) -> None:
    source = Source(make_snapshot(completed=8))
    widget = MeshWidget(source, interval=30.0)
    widgets.append(widget)
    widget.start()
    source.fail(RuntimeError("gone"))
    widget.stop()
    assert widget.status == "stopped" and widget.completed == 8
    assert "RuntimeError: gone" in html_of(widget)
