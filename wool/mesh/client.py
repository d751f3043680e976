"""The peer table and load balancer one process uses to dispatch into a mesh.

A caller process (a script, a kernel) and every worker (for nested calls)
each hold one. Connections are kept per event loop, because gRPC's asyncio
objects belong to the loop that made them; the peer table is shared.

A peer whose stream breaks is lost: its calls fail with ``WorkerLost`` and
no new call goes to it. It is not lost for good: after ``LOST_RETRY``
seconds (doubling up to ``LOST_RETRY_MAX``) the loop that lost it opens a
fresh connection in the background, and only when that connection's
handshake succeeds does the peer take calls again (a worker that was
stopped and continued, or stalled and recovered, rejoins). A peer the pool
knows has exited (``mark_lost``) is never retried.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

import grpc
import grpc.aio

from wool.credentials import WorkerCredentials
from wool.errors import NoWorkersAvailable, ProtocolError, WorkerLost
from wool.mesh import transport
from wool.mesh.connection import Connection, OpenCancelled
from wool.protocol import auth
from wool.protocol.frames import (
    STATS_METHOD,
    STATS_REQUEST,
    PeerRecord,
    StatsRecord,
    decode_stats,
)
from wool.stats import Counters

if TYPE_CHECKING:
    from wool.mesh.membership import Membership

CONNECT_TIMEOUT = 10.0
LOST_RETRY: Final = 1.0
"""Seconds after a peer is lost before a fresh connection to it is tried."""
LOST_RETRY_MAX: Final = 30.0
"""The longest wait between tries while the peer keeps failing them."""
PROBE_TIMEOUT: Final = 3.0
"""Bound on one background try to reach a lost peer."""


class _LoopConnections(dict[str, Connection]):
    """One event loop's connections by peer id, the one its last pick chose, its retries."""

    last: Connection | None = None

    def __init__(self) -> None:
        super().__init__()
        self.probes: dict[str, asyncio.TimerHandle | asyncio.Task[None]] = {}


