"""PeerLog: joins and leaves from successive views; rendered in text, HTML and the widget."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_render import Tags

from wool import MeshStatistics, PeerStatistics, WorkerInfo
from wool_jupyter.peerlog import PeerLog, host_of
from wool_jupyter.render import render_html, render_text
from wool_jupyter.status import MeshStatus
from wool_jupyter.widget import MeshWidget


def info(peer_id: str, state: str, source: str = "spawned", host: str = "127.0.0.1") -> WorkerInfo:
    return WorkerInfo(peer_id, f"{host}:7700", 100, (), state, source)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.mark.parametrize(
    ("address", "host"),
    [
        ("127.0.0.1:7700", "127.0.0.1"),
        ("host-a:7700", "host-a"),
        ("[::1]:7700", "::1"),
        ("host-a", "host-a"),
        ("", ""),
    ],
)
def test_host_of(address: str, host: str) -> None:
    assert host_of(address) == host


def test_joins_leaves_and_losses_in_order() -> None:
    log = PeerLog(clock=Clock())
    assert log.observe([info("a", "starting")]) == []
    assert [(e.kind, e.id) for e in log.observe([info("a", "ready")])] == [("joined", "a")]
    assert log.observe([info("a", "ready")]) == []
    log.observe([info("a", "ready"), info("b", "ready", "seed", "host-b")])
    log.observe([info("a", "stopped"), info("b", "ready", "seed", "host-b")])
    log.observe([info("b", "lost", "seed", "host-b")])
    log.observe([info("b", "ready", "seed", "host-b"), info("c", "ready", "gossip", "host-c")])
    log.observe([info("c", "ready", "gossip", "host-c")])
    kinds = [(e.kind, e.id, e.host, e.source) for e in log.events]
    assert kinds == [
        ("joined", "a", "127.0.0.1", "spawned"),
        ("joined", "b", "host-b", "seed"),
        ("left", "a", "127.0.0.1", "spawned"),
        ("lost", "b", "host-b", "seed"),
        ("joined", "b", "host-b", "seed"),
        ("joined", "c", "host-c", "gossip"),
        ("left", "b", "host-b", "seed"),  # disappeared from the view
    ]
    times = [e.at for e in log.events]
    assert times == sorted(times)
    assert log.sources == {"a": "spawned", "b": "seed", "c": "gossip"}


def test_the_log_is_bounded_and_keeps_the_newest() -> None:
    log = PeerLog(limit=3)
    for n in range(5):
        log.observe([info(f"w{i}", "ready") for i in range(n + 1)])
    assert [(e.kind, e.id) for e in log.events] == [("joined", f"w{i}") for i in (2, 3, 4)]


def snapshot() -> MeshStatistics:
    peers = (
        PeerStatistics("a", "127.0.0.1:7701", 11, state="ready"),
        PeerStatistics("b", "host-b:7700", 12, state="ready"),
        PeerStatistics("c", "127.0.0.1:7702", 13, state="stopped"),
    )
    return MeshStatistics(taken_at=5.0, peers=peers)


def events_log() -> PeerLog:
    log = PeerLog()
    log.observe([info("a", "ready"), info("c", "ready"), info("b", "ready", "seed", "host-b")])
    log.observe([info("a", "ready"), info("c", "stopped"), info("b", "ready", "seed", "host-b")])
    return log


def test_html_shows_host_source_and_events() -> None:
    log = events_log()
    page = Tags(render_html(snapshot(), sources=log.sources, events=log.events))
    rows = {r["data-id"]: r for r in page.with_class("wool-peer")}
    assert rows["b"]["data-host"] == "host-b" and rows["b"]["data-source"] == "seed"
    assert rows["a"]["data-host"] == "127.0.0.1" and rows["a"]["data-source"] == "spawned"
    (root,) = page.with_class("wool-mesh")
    assert (root["data-joins"], root["data-leaves"]) == ("3", "1")
    events = page.with_class("wool-event")
    assert (events[0]["data-kind"], events[0]["data-id"]) == ("left", "c")  # newest first
    assert {e["data-id"] for e in events if e["data-kind"] == "joined"} == {"a", "b", "c"}
    assert "joins and leaves" in "".join(page.text)


def test_text_shows_host_source_and_events() -> None:
    log = events_log()
    text = render_text(snapshot(), sources=log.sources, events=log.events)
    header = next(line for line in text.splitlines() if line.startswith("id "))
    assert header.split()[:3] == ["id", "host", "found"]
    row_b = next(line for line in text.splitlines() if line.startswith("b "))
    assert row_b.split()[:4] == ["b", "host-b", "seed", "host-b:7700"]
    lines = text.splitlines()
    start = lines.index("joins and leaves (newest first):")
    assert " c left (127.0.0.1, spawned)" in lines[start + 1]
    assert MeshStatus(snapshot(), events=log.events).__repr__().count("joined") == 3


def test_without_a_log_nothing_about_events_shows() -> None:
    text = render_text(snapshot())
    assert "joins and leaves" not in text
    assert 'class="wool-events"' not in render_html(snapshot())


@pytest.fixture
def widgets() -> Iterator[list[MeshWidget]]:
    made: list[MeshWidget] = []
    yield made
    for widget in made:
        widget.close()


def test_widget_counts_and_renders_the_log(widgets: list[MeshWidget]) -> None:
    log = events_log()
    widget = MeshWidget(snapshot, interval=30.0, log=log)
    widgets.append(widget)
    assert (widget.joins, widget.leaves) == (3, 1)
    bundle = widget._repr_mimebundle_()
    assert 'data-kind="left"' in bundle["text/html"]
    assert "c left" in bundle["text/plain"]
    log.observe([info("a", "ready")])  # b and c gone
    widget.refresh()
    assert (widget.joins, widget.leaves) == (3, 2)
