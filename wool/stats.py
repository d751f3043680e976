"""Dispatch counters, latency histograms and the frozen snapshots built from them.

Recording must stay cheap because it sits on every dispatch: a counter is a
plain integer attribute, and a latency lands in a log-scaled bucket found
with integer arithmetic. Snapshots are immutable so that a reader (the
Jupyter widget, a test) can hold one while the mesh keeps moving.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

_SUB_BITS = 2  # four buckets per power of two: about 19% resolution
_SUB = 1 << _SUB_BITS
BUCKETS = 64 * _SUB


def _bucket(ns: int) -> int:
    """Index of the bucket that holds a latency of ``ns`` nanoseconds."""
    bits = ns.bit_length()
    if bits <= _SUB_BITS + 1:
        return ns if ns > 0 else 0
    return (bits - _SUB_BITS) * _SUB + ((ns >> (bits - _SUB_BITS - 1)) & (_SUB - 1))


def _bucket_floor(index: int) -> int:
    """Smallest latency, in nanoseconds, that falls in bucket ``index``."""
    if index < 2 * _SUB:
        return index
    octave, sub = divmod(index, _SUB)
    bits = octave + _SUB_BITS
    return (1 << (bits - 1)) | (sub << (bits - _SUB_BITS - 1))


class Histogram:
    """Log-scaled latency histogram; add() is a handful of integer operations."""

    __slots__ = ("counts", "max_ns", "total", "total_ns")

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.total = 0
        self.total_ns = 0
        self.max_ns = 0

    def add(self, ns: int) -> None:
        self.counts[_bucket(ns)] += 1
        self.total += 1
        self.total_ns += ns
        if ns > self.max_ns:
            self.max_ns = ns

    def merge(self, other: Histogram) -> None:
        counts = self.counts
        for i, n in enumerate(other.counts):
            if n:
                counts[i] += n
        self.total += other.total
        self.total_ns += other.total_ns
        self.max_ns = max(self.max_ns, other.max_ns)

    def percentile_ns(self, q: float) -> int:
        """Upper bound of the bucket holding quantile ``q`` (0 < q <= 1)."""
        if not self.total:
            return 0
        rank = max(1, int(q * self.total + 0.999999))
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                upper = _bucket_floor(i + 1) if i + 1 < BUCKETS else self.max_ns
                return min(upper, self.max_ns) if self.max_ns else upper
        return self.max_ns

    def summary(self) -> LatencySummary:
        """The figures of :class:`LatencySummary`, consistent with one another.

        ``total_ns`` and ``max_ns`` may be read a moment after the buckets (a
        worker reports while it records), so the mean is kept within what the
        buckets allow and the percentiles within ``max``: a mean above p99 then
        means a real tail of slow calls, never a rounding or timing artefact.
        """
        if not self.total:
            return LatencySummary()
        low = high = 0
        for i, n in enumerate(self.counts):
            if n:
                low += n * _bucket_floor(i)
                high += n * (_bucket_floor(i + 1) if i + 1 < BUCKETS else self.max_ns)
        top = max(self.max_ns, _bucket_floor(max(i for i, n in enumerate(self.counts) if n)))
        mean_ns = min(max(self.total_ns, low), high, top * self.total) / self.total
        p50, p90, p99 = (min(self.percentile_ns(q), top) for q in (0.50, 0.90, 0.99))
        return LatencySummary(
            count=self.total,
            mean_ms=mean_ns / 1e6,
            p50_ms=p50 / 1e6,
            p90_ms=max(p90, p50) / 1e6,
            p99_ms=max(p99, p90, p50) / 1e6,
            max_ms=top / 1e6,
        )

    def sparse(self) -> dict[int, int]:
        return {i: n for i, n in enumerate(self.counts) if n}

    @classmethod
    def from_sparse(cls, buckets: dict[int, int], total_ns: int, max_ns: int) -> Histogram:
        hist = cls()
        for i, n in buckets.items():
            if 0 <= i < BUCKETS:
                hist.counts[i] += n
                hist.total += n
        hist.total_ns = total_ns
        hist.max_ns = max_ns
        return hist


class Counters:
    """Live counters of one direction of traffic (dispatched or executed)."""

    __slots__ = ("cancelled", "completed", "failed", "latency", "started")

    def __init__(self) -> None:
        self.started = 0
        self.completed = 0
        self.failed = 0
        self.cancelled = 0
        self.latency = Histogram()

    @property
    def in_flight(self) -> int:
        return self.started - self.completed - self.failed - self.cancelled

    def snapshot(self) -> DispatchCounters:
        return DispatchCounters(
            started=self.started,
            completed=self.completed,
            failed=self.failed,
            cancelled=self.cancelled,
            latency=self.latency.summary(),
        )


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Latency of finished calls, in milliseconds (bucketed, so approximate)."""

    count: int = 0
    mean_ms: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class DispatchCounters:
    """Totals for one direction of traffic; ``in_flight`` is derived."""

    started: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    latency: LatencySummary = field(default_factory=LatencySummary)

    @property
    def in_flight(self) -> int:
        return max(0, self.started - self.completed - self.failed - self.cancelled)

    @property
    def finished(self) -> int:
        return self.completed + self.failed + self.cancelled


@dataclass(frozen=True, slots=True)
class PeerStatistics:
    """One worker as the mesh last saw it.

    ``executed`` counts routines run on this worker, whoever sent them;
    ``dispatched`` counts the nested calls this worker sent to its peers;
    ``code_received`` counts routines that arrived by value with their code,
    ``rejected`` calls refused for wrong credentials.
    ``state`` is ``"starting"``, ``"ready"``, ``"lost"`` (died or unreachable)
    or ``"stopped"`` (its pool stopped it); a worker that is gone keeps its
    last known figures.
    """

    id: str
    address: str
    pid: int
    tags: tuple[str, ...] = ()
    state: str = "ready"
    executed: DispatchCounters = field(default_factory=DispatchCounters)
    dispatched: DispatchCounters = field(default_factory=DispatchCounters)
    cpu_percent: float = 0.0
    rss_bytes: int = 0
    uptime_s: float = 0.0
    code_received: int = 0
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class MeshStatistics:
    """A frozen view of the whole mesh at ``taken_at`` (seconds since the epoch).

    ``caller`` counts what this process dispatched; ``executed`` adds up what
    every peer ran, nested peer-to-peer calls included, with a latency
    summary merged from the peers' histograms.
    """

    taken_at: float
    peers: tuple[PeerStatistics, ...] = ()
    caller: DispatchCounters = field(default_factory=DispatchCounters)
    executed: DispatchCounters = field(default_factory=DispatchCounters)

    @property
    def ready_peers(self) -> int:
        return sum(1 for p in self.peers if p.state == "ready")


class ProcessUsage:
    """CPU percent and resident memory of this process, read from /proc."""

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._last_wall = self._started
        self._last_cpu = time.process_time()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def sample(self) -> tuple[float, int, float]:
        """(cpu percent since the last sample, rss bytes, uptime seconds)."""
        now, cpu = time.monotonic(), time.process_time()
        wall = now - self._last_wall
        percent = 100.0 * (cpu - self._last_cpu) / wall if wall > 0 else 0.0
        self._last_wall, self._last_cpu = now, cpu
        rss = 0
        try:
            with open("/proc/self/statm", "rb") as f:
                rss = int(f.read().split()[1]) * self._page
        except (OSError, ValueError, IndexError):
            pass
        return percent, rss, now - self._started
