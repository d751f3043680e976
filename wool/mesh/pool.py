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
import logging
import os
import select
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from contextvars import Token
from dataclasses import dataclass, replace

from wool import tuning
from wool.credentials import WorkerCredentials
from wool.discovery.base import Discovery
from wool.discovery.finder import Finder
from wool.errors import WorkerStartError
from wool.mesh import compat, context, spawn
from wool.mesh.client import MeshClient
from wool.mesh.spawn import LocalWorker
from wool.protocol import auth
from wool.protocol.frames import CountersRecord, PeerRecord, StatsRecord
from wool.stats import Counters, DispatchCounters, Histogram, MeshStatistics, PeerStatistics
from wool.worker.config import is_loopback

_running: weakref.WeakSet[WorkerPool] = weakref.WeakSet()
_log = logging.getLogger("wool")
_WATCH_JOIN = 5.0
_RETRY_MAX = 5.0


def _require_loopback(host: str) -> None:
    """Refuse a bind address other machines could reach: spawned workers speak plaintext."""
    if not is_loopback(host):
        raise ValueError(
            f"WorkerPool(host={host!r}) would let any machine that reaches that address run "
            "code in its workers: spawned workers listen without TLS. Use a loopback address "
            "(the default 127.0.0.1, ::1 or localhost). For workers on other machines, run "
            "`wool worker` there with mutual TLS and use WorkerPool(discovery=..., "
            "credentials=...)."
        )


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker of a pool: where it listens, its process, its tags and state.

    ``source`` says how the pool found it: ``"spawned"`` for a worker it
    started itself; discovered workers name their discovery (``frames.PeerRecord.source``).
    A worker ``scale`` removed is ``stopped`` while the pool runs on.
    """

    id: str
    address: str
    pid: int
    tags: tuple[str, ...]
    state: str
    source: str = "spawned"


def _counters(record: CountersRecord) -> tuple[DispatchCounters, Histogram]:
    hist = Histogram.from_sparse(record.buckets or {}, record.total_ns, record.max_ns)
    return (
        DispatchCounters(
            record.started, record.completed, record.failed, record.cancelled, hist.summary()
        ),
        hist,
    )


def _in_flight(records: dict[str, StatsRecord]) -> dict[str, int]:
    """Calls each answering peer is running now, from its own counters."""
    return {
        peer_id: max(0, r.started - r.completed - r.failed - r.cancelled)
        for peer_id, r in ((pid, rec.executed) for pid, rec in records.items())
    }


class WorkerPool:
    """A mesh of local worker processes.

    ``WorkerPool(*tags, spawn=N)`` starts N workers carrying ``tags`` (default:
    one per CPU); ``size=N`` is accepted as the older spelling. Workers bind
    ``host``, which must be a loopback address (ValueError otherwise), and
    require the pool's secret on every call.

    The ``wool`` package's other arguments (``discovery=``, ``lease=``,
    ``credentials=``, ``loadbalancer=``, ``worker=``, ``options=``, ``lazy=``,
    ``quorum=``, ``quorum_timeout=``) are accepted where a local mesh already
    does what they ask, else refused with ``wool.UnsupportedArgument`` saying
    what to use instead (``wool.mesh.compat``).

    With ``respawn=True``, a worker that dies while the pool runs is replaced:
    a new worker starts, and once it is ready every live worker and this
    process get the new peer table (the dead worker stays out of it). Calls
    that were on the dead worker still fail with ``WorkerLost``; nothing is
    retried. ``workers`` keeps every worker the pool ever started, oldest
    first, so the ones replaced show as ``lost``. Off by default: a worker
    that crashes on every start would otherwise be restarted without end
    (with a back-off of up to 5 s between attempts).

    ``max_payload`` (bytes; None: ``WOOL_MAX_PAYLOAD``, else 2 GiB) caps the
    encoded arguments of one call made through this pool: a larger call
    raises ``wool.PayloadTooLarge`` naming the argument, before anything is
    sent. Workers the pool spawns apply it to what they send back (a result
    over it fails its call with ``PayloadTooLarge``) and to their own calls.
    Payloads of any size up to it travel in chunks, interleaved with other
    calls. ValueError if it is not a positive int.
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
        respawn: bool = False,
        worker: object = None,
        discovery: object = None,
        loadbalancer: object = None,
        credentials: object = None,
        options: object = None,
        lease: int | None = None,
        lazy: bool | None = None,
        quorum: int | None = None,
        quorum_timeout: float | None = None,
        max_payload: int | None = None,
    ) -> None:
        _require_loopback(host)
        if max_payload is not None and (
            not isinstance(max_payload, int) or isinstance(max_payload, bool) or max_payload <= 0
        ):
            raise ValueError(f"max_payload must be a positive number of bytes, not {max_payload!r}")
        if spawn is not None and size is not None and spawn != size:
            raise ValueError("give spawn= or size= (the older name), not both")
        count = spawn if spawn is not None else size
        if discovery is not None and not count:
            count = 0  # a durable pool: only what discovery finds
        elif count is None or count == 0:
            count = self.default_size()
        if count < 0:
            raise ValueError("spawn must be a positive number of workers")
        compat.check(
            count,
            worker=worker,
            discovery=discovery,
            loadbalancer=loadbalancer,
            credentials=credentials,
            options=options,
            lease=lease,
            lazy=lazy,
            quorum=quorum,
            quorum_timeout=quorum_timeout,
        )
        self.tags = tuple(tags)
        self.size = count
        self.host = host
        self.start_timeout = start_timeout
        self._secret = secret or auth.new_secret()
        self._mesh = _client(self._secret, connect_timeout, credentials)
        self._mesh.max_payload = max_payload
        self._credentials: WorkerCredentials | None = credentials  # type: ignore[assignment]
        self._workers: list[LocalWorker] = []
        self._entries: dict[asyncio.Task | None, list[Token]] = {}
        self._owner: tuple[asyncio.Task | None, int] | None = None
        self._state = "new"
        self._default = False
        self._last: dict[str, PeerStatistics] = {}
        self._peers_version = 0
        self._lock = threading.Lock()
        self.respawn = respawn
        self._gone: set[str] = set()
        self._watcher: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None
        self._removed: set[str] = set()
        self._scaling = threading.Lock()
        self._publishing = threading.Lock()
        self._finder: Finder | None = None
        if discovery is not None:
            assert isinstance(discovery, Discovery)  # compat.check refused anything else
            self._finder = Finder(
                discovery,
                secret=self._secret,
                credentials=credentials,  # type: ignore[arg-type]
                tags=self.tags,
                lease=lease,
                on_change=self._found_changed,
                quorum=quorum or 1,
            )

    @staticmethod
    def default_size() -> int:
        """How many workers ``spawn=None`` starts: the CPUs this process may run on."""
        if hasattr(os, "sched_getaffinity"):
            return max(1, len(os.sched_getaffinity(0)))
        return os.cpu_count() or 1

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
                self._watch()
            elif self._state == "stopped":
                raise RuntimeError("this pool was stopped; create a new WorkerPool")
            if default:
                self._make_default()
        return self

    def _start_workers(self, count: int) -> list[LocalWorker]:
        return spawn.spawn(
            count, self.tags, self._secret, self.host, self._credentials, self._mesh.max_payload
        )

    def _spawn(self) -> None:
        tuning.tune_this_process()
        self._workers = self._start_workers(self.size)

    def _await_ready(self) -> None:
        spawn.wait_ready(self._workers, self.start_timeout)
        records = [w.record for w in self._workers if w.record is not None]
        self._peers_version += 1
        spawn.send_peers(self._workers, records, self._peers_version, self.start_timeout)
        if self._finder is not None:  # publish ours, then wait (bounded) for others if we have none
            self._finder.start(records, need=not records, timeout=self.start_timeout)
        self._mesh.set_peers(self._matching(records))

    def _found_changed(self) -> None:
        """Discovery found or lost workers: this process's table gets the new set."""
        if self._state in ("starting", "running"):
            gone = self._gone | self._removed
            live = [w.record for w in self._workers if w.record and w.id not in gone]
            self._mesh.set_peers(self._matching(r for r in live if r is not None))

    # -- respawn ----------------------------------------------------------------

    def _watch(self) -> None:
        """Start the respawn thread (called with the lock held, once running)."""
        if not self.respawn:
            return
        self._wake = os.pipe()
        self._watcher = threading.Thread(
            target=self._respawn_loop, name="wool-respawn", daemon=True
        )
        self._watcher.start()

    def _respawn_loop(self) -> None:
        """Replace workers that exit until the pool stops; never raises."""
        assert self._wake is not None
        retry = 0.0
        stale = False
        while self._state == "running":
            try:
                watched = [w for w in self._workers if w.id not in self._gone]
                exited = spawn.wait_exit(watched, self._wake[0], timeout=1.0)
                if self._state != "running":
                    return
                for worker in exited:
                    self._gone.add(worker.id)
                    self._mesh.mark_lost(
                        worker.id,
                        f"worker {worker.id} (pid {worker.pid}) exited with code "
                        f"{worker.process.returncode}",
                    )
                    spawn.stop([worker], timeout=0.0)
                    stale = True
                if self._replace():
                    stale = True
                if stale:
                    self._publish()
                    stale = False
                retry = 0.0
            except WorkerStartError as exc:
                retry = min(max(retry * 2, 0.2), _RETRY_MAX)
                _log.warning("wool: a replacement worker did not start (%s); retrying", exc)
                if self._wait_wake(retry):
                    return
            except Exception:
                _log.exception("wool: the respawn thread failed; retrying")
                if self._wait_wake(_RETRY_MAX):
                    return

    def _replace(self) -> bool:
        """Start workers up to ``size`` and wait (bounded) until they are up; False if none."""
        with self._lock:
            missing = self.size - sum(w.id not in self._gone for w in self._workers)
            if self._state != "running" or missing <= 0:
                return False
            fresh = self._start_workers(missing)
            self._workers.extend(fresh)
        try:
            spawn.wait_ready(fresh, self.start_timeout)
        except WorkerStartError:
            spawn.terminate([w for w in fresh if w.record is None], timeout=1.0)
            raise
        return True

    def _publish(self) -> None:
        """Send the live workers' table to each of them and to this process's mesh."""
        with self._publishing:  # workers apply tables in arrival order: never interleave two
            self._publish_now()

    def _publish_now(self) -> None:
        gone = self._gone
        live = [w for w in self._workers if w.record and w.id not in gone and w.alive()]
        self._peers_version += 1
        acked = spawn.send_peers(
            live,
            [w.record for w in live if w.record is not None],
            self._peers_version,
            self.start_timeout,
            skip_exited=True,
        )
        if self._state == "running":
            self._mesh.set_peers(self._matching(w.record for w in acked if w.record is not None))

    def _wait_wake(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking early when the pool stops; True once it has."""
        assert self._wake is not None
        select.select([self._wake[0]], [], [], seconds)
        return self._state != "running"

    def _stop_watching(self) -> threading.Thread | None:
        """Wake the respawn thread so it sees the pool stopping; returns it to join."""
        watcher = self._watcher
        if watcher is not None and self._wake is not None:
            try:
                os.write(self._wake[1], b"x")
            except OSError:
                pass
        return watcher

    def _matching(self, records: Iterable[PeerRecord]) -> list[PeerRecord]:
        """The spawned workers carrying the pool's tags, then the discovered ones in use."""
        wanted = set(self.tags)
        found = self._finder.found if self._finder is not None else ()
        return [r for r in records if wanted.issubset(r.tags)] + list(found)

    # -- scale -----------------------------------------------------------------

    def scale(self, n: int, *, drain: float = 10.0) -> tuple[list[str], list[str]]:
        """Grow or shrink the running pool to ``n`` live workers; returns (added, removed) ids.

        Growing starts the new workers and waits (bounded by ``start_timeout``)
        until they are up; then every live worker and this process get the new
        peer table, so calls already running go on undisturbed and new ones
        (nested ones too) may land on the newcomers. If a new worker does not
        start, the ones that did not are stopped, the pool keeps the rest and
        ``WorkerStartError`` is raised.

        Shrinking picks the workers with the fewest calls in flight (the
        newest among equals), takes them out of the peer table first so no new
        call reaches them, waits up to ``drain`` seconds for the calls they are
        running to finish, then stops them (bounded). A call still running on
        a removed worker after ``drain`` is cancelled by the worker's exit: its
        caller gets ``WorkerLost``; nothing is retried. Removed workers stay in
        ``workers`` as ``stopped``. ``n`` must be at least 1 (ValueError).
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"scale(n) needs a whole number of workers >= 1, got {n!r}")
        with self._scaling:
            with self._lock:
                if self._state != "running":
                    raise RuntimeError(f"cannot scale a pool that is {self._state}")
                live = [w for w in self._workers if w.id not in self._gone and w.alive()]
                fresh: list[LocalWorker] = []
                victims: list[LocalWorker] = []
                if n > len(live):
                    fresh = self._start_workers(n - len(live))
                    self._workers.extend(fresh)
                self.size = n
            if fresh:
                self._grow(fresh)
            elif n < len(live):
                victims = self._pick_victims(live, len(live) - n)
                with self._lock:
                    self._gone.update(w.id for w in victims)
                    self._removed.update(w.id for w in victims)
                self._publish()
                self._drain(victims, drain)
                spawn.stop(victims)
                for worker in victims:
                    self._mesh.mark_lost(worker.id, f"worker {worker.id} was removed by scale")
            return [w.id for w in fresh], [w.id for w in victims]

    async def ascale(self, n: int, *, drain: float = 10.0) -> tuple[list[str], list[str]]:
        """Like scale(), without blocking the event loop while workers start or drain."""
        return await asyncio.to_thread(self.scale, n, drain=drain)

    def _grow(self, fresh: list[LocalWorker]) -> None:
        try:
            spawn.wait_ready(fresh, self.start_timeout)
        except WorkerStartError:
            failed = [w for w in fresh if w.record is None]
            spawn.stop(failed, timeout=1.0)
            with self._lock:
                self._gone.update(w.id for w in failed)
                self.size -= len(failed)
            self._publish()
            raise
        self._publish()

    def _pick_victims(self, live: list[LocalWorker], count: int) -> list[LocalWorker]:
        """The ``count`` workers with the fewest calls in flight, newest first among equals."""
        busy = _in_flight(self._mesh.peer_stats_sync(1.0))
        order = sorted(
            range(len(live)), key=lambda i: (busy.get(live[i].id, 0), -i)
        )  # a worker that did not answer counts as idle: it is likely dead or stuck anyway
        return [live[i] for i in sorted(order[:count])]

    def _drain(self, victims: list[LocalWorker], grace: float) -> None:
        """Wait up to ``grace`` s until the removed workers run nothing (or stop answering)."""
        records = [w.record for w in victims if w.record is not None]
        if not records or grace <= 0:
            return
        probe = MeshClient(self._secret, credentials=self._credentials)
        probe.set_peers(records)
        deadline = time.monotonic() + grace
        try:
            while time.monotonic() < deadline:
                busy = _in_flight(probe.peer_stats_sync(min(1.0, grace)))
                if not any(busy.values()):
                    return
                time.sleep(0.05)
        finally:
            probe.close_sync()

    def stop(self) -> None:
        """Stop every worker (bounded) and close this pool's connections.

        A pool still starting (``astart`` waiting for its workers) stops too:
        its workers are stopped here and ``astart`` raises.
        """
        with self._lock:
            state, self._state = self._state, "stopped"
            if self._default and context.get_default() is self._mesh:
                context.set_default(None)
        if state == "starting":
            self._stop_processes()
            return
        if state != "running":
            return
        self._mesh.close_sync()
        self._stop_processes()
        _running.discard(self)

    def _stop_processes(self) -> None:
        """End every worker, replacements too, then the respawn thread (bounded), then pipes.

        Called after the state left ``running``, so no replacement starts
        after this snapshot of the workers; one still starting is in it.
        """
        watcher = self._stop_watching()
        if self._finder is not None:
            self._finder.stop()  # discovered workers are not ours: nothing of theirs stops
        workers = list(self._workers)
        spawn.terminate(workers)
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(_WATCH_JOIN)
            if watcher.is_alive():
                _log.warning("wool: the respawn thread did not end within %gs", _WATCH_JOIN)
                return
            assert self._wake is not None
            for fd in self._wake:
                os.close(fd)
            self._wake = None
            self._watcher = None
        spawn.close_pipes(workers)

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
                    self._watch()
                    if default:  # under the lock: a stop() now clears it, never misses it
                        self._make_default()
            if stopped:
                await asyncio.to_thread(self._stop_processes)
                raise RuntimeError("the pool was stopped while it was starting")
            return self
        with self._lock:
            if self._state != "running":
                raise RuntimeError(f"cannot start a pool that is {self._state}")
            if default:
                self._make_default()
        return self

    def _make_default(self) -> None:
        context.set_default(self._mesh)
        self._default = True

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
        """Every worker this pool started, oldest first, replaced ones included (as ``lost``).

        A worker is ``ready`` once this process's peer table has it, so a
        replacement is ``starting`` until its peers know it too.
        """
        infos = []
        published = {p.id for p in self._mesh.peers}
        for w in list(self._workers):
            record = w.record
            infos.append(
                WorkerInfo(
                    w.id,
                    record.address if record else "",
                    w.pid,
                    w.tags,
                    "stopped"
                    if w.id in self._removed
                    else self._state_of(w.id, w.alive(), w.id in published),
                )
            )
        for r in self._finder.found if self._finder is not None else ():
            lost = self._mesh.lost_reason(r.id) is not None or r.id not in published
            state = "stopped" if self._state == "stopped" else "lost" if lost else "ready"
            infos.append(WorkerInfo(r.id, r.address, r.pid, r.tags, state, r.source))
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


def _client(secret: bytes, connect_timeout: float, credentials: object) -> MeshClient:
    if credentials is None:
        return MeshClient(secret, connect_timeout=connect_timeout)
    make: Callable[..., MeshClient] = MeshClient  # credentials: transport security (H11)
    return make(secret, connect_timeout=connect_timeout, credentials=credentials)


@atexit.register
def _stop_all() -> None:
    for pool in list(_running):
        try:
            pool.stop()
        except Exception:
            pass
