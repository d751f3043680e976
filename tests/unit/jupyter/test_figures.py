"""The figures say what they count: round trip vs run time, nested calls, totals that add up."""

from __future__ import annotations

import dataclasses
import re

from test_render import LATENCY, Tags, make_snapshot

from wool import DispatchCounters, LatencySummary, MeshStatistics
from wool.stats import Histogram
from wool_jupyter.render import nested_totals, render_html, render_text

ROUND_TRIP = LatencySummary(count=9, mean_ms=0.4, p50_ms=0.35, p90_ms=0.5, p99_ms=1.2, max_ms=2.0)
RUN_TIME = LatencySummary(count=9, mean_ms=0.001, p50_ms=0.001, p90_ms=0.001, p99_ms=0.01)


def quickstart_like() -> MeshStatistics:
    """2,005 calls from the kernel, 10 of whose runs made one nested call each."""
    snap = make_snapshot()
    peers = list(snap.peers)
    peers[0] = dataclasses.replace(
        peers[0], dispatched=DispatchCounters(started=10, completed=10, latency=LATENCY)
    )
    return dataclasses.replace(
        snap,
        peers=tuple(peers),
        caller=DispatchCounters(started=2005, completed=2005, latency=ROUND_TRIP),
        executed=DispatchCounters(started=2015, completed=2015, latency=RUN_TIME),
    )


def rows(text: str) -> dict[str, list[str]]:
    """The totals table of ``render_text``: label -> cells."""
    out = {}
    for line in text.splitlines():
        for label in ("from this kernel", "worker to worker", "on workers"):
            if line.startswith(label):
                out[label] = re.split(r"\s{2,}", line[len(label) :].strip())
    return out


def test_each_count_is_labelled_and_the_rows_add_up() -> None:
    table = rows(render_text(quickstart_like()))
    assert table["from this kernel"][:5] == ["2,005", "2,005", "0", "0", "0"]
    assert table["worker to worker"][:5] == ["10", "10", "0", "0", "0"]
    assert table["on workers"][:5] == ["2,015", "2,015", "0", "0", "0"]
    calls = {label: int(cells[0].replace(",", "")) for label, cells in table.items()}
    assert calls["from this kernel"] + calls["worker to worker"] == calls["on workers"]
    for cells in table.values():
        started, completed, failed, cancelled, in_flight = (
            int(c.replace(",", "")) for c in cells[:5]
        )
        assert started == completed + failed + cancelled + in_flight


def test_round_trip_and_run_time_are_both_shown_and_named() -> None:
    text = render_text(quickstart_like())
    table = rows(text)
    assert table["from this kernel"][5:] == ["350 µs", "1.20 ms", "round trip, timed here"]
    assert table["on workers"][5:] == ["1 µs", "10 µs", "run time, timed on the workers"]
    visible = " ".join(Tags(render_html(quickstart_like())).text)
    for words in ("round trip, timed here", "run time, timed on the workers", "350 µs", "1 µs"):
        assert words in visible
    assert "latency p50" not in text


def test_nested_calls_row_only_when_there_are_some() -> None:
    assert "worker to worker" not in render_text(make_snapshot())
    assert nested_totals(quickstart_like()).started == 10
    (root,) = Tags(render_html(quickstart_like())).with_class("wool-mesh")
    assert (root["data-dispatched"], root["data-nested"], root["data-executed"]) == (
        "2005",
        "10",
        "2015",
    )


def test_peer_rows_show_what_each_worker_sent_to_peers() -> None:
    line = next(ln for ln in render_text(quickstart_like()).splitlines() if ln.startswith("p1 "))
    header = next(ln for ln in render_text(quickstart_like()).splitlines() if ln.startswith("id "))
    assert "to peers" in header and "run mean" in header and "run p99" in header
    assert re.search(r"\b3\s+10\s+3\.25 ms", line), line


def test_text_is_plain_and_aligned() -> None:
    text = render_text(quickstart_like(), status="running")
    assert not re.search(r"<(div|span|table|td|th|svg)\b|style=|&\w+;", text)
    lines = text.splitlines()
    table = [ln for ln in lines if ln.startswith(("from this kernel", "on workers", " "))]
    ends = {ln.index("completed") + len("completed") for ln in table if "completed" in ln}
    assert len(ends) == 1
    header = next(ln for ln in lines if ln.lstrip().startswith("calls"))
    for line in (ln for ln in lines if ln.startswith(("from this kernel", "on workers"))):
        # each number ends where its header ends (right-aligned columns)
        assert line[: header.index("failed") + len("failed")].rstrip()[-1].isdigit()


class TestLatencySummary:
    def test_a_late_total_cannot_put_the_mean_above_p99(self) -> None:
        live = Histogram()
        for _ in range(3):
            live.add(1_000)
        # A worker reports its buckets, then total_ns after one more call landed.
        reported = Histogram.from_sparse(live.sparse(), live.total_ns + 1_000_000, 1_000)
        summary = reported.summary()
        assert summary.mean_ms <= summary.p99_ms <= summary.max_ms
        assert summary.mean_ms == 0.001

    def test_percentiles_are_ordered_and_within_max(self) -> None:
        hist = Histogram.from_sparse({40: 5, 41: 90, 60: 5}, 10**9, 0)
        s = hist.summary()
        assert s.p50_ms <= s.p90_ms <= s.p99_ms <= s.max_ms
        assert s.mean_ms <= s.max_ms

    def test_a_real_tail_still_shows_as_a_mean_above_p99(self) -> None:
        hist = Histogram()
        for _ in range(999):
            hist.add(1_000)
        hist.add(1_000_000_000)
        s = hist.summary()
        assert s.p99_ms < 0.002 and s.mean_ms > 0.9 and s.max_ms == 1000.0
