"""Sends a routine's print() and stderr writes back to the caller that asked for them.

The worker's sys.stdout and sys.stderr are replaced by thin proxies that
look up a context variable: text written inside a routine dispatched with
output capture goes to that call's sink as Output frames, in order; any
other text goes to the worker's own streams as before.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TextIO

from wool.protocol.frames import STDERR, STDOUT

Sink = Callable[[int, str], None]
_sink: ContextVar[Sink | None] = ContextVar("wool_output", default=None)


class _Proxy(io.TextIOBase):
    def __init__(self, stream: int, real: TextIO) -> None:
        self._stream = stream
        self._real = real

    def write(self, text: str) -> int:
        sink = _sink.get()
        if sink is None:
            return self._real.write(text)
        if text:
            sink(self._stream, text)
        return len(text)

    def flush(self) -> None:
        self._real.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._real.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def install() -> None:
    if not isinstance(sys.stdout, _Proxy):
        sys.stdout = _Proxy(STDOUT, sys.stdout)
    if not isinstance(sys.stderr, _Proxy):
        sys.stderr = _Proxy(STDERR, sys.stderr)


def capture(sink: Sink) -> None:
    """Route this context's output to ``sink`` (call inside the routine's task)."""
    _sink.set(sink)
