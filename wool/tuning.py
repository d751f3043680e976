"""Process settings that make dispatch cheaper.

Malloc: glibc serves allocations above its mmap threshold with fresh pages,
so each large buffer (a pickled argument, a protobuf message) page-faults
on every call: on the machines we measured, a 1 MiB payload cost ten times
its copy. Raising the mmap and trim thresholds keeps such buffers in the
reusable heap. Workers get this through their environment; a caller process
gets it via mallopt when its first pool starts. WOOL_TUNE_MALLOC=0 opts out.

Memory comes back: what the raised thresholds keep would stay resident
after a burst of large payloads. ``codec`` calls ``note_large_payload`` for
each payload of 1 MiB or more, and once the process has seen none for
``TRIM_AFTER`` seconds a background thread calls ``malloc_trim(0)``, which
hands free heap pages back to the system. So buffers up to 1 GiB stay in
the heap while work runs (measured on this VM: copying a 256 MiB payload
out took 30 ms into reused heap, 270 to 420 ms into fresh pages) and are
returned once it stops. Nothing runs on the dispatch path but a clock read.

gRPC transport: with grpcio 1.85, gRPC's older poller-driven socket
endpoints answer a small message sooner than its EventEngine endpoints
(a raw echo round trip about 20% faster here, see benchmarks/README.md).
Workers start with those experiments switched off. The caller's process is
the user's, so it is left alone: setting the same GRPC_EXPERIMENTS value
before anything imports grpc applies it there too. A GRPC_EXPERIMENTS the
user set is passed on unchanged; WOOL_TUNE_GRPC=0 opts out.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

MMAP_THRESHOLD = 1 << 30
TRIM_THRESHOLD = 2 << 30
GRPC_EXPERIMENTS = ",".join(
    f"-event_engine_{name}" for name in ("client", "listener", "for_all_other_endpoints")
)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_tuned = False
LARGE_PAYLOAD = 1 << 20
"""A payload this large makes the process trim its heap once idle."""
TRIM_AFTER = 1.0
"""Seconds without a large payload before the heap is trimmed."""
_last_large = 0.0
_trimmer: threading.Thread | None = None
_trim_lock = threading.Lock()
_libc: Any = None


def enabled() -> bool:
    return os.environ.get("WOOL_TUNE_MALLOC", "1") != "0" and sys.platform.startswith("linux")


def worker_environment(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the malloc and gRPC settings made (a user's own settings win)."""
    if enabled():
        env.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))
        env.setdefault("MALLOC_TRIM_THRESHOLD_", str(TRIM_THRESHOLD))
    if env.get("WOOL_TUNE_GRPC", "1") != "0":
        env.setdefault("GRPC_EXPERIMENTS", GRPC_EXPERIMENTS)
    return env


def tune_this_process() -> None:
    """Apply the thresholds to the running process, once; a no-op off glibc."""
    global _tuned
    if _tuned or not enabled() or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    _tuned = True
    try:
        libc = _load_libc()
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    except (OSError, AttributeError):
        pass


def _load_libc() -> Any:
    global _libc
    if _libc is None:
        import ctypes
        import ctypes.util

        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return _libc


def note_large_payload() -> None:
    """Record that a payload of ``LARGE_PAYLOAD`` bytes or more was made or read just now.

    Cheap: a clock read, and at most one thread started per burst. Once
    ``TRIM_AFTER`` seconds pass with no further call, the heap is trimmed.
    """
    global _last_large, _trimmer
    _last_large = time.monotonic()
    if _trimmer is None and enabled():
        with _trim_lock:
            if _trimmer is None:
                _trimmer = threading.Thread(target=_trim_when_idle, name="wool-trim", daemon=True)
                _trimmer.start()


def _trim_when_idle() -> None:
    global _trimmer
    while True:
        time.sleep(max(_last_large + TRIM_AFTER - time.monotonic(), 0.01))
        with _trim_lock:
            if time.monotonic() - _last_large >= TRIM_AFTER:
                _trimmer = None
                break
    trim()


def trim() -> bool:
    """Return free heap memory to the system now (glibc ``malloc_trim(0)``); False off glibc."""
    try:
        return bool(_load_libc().malloc_trim(0))
    except (OSError, AttributeError):
        return False
