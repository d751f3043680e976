"""Bounded stopping of the processes a benchmark starts, always by PID."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterable

try:
    import psutil
except ImportError:  # psutil comes with the dev extra; without it only direct children are reaped
    psutil = None

#: Multiprocessing's resource tracker ignores SIGTERM and exits by itself when this
#: process does (its pipe closes), so the sweep leaves it alone.
_LEFT_ALONE = ("multiprocessing.resource_tracker",)


async def stop_subprocess(proc: asyncio.subprocess.Process, timeout: float = 5.0) -> None:
    """Close ``proc``'s stdin, then SIGTERM, then SIGKILL it by PID, each wait bounded."""
    if proc.stdin is not None and not proc.stdin.is_closing():
        proc.stdin.close()
    for action in (None, signal.SIGTERM, signal.SIGKILL):
        if proc.returncode is not None:
            return
        if action is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, action)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), timeout)
    if proc.returncode is None:
        print(f"warning: process {proc.pid} did not exit after SIGKILL", file=sys.stderr)


def descendants() -> list[int]:
    """PIDs of every live descendant of this process, except the ones left alone."""
    if psutil is None:
        return []
    pids = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if not any(mark in cmdline for mark in _LEFT_ALONE):
            pids.append(child.pid)
    return pids


def reap(pids: Iterable[int], timeout: float = 3.0) -> list[int]:
    """SIGTERM ``pids``, wait up to ``timeout``, SIGKILL survivors; return the PIDs signalled."""
    pids = [pid for pid in pids if pid != os.getpid()]
    if not pids:
        return []
    if psutil is None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc = psutil.Process(pid)
            proc.terminate()
            procs.append(proc)
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=timeout)
    return [proc.pid for proc in procs]


def reap_descendants(timeout: float = 3.0) -> list[int]:
    """Stop every descendant still alive (see :func:`descendants`); return their PIDs."""
    return reap(descendants(), timeout)


class Watchdog:
    """Hard deadline for the whole run: past it, reap descendants and exit with status 3.

    It covers what ``asyncio`` timeouts cannot, such as code that blocks the event loop.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=1.0)

    def _run(self) -> None:
        if self._done.wait(self.seconds):
            return
        print(
            f"\nwatchdog: run exceeded {self.seconds:.0f} s; stopping child processes",
            file=sys.stderr,
            flush=True,
        )
        reap_descendants()
        os._exit(3)
