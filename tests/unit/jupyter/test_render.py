"""render_html / render_text / History against made-up mesh snapshots."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from wool import DispatchCounters, LatencySummary, MeshStatistics, PeerStatistics
from wool_jupyter.render import History, render_html, render_text

LATENCY = LatencySummary(count=40, mean_ms=3.25, p50_ms=2.5, p90_ms=6.0, p99_ms=17.5, max_ms=30.0)


def make_snapshot(
    t: float = 1000.0, finished: int = 1234, caller_only: bool = False
) -> MeshStatistics:
    peers = (
        PeerStatistics(
            id="p1",
            address="10.0.0.1:50051",
            pid=4101,
            tags=("gpu", "<script>alert(1)</script>"),
            executed=DispatchCounters(started=800, completed=790, failed=3, latency=LATENCY),
            cpu_percent=87.4,
            rss_bytes=123_456_789,
            uptime_s=90.0,
        ),
        PeerStatistics(id="p2", address="10.0.0.2:50051", pid=4102, state="starting"),
        PeerStatistics(
            id="p3",
            address='10.0.0.3:50051"><b>x',
            pid=4103,
            state="lost",
            executed=DispatchCounters(started=450, completed=444, failed=4, cancelled=2),
            rss_bytes=2048,
        ),
    )
    caller = DispatchCounters(started=finished + 9, completed=finished)
    executed = (
        DispatchCounters()
        if caller_only
        else DispatchCounters(
            started=finished + 16, completed=finished - 7, failed=5, cancelled=2, latency=LATENCY
        )
    )
    return MeshStatistics(taken_at=t, peers=peers, caller=caller, executed=executed)


class Tags(HTMLParser):
    """Collects (tag, attrs) for every start tag, and the visible text."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def with_class(self, name: str) -> list[dict[str, str | None]]:
        return [a for _, a in self.tags if name in (a.get("class") or "").split()]


def test_root_hooks_carry_mesh_totals() -> None:
    snap = make_snapshot()
    (root,) = Tags(render_html(snap)).with_class("wool-mesh")
    assert root["data-peers"] == "3"
    assert root["data-ready"] == "1"
    assert root["data-lost"] == "1"
    assert root["data-dispatched"] == str(snap.caller.started)
    assert root["data-completed"] == str(snap.executed.completed)
    assert root["data-failed"] == "5"
    assert root["data-cancelled"] == "2"
    assert root["data-inflight"] == str(snap.executed.in_flight)


def test_figures_appear_in_html_and_text() -> None:
    snap = make_snapshot()
    text = render_text(snap)
    visible = "".join(Tags(render_html(snap)).text)
    for out in (visible, text):
        assert "1,243" in out  # dispatched
        assert "1,227" in out  # completed
        assert "2.50 ms" in out and "18 ms" in out  # p50, p99
        assert "10.0.0.1:50051" in out and "4101" in out
        assert "87%" in out and "118 MiB" in out
        assert "790" in out


def test_caller_counters_stand_in_when_no_peer_reported() -> None:
    snap = make_snapshot(caller_only=True)
    (root,) = Tags(render_html(snap)).with_class("wool-mesh")
    assert root["data-completed"] == str(snap.caller.completed)
    assert root["data-inflight"] == "9"


def test_addresses_and_tags_are_escaped() -> None:
    markup = render_html(make_snapshot())
    assert "<script>" not in markup and "<b>x" not in markup
    assert "&lt;script&gt;" in markup
    rows = Tags(markup).with_class("wool-peer")
    assert rows[2]["data-address"] == '10.0.0.3:50051"><b>x'


def test_lost_peer_is_kept_and_marked() -> None:
    snap = make_snapshot()
    rows = Tags(render_html(snap)).with_class("wool-peer")
    assert [r["data-state"] for r in rows] == ["ready", "starting", "lost"]
    assert "line-through" in render_html(snap).split('data-state="lost"')[1].split("</tr>")[0]
    lost_line = next(line for line in render_text(snap).splitlines() if "10.0.0.3" in line)
    assert "LOST" in lost_line and "444" in lost_line


