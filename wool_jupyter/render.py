"""Render mesh statistics as self-contained HTML or plain text.

Everything here is a pure function of a :class:`~wool.MeshStatistics` snapshot
and a :class:`History` of earlier ones, so the live widget, the text fallback
and tests all see exactly the same figures. Nothing here imports ipywidgets.

Every figure says what it counts. Three rows of totals: calls **from this
kernel** (``MeshStatistics.caller``, with their round-trip latency measured
here), calls **worker to worker** (nested calls the workers sent to their
peers, the sum of each peer's ``dispatched``) and runs **on workers**
(``MeshStatistics.executed``: everything the peers ran, so about the sum of
the other two, with the run time measured on the workers). Each row adds up:
calls = completed + failed + cancelled + in flight.

The HTML carries machine-readable hooks that stay stable across styling
changes: the root element has ``class="wool-mesh"`` and ``data-peers``,
``data-ready``, ``data-lost``, ``data-dispatched`` (calls from this kernel),
``data-nested`` (worker to worker), ``data-executed`` (runs on workers),
``data-completed``, ``data-failed``, ``data-cancelled``, ``data-inflight``
(of the runs on workers, see :func:`mesh_totals`) and ``data-status``; each
peer row has ``class="wool-peer"``, ``data-id``, ``data-address``, ``data-host``,
``data-source`` (how the peer was found: ``spawned``, ``seed``, ``gossip``, ...) and
``data-state``. The totals and the peers are tables of class ``wool-totals`` and
``wool-peers``. Recent joins and leaves (:mod:`wool_jupyter.peerlog`), when given,
are a list of class ``wool-events``, one ``wool-event`` per change with
``data-kind`` (``joined``, ``left``, ``lost``), ``data-id``, ``data-host`` and
``data-source``; the root's ``data-joins`` and ``data-leaves`` count them.
"""

from __future__ import annotations

import html
from collections import deque
from collections.abc import Iterator, Mapping, Sequence

from wool import DispatchCounters, LatencySummary, MeshStatistics, PeerStatistics
from wool_jupyter.peerlog import JOINED, PeerEvent, host_of
from wool_jupyter.rate import windowed_rate

__all__ = ["History", "mesh_totals", "render_html", "render_text"]

_RATE_SPAN_S = 5.0
_DASH = "\u2013"  # shown where there is no figure yet
_SMOOTH_S = 2.0


def _finished(snapshot: MeshStatistics, use_executed: bool) -> int:
    return snapshot.executed.finished if use_executed else snapshot.caller.finished


def mesh_totals(snapshot: MeshStatistics) -> DispatchCounters:
    """The counters every view reports: ``executed`` (what all peers ran, nested
    calls included), or the caller's own counters while no peer has reported any."""
    executed = snapshot.executed
    return executed if executed.started or executed.finished else snapshot.caller


def nested_totals(snapshot: MeshStatistics) -> DispatchCounters:
    """The calls workers sent to their peers (nested calls), summed over the peers.

    Latency is left empty: the peers report summaries, which do not add up.
    """
    peers = [p.dispatched for p in snapshot.peers]
    return DispatchCounters(
        started=sum(d.started for d in peers),
        completed=sum(d.completed for d in peers),
        failed=sum(d.failed for d in peers),
        cancelled=sum(d.cancelled for d in peers),
    )


_ROUND_TRIP = "round trip, timed here"
_RUN_TIME = "run time, timed on the workers"
_NESTED = "nested calls workers made"


def _total_rows(snapshot: MeshStatistics) -> list[tuple[str, DispatchCounters, str]]:
    """(label, counters, what the latency is) for each row of totals."""
    nested = nested_totals(snapshot)
    rows = [("from this kernel", snapshot.caller, _ROUND_TRIP)]
    if nested.started:
        rows.append(("worker to worker", nested, _NESTED))
    rows.append(("on workers", snapshot.executed, _RUN_TIME))
    return rows


_TOTAL_HEADS = ("calls", "completed", "failed", "cancelled", "in flight", "p50", "p99")


