"""Render mesh statistics as self-contained HTML or plain text.

Everything here is a pure function of a :class:`~wool.MeshStatistics` snapshot
and a :class:`History` of earlier ones, so the live widget, the text fallback
and tests all see exactly the same figures. Nothing here imports ipywidgets.

The HTML carries machine-readable hooks that stay stable across styling
changes: the root element has ``class="wool-mesh"`` and ``data-peers``,
``data-ready``, ``data-lost``, ``data-dispatched``, ``data-completed``,
``data-failed``, ``data-cancelled``, ``data-inflight`` and ``data-status``;
each peer row has ``class="wool-peer"``, ``data-id``, ``data-address`` and ``data-state``.
"""

from __future__ import annotations

import html
from collections import deque
from collections.abc import Iterator

from wool import DispatchCounters, LatencySummary, MeshStatistics, PeerStatistics
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


def _latency(snapshot: MeshStatistics) -> LatencySummary:
    latency = snapshot.executed.latency
    return latency if latency.count else snapshot.caller.latency


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


def _stat(label: str, value: str) -> str:
    return (
        '<div style="display:flex;flex-direction:column;min-width:64px">'
        f'<span style="{_MUTED};font-size:85%">{html.escape(label)}</span>'
        '<span style="font-size:120%;font-variant-numeric:tabular-nums">'
        f"{html.escape(value)}</span>"
        "</div>"
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
    ("pid", "right"),
    ("tags", "left"),
    ("state", "left"),
    ("in flight", "right"),
    ("completed", "right"),
    ("failed", "right"),
    ("mean · p99", "right"),
    ("CPU · RSS", "right"),
)
_CELL = "padding:2px 5px;white-space:nowrap"
_TEXT_COLUMNS = (
    ("id", "left"),
    ("address", "left"),
    ("pid", "right"),
    ("tags", "left"),
    ("state", "left"),
    ("in flight", "right"),
    ("completed", "right"),
    ("failed", "right"),
    ("mean", "right"),
    ("p99", "right"),
    ("CPU", "right"),
    ("RSS", "right"),
)


def _peer_row(peer: PeerStatistics) -> str:
    executed = peer.executed
    lost = peer.state == "lost"
    address_style = f"{_MUTED};font-size:90%" + (";text-decoration:line-through" if lost else "")
    latency = executed.latency
    cells = (
        f"<strong>{html.escape(peer.id)}</strong> "
        f'<span style="{address_style}">{html.escape(peer.address)}</span>',
        str(peer.pid),
        html.escape(", ".join(peer.tags)) or _DASH,
        _badge(peer.state),
        _int(executed.in_flight),
        _int(executed.completed),
        _int(executed.failed),
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
        f'data-state="{html.escape(peer.state, quote=True)}" title="{title}" '
        f'style="{row_style}">{tds}</tr>'
    )


def _peer_table(snapshot: MeshStatistics) -> str:
    if not snapshot.peers:
        return f'<div style="{_MUTED};margin-top:4px">no peers</div>'
    head = "".join(
        f'<th style="{_CELL};text-align:{align};font-weight:600">{name}</th>'
        for name, align in _COLUMNS
    )
    rows = "".join(_peer_row(p) for p in snapshot.peers)
    return (
        '<div style="overflow-x:auto;max-width:100%">'
        '<table style="border-collapse:collapse;margin-top:6px;'
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
) -> str:
    """A self-contained HTML view of ``snapshot``; ``history`` is only read.

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
            f'<div style="{_MUTED}">no statistics yet</div>{note_html}</div>'
        )
    totals = mesh_totals(snapshot)
    latency = _latency(snapshot)
    peers, ready, lost = _peer_counts(snapshot)
    summary = _peer_summary(snapshot)
    stats = "".join(
        (
            _stat("dispatched", _int(snapshot.caller.started)),
            _stat("completed", _int(totals.completed)),
            _stat("failed", _int(totals.failed)),
            _stat("cancelled", _int(totals.cancelled)),
            _stat("in flight", _int(totals.in_flight)),
            _stat("p50", _ms(latency.p50_ms)),
            _stat("p99", _ms(latency.p99_ms)),
            _stat("throughput", _throughput(history, status)),
        )
    )
    return (
        f'<div class="wool-mesh" data-peers="{peers}" data-ready="{ready}" data-lost="{lost}" '
        f'data-dispatched="{snapshot.caller.started}" data-completed="{totals.completed}" '
        f'data-failed="{totals.failed}" data-cancelled="{totals.cancelled}" '
        f'data-inflight="{totals.in_flight}" data-status="{status_attr}" '
        f'style="{_FONT};color:inherit;line-height:1.4;padding:4px 0">'
        '<div style="display:flex;gap:8px;align-items:center;flex-wrap:wrap">'
        f'<strong>wool mesh</strong><span style="{_MUTED}">{summary}</span>{badge}</div>'
        f'<div style="display:flex;gap:16px;flex-wrap:wrap;margin-top:4px">{stats}</div>'
        f"{_sparkline(history)}{_peer_table(snapshot)}{note_html}</div>"
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
) -> str:
    """The same facts as :func:`render_html` as aligned plain text lines."""
    head = "wool mesh" + (f" [{status}]" if status else "")
    if snapshot is None:
        lines = [head, "no statistics yet"]
        if note:
            lines.append(note)
        return "\n".join(lines)
    totals = mesh_totals(snapshot)
    latency = _latency(snapshot)
    head += f" · {_peer_summary(snapshot)}"
    lines = [
        head,
        f"dispatched {_int(snapshot.caller.started)} · completed {_int(totals.completed)} · "
        f"failed {_int(totals.failed)} · cancelled {_int(totals.cancelled)} · "
        f"in flight {_int(totals.in_flight)}",
        f"latency p50 {_ms(latency.p50_ms)} · p99 {_ms(latency.p99_ms)} · "
        f"throughput {_throughput(history, status)}",
    ]
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
                    p.address,
                    str(p.pid),
                    ",".join(p.tags) or _DASH,
                    p.state.upper() if p.state == "lost" else p.state,
                    _int(e.in_flight),
                    _int(e.completed),
                    _int(e.failed),
                    _ms(e.latency.mean_ms),
                    _ms(e.latency.p99_ms),
                    _DASH if p.state == "lost" else f"{p.cpu_percent:.0f}%",
                    _bytes(p.rss_bytes),
                ]
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(_TEXT_COLUMNS))]
        for r in rows:
            cells = (
                c.ljust(w) if align == "left" else c.rjust(w)
                for c, w, (_, align) in zip(r, widths, _TEXT_COLUMNS, strict=True)
            )
            lines.append("  ".join(cells).rstrip())
    else:
        lines.append("no peers")
    if note:
        lines.append(note)
    return "\n".join(lines)
