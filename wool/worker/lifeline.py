"""A worker never outlives the process that spawned it.

Two independent signals that the parent is gone: Linux's parent-death
signal (SIGTERM, delivered even when the parent is killed with SIGKILL), and
end-of-file on the control pipe the parent holds open, which also works
where prctl does not. Both are received off the event loop, on threads of
their own, because the loop may be blocked by a routine (``time.sleep``, a
CPU loop) for as long as that routine likes.

A stop request asks the loop to stop gracefully (routines are cancelled,
their ``finally`` blocks run) and arms a hard exit from a watchdog thread:

- the loop does not take the request within ``LOOP_ANSWER``: exit at once;
- the parent is gone (SIGTERM, or EOF with the process reparented): the
  whole stop has ``PARENT_GONE`` seconds;
- the parent closed the pipe to stop us (``WorkerPool.stop``): ``graceful``
  seconds.

A durable worker (``wool worker``) has no parent: ``Lifeline(durable=True)``
takes SIGTERM and SIGINT as a plain stop with the ``graceful`` bound (its
drain grace plus a margin), waits that long for a loop a routine blocks,
and exits hard at once on a second signal.

The watchdog needs the GIL only briefly, which a pure-Python routine gives
up every few milliseconds; C code that holds the GIL for long is the one
thing it cannot interrupt.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Final

_PR_SET_PDEATHSIG = 1
_log = logging.getLogger("wool")
LOOP_ANSWER: Final = 0.5
"""Seconds a stop request waits for the event loop before the process exits hard."""
PARENT_GONE: Final = 1.0
"""Seconds a worker whose parent died has, in all, to stop."""
EXIT_HARD: Final = 3
"""Exit status of a worker that had to be stopped without its graceful shutdown."""
_POLL: Final = 0.1


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


class Lifeline:
    """Turns stop requests from any thread into a loop-side stop bounded by a hard exit.

    ``on_stop`` runs on ``loop`` (it should set the event the worker's main
    coroutine waits on). Callers can rely on the process being gone within
    ``PARENT_GONE`` seconds of a SIGTERM or of the parent's death, whatever
    the loop is doing, and within ``graceful`` seconds of a plain stop.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_stop: Callable[[], None],
        owner_pid: int,
        graceful: float,
        *,
        durable: bool = False,
    ) -> None:
        self._loop = loop
        self._on_stop = on_stop
        self._owner = 0 if durable else owner_pid
        self._graceful = graceful
        self._durable = durable
        self._answered = threading.Event()
        self._signalled = False

    def parent_gone(self) -> bool:
        return bool(self._owner) and os.getppid() != self._owner

    def request_stop(self, parent_gone: bool) -> None:
        """Ask for a graceful stop and arm the hard exit; safe from any thread."""
        started = time.monotonic()
        threading.Thread(
            target=self._watchdog, args=(started, parent_gone), name="wool-exit", daemon=True
        ).start()
        try:
            self._loop.call_soon_threadsafe(self._answer)
        except RuntimeError:  # the loop is closed: the process is on its way out
            pass

    def _answer(self) -> None:
        self._answered.set()
        self._on_stop()

    def _watchdog(self, started: float, parent_gone: bool) -> None:
        if not self._answered.wait(self._graceful if self._durable else LOOP_ANSWER):
            os._exit(EXIT_HARD)
        deadline = started + (PARENT_GONE if parent_gone else self._graceful)
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, _POLL))
            if not parent_gone and self.parent_gone():
                parent_gone = True
                deadline = min(deadline, started + PARENT_GONE)
        os._exit(EXIT_HARD)

    def watch_control_pipe(self, on_line: Callable[[str], None]) -> None:
        """Read control lines from stdin on a daemon thread; EOF is a stop request."""

        def run() -> None:
            try:
                for line in sys.stdin:
                    if not line.strip():
                        continue
                    try:
                        on_line(line)
                    except Exception:  # one bad line must not end the watch for EOF
                        _log.exception("wool: ignored a control line it could not apply")
            except (OSError, ValueError):
                pass
            self.request_stop(self.parent_gone())

        threading.Thread(target=run, name="wool-lifeline", daemon=True).start()

    def watch_sigterm(self) -> None:
        """Take SIGTERM on a thread woken by the signal's wakeup fd (main thread only).

        The interpreter writes the signal number to that fd from its C-level
        handler, so the thread wakes even while the main thread is blocked in
        a routine; a stop request from SIGTERM gets the ``PARENT_GONE`` bound,
        or, for a durable worker, the ``graceful`` one (SIGINT too: a terminal's
        Ctrl-C), a second signal exiting at once.
        """
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        signal.signal(signal.SIGTERM, _ignore)
        if self._durable:
            signal.signal(signal.SIGINT, _ignore)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        stops = {signal.SIGTERM, signal.SIGINT} if self._durable else {signal.SIGTERM}

        def run() -> None:
            while True:
                try:
                    received = os.read(read_fd, 64)
                except InterruptedError:
                    continue
                if not received:
                    return
                if not stops.intersection(received):
                    continue
                if not self._durable:
                    self.request_stop(True)
                elif self._signalled:
                    os._exit(EXIT_HARD)
                else:
                    self._signalled = True
                    self.request_stop(False)

        threading.Thread(target=run, name="wool-sigterm", daemon=True).start()


def _ignore(signum: int, frame: object) -> None:
    """The Python-level SIGTERM handler: the wakeup fd carries the signal instead."""