def test_throughput_from_two_snapshots() -> None:
    history = History()
    history.add(make_snapshot(t=100.0, finished=1000))
    assert history.rate() is None
    history.add(make_snapshot(t=102.0, finished=1050))
    assert history.rate() == pytest.approx(25.0)
    assert "25.0/s" in render_text(history.latest, history)
    assert "25.0/s" in render_html(history.latest, history)


def test_a_stopped_mesh_shows_no_throughput_in_html_and_text_alike() -> None:
    history = History()
    history.add(make_snapshot(t=100.0, finished=1000))
    history.add(make_snapshot(t=102.0, finished=1050))
    assert history.rate() == pytest.approx(25.0), "the history alone still has a rate"
    text = render_text(history.latest, history, status="stopped")
    markup = render_html(history.latest, history, status="stopped")
    assert "25.0/s" not in text and "25.0/s" not in markup
    assert "throughput \u2013" in text
    assert "throughput \u2013" in " ".join(Tags(markup).text)
    for status in ("running", None):
        assert "25.0/s" in render_text(history.latest, history, status=status)
        assert "25.0/s" in render_html(history.latest, history, status=status)


def test_throughput_falls_back_to_caller_counters() -> None:
    history = History()
    history.add(make_snapshot(t=10.0, finished=0, caller_only=True))
    history.add(make_snapshot(t=14.0, finished=200, caller_only=True))
    assert history.rate() == pytest.approx(50.0)


def test_rate_uses_recent_span_and_ignores_near_duplicates() -> None:
    history = History()
    for i in range(21):  # 10 s at 2 Hz; the rate doubles halfway through
        finished = 10 * i if i <= 10 else 100 + 20 * (i - 10)
        history.add(make_snapshot(t=float(i) / 2, finished=finished))
    assert history.rate(span=5.0) == pytest.approx(40.0)
    history.add(make_snapshot(t=10.01, finished=2000))
    assert history.rate(span=0.1) == pytest.approx((2000 - 280) / 0.51)


def test_sparkline_needs_history() -> None:
    snap = make_snapshot()
    assert "<svg" not in render_html(snap)
    history = History()
    for i in range(10):
        history.add(make_snapshot(t=100.0 + i / 2, finished=1000 + 30 * i))
    markup = render_html(history.latest, history)
    (svg,) = Tags(markup).with_class("wool-spark")
    assert svg["viewbox"]
    assert markup.count("<polyline") == 2
    assert any(ch in render_text(history.latest, history) for ch in "▁▂▃▄▅▆▇█")


def test_history_is_bounded_to_its_window() -> None:
    history = History(window=60.0)
    for i in range(400):
        history.add(make_snapshot(t=float(i) / 2))
    times = [t for t, _ in history]
    assert times[-1] == 199.5
    assert times[0] >= 199.5 - 60.0 - 0.5
    assert len(history) <= 122


def test_history_restarts_when_time_goes_backwards() -> None:
    history = History()
    history.add(make_snapshot(t=50.0))
    history.add(make_snapshot(t=51.0))
    history.add(make_snapshot(t=51.0, finished=2000))  # same time replaces
    assert len(history) == 2 and history.latest is not None
    assert history.latest.caller.completed == 2000
    history.add(make_snapshot(t=10.0))
    assert len(history) == 1


def test_status_note_and_empty_states() -> None:
    markup = render_html(None, status="stopped", note="polling stopped: <boom>")
    (root,) = Tags(markup).with_class("wool-mesh")
    assert root["data-status"] == "stopped" and root["data-peers"] == "0"
    assert "&lt;boom&gt;" in markup
    assert "no statistics yet" in render_text(None)
    empty = MeshStatistics(taken_at=1.0)
    assert "no peers" in render_text(empty) and "no peers" in render_html(empty)