def _total_cells(counters: DispatchCounters) -> list[str]:
    latency: LatencySummary = counters.latency
    return [
        _int(counters.started),
        _int(counters.completed),
        _int(counters.failed),
        _int(counters.cancelled),
        _int(counters.in_flight),
        _ms(latency.p50_ms) if latency.count else _DASH,
        _ms(latency.p99_ms) if latency.count else _DASH,
    ]


class History:
    """The snapshots of roughly the last ``window`` seconds, oldest first.

    Points are keyed by ``t`` (by default the snapshot's ``taken_at``). Adding a
    point no newer than the latest replaces the latest when the times are equal
    and restarts the history when time went backwards, so rates never come out
    negative because of a clock step. Memory is bounded by ``maxlen`` points.
    Rates need two points at least ``min_dt`` seconds apart.
    """

    def __init__(self, window: float = 60.0, maxlen: int = 1024, min_dt: float = 0.2) -> None:
        self.window = window
        self.min_dt = min_dt
        self._points: deque[tuple[float, MeshStatistics]] = deque(maxlen=maxlen)

    def add(self, snapshot: MeshStatistics, t: float | None = None) -> None:
        t = snapshot.taken_at if t is None else t
        points = self._points
        if points:
            last = points[-1][0]
            if t == last:
                points.pop()
            elif t < last:
                points.clear()
        points.append((t, snapshot))
        # Keep one point older than the window so a full-window rate has a base.
        while len(points) > 2 and points[1][0] <= t - self.window:
            points.popleft()

    def clear(self) -> None:
        self._points.clear()

    def __len__(self) -> int:
        return len(self._points)

    def __iter__(self) -> Iterator[tuple[float, MeshStatistics]]:
        return iter(self._points)

    @property
    def latest(self) -> MeshStatistics | None:
        return self._points[-1][1] if self._points else None

    def _use_executed(self) -> bool:
        latest = self.latest
        return latest is not None and bool(latest.executed.started or latest.executed.finished)

    def rate(self, span: float = _RATE_SPAN_S) -> float | None:
        """Finished tasks per second over about the last ``span`` seconds.

        Counts ``executed.finished`` (every peer's completions, nested calls
        included) and falls back to the caller's counters while no peer has
        reported any. None until two points lie at least ``min_dt`` apart, so
        two reads a millisecond apart never show as a wild spike.
        """
        use_executed = self._use_executed()
        return windowed_rate(self._points, lambda s: _finished(s, use_executed), span, self.min_dt)

    def series(self, smooth: float = _SMOOTH_S) -> list[tuple[float, float, int]]:
        """``(t, tasks per second, in flight)`` for the points in the window.

        Each rate is measured against the newest point at least ``smooth``
        seconds earlier (or the oldest point, once ``min_dt`` has passed), which
        keeps a half-second polling interval from looking jagged. Points too
        close to the start to have a rate are left out.
        """
        points = list(self._points)
        use_executed = self._use_executed()
        out: list[tuple[float, float, int]] = []
        base = 0
        for i, (t, snap) in enumerate(points):
            while base + 1 < i and points[base + 1][0] <= t - smooth:
                base += 1
            t0, s0 = points[base]
            if t - t0 < self.min_dt:
                continue
            delta = _finished(snap, use_executed) - _finished(s0, use_executed)
            out.append((t, max(0.0, delta / (t - t0)), mesh_totals(snap).in_flight))
        return out


# --- formatting ---------------------------------------------------------------


def _int(n: int) -> str:
    return f"{n:,}"


def _ms(value: float) -> str:
    if value <= 0:
        return _DASH
    if value < 1:
        return f"{value * 1000:.0f} µs"
    if value < 10:
        return f"{value:.2f} ms"
    if value < 1000:
        return f"{value:.0f} ms"
    return f"{value / 1000:.2f} s"


def _bytes(n: int) -> str:
    if n <= 0:
        return _DASH
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _rate(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}/s"
    return f"{value:.1f}/s"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _peer_counts(snapshot: MeshStatistics) -> tuple[int, int, int]:
    peers = snapshot.peers
    lost = sum(1 for p in peers if p.state == "lost")
    return len(peers), snapshot.ready_peers, lost


