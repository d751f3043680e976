"""What a ``WorkerPool(discovery=...)`` does with its discovery: publish, find, verify.

A ``Finder`` publishes the pool's own spawned workers (hybrid pools), and
keeps the set of discovered workers the pool may use: every hint from the
discovery (and every live member a verified worker's gossip table names) is
called with the mesh secret, and TLS when credentials are set, before it
counts; its own answer is the record used. Tags filter as for spawned
workers; ``lease`` caps how many are used, the longest-known first. A
background thread refreshes the set every ``refresh`` seconds and tells the
pool when it changed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent import futures
from typing import TYPE_CHECKING, Final

from wool.discovery.base import Discovery
from wool.errors import AuthenticationError, NoWorkersAvailable, ProtocolError, WorkerLost
from wool.mesh.membership import fetch_members
from wool.protocol.frames import MemberRecord, PeerRecord

if TYPE_CHECKING:
    from wool.credentials import WorkerCredentials

_log = logging.getLogger("wool")

REFRESH: Final = 2.0
"""Seconds between two looks at the discovery while the pool runs."""
VERIFY_TIMEOUT: Final = 2.0
"""Bound on one handshake with a discovered worker."""
MISSES: Final = 1
"""Looks a worker in use may miss (not found, or no answer) before it is dropped."""
MAX_HINTS: Final = 256
"""At most this many addresses are tried per look."""


def _find(discovery: Discovery, timeout: float) -> list[PeerRecord]:
    """The discovery's hints, run on a loop of its own (callers may be inside a loop)."""
    with futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, discovery.find_records()).result(timeout)


