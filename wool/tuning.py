"""Process settings that keep large payloads cheap.

glibc serves allocations above its mmap threshold with fresh pages, so each
large buffer (a pickled argument, a protobuf message) page-faults on every
call: on the machines we measured, a 1 MiB payload cost ten times its copy.
Raising the mmap and trim thresholds keeps such buffers in the reusable
heap. Workers get this through their environment; a caller process gets
it via mallopt when its first pool starts. Set WOOL_TUNE_MALLOC=0 to opt out.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 256 << 20
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_tuned = False


def enabled() -> bool:
    return os.environ.get("WOOL_TUNE_MALLOC", "1") != "0" and sys.platform.startswith("linux")


def worker_environment(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the malloc thresholds set (a user's own settings win)."""
    if enabled():
        env.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))
        env.setdefault("MALLOC_TRIM_THRESHOLD_", str(TRIM_THRESHOLD))
    return env


def tune_this_process() -> None:
    """Apply the thresholds to the running process, once; a no-op off glibc."""
    global _tuned
    if _tuned or not enabled() or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    _tuned = True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    except (OSError, AttributeError):
        pass