class MeshClient:
    """Dispatches to the least-loaded live peer; marks peers lost when their stream breaks."""

    membership: Membership | None = None
    """The gossip that keeps this table (a durable worker's); it answers Gossip calls."""

    def __init__(
        self,
        secret: bytes,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        credentials: WorkerCredentials | None = None,
    ) -> None:
        self.secret = secret
        self.credentials = credentials  # TLS for every channel to a peer; None: plaintext
        self.dispatched = Counters()
        self.connect_timeout = connect_timeout
        self.max_payload: int | None = None
        """The most bytes one call's encoded arguments may take (None: ``codec.MAX_PAYLOAD``)."""
        self._records: dict[str, PeerRecord] = {}
        self._lost: dict[str, str] = {}
        self._gone: set[str] = set()
        self._retrying = True
        self._live: tuple[PeerRecord, ...] = ()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopConnections]
        self._loops = weakref.WeakKeyDictionary()
        self._control: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, grpc.aio.Channel]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._sync_channels: dict[str, grpc.Channel] = {}
        self._turn = 0

    # -- membership -------------------------------------------------------------

    def set_peers(self, peers: Iterable[PeerRecord]) -> None:
        """Replace the peer table; peers already lost stay lost."""
        with self._lock:
            self._records = {p.id: p for p in peers}
            self._live = tuple(p for p in self._records.values() if p.id not in self._lost)
            for conns in list(self._loops.values()):
                last = conns.last
                if last is not None and last.peer.id not in self._records:
                    conns.last = None  # a dropped peer is never picked again, even while warm

    def mark_lost(self, peer_id: str, reason: str) -> None:
        """Take ``peer_id`` out of service for good (its process is known to have exited)."""
        with self._lock:
            self._gone.add(peer_id)
        self._mark(peer_id, reason)

    def _mark(self, peer_id: str, reason: str) -> None:
        with self._lock:
            self._lost.setdefault(peer_id, reason)
            self._live = tuple(p for p in self._live if p.id != peer_id)

    def _rejoin(self, peer_id: str) -> None:
        with self._lock:
            if self._lost.pop(peer_id, None) is not None:
                self._live = tuple(p for p in self._records.values() if p.id not in self._lost)

    @property
    def peers(self) -> tuple[PeerRecord, ...]:
        return tuple(self._records.values())

    @property
    def live(self) -> tuple[PeerRecord, ...]:
        return self._live

    def lost_reason(self, peer_id: str) -> str | None:
        return self._lost.get(peer_id)

    # -- connections ------------------------------------------------------------

    def _connections(self) -> _LoopConnections:
        loop = asyncio.get_running_loop()
        conns = self._loops.get(loop)
        if conns is None:
            conns = self._loops[loop] = _LoopConnections()
        return conns

    def _on_lost(self, conn: Connection, error: WorkerLost) -> None:
        if not conn.ended_by_worker:
            self._lose(conn.peer, str(error))
            return
        # The worker ended one stream and serves on: the next call opens a fresh one.
        conns = self._connections()
        if conns.get(conn.peer.id) is conn:
            del conns[conn.peer.id]
        if conns.last is conn:
            conns.last = None

    def _lose(self, peer: PeerRecord, reason: str, retry: float = LOST_RETRY) -> None:
        """Mark ``peer`` lost and, on this loop, try it again after ``retry`` seconds."""
        self._mark(peer.id, reason)
        conns = self._connections()
        if peer.id not in conns.probes and self._retryable(peer.id) is not None:
            loop = asyncio.get_running_loop()
            conns.probes[peer.id] = loop.call_later(retry, self._start_probe, conns, peer, retry)

    def _start_probe(self, conns: _LoopConnections, peer: PeerRecord, retry: float) -> None:
        conns.probes[peer.id] = asyncio.get_running_loop().create_task(
            self._probe(conns, peer, retry)
        )

    async def _probe(self, conns: _LoopConnections, peer: PeerRecord, retry: float) -> None:
        """Open a fresh connection to a lost peer; it rejoins only if the handshake succeeds."""
        record = self._retryable(peer.id)
        if record is None:
            del conns.probes[peer.id]
            return
        conn = Connection(record, self.secret, self._on_lost, self.credentials)
        try:
            await conn.open(min(self.connect_timeout, PROBE_TIMEOUT))
        except Exception:  # WorkerLost, AuthenticationError, or anything unforeseen: try later
            conns.probes.pop(peer.id, None)
            reason = self._lost.get(peer.id)
            if reason is not None:
                self._lose(record, reason, min(retry * 2, LOST_RETRY_MAX))
            return
        except BaseException:
            conns.probes.pop(peer.id, None)
            raise
        conns.probes.pop(peer.id, None)
        if self._retryable(peer.id) is None:
            await conn.close()  # the peer left the table, or the mesh closed, meanwhile
            return
        stale = conns.get(peer.id)
        if stale is not None and stale.lost is None:
            await conn.close()  # another caller reached it first: keep theirs
        else:
            conns[peer.id] = conn
        self._rejoin(peer.id)

    def _retryable(self, peer_id: str) -> PeerRecord | None:
        """The record to try a lost peer at, or None if it is not worth trying."""
        if not self._retrying or peer_id in self._gone or peer_id not in self._lost:
            return None
        return self._records.get(peer_id)

    def pick(self) -> tuple[Connection | None, PeerRecord]:
        """The least-loaded live peer, with its open connection.

        An idle peer chosen last time is chosen again: calls made one after
        another stay on one warm worker (on a 2-core machine, alternating
        between two idle workers cost 28% more latency per call). Otherwise
        ties go round robin, so concurrent calls spread. The connection is
        None when it still has to be opened (see open_to).
        """
        live = self._live
        n = len(live)
        if not n:
            raise NoWorkersAvailable(self._why_none())
        conns = self._connections()
        last = conns.last
        if last is not None and not last.pending and last.ready and last.peer.id not in self._lost:
            return last, last.peer
        self._turn = turn = (self._turn + 1) % n
        best: Connection | None = None
        best_peer = live[turn]
        best_load = 1 << 62
        for i in range(n):
            peer = live[(turn + i) % n]
            conn = conns.get(peer.id)
            load = 0 if conn is None else conn.load
            if load < best_load:
                best, best_peer, best_load = conn, peer, load
                if not load:
                    break
        chosen = best if best is not None and best.ready else None
        conns.last = chosen
        return chosen, best_peer

    async def open_to(self, peer: PeerRecord) -> Connection:
        """Open (or join the opening of) the connection to ``peer``; on failure try another."""
        while True:
            conns = self._connections()
            try:
                conn = await self._open(conns, peer)
            except WorkerLost as exc:
                self._lose(peer, str(exc))
            else:
                conns.last = conn
                return conn
            ready, peer = self.pick()
            if ready is not None:
                return ready

    async def connect(self, worker: str | None = None, tags: tuple[str, ...] = ()) -> Connection:
        """An open connection for one call: to ``worker`` if given, else the least-loaded peer
        carrying ``tags`` (any peer without them). Raises NoWorkersAvailable when none is live.
        """
        if worker is None and not tags:
            conn, peer = self.pick()
            return conn if conn is not None else await self.open_to(peer)
        return await self.connection_matching(worker, tags)

    async def connection_matching(self, worker: str | None, tags: tuple[str, ...]) -> Connection:
        """A connection to the given worker, or to the least-loaded one carrying ``tags``."""
        wanted = set(tags)
        candidates = [
            p for p in self._live if (worker is None or p.id == worker) and wanted.issubset(p.tags)
        ]
        if not candidates:
            what = f"worker {worker}" if worker else f"a worker tagged {sorted(wanted)}"
            raise NoWorkersAvailable(f"no live {what} in this mesh")
        conns = self._connections()
        peer = min(candidates, key=lambda p: conns[p.id].load if p.id in conns else 0)
        try:
            return await self.connection_to(peer)
        except WorkerLost as exc:
            self._lose(peer, str(exc))
            raise

    async def connection_to(self, peer: PeerRecord) -> Connection:
        conns = self._connections()
        conn = conns.get(peer.id)
        if conn is not None and conn.ready:
            return conn
        return await self._open(conns, peer)

    async def _open(self, conns: dict[str, Connection], peer: PeerRecord) -> Connection:
        """The open connection to ``peer``, opening it or joining its opening.

        While they wait, callers count as the connection's load, so a burst
        spreads over idle peers instead of piling onto one still opening.
        """
        while True:
            conn = conns.get(peer.id)
            if conn is not None and conn.lost is None:
                conn.opening += 1
                try:
                    await conn.wait_open(self.connect_timeout)
                except TimeoutError:
                    raise WorkerLost(f"{conn.describe()} did not answer in time") from None
                except OpenCancelled:
                    continue  # its opener was cancelled; open it ourselves
                finally:
                    conn.opening -= 1
                return conn
            conn = Connection(peer, self.secret, self._on_lost, self.credentials)
            conns[peer.id] = conn
            conn.opening += 1
            try:
                await conn.open(self.connect_timeout)
            except BaseException:
                if conns.get(peer.id) is conn:
                    del conns[peer.id]
                raise
            finally:
                conn.opening -= 1
            return conn

    def _why_none(self) -> str:
        if not self._records:
            return "the mesh has no workers"
        reasons = "; ".join(sorted(set(self._lost.values())))
        return f"all {len(self._records)} workers of the mesh are lost ({reasons})"

    def peer_stats_sync(self, timeout: float) -> dict[str, StatsRecord]:
        """Like peer_stats, from any thread, over plain (not asyncio) gRPC channels.

        A second asyncio loop using gRPC in this process would share the
        dispatch loop's completion queue and slow every dispatch down.
        """
        with self._lock:
            for peer in self._live:
                if peer.id not in self._sync_channels:
                    target = peer.control or peer.address
                    self._sync_channels[peer.id] = transport.sync_channel(target, self.credentials)
            calls = [
                (
                    peer.id,
                    self._sync_channels[peer.id]
                    .unary_unary(STATS_METHOD)
                    .future(
                        STATS_REQUEST, metadata=auth.client_metadata(self.secret), timeout=timeout
                    ),
                )
                for peer in self._live
            ]
        records: dict[str, StatsRecord] = {}
        for peer_id, call in calls:
            try:
                records[peer_id] = decode_stats(call.result())
            except (grpc.RpcError, ProtocolError, ValueError):  # ValueError: channel closed
                continue
        return records

    def close_sync(self) -> None:
        """Close the plain channels peer_stats_sync opened; lost peers are not tried again."""
        self._retrying = False
        with self._lock:
            channels, self._sync_channels = self._sync_channels, {}
        for channel in channels.values():
            channel.close()

    async def close_loop(self) -> None:
        """Close this loop's connections (others close with their own loops)."""
        loop = asyncio.get_running_loop()
        conns = self._loops.pop(loop, _LoopConnections())
        channels = self._control.pop(loop, {})
        probes = list(conns.probes.values())
        for probe in probes:
            probe.cancel()
        await asyncio.gather(
            *(p for p in probes if isinstance(p, asyncio.Task)),
            *(c.close() for c in conns.values()),
            *(ch.close(grace=None) for ch in channels.values()),
            return_exceptions=True,
        )

    # -- statistics ---------------------------------------------------------------

    async def peer_stats(self, timeout: float) -> dict[str, StatsRecord]:
        """Each live peer's own report from its control address; unreachable peers are left out."""
        loop = asyncio.get_running_loop()
        channels = self._control.get(loop)
        if channels is None:
            channels = self._control[loop] = {}

        async def one(peer: PeerRecord) -> tuple[str, StatsRecord | None]:
            channel = channels.get(peer.id)
            if channel is None:
                target = peer.control or peer.address
                channel = channels[peer.id] = transport.aio_channel(target, self.credentials)
            method = channel.unary_unary(STATS_METHOD)
            try:
                reply = await method(
                    STATS_REQUEST, metadata=auth.client_metadata(self.secret), timeout=timeout
                )
                return peer.id, decode_stats(reply)
            except (grpc.RpcError, ProtocolError):
                return peer.id, None

        results = await asyncio.gather(*(one(p) for p in self._live))
        return {pid: rec for pid, rec in results if rec is not None}