def _peer_summary(snapshot: MeshStatistics) -> str:
    peers, ready, lost = _peer_counts(snapshot)
    summary = f"{peers} peer{'s' if peers != 1 else ''} · {ready} ready"
    return summary + (f" · {lost} lost" if lost else "")


def _throughput(history: History | None, status: str | None) -> str:
    """The recent rate; a stopped mesh has none, whatever its last readings were."""
    rate = history.rate() if history is not None and status != "stopped" else None
    return _DASH if rate is None else _rate(rate)


# --- HTML ---------------------------------------------------------------------

_FONT = (
    "font-family:var(--jp-ui-font-family,system-ui,sans-serif);"
    "font-size:var(--jp-ui-font-size1,13px)"
)
_BORDER = "var(--jp-border-color2,rgba(128,128,128,.35))"
_MUTED = "opacity:.7"
_STATE_COLOURS = {
    "ready": "var(--jp-success-color1,#2e7d32)",
    "starting": "var(--jp-warn-color1,#ef6c00)",
    "lost": "var(--jp-error-color1,#d32f2f)",
    "running": "var(--jp-success-color1,#2e7d32)",
    "stopped": "var(--jp-error-color1,#d32f2f)",
}
_RATE_COLOUR = "var(--jp-brand-color1,#1976d2)"
_INFLIGHT_COLOUR = "var(--jp-warn-color1,#ef6c00)"


def _badge(label: str) -> str:
    colour = _STATE_COLOURS.get(label, "currentColor")
    return (
        f'<span style="border:1px solid {colour};color:{colour};border-radius:8px;'
        f'padding:0 6px;font-size:85%;white-space:nowrap">{html.escape(label)}</span>'
    )


def _polyline(points: list[tuple[float, float]], colour: str) -> str:
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return (
        f'<polyline points="{coords}" fill="none" stroke-width="1.5" '
        f'style="stroke:{colour}" stroke-linejoin="round"/>'
    )


def _sparkline(history: History | None, width: int = 320, height: int = 48) -> str:
    series = history.series() if history is not None else []
    if history is None or len(series) < 2:
        return ""
    t_end = series[-1][0]
    t_start = max(t_end - history.window, series[0][0])  # fill the width until a minute is seen
    visible = [p for p in series if p[0] >= t_start]
    if len(visible) < 2:
        visible = series[-2:]
        t_start = visible[0][0]
    span = max(t_end - t_start, 1e-9)
    max_rate = max(p[1] for p in visible)
    max_inflight = max(p[2] for p in visible)

    def xy(t: float, value: float, top: float) -> tuple[float, float]:
        x = (t - t_start) / span * width
        y = height - 2 - (value / top * (height - 4) if top > 0 else 0.0)
        return x, y

    rate_line = [xy(t, r, max_rate) for t, r, _ in visible]
    inflight_line = [xy(t, float(n), float(max_inflight)) for t, _, n in visible]
    seconds = round(t_end - visible[0][0])
    return (
        '<div style="display:flex;align-items:center;gap:10px;flex-wrap:wrap;margin:6px 0">'
        f'<svg class="wool-spark" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" preserveAspectRatio="none" role="img" '
        f'style="border:1px solid {_BORDER};border-radius:3px">'
        f"<title>throughput and in flight over the last {seconds}s</title>"
        f"{_polyline(inflight_line, _INFLIGHT_COLOUR)}{_polyline(rate_line, _RATE_COLOUR)}"
        "</svg>"
        f'<div style="font-size:85%;line-height:1.6">'
        f'<div><span style="color:{_RATE_COLOUR}">━</span> throughput, peak {_rate(max_rate)}</div>'
        f'<div><span style="color:{_INFLIGHT_COLOUR}">━</span> in flight, peak '
        f"{_int(max_inflight)}</div>"
        f'<div style="{_MUTED}">last {seconds}s</div></div>'
        "</div>"
    )


