"""``wool.WorkerPool``: spawn a local mesh, make it the target of routine calls, tear it down.

``async with WorkerPool(spawn=N)`` scopes the mesh to a block (a context
variable, so concurrent tasks each see their own). ``start(default=True)``
makes it the process-wide default instead, which is what a Jupyter kernel
needs since every cell runs in a fresh context. Both wait until every
worker is up and knows its peers, and stopping leaves no process behind.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import time
import weakref
from collections.abc import Iterable
from contextvars import Token
from dataclasses import dataclass, replace

from wool import tuning
from wool.mesh import context, spawn
from wool.mesh.client import MeshClient
from wool.mesh.spawn import LocalWorker
from wool.protocol import auth
from wool.protocol.frames import CountersRecord, PeerRecord, StatsRecord
from wool.stats import Counters, DispatchCounters, Histogram, MeshStatistics, PeerStatistics

_running: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker of a pool: where it listens, its process, its tags and state."""

    id: str
    address: str
    pid: int
    tags: tuple[str, ...]
    state: str


def _counters(record: CountersRecord) -> tuple[DispatchCounters, Histogram]:
    hist = Histogram.from_sparse(record.buckets or {}, record.total_ns, record.max_ns)
    return (
        DispatchCounters(
            record.started, record.completed, record.failed, record.cancelled, hist.summary()
        ),
        hist,
    )


