"""Remote ``print()`` output in the cell that asked for it, at a rate a browser can take.

While installed, :class:`OutputForwarder` is wool's process-wide output
handler (``wool.set_output_handler``). Wool calls it on the kernel's loop,
in order, inside a copy of the context of the call that produced the text.
Writing that text to ``sys.stdout``/``sys.stderr`` from there puts it in the
right cell: ipykernel 7 keeps the parent message of each cell in a context
variable, so even a task started by one cell and still printing after it
ended writes into that cell, not into whichever cell runs now.

Each cell gets its own :class:`CellOutput` (a context variable set from a
``pre_run_cell`` hook), which holds:

* a rate limit of ``Wool.output_rate_limit`` lines per second, with a burst
  of :data:`BURST_S` seconds' worth so that a short loop of prints shows in
  full. Once it is exceeded, output is dropped for a pause of a second and
  then summarised by one ``… N lines suppressed`` note on stderr, so a
  routine printing in a tight loop shows a few hundred lines a second and
  the notebook stays responsive. Long lines count for more than
  one line (one per kilobyte), so ``print(..., end="")`` cannot flood either.
* line prefixes for cells run on every peer (``%%wool --all``): text written
  while :func:`peer_label` is set has each line prefixed with ``[label]``.

The handler never raises: wool would only log it and drop that output, and
a display problem should neither lose text silently nor cost a call.
"""

import asyncio
import contextlib
import contextvars
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from IPython.core.interactiveshell import InteractiveShell

import wool
from wool_jupyter.config import Wool

__all__ = ["CellOutput", "OutputForwarder", "peer_label"]

_log = logging.getLogger(__name__)

BURST_S = 5.0
"""Seconds' worth of lines that may be shown at once before the rate applies."""
PAUSE_S = 1.0
"""How long output stays suppressed once the rate limit is hit, before the note."""
CHARS_PER_LINE = 1024
"""Characters that cost as much as one line, so output without newlines is limited too."""

_PIECES = re.compile(r"[^\n]*\n|[^\n]+")
_peer: contextvars.ContextVar[str | None] = contextvars.ContextVar("wool_peer", default=None)
_cell: contextvars.ContextVar["CellOutput | None"] = contextvars.ContextVar(
    "wool_cell_output", default=None
)


@contextlib.contextmanager
def peer_label(label: str) -> Iterator[None]:
    """Prefix each line of remote output produced by calls made in the block with ``[label]``."""
    token = _peer.set(label)
    try:
        yield
    finally:
        _peer.reset(token)


def _cost(piece: str) -> float:
    """One per line of up to :data:`CHARS_PER_LINE` characters; longer text costs more."""
    size = len(piece) / CHARS_PER_LINE
    return max(1.0, size) if piece.endswith("\n") else size


def _write(stream: str, text: str) -> None:
    target = sys.stderr if stream == "stderr" else sys.stdout
    if target is not None and text:
        target.write(text)