_COLUMNS = (
    ("worker", "left"),
    ("host", "left"),
    ("found", "left"),
    ("pid", "right"),
    ("tags", "left"),
    ("state", "left"),
    ("in flight", "right"),
    ("completed", "right"),
    ("failed", "right"),
    ("to peers", "right"),
    ("run time mean · p99", "right"),
    ("CPU · RSS", "right"),
)
_CELL = "padding:2px 5px;white-space:nowrap"
_TEXT_COLUMNS = (
    ("id", "left"),
    ("host", "left"),
    ("found", "left"),
    ("address", "left"),
    ("pid", "right"),
    ("tags", "left"),
    ("state", "left"),
    ("in flight", "right"),
    ("completed", "right"),
    ("failed", "right"),
    ("to peers", "right"),
    ("run mean", "right"),
    ("run p99", "right"),
    ("CPU", "right"),
    ("RSS", "right"),
)


def _peer_row(peer: PeerStatistics, source: str) -> str:
    executed = peer.executed
    lost = peer.state == "lost"
    address_style = f"{_MUTED};font-size:90%" + (";text-decoration:line-through" if lost else "")
    latency = executed.latency
    cells = (
        f"<strong>{html.escape(peer.id)}</strong> "
        f'<span style="{address_style}">{html.escape(peer.address)}</span>',
        html.escape(host_of(peer.address)) or _DASH,
        html.escape(source) or _DASH,
        str(peer.pid),
        html.escape(", ".join(peer.tags)) or _DASH,
        _badge(peer.state),
        _int(executed.in_flight),
        _int(executed.completed),
        _int(executed.failed),
        _int(peer.dispatched.started),
        html.escape(f"{_ms(latency.mean_ms)} · {_ms(latency.p99_ms)}"),
        html.escape(
            (_DASH if lost else f"{peer.cpu_percent:.0f}%") + f" · {_bytes(peer.rss_bytes)}"
        ),
    )
    row_style = "opacity:.6" if lost else ""
    tds = "".join(
        f'<td style="{_CELL};text-align:{align};border-top:1px solid {_BORDER}">{cell}</td>'
        for (_, align), cell in zip(_COLUMNS, cells, strict=True)
    )
    title = html.escape(f"{peer.id} · up {_duration(peer.uptime_s)}", quote=True)
    return (
        f'<tr class="wool-peer" data-id="{html.escape(peer.id, quote=True)}" '
        f'data-address="{html.escape(peer.address, quote=True)}" '
        f'data-host="{html.escape(host_of(peer.address), quote=True)}" '
        f'data-source="{html.escape(source, quote=True)}" '
        f'data-state="{html.escape(peer.state, quote=True)}" title="{title}" '
        f'style="{row_style}">{tds}</tr>'
    )


def _peer_table(snapshot: MeshStatistics, sources: Mapping[str, str]) -> str:
    if not snapshot.peers:
        return f'<div style="{_MUTED};margin-top:4px">no peers</div>'
    head = "".join(
        f'<th style="{_CELL};text-align:{align};font-weight:600">{name}</th>'
        for name, align in _COLUMNS
    )
    rows = "".join(_peer_row(p, sources.get(p.id, "")) for p in snapshot.peers)
    return (
        '<div style="overflow-x:auto;max-width:100%">'
        '<table class="wool-peers" style="border-collapse:collapse;margin-top:6px;'
        "font-variant-numeric:tabular-nums;font-size:92%;color:inherit;"
        'background:transparent">'
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"
    )


