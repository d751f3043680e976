"""Run many awaitables concurrently behind a live progress bar.

Per item the cost is one done-callback that bumps a counter; the display is
redrawn by a timer at most ten times a second, so wrapping ten thousand tiny
tasks does not slow them down. In a Jupyter kernel the bar is an ipywidgets
widget; elsewhere it is a single line on stderr.
"""

from __future__ import annotations

import asyncio
import html
import sys
import time
from collections import deque
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from wool_jupyter.fanout import cancel_all, outcomes
from wool_jupyter.rate import windowed_rate

__all__ = ["progress"]

_TICK_S = 0.1
_RATE_WINDOW_S = 5.0
_RATE_MIN_DT_S = 0.2


@dataclass(frozen=True, slots=True)
class _Counts:
    total: int
    done: int
    failed: int
    cancelled: int
    elapsed: float
    rate: float | None

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.cancelled

    @property
    def in_flight(self) -> int:
        return self.total - self.finished


class _Tracker:
    """Counters fed by task done-callbacks, plus a future resolved when all are in."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.total = 0
        self.sealed = False
        self.done = 0
        self.failed = 0
        self.cancelled = 0
        self.all_done: asyncio.Future[None] = loop.create_future()
        self._started = time.monotonic()
        self._samples: deque[tuple[float, int]] = deque([(self._started, 0)])

    def on_done(self, task: asyncio.Future[Any]) -> None:
        if task.cancelled():
            self.cancelled += 1
        elif task.exception() is not None:  # also marks the exception as retrieved
            self.failed += 1
        else:
            self.done += 1
        self._check()

    def seal(self, total: int) -> None:
        """Fix the total once every task exists; callbacks only run after this."""
        self.total = total
        self.sealed = True
        self._check()

    def _check(self) -> None:
        finished = self.done + self.failed + self.cancelled
        if self.sealed and finished >= self.total and not self.all_done.done():
            self.all_done.set_result(None)

    def counts(self, final: bool = False) -> _Counts:
        """Current figures; the rate covers the last few seconds, or the whole run if final."""
        now = time.monotonic()
        elapsed = now - self._started
        finished = self.done + self.failed + self.cancelled
        rate: float | None = None
        if final:
            rate = finished / elapsed if elapsed >= 0.01 else None
        else:
            samples = self._samples
            samples.append((now, finished))
            while len(samples) > 2 and samples[1][0] <= now - _RATE_WINDOW_S:
                samples.popleft()
            rate = windowed_rate(samples, int, _RATE_WINDOW_S, _RATE_MIN_DT_S)
        return _Counts(self.total, self.done, self.failed, self.cancelled, elapsed, rate)


def _clock(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _summary(c: _Counts, final: bool) -> str:
    """The status text after the description, e.g. ``40/100 · 60 in flight · ...``."""
    parts = [f"{c.finished:,}/{c.total:,}"]
    if c.failed:
        parts.append(f"{c.failed:,} failed")
    if c.cancelled:
        parts.append(f"{c.cancelled:,} cancelled")
    if not final:
        parts.append(f"{c.in_flight:,} in flight")
    if c.rate is not None:
        parts.append(f"{c.rate:,.1f}/s")
    if final:
        parts.append(f"took {c.elapsed:.1f}s")
    elif c.rate:
        parts.append(f"ETA {_clock(c.in_flight / c.rate)}")
    return " · ".join(parts)


class _View(Protocol):
    def update(self, counts: _Counts) -> None: ...

    def finish(self, counts: _Counts, interrupted: bool) -> None: ...


class _NoView:
    def update(self, counts: _Counts) -> None:
        pass

    def finish(self, counts: _Counts, interrupted: bool) -> None:
        pass


class _TextView:
    """One line on stderr, rewritten in place with ``\\r``; the last one ends in a newline."""

    def __init__(self, description: str, live: bool, min_interval: float) -> None:
        self._prefix = f"{description}: " if description else ""
        self._live = live
        self._min_interval = min_interval
        self._last_write = float("-inf")
        self._width = 0

    def _write(self, line: str, end: str) -> None:
        stream = sys.stderr  # looked up each time so redirection and capture work
        if stream is None:
            return
        padded = line.ljust(self._width)
        self._width = len(line)
        try:
            stream.write(f"\r{padded}{end}")
            stream.flush()
        except (OSError, ValueError):
            pass

    def update(self, counts: _Counts) -> None:
        now = time.monotonic()
        if self._live and now - self._last_write >= self._min_interval:
            self._last_write = now
            self._write(self._prefix + _summary(counts, final=False), "")

    def finish(self, counts: _Counts, interrupted: bool) -> None:
        tail = " · interrupted" if interrupted else ""
        self._write(self._prefix + _summary(counts, final=True) + tail, "\n")


class _WidgetView:
    """An ``IntProgress`` and a label in an ``HBox``, displayed with a display id.

    The final state is also re-published as ``text/plain`` through the display
    id, so notebooks rendered without widget state still show the outcome.
    """

    def __init__(self, description: str, total: int) -> None:
        from IPython.display import display
        from ipywidgets import HTML, HBox, IntProgress, Layout

        self._bar = IntProgress(
            value=0,
            min=0,
            max=max(total, 1),
            description=description,
            style={"description_width": "initial"},
            layout=Layout(width="45%", min_width="160px"),
        )
        self._label = HTML(layout=Layout(margin="0 0 0 8px"))
        self._box = HBox([self._bar, self._label])
        self._description = description
        self._handle = display(self._bundle(f"0/{total:,}"), raw=True, display_id=True)

    def _bundle(self, text: str) -> dict[str, Any]:
        bundle = dict(self._box._repr_mimebundle_() or {})
        prefix = f"{self._description}: " if self._description else ""
        bundle["text/plain"] = prefix + text
        return bundle

    def _show(self, counts: _Counts, text: str) -> None:
        self._bar.value = min(counts.finished, self._bar.max)
        value = f'<span style="font-variant-numeric:tabular-nums">{html.escape(text)}</span>'
        if self._label.value != value:
            self._label.value = value

    def update(self, counts: _Counts) -> None:
        self._show(counts, _summary(counts, final=False))

    def finish(self, counts: _Counts, interrupted: bool) -> None:
        text = _summary(counts, final=True) + (" · interrupted" if interrupted else "")
        with self._box.hold_sync():
            self._show(counts, text)
            if not counts.total:
                self._bar.value = self._bar.max
            if interrupted or counts.cancelled:
                self._bar.bar_style = "warning"
            else:
                self._bar.bar_style = "danger" if counts.failed else "success"
        if self._handle is not None:
            self._handle.update(self._bundle(text), raw=True)


def _in_kernel() -> bool:
    if "IPython" not in sys.modules:  # no shell can be running without it
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _stderr_is_tty() -> bool:
    try:
        return bool(sys.stderr is not None and sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def _make_view(description: str, total: int, display: bool | None) -> _View:
    if display is False:
        return _NoView()
    if _in_kernel():
        try:
            return _WidgetView(description, total)
        except ImportError:
            pass
    if _stderr_is_tty():
        return _TextView(description, live=True, min_interval=_TICK_S)
    return _TextView(description, live=bool(display), min_interval=1.0)


async def progress(
    awaitables: Iterable[Awaitable[Any]],
    *,
    description: str = "",
    return_exceptions: bool = False,
    display: bool | None = None,
) -> list[Any]:
    """Run ``awaitables`` concurrently as tasks; return their results in input order.

    The iterable is consumed up front (a generator expression is fine) so the
    total is known. While tasks run, a bar shows done, failed, in flight, rate
    and time left, redrawn at most ten times a second; the final state is
    always drawn, even if everything finished at once.

    Unlike :func:`asyncio.gather`, every task runs to completion before this
    returns. With ``return_exceptions=False`` the first failure in input order
    is then raised (a cancelled task counts as a failure with
    :class:`asyncio.CancelledError`); with ``True`` failures take their place in
    the result list. If this call is cancelled, every task is cancelled and
    awaited before the cancellation propagates, so nothing is left running.

    ``display``: ``None`` shows an ipywidgets bar in a Jupyter kernel, a live
    line on stderr when it is a terminal, and only the final line otherwise;
    ``True`` keeps the stderr line live even when it is not a terminal;
    ``False`` shows nothing.
    """
    loop = asyncio.get_running_loop()
    tracker = _Tracker(loop)
    tasks: list[asyncio.Future[Any]] = []
    try:
        for awaitable in awaitables:
            task = asyncio.ensure_future(awaitable)
            task.add_done_callback(tracker.on_done)
            tasks.append(task)
    except BaseException:
        await cancel_all(tasks)
        raise
    tracker.seal(len(tasks))
    view = _make_view(description, len(tasks), display)
    try:
        while not tracker.all_done.done():
            await asyncio.wait([tracker.all_done], timeout=_TICK_S)
            view.update(tracker.counts())
    except BaseException:  # cancelled, or the display itself broke
        await cancel_all(tasks)
        try:
            view.finish(tracker.counts(final=True), interrupted=True)
        except Exception:
            pass  # the original error matters more than a display glitch
        raise
    view.finish(tracker.counts(final=True), interrupted=False)

    results, failures = outcomes(tasks)
    if failures and not return_exceptions:
        raise failures[0][1]
    return results