class CellOutput:
    """The remote output of one cell: its rate limit, suppression state and line prefixes.

    ``limit`` returns the current lines-per-second limit (0: unlimited) and is
    read on every write, so ``%config Wool.output_rate_limit`` applies at once.
    Call :meth:`write` on the loop thread only.
    """

    def __init__(
        self, limit: Callable[[], int], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limit = limit
        self._clock = clock
        self._tokens: float | None = None
        self._last = 0.0
        self._suppressed = 0
        self._suppressed_chars = 0
        self._resume_at: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._note_context: contextvars.Context | None = None
        self._line_start: dict[tuple[str | None, str], bool] = {}
        self._open: dict[str, bool] = {}

    @property
    def suppressed(self) -> int:
        """Newlines dropped since the last note."""
        return self._suppressed

    def write(self, stream: str, text: str) -> None:
        """Show ``text`` on ``stream`` (``"stdout"``/``"stderr"``) unless over the limit."""
        limit = self._limit()
        if limit <= 0:
            self._emit(stream, text)
            return
        now = self._clock()
        if self._resume_at is not None:
            if now < self._resume_at:
                self._drop(text)
                return
            self.flush()
        burst = limit * BURST_S
        tokens = burst if self._tokens is None else self._tokens
        tokens = min(burst, tokens + (now - self._last) * limit)
        self._last = now
        pieces = _PIECES.findall(text)
        for index, piece in enumerate(pieces):
            cost = _cost(piece)
            if cost > tokens:
                self._tokens = tokens
                self._emit(stream, "".join(pieces[:index]))
                self._drop("".join(pieces[index:]))
                self._suppress(now)
                return
            tokens -= cost
        self._tokens = tokens
        self._emit(stream, text)

    def flush(self) -> None:
        """Write the pending ``… N lines suppressed`` note now, if there is one."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._resume_at = None
        lines, self._suppressed = self._suppressed, 0
        chars, self._suppressed_chars = self._suppressed_chars, 0
        if not chars:
            return
        what = f"{lines:,} line{'s' if lines != 1 else ''}" if lines else f"{chars:,} characters"
        note = (
            f"… {what} suppressed (more than {self._limit():,} lines/s; "
            "raise Wool.output_rate_limit to see more, 0 shows everything)\n"
        )
        if self._open.get("stderr"):
            note = "\n" + note
        self._open["stderr"] = False
        context, self._note_context = self._note_context, None
        try:
            if context is not None:
                context.run(_write, "stderr", note)
            else:
                _write("stderr", note)
        except RuntimeError:  # that context is running right now: we are inside it
            _write("stderr", note)

    def _drop(self, text: str) -> None:
        self._suppressed += text.count("\n")
        self._suppressed_chars += len(text)

    def _suppress(self, now: float) -> None:
        self._resume_at = now + PAUSE_S
        self._note_context = contextvars.copy_context()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(PAUSE_S, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        try:
            self.flush()
        except Exception:
            _log.debug("could not write the suppressed-output note", exc_info=True)

    def _emit(self, stream: str, text: str) -> None:
        if not text:
            return
        label = _peer.get()
        if label is not None:
            text = self._prefixed(label, stream, text)
        self._open[stream] = not text.endswith("\n")
        _write(stream, text)

    def _prefixed(self, label: str, stream: str, text: str) -> str:
        key = (label, stream)
        prefix = f"[{label}] "
        at_start = self._line_start.get(key, True)
        out = []
        for piece in _PIECES.findall(text):
            out.append(prefix + piece if at_start else piece)
            at_start = piece.endswith("\n")
        self._line_start[key] = at_start
        return "".join(out)


class OutputForwarder:
    """wool's output handler for one shell, with one :class:`CellOutput` per cell.

    :meth:`install` makes it the process-wide handler and hooks the shell's
    cell events; :meth:`uninstall` undoes both. Output from calls made
    outside any cell (a thread, a task from before installation) shares one
    fallback :class:`CellOutput`.
    """

    def __init__(self, shell: InteractiveShell, settings: Wool) -> None:
        self._shell = shell
        self._settings = settings
        self._fallback = CellOutput(self._limit)
        self._latest: CellOutput | None = None
        self._installed = False

    def _limit(self) -> int:
        return int(self._settings.output_rate_limit)

    def install(self) -> None:
        if self._installed:
            return
        self._shell.events.register("pre_run_cell", self._pre_run_cell)
        self._shell.events.register("post_run_cell", self._post_run_cell)
        wool.set_output_handler(self)
        self._installed = True

    def uninstall(self) -> None:
        """Stop forwarding; routines' output goes back to the workers' own streams."""
        if not self._installed:
            return
        self._installed = False
        wool.set_output_handler(None)
        for event, callback in (
            ("pre_run_cell", self._pre_run_cell),
            ("post_run_cell", self._post_run_cell),
        ):
            with contextlib.suppress(ValueError):
                self._shell.events.unregister(event, callback)
        self._flush(self._latest)
        self._flush(self._fallback)

    def __call__(self, stream: str, text: str) -> None:
        try:
            (_cell.get() or self._fallback).write(stream, text)
        except Exception:
            _log.debug("could not show remote output", exc_info=True)

    def _pre_run_cell(self, *_: Any) -> None:
        self._latest = CellOutput(self._limit)
        _cell.set(self._latest)

    def _post_run_cell(self, *_: Any) -> None:
        self._flush(self._latest)

    @staticmethod
    def _flush(output: CellOutput | None) -> None:
        if output is None:
            return
        try:
            output.flush()
        except Exception:
            _log.debug("could not write the suppressed-output note", exc_info=True)