def render_html(
    snapshot: MeshStatistics | None,
    history: History | None = None,
    *,
    status: str | None = None,
    note: str | None = None,
    sources: Mapping[str, str] | None = None,
    events: Sequence[PeerEvent] = (),
) -> str:
    """A self-contained HTML view of ``snapshot``; ``history`` is only read.

    ``sources`` says how each peer (by id) was found; ``events`` are the
    recent joins and leaves, oldest first, shown newest first under the peers.

    ``status`` (e.g. ``"running"`` or ``"stopped"``) is shown as a badge and in
    ``data-status``; ``note`` is an extra escaped line such as why polling
    stopped. ``snapshot=None`` renders an empty placeholder with zeroed hooks.
    Colours come from JupyterLab theme variables with fallbacks, so the view
    reads well in light and dark themes and outside Jupyter.
    """
    status_attr = html.escape(status or "snapshot", quote=True)
    badge = _badge(status) if status else ""
    note_html = f'<div style="{_MUTED};margin-top:4px">{html.escape(note)}</div>' if note else ""
    if snapshot is None:
        return (
            f'<div class="wool-mesh" data-peers="0" data-ready="0" data-lost="0" '
            f'data-dispatched="0" data-completed="0" data-failed="0" data-cancelled="0" '
            f'data-inflight="0" data-status="{status_attr}" style="{_FONT}">'
            f"<strong>wool mesh</strong> {badge}"
            f'<div style="{_MUTED}">no statistics yet</div>{_events_html(events)}{note_html}</div>'
        )
    totals = mesh_totals(snapshot)
    nested = nested_totals(snapshot)
    peers, ready, lost = _peer_counts(snapshot)
    summary = _peer_summary(snapshot)
    return (
        f'<div class="wool-mesh" data-peers="{peers}" data-ready="{ready}" data-lost="{lost}" '
        f'data-dispatched="{snapshot.caller.started}" data-nested="{nested.started}" '
        f'data-executed="{snapshot.executed.started}" data-completed="{totals.completed}" '
        f'data-failed="{totals.failed}" data-cancelled="{totals.cancelled}" '
        f'data-inflight="{totals.in_flight}" data-status="{status_attr}" '
        f"{_event_counts(events)}"
        f'style="{_FONT};color:inherit;line-height:1.4;padding:4px 0">'
        '<div style="display:flex;gap:8px;align-items:center;flex-wrap:wrap">'
        f'<strong>wool mesh</strong><span style="{_MUTED}">{summary}</span>{badge}</div>'
        f"{_totals_table(snapshot)}{_throughput_html(history, status)}"
        f"{_sparkline(history)}{_peer_table(snapshot, sources or {})}"
        f"{_events_html(events)}{note_html}</div>"
    )


def _event_counts(events: Sequence[PeerEvent]) -> str:
    joins = sum(1 for e in events if e.kind == JOINED)
    return f'data-joins="{joins}" data-leaves="{len(events) - joins}" '


_EVENT_COLOURS = {"joined": _STATE_COLOURS["ready"], "left": "currentColor"}


def _events_html(events: Sequence[PeerEvent]) -> str:
    """The recent joins and leaves, newest first."""
    if not events:
        return ""
    items = "".join(
        f'<li class="wool-event" data-kind="{html.escape(e.kind, quote=True)}" '
        f'data-id="{html.escape(e.id, quote=True)}" '
        f'data-host="{html.escape(e.host, quote=True)}" '
        f'data-source="{html.escape(e.source, quote=True)}">'
        f'<span style="{_MUTED}">{e.clock()}</span> <strong>{html.escape(e.id)}</strong> '
        f'<span style="color:{_EVENT_COLOURS.get(e.kind, _STATE_COLOURS["lost"])}">'
        f"{html.escape(e.kind)}</span> "
        f'<span style="{_MUTED}">{html.escape(e.host)}'
        f"{html.escape(', ' + e.source) if e.source else ''}</span></li>"
        for e in reversed(events)
    )
    return (
        f'<div style="margin-top:6px;font-size:92%"><span style="{_MUTED}">joins and leaves'
        f'</span><ul class="wool-events" style="list-style:none;margin:2px 0;padding:0">'
        f"{items}</ul></div>"
    )


_THROUGHPUT_WHAT = "calls finished per second, on workers"


def _throughput_html(history: History | None, status: str | None) -> str:
    """The rate line; a one-off snapshot (``history=None``) has no rate to show."""
    if history is None:
        return ""
    return (
        '<div style="margin-top:4px;font-variant-numeric:tabular-nums">'
        f"{html.escape('throughput ' + _throughput(history, status))}"
        f' <span style="{_MUTED}">({_THROUGHPUT_WHAT})</span></div>'
    )


