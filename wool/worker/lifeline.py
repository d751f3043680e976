"""A worker never outlives the process that spawned it.

Two independent signals: Linux's parent-death signal (delivered even when
the parent is killed with SIGKILL), and end-of-file on the control pipe the
parent holds open, which also works where prctl does not.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def bind_to_parent(owner_pid: int, death_signal: bool = True) -> None:
    """Ask the kernel for SIGTERM when the parent dies; exit now if it already has.

    Linux sends that signal when the spawning *thread* ends, so a pool started
    from another thread passes ``death_signal=False`` and relies on the
    control pipe alone.
    """
    if death_signal and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if owner_pid and os.getppid() != owner_pid:
        os._exit(0)


def watch_control_pipe(on_line: Callable[[str], None], on_eof: Callable[[], None]) -> None:
    """Read control lines from stdin on a daemon thread; EOF means the parent is gone."""

    def run() -> None:
        try:
            for line in sys.stdin:
                if line.strip():
                    on_line(line)
        except (OSError, ValueError):
            pass
        on_eof()

    threading.Thread(target=run, name="wool-lifeline", daemon=True).start()


def exit_after(seconds: float) -> None:
    """Hard stop if a graceful shutdown hangs."""
    timer = threading.Timer(seconds, lambda: os._exit(3))
    timer.daemon = True
    timer.start()
