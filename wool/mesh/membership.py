"""Membership without a coordinator: push-pull anti-entropy of the peer table.

Every durable worker runs one ``Membership``. Each member owns one entry:
its ``incarnation`` (milliseconds since the epoch when it started, so a
restarted worker always outranks its earlier life) and a ``heartbeat`` it
bumps every ``interval``. Every interval a member sends its whole table to
up to ``fanout`` random verified peers over the ``Gossip`` control RPC
and merges the table each one answers with (``merge`` keeps, per id, the
entry with the highest ``(incarnation, left, heartbeat)``).

Bounds callers can rely on (defaults: interval 0.5 s, suspect_after 3 s):

- a joining worker that knows one live seed is known to every peer within a
  few intervals (tested: three workers, each told one seed, converge in under
  5 s on loopback);
- an entry whose heartbeat has not advanced for ``suspect_after`` seconds is
  dropped: a killed or cut-off worker is gone from every table within
  ``suspect_after + 4 * interval`` (5 s by default; tested);
- a leave is a tombstone with a higher incarnation, pushed to every known
  peer at once and gossiped on, so it is seen within ``2 * interval``;
- a dropped or departed id is remembered for ``forget_after`` seconds, so
  stale gossip cannot bring it back; a restarted worker carries a higher
  incarnation and rejoins at once.

Discovery is a hint, never trust: an entry becomes a member (is gossiped as
alive and reaches ``MeshClient.set_peers``) only after this process has
itself called its address with the mesh secret (and TLS when credentials
are given) and the peer proved it holds the secret too.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

import grpc

from wool.errors import AuthenticationError, ProtocolError, WorkerLost
from wool.mesh import transport
from wool.protocol import auth
from wool.protocol.frames import (
    GOSSIP_METHOD,
    MemberRecord,
    PeerRecord,
    decode_members,
    encode_members,
)

if TYPE_CHECKING:
    from wool.credentials import WorkerCredentials
    from wool.mesh.client import MeshClient

_log = logging.getLogger("wool")

INTERVAL: Final = 0.5
"""Seconds between gossip rounds (and heartbeats)."""
SUSPECT_AFTER: Final = 3.0
"""Seconds without a newer heartbeat before an entry is dropped."""
FORGET_AFTER: Final = 30.0
"""Seconds a dropped or departed id is remembered, so stale gossip cannot revive it."""
FANOUT: Final = 2
"""Peers contacted per round."""
CALL_TIMEOUT: Final = 1.0
"""Bound on one gossip call."""
_OPTIONS: Final = (("grpc.max_receive_message_length", 64 << 20),)


def rank(m: MemberRecord) -> tuple[int, bool, int]:
    """The order in which entries for one id supersede each other."""
    return (m.peer.incarnation, m.left, m.heartbeat)


def new_incarnation() -> int:
    """A fresh incarnation: later starts of a worker always get a higher one."""
    return time.time_ns() // 1_000_000


def resolve(seed: str) -> list[str]:
    """The addresses a seed names: ``host:port`` as is, ``dns:NAME:PORT`` every address
    NAME resolves to now (re-resolved on each call, for Kubernetes headless Services)."""
    if not seed.startswith("dns:"):
        return [seed]
    name, _, port = seed[4:].rpartition(":")
    if not name or not port.isdigit():
        raise ValueError(f"a DNS seed is dns:NAME:PORT, not {seed!r}")
    try:
        infos = socket.getaddrinfo(name, int(port), type=socket.SOCK_STREAM)
    except OSError:
        return []
    out: list[str] = []
    for family, _, _, _, addr in infos:
        ip = str(addr[0])
        host = f"[{ip}]" if family == socket.AF_INET6 else ip
        target = f"{host}:{port}"
        if target not in out:
            out.append(target)
    return out


def channel(target: str, credentials: WorkerCredentials | None = None) -> grpc.Channel:
    """A plain (threaded) gRPC channel to ``target``, with TLS when credentials are given."""
    return transport.sync_channel(target, credentials, _OPTIONS)


def exchange(
    chan: grpc.Channel,
    secret: bytes,
    members: list[MemberRecord],
    timeout: float,
    source: str,
    credentials: WorkerCredentials | None = None,
) -> list[MemberRecord]:
    """One authenticated Gossip call: send ``members``, return the peer's table (its own
    entry first). Raises AuthenticationError if either side's proof of the secret fails,
    WorkerLost if the peer cannot be reached, ProtocolError on a malformed answer."""
    sent = auth.client_metadata(secret)
    try:
        reply, call = chan.unary_unary(GOSSIP_METHOD).with_call(
            encode_members(members), metadata=sent, timeout=timeout
        )
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        detail = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        if code == grpc.StatusCode.UNAUTHENTICATED:
            raise AuthenticationError(f"the peer refused our credentials: {detail}") from None
        why = transport.refusal(code, detail, credentials)
        if why is not None:
            raise AuthenticationError(f"the peer's transport refused us: {why}") from None
        raise WorkerLost(f"gossip failed: {code}: {detail}") from None
    if not auth.verify_worker(call.initial_metadata(), secret, sent):
        raise AuthenticationError("the peer could not prove it holds the mesh secret")
    return decode_members(reply, source)


def fetch_members(
    address: str,
    secret: bytes,
    *,
    credentials: WorkerCredentials | None = None,
    timeout: float = 2.0,
) -> list[MemberRecord]:
    """The table of the worker at ``address`` (its own entry first), after a full
    handshake; the same errors as ``exchange``. Sends nothing the peer would merge."""
    chan = channel(address, credentials)
    try:
        return exchange(chan, secret, [], timeout, "gossip", credentials)
    finally:
        chan.close()


@dataclass
class _Entry:
    member: MemberRecord
    seen: float
    verified: bool = False
    target: str = ""


def _target(peer: PeerRecord) -> str:
    return peer.control or peer.address


class Membership:
    """This worker's view of the mesh, kept in step with its peers by gossip.

    The contract durable workers use: ``start(seeds)`` once serving (the
    control server must route ``Gossip`` to ``handle``), ``leave()`` when
    draining (tells peers at once, then stops), ``stop()`` to stop without
    a leave (peers drop it after ``suspect_after``), ``members()`` for the
    verified live set. On every change ``client.set_peers(members())`` is
    called and joins and leaves are logged (logger ``wool``).
    """

    def __init__(
        self,
        me: PeerRecord,
        client: MeshClient | None,
        *,
        secret: bytes,
        credentials: WorkerCredentials | None = None,
        interval: float = INTERVAL,
        suspect_after: float = SUSPECT_AFTER,
        forget_after: float = FORGET_AFTER,
        fanout: int = FANOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0 or suspect_after <= interval:
            raise ValueError("need 0 < interval < suspect_after")
        self.me = replace(me, incarnation=me.incarnation or new_incarnation(), source="self")
        self.interval = interval
        self.suspect_after = suspect_after
        self.forget_after = forget_after
        self.fanout = fanout
        self._client = client
        self._secret = secret
        self._credentials = credentials
        self._clock = clock
        self._heartbeat = 0
        self._left = False
        self._entries: dict[str, _Entry] = {}
        self._dead: dict[str, tuple[tuple[int, bool, int], float]] = {}
        self._lock = threading.RLock()
        self._seeds: list[str] = []
        self._channels: dict[str, grpc.Channel] = {}
        self._refused: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._round = 0
        self._published: tuple[PeerRecord, ...] | None = None
        if client is not None:
            client.membership = self  # the worker's Gossip handlers find it here

    # -- the table ----------------------------------------------------------------

    def own(self) -> MemberRecord:
        return MemberRecord(self.me, self._heartbeat, self._left)

    def members(self) -> list[PeerRecord]:
        """This worker and every verified live peer, by id."""
        with self._lock:
            peers = [
                e.member.peer for e in self._entries.values() if e.verified and not e.member.left
            ]
        out = [] if self._left else [self.me]
        return out + sorted(peers, key=lambda p: p.id)

    def table(self) -> list[MemberRecord]:
        """What is gossiped: own entry first, then verified live entries and tombstones."""
        with self._lock:
            rest = [e.member for e in self._entries.values() if e.verified or e.member.left]
        return [self.own(), *rest]

    def merge(self, incoming: Iterable[MemberRecord], *, verified_at: str = "") -> bool:
        """Fold ``incoming`` into the table; True if the member set changed.

        An entry for an id wins over the one held when its rank is higher;
        an alive entry becomes verified only when it already was (same
        incarnation and address) or when ``verified_at`` is the address it
        advertises (this process just called it and the call authenticated).
        """
        now = self._clock()
        changed = False
        with self._lock:
            for m in incoming:
                peer = m.peer
                if not peer.id:
                    continue
                if peer.id == self.me.id:
                    self._refute(m)
                    continue
                key = rank(m)
                dead = self._dead.get(peer.id)
                if dead is not None and key <= dead[0]:
                    continue
                held = self._entries.get(peer.id)
                if held is not None and key <= rank(held.member):
                    if (
                        verified_at
                        and not held.verified
                        and key == rank(held.member)
                        and verified_at in (peer.address, peer.control)
                    ):
                        held.verified = changed = True
                        self._joined(held.member.peer)
                    continue
                self._dead.pop(peer.id, None)
                if m.left:
                    if held is not None and held.verified and not held.member.left:
                        _log.info("wool: peer %s (%s) left", peer.id, peer.address)
                        changed = True
                    self._entries[peer.id] = _Entry(m, now, False, _target(peer))
                    continue
                same = (
                    held is not None
                    and held.verified
                    and not held.member.left
                    and held.member.peer.incarnation == peer.incarnation
                    and held.target == _target(peer)
                )
                if same:
                    assert held is not None
                    held.member = replace(m, peer=replace(peer, source=held.member.peer.source))
                    held.seen = now
                    continue
                ok = bool(verified_at) and verified_at in (peer.address, peer.control)
                if held is not None and held.verified and not held.member.left and not ok:
                    changed = True  # a new life of it: out until verified again
                self._entries[peer.id] = _Entry(m, now, ok, _target(peer))
                if ok:
                    changed = True
                    self._joined(peer)
        return changed

    def _refute(self, m: MemberRecord) -> None:
        """Someone holds a newer entry for this worker (an old tombstone of its id): outrank it."""
        mine = self.me.incarnation
        if not self._left and (
            m.peer.incarnation > mine or (m.left and m.peer.incarnation == mine)
        ):
            self.me = replace(self.me, incarnation=m.peer.incarnation + 1)

    def _joined(self, peer: PeerRecord) -> None:
        _log.info("wool: peer %s (%s) joined, found by %s", peer.id, peer.address, peer.source)

    def expire(self) -> bool:
        """Drop entries whose heartbeat stalled, forget old tombstones; True if members changed."""
        now = self._clock()
        changed = False
        with self._lock:
            for pid, e in list(self._entries.items()):
                age = now - e.seen
                if e.member.left:
                    if age > self.forget_after:
                        del self._entries[pid]
                        self._dead[pid] = (rank(e.member), now)
                elif age > self.suspect_after:
                    del self._entries[pid]
                    self._dead[pid] = (rank(e.member), now)
                    if e.verified:
                        changed = True
                        _log.info(
                            "wool: peer %s (%s) dropped: no heartbeat for %.1fs",
                            pid, e.member.peer.address, age,
                        )  # fmt: skip
            for pid, (_, when) in list(self._dead.items()):
                if now - when > self.forget_after:
                    del self._dead[pid]
        return changed

    def handle(self, data: bytes) -> bytes:
        """Answer one Gossip call (already authenticated): merge its table, return ours."""
        changed = self.merge(decode_members(data, "gossip"))
        if changed:
            self._publish()
        return encode_members(self.table())

    # -- the loop -----------------------------------------------------------------

    def start(self, seeds: Iterable[str] = ()) -> Membership:
        """Start gossiping in a daemon thread; ``seeds`` are ``host:port`` or ``dns:NAME:PORT``."""
        self._seeds = list(seeds)
        for seed in self._seeds:
            if seed.startswith("dns:"):
                resolve(seed)  # a malformed seed fails here, not later in the thread
        if self._thread is None:
            self._publish()
            self._thread = threading.Thread(target=self._run, name="wool-gossip", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.step()
            except Exception:
                _log.exception("wool: a gossip round failed; continuing")

    def step(self) -> None:
        """One round: heartbeat, expire, exchange with a few peers (and seeds if alone)."""
        self._round += 1
        self._heartbeat += 1
        changed = self.expire()
        for target, source in self._targets():
            changed |= self._gossip(target, source)
        if changed:
            self._publish()

    def _targets(self) -> list[tuple[str, str]]:
        with self._lock:
            live = [e.target for e in self._entries.values() if e.verified and not e.member.left]
            pending = [
                e.target for e in self._entries.values() if not e.verified and not e.member.left
            ]
        picked = random.sample(live, min(self.fanout, len(live)))
        out = [(t, "gossip") for t in picked + pending[: self.fanout]]
        if not live or self._round % 10 == 1:
            seeds = [a for s in self._seeds for a in resolve(s)]
            out += [(a, "seed") for a in seeds if a not in live and a not in pending]
        return out

    def _gossip(self, target: str, source: str) -> bool:
        chan = self._channels.get(target)
        if chan is None:
            chan = self._channels[target] = channel(target, self._credentials)
        try:
            reply = exchange(
                chan, self._secret, self.table(), CALL_TIMEOUT, source, self._credentials
            )
        except (WorkerLost, AuthenticationError, ProtocolError) as exc:
            if isinstance(exc, AuthenticationError) and target not in self._refused:
                self._refused.add(target)
                _log.warning("wool: %s refused as a peer: %s", target, exc)
            self._channels.pop(target, None)
            chan.close()
            return False
        self._refused.discard(target)
        if not reply:
            return False
        head, rest = reply[0], reply[1:]
        return self.merge([head], verified_at=target) | self.merge(rest)

    def _publish(self) -> None:
        members = tuple(self.members())
        if members == self._published:
            return
        self._published = members
        if self._client is not None:
            self._client.set_peers(members)

    def leave(self, timeout: float = CALL_TIMEOUT) -> None:
        """Tell every known peer this worker is leaving (bounded), then stop gossiping."""
        self._halt()
        with self._lock:
            self._left = True
            self.me = replace(self.me, incarnation=self.me.incarnation + 1)
            targets = [e.target for e in self._entries.values() if e.verified and not e.member.left]
        table = self.table()
        pool = futures.ThreadPoolExecutor(max_workers=max(1, min(8, len(targets))))
        try:
            calls = [pool.submit(self._push, t, table, timeout) for t in targets]
            futures.wait(calls, timeout=timeout + 1.0)
        finally:
            pool.shutdown(wait=False)
        self._close()

    def _push(self, target: str, table: list[MemberRecord], timeout: float) -> None:
        chan = channel(target, self._credentials)
        try:
            exchange(chan, self._secret, table, timeout, "gossip", self._credentials)
        except (WorkerLost, AuthenticationError, ProtocolError):
            pass
        finally:
            chan.close()

    def stop(self) -> None:
        """Stop gossiping without a leave; peers drop this worker after ``suspect_after``."""
        self._halt()
        self._close()

    def _halt(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.interval + 2 * CALL_TIMEOUT + 1.0)

    def _close(self) -> None:
        channels, self._channels = self._channels, {}
        for chan in channels.values():
            chan.close()