def _totals_table(snapshot: MeshStatistics) -> str:
    head = "".join(
        f'<th style="{_CELL};text-align:right;font-weight:600">{name}</th>' for name in _TOTAL_HEADS
    )
    body = ""
    for label, counters, what in _total_rows(snapshot):
        cells = "".join(
            f'<td style="{_CELL};text-align:right">{html.escape(c)}</td>'
            for c in _total_cells(counters)
        )
        body += (
            f'<tr><th style="{_CELL};text-align:left;font-weight:600">{label}</th>{cells}'
            f'<td style="{_CELL};{_MUTED}">{html.escape(what)}</td></tr>'
        )
    return (
        '<div style="overflow-x:auto;max-width:100%">'
        '<table class="wool-totals" style="border-collapse:collapse;margin-top:4px;'
        'font-variant-numeric:tabular-nums;color:inherit;background:transparent">'
        f'<thead><tr><th style="{_CELL}"></th>{head}<th style="{_CELL}"></th></tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


# --- text ---------------------------------------------------------------------

_BLOCKS = "▁▂▃▄▅▆▇█"


def _text_sparkline(history: History | None, bins: int = 30) -> str:
    series = history.series() if history is not None else []
    if history is None or len(series) < 2:
        return ""
    t_end = series[-1][0]
    t_start = max(series[0][0], t_end - history.window)
    span = max(t_end - t_start, 1e-9)
    values: list[float | None] = [None] * bins
    for t, rate, _ in series:
        if t >= t_start:
            i = min(bins - 1, int((t - t_start) / span * bins))
            values[i] = max(values[i] or 0.0, rate)
    filled: list[float | None] = []
    for v in values:  # a bin with no sample repeats the previous one
        filled.append(v if v is not None else (filled[-1] if filled else None))
    top = max((v for v in filled if v is not None), default=0.0)
    return "".join(
        " " if v is None else _BLOCKS[min(7, int(v / top * 7.999)) if top > 0 else 0]
        for v in filled
    )


def render_text(
    snapshot: MeshStatistics | None,
    history: History | None = None,
    *,
    status: str | None = None,
    note: str | None = None,
    sources: Mapping[str, str] | None = None,
    events: Sequence[PeerEvent] = (),
) -> str:
    """The same facts as :func:`render_html` as aligned plain text lines."""
    head = "wool mesh" + (f" [{status}]" if status else "")
    found = sources or {}
    if snapshot is None:
        lines = [head, "no statistics yet", *_events_text(events)]
        if note:
            lines.append(note)
        return "\n".join(lines)
    head += f" · {_peer_summary(snapshot)}"
    lines = [head]
    table = [["", *_TOTAL_HEADS, ""]]
    table += [[label, *_total_cells(c), what] for label, c, what in _total_rows(snapshot)]
    lines += _aligned(table, "l" + "r" * len(_TOTAL_HEADS) + "l")
    if history is not None:
        lines.append(f"throughput {_throughput(history, status)} ({_THROUGHPUT_WHAT})")
    spark = _text_sparkline(history)
    if spark:
        lines.append(f"throughput {spark}")
    if snapshot.peers:
        rows = [[name for name, _ in _TEXT_COLUMNS]]
        for p in snapshot.peers:
            e = p.executed
            rows.append(
                [
                    p.id,
                    host_of(p.address) or _DASH,
                    found.get(p.id) or _DASH,
                    p.address,
                    str(p.pid),
                    ",".join(p.tags) or _DASH,
                    p.state.upper() if p.state == "lost" else p.state,
                    _int(e.in_flight),
                    _int(e.completed),
                    _int(e.failed),
                    _int(p.dispatched.started),
                    _ms(e.latency.mean_ms),
                    _ms(e.latency.p99_ms),
                    _DASH if p.state == "lost" else f"{p.cpu_percent:.0f}%",
                    _bytes(p.rss_bytes),
                ]
            )
        lines += _aligned(rows, "".join(align[0] for _, align in _TEXT_COLUMNS))
    else:
        lines.append("no peers")
    lines += _events_text(events)
    if note:
        lines.append(note)
    return "\n".join(lines)


def _events_text(events: Sequence[PeerEvent]) -> list[str]:
    if not events:
        return []
    return ["joins and leaves (newest first):", *(f"  {e}" for e in reversed(events))]


def _aligned(rows: list[list[str]], aligns: str) -> list[str]:
    """``rows`` as lines of columns two spaces apart; ``aligns`` has ``l`` or ``r`` per column."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(aligns))]
    return [
        "  ".join(
            c.ljust(w) if a == "l" else c.rjust(w)
            for c, w, a in zip(r, widths, aligns, strict=True)
        ).rstrip()
        for r in rows
    ]