class WorkerPool:
    """A mesh of local worker processes.

    ``WorkerPool(*tags, spawn=N)`` starts N workers carrying ``tags`` (default:
    one per CPU); ``size=N`` is accepted as the older spelling. Workers bind
    ``host`` (loopback by default) and require the pool's secret on every call.
    """

    def __init__(
        self,
        *tags: str,
        spawn: int | None = None,
        size: int | None = None,
        host: str = "127.0.0.1",
        secret: bytes | None = None,
        start_timeout: float = 30.0,
        connect_timeout: float = 10.0,
    ) -> None:
        if spawn is not None and size is not None and spawn != size:
            raise ValueError("give spawn= or size= (the older name), not both")
        count = spawn if spawn is not None else size
        if count is None or count == 0:
            count = os.cpu_count() or 1
        if count < 0:
            raise ValueError("spawn must be a positive number of workers")
        self.tags = tuple(tags)
        self.size = count
        self.host = host
        self.start_timeout = start_timeout
        self._secret = secret or auth.new_secret()
        self._mesh = MeshClient(self._secret, connect_timeout=connect_timeout)
        self._workers: list[LocalWorker] = []
        self._entries: dict[asyncio.Task | None, list[Token]] = {}
        self._owner: tuple[asyncio.Task | None, int] | None = None
        self._state = "new"
        self._default = False
        self._last: dict[str, PeerStatistics] = {}
        self._peers_version = 0
        self._lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._state == "running"

    def start(self, *, default: bool = False) -> WorkerPool:
        """Spawn the workers and wait (bounded) until all are up; blocks the caller.

        With ``default=True`` the pool also becomes the process-wide mesh used
        by routine calls made outside any ``async with`` pool.
        """
        with self._lock:
            if self._state == "new":
                self._spawn()
                try:
                    self._await_ready()
                except BaseException:
                    self._stop_processes()
                    self._state = "stopped"
                    raise
                self._state = "running"
                _running.add(self)
            elif self._state == "stopped":
                raise RuntimeError("this pool was stopped; create a new WorkerPool")
        if default:
            context.set_default(self._mesh)
            self._default = True
        return self

    def _spawn(self) -> None:
        tuning.tune_this_process()
        self._workers = spawn.spawn(self.size, self.tags, self._secret, self.host)

    def _await_ready(self) -> None:
        spawn.wait_ready(self._workers, self.start_timeout)
        records = [w.record for w in self._workers if w.record is not None]
        self._peers_version += 1
        spawn.send_peers(self._workers, records, self._peers_version, self.start_timeout)
        self._mesh.set_peers(self._matching(records))

    def _matching(self, records: Iterable[PeerRecord]) -> list[PeerRecord]:
        wanted = set(self.tags)
        return [r for r in records if wanted.issubset(r.tags)]

    def stop(self) -> None:
        """Stop every worker (bounded) and close this pool's connections.

        A pool still starting (``astart`` waiting for its workers) stops too:
        its workers are stopped here and ``astart`` raises.
        """
        with self._lock:
            state, self._state = self._state, "stopped"
        if state == "starting":
            self._stop_processes()
            return
        if state != "running":
            return
        if self._default and context.get_default() is self._mesh:
            context.set_default(None)
        self._mesh.close_sync()
        self._stop_processes()
        _running.discard(self)

    def _stop_processes(self) -> None:
        spawn.stop(self._workers)

    async def astart(self, *, default: bool = False) -> WorkerPool:
        """Like start(), without blocking the event loop while the workers come up."""
        if self._state == "new":
            with self._lock:
                self._spawn()
                self._state = "starting"
            try:
                await asyncio.to_thread(self._await_ready)
            except BaseException as exc:
                stopped = self._state == "stopped"
                self._state = "stopped"
                await asyncio.to_thread(self._stop_processes)
                if stopped and isinstance(exc, Exception):
                    raise RuntimeError("the pool was stopped while it was starting") from exc
                raise
            with self._lock:
                stopped = self._state == "stopped"
                if not stopped:
                    self._state = "running"
                    _running.add(self)
            if stopped:
                await asyncio.to_thread(self._stop_processes)
                raise RuntimeError("the pool was stopped while it was starting")
        elif self._state != "running":
            raise RuntimeError(f"cannot start a pool that is {self._state}")
        if default:
            context.set_default(self._mesh)
            self._default = True
        return self

    async def astop(self) -> None:
        """Like stop(), closing this loop's connections first and waiting off the loop."""
        await self._mesh.close_loop()
        await asyncio.to_thread(self.stop)

    async def __aenter__(self) -> WorkerPool:
        owned = self._state == "new"
        await self.astart()
        task = asyncio.current_task()
        stack = self._entries.setdefault(task, [])
        stack.append(context.enter(self._mesh))
        if owned:
            self._owner = (task, len(stack))
        return self

    async def __aexit__(self, *exc: object) -> None:
        task = asyncio.current_task()
        stack = self._entries[task]
        depth = len(stack)
        context.leave(stack.pop())
        if not stack:
            del self._entries[task]
        if self._owner == (task, depth):
            self._owner = None
            await self.astop()
        elif self._state == "running" and not self._entered_on(asyncio.get_running_loop()):
            # The last block on this loop: close its connections, keep the workers.
            await self._mesh.close_loop()

    def _entered_on(self, loop: asyncio.AbstractEventLoop) -> bool:
        return any(t is not None and t.get_loop() is loop for t in self._entries)

    # -- introspection ----------------------------------------------------------

    @property
    def workers(self) -> tuple[WorkerInfo, ...]:
        infos = []
        for w in self._workers:
            record = w.record
            infos.append(
                WorkerInfo(
                    w.id,
                    record.address if record else "",
                    w.pid,
                    w.tags,
                    self._state_of(w.id, w.alive(), record is not None),
                )
            )
        return tuple(infos)

    def _state_of(self, worker_id: str, alive: bool, known: bool) -> str:
        if self._state == "stopped":
            return "lost" if self._mesh.lost_reason(worker_id) is not None else "stopped"
        if not alive or self._mesh.lost_reason(worker_id) is not None:
            if alive is False and self._mesh.lost_reason(worker_id) is None:
                self._mesh.mark_lost(worker_id, f"worker {worker_id} exited")
            return "lost"
        return "ready" if known and self._state == "running" else "starting"

    async def statistics(self, timeout: float = 2.0) -> MeshStatistics:
        """A frozen snapshot of the mesh, with each peer's own counters fetched over gRPC."""
        records = await self._mesh.peer_stats(timeout) if self.running else {}
        return self._snapshot(records)

    def statistics_sync(self, timeout: float = 2.0) -> MeshStatistics:
        """Like statistics(), callable from any thread, with or without an event loop."""
        if not self.running:
            return self._snapshot({})
        return self._snapshot(self._mesh.peer_stats_sync(timeout))

    def _snapshot(self, records: dict[str, StatsRecord]) -> MeshStatistics:
        peers: list[PeerStatistics] = []
        executed = Counters()
        for info in self.workers:
            record = records.get(info.id)
            if record is not None:
                done, hist = _counters(record.executed)
                sent, _ = _counters(record.dispatched)
                peer = PeerStatistics(
                    info.id, info.address, info.pid, info.tags, info.state, done, sent,
                    record.cpu_percent, record.rss_bytes, record.uptime_s,
                    record.code_received, record.rejected,
                )  # fmt: skip
                self._last[info.id] = peer
            else:
                last = self._last.get(info.id)
                peer = (
                    replace(last, state=info.state)
                    if last is not None
                    else PeerStatistics(info.id, info.address, info.pid, info.tags, info.state)
                )
                hist = None
            if hist is not None:
                executed.latency.merge(hist)
            executed.started += peer.executed.started
            executed.completed += peer.executed.completed
            executed.failed += peer.executed.failed
            executed.cancelled += peer.executed.cancelled
            peers.append(peer)
        return MeshStatistics(
            taken_at=time.time(),
            peers=tuple(peers),
            caller=self._mesh.dispatched.snapshot(),
            executed=executed.snapshot(),
        )

    def __repr__(self) -> str:
        return f"<wool.WorkerPool {self._state} workers={self.size} tags={list(self.tags)}>"


@atexit.register
def _stop_all() -> None:
    for pool in list(_running):
        try:
            pool.stop()
        except Exception:
            pass
