"""Process settings that make dispatch cheaper.

Malloc: glibc serves allocations above its mmap threshold with fresh pages,
so each large buffer (a pickled argument, a protobuf message) page-faults
on every call: on the machines we measured, a 1 MiB payload cost ten times
its copy. Raising the mmap and trim thresholds keeps such buffers in the
reusable heap. Workers get this through their environment; a caller process
gets it via mallopt when its first pool starts. WOOL_TUNE_MALLOC=0 opts out.

gRPC transport: with grpcio 1.85, gRPC's older poller-driven socket
endpoints answer a small message sooner than its EventEngine endpoints
(a raw echo round trip about 20% faster here, see benchmarks/README.md).
Workers start with those experiments switched off. The caller's process is
the user's, so it is left alone: setting the same GRPC_EXPERIMENTS value
before anything imports grpc applies it there too. A GRPC_EXPERIMENTS the
user set is passed on unchanged; WOOL_TUNE_GRPC=0 opts out.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 256 << 20
GRPC_EXPERIMENTS = ",".join(
    f"-event_engine_{name}" for name in ("client", "listener", "for_all_other_endpoints")
)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_tuned = False


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
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    except (OSError, AttributeError):
        pass
