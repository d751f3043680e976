"""Run a benchmark script and prove that nothing it started outlives it.

The run's environment carries a unique token, which every process it starts
inherits (workers, floor servers, grandchildren). Afterwards we wait, with a
bound, until no live process carries the token, and kill by PID any that
still do: those are ours.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path


def _marked(token: str) -> list[int]:
    """PIDs of live processes whose environment holds ``token``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if token.encode() in (entry / "environ").read_bytes():
                status = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
                if status != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def _wait_gone(token: str, timeout: float) -> list[int]:
    """Wait until no process carries ``token``; return the ones still there at the bound."""
    deadline = time.monotonic() + timeout
    while (left := _marked(token)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def run_reaped(
    command: list[str], env: dict[str, str], name: str, timeout: float
) -> tuple[subprocess.CompletedProcess[str], list[int]]:
    """Run ``command`` under a fresh token in ``env[name]``; its result, and the PIDs that
    outlived it by 20 s (killed by now: the caller asserts the list is empty)."""
    token = f"wool-{name.lower()}-{uuid.uuid4().hex}"
    try:
        done = subprocess.run(
            command, env={**env, name: token}, capture_output=True, text=True, timeout=timeout
        )
    finally:
        left = _wait_gone(token, 20.0)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return done, left