class Finder:
    """The discovered workers a pool uses, kept verified and fresh."""

    def __init__(
        self,
        discovery: Discovery,
        *,
        secret: bytes,
        credentials: WorkerCredentials | None = None,
        tags: Iterable[str] = (),
        lease: int | None = None,
        on_change: Callable[[], None] = lambda: None,
        refresh: float = REFRESH,
        quorum: int = 1,
    ) -> None:
        self.discovery = discovery
        self._secret = secret
        self._credentials = credentials
        self._tags = set(tags)
        self._lease = lease
        self._on_change = on_change
        self._refresh = refresh
        self._quorum = max(1, quorum)
        self._own: dict[str, PeerRecord] = {}
        self._found: tuple[PeerRecord, ...] = ()
        self._first_seen: dict[str, float] = {}
        self._refused: dict[str, str] = {}
        self._misses: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def found(self) -> tuple[PeerRecord, ...]:
        """The discovered workers in use now (verified, tag-matching, within the lease)."""
        return self._found

    def start(self, own: Iterable[PeerRecord], *, need: bool, timeout: float) -> None:
        """Publish ``own``, look once, then keep looking in the background.

        With ``need`` (a durable pool, which has nothing else) it keeps
        looking until ``quorum`` workers (at least one) are usable, and raises
        NoWorkersAvailable after ``timeout`` seconds saying what it found and
        why each was not used.
        """
        for record in own:
            self._own[record.id] = record
            self.discovery.publish(record)
        deadline = time.monotonic() + timeout
        while True:
            self.look(min(timeout, VERIFY_TIMEOUT * 4))
            if len(self._found) >= self._quorum or not need:
                break
            if time.monotonic() >= deadline:
                raise NoWorkersAvailable(self._why_none(timeout))
            if self._stop.wait(min(0.2, max(0.0, deadline - time.monotonic()))):
                raise NoWorkersAvailable("the pool was stopped while it was discovering")
        self._thread = threading.Thread(target=self._run, name="wool-discovery", daemon=True)
        self._thread.start()

    def _why_none(self, timeout: float) -> str:
        wanted = f" tagged {sorted(self._tags)}" if self._tags else ""
        if self._quorum > 1:
            wanted += f" (quorum {self._quorum}: {len(self._found)} usable)"
        reasons = "; ".join(f"{a}: {r}" for a, r in sorted(self._refused.items())[:5])
        more = f" (tried: {reasons})" if reasons else " (it found no address)"
        return (
            f"{self.discovery!r} found no usable worker{wanted} within {timeout:g}s{more}; "
            "start workers (wool worker ...) or give spawn=N for local ones"
        )

    def _run(self) -> None:
        while not self._stop.wait(self._refresh):
            try:
                self.look(VERIFY_TIMEOUT * 4)
            except Exception:
                _log.exception("wool: looking for workers failed; trying again")

    def look(self, timeout: float) -> bool:
        """Find and verify once; True (and ``on_change`` called) if the set in use changed."""
        try:
            hints = _find(self.discovery, timeout)
        except Exception as exc:
            _log.warning("wool: %r could not look for workers: %r", self.discovery, exc)
            return False
        verified = self._verify(hints)
        answered = {r.id for r in verified}
        for record in self._found:  # one missed look (a slow answer) does not drop a worker
            if record.id in answered:
                self._misses.pop(record.id, None)
            elif self._misses.get(record.id, 0) < MISSES:
                self._misses[record.id] = self._misses.get(record.id, 0) + 1
                verified.append(record)
            else:
                self._misses.pop(record.id, None)
        now = time.monotonic()
        for record in verified:
            self._first_seen.setdefault(record.id, now)
        usable = [r for r in verified if self._tags.issubset(r.tags)]
        usable.sort(key=lambda r: (self._first_seen[r.id], r.id))
        if self._lease is not None:
            usable = usable[: self._lease]
        found = tuple(sorted(usable, key=lambda r: r.id))
        if found == self._found:
            return False
        joined = {r.id for r in found} - {r.id for r in self._found}
        for record in found:
            if record.id in joined:
                _log.info("wool: using %s at %s, found by %s", record.id, record.address,
                          record.source)  # fmt: skip
        self._found = found
        self._on_change()
        return True

    def _verify(self, hints: list[PeerRecord]) -> list[PeerRecord]:
        """Every hint that answers the handshake, plus the live members those name."""
        source = self.discovery.source
        seen: set[str] = set(self._own) | {r.address for r in self._own.values()}
        todo = [h for h in hints if h.id not in self._own and h.address not in seen]
        out: dict[str, PeerRecord] = {}
        refused: dict[str, str] = {}
        with futures.ThreadPoolExecutor(max_workers=8) as pool:
            while todo and len(seen) < MAX_HINTS:
                batch: dict[str, tuple[str, str]] = {}
                for hint in todo:
                    target = hint.control or hint.address
                    if target not in seen:
                        seen.add(target)
                        batch[target] = (hint.source or source, hint.address)
                todo = []
                calls = {t: pool.submit(self._handshake, t) for t in batch}
                for target, call in calls.items():
                    try:
                        members = call.result()
                    except (WorkerLost, AuthenticationError, ProtocolError) as exc:
                        refused[batch[target][1]] = f"{type(exc).__name__}: {exc}"
                        continue
                    head, rest = members[0], members[1:]
                    if head.left or not head.peer.id or head.peer.id in self._own:
                        continue
                    out[head.peer.id] = PeerRecord(
                        head.peer.id, head.peer.address, head.peer.pid, head.peer.tags,
                        head.peer.control, head.peer.incarnation, batch[target][0],
                    )  # fmt: skip
                    seen.add(head.peer.address)
                    todo += [
                        m.peer
                        for m in rest
                        if not m.left and m.peer.id not in out and m.peer.id not in self._own
                    ]
        self._refused = refused
        return list(out.values())

    def _handshake(self, target: str) -> list[MemberRecord]:
        members = fetch_members(
            target, self._secret, credentials=self._credentials, timeout=VERIFY_TIMEOUT
        )
        if not members:
            raise ProtocolError(f"{target} answered with an empty member list")
        return members

    def stop(self) -> None:
        """Stop looking (bounded) and withdraw the records this pool published."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(VERIFY_TIMEOUT * 4 + 1.0)
        for record in self._own.values():
            try:
                self.discovery.unpublish(record)
            except Exception as exc:
                _log.warning("wool: could not withdraw %s from discovery: %r", record.id, exc)
        self._own.clear()
        self.discovery.close()
