"""Who joined and left the mesh, noticed from successive views of its workers.

The runtime reports the mesh as it is now (``pool.workers``); a notebook user
also wants to see it change: a worker ``%wool scale`` added, one that was
removed, one that died, a remote peer found through a seed. :class:`PeerLog`
compares each view with the previous one and keeps a short log of those
changes, plus how each peer was found (``WorkerInfo.source``), for
``%wool status`` and the live widget to render. Changes are noticed when a
view is taken (each widget refresh, each status, each scale), so an event's
time is when it was seen, within one refresh interval of when it happened.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = ["PeerEvent", "PeerLog", "host_of"]

LOG_LENGTH = 12
"""How many recent joins and leaves a log keeps."""

JOINED = "joined"
LEFT = "left"
LOST = "lost"


class _Peer(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def state(self) -> str: ...


def host_of(address: str) -> str:
    """The host part of ``host:port`` (``[v6]:port`` too); the address itself if it has no port."""
    if address.startswith("["):
        end = address.find("]")
        return address[1:end] if end > 0 else address
    host, sep, port = address.rpartition(":")
    return host if sep and port.isdigit() and ":" not in host else address


@dataclass(frozen=True, slots=True)
class PeerEvent:
    """A peer joining (became ready), leaving (stopped or gone) or lost (died, unreachable)."""

    at: float
    kind: str
    id: str
    address: str
    source: str

    @property
    def host(self) -> str:
        return host_of(self.address)

    def clock(self) -> str:
        """``HH:MM:SS`` local time of when the change was seen."""
        return time.strftime("%H:%M:%S", time.localtime(self.at))

    def __str__(self) -> str:
        found = f", {self.source}" if self.source else ""
        return f"{self.clock()} {self.id} {self.kind} ({self.host}{found})"


class PeerLog:
    """The last :data:`LOG_LENGTH` joins and leaves, and how each peer seen was found.

    Thread-safe: the widget's polling thread and the cell's thread both feed it.
    A peer joins when it first shows as ``ready`` (again, after being lost);
    it leaves when it turns ``stopped`` or disappears, and is lost when it
    turns ``lost``. Peers still ``starting`` make no event.
    """

    def __init__(self, limit: int = LOG_LENGTH, clock: Callable[[], float] = time.time) -> None:
        self._events: deque[PeerEvent] = deque(maxlen=limit)
        self._states: dict[str, str] = {}
        self._addresses: dict[str, str] = {}
        self._sources: dict[str, str] = {}
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def events(self) -> tuple[PeerEvent, ...]:
        """The recent changes, oldest first."""
        with self._lock:
            return tuple(self._events)

    @property
    def sources(self) -> Mapping[str, str]:
        """How each peer seen so far was found, by id (a copy)."""
        with self._lock:
            return dict(self._sources)

    def observe(self, peers: Iterable[_Peer]) -> list[PeerEvent]:
        """Compare ``peers`` (e.g. ``pool.workers``) with the last view; returns the new events."""
        now = self._clock()
        fresh: list[PeerEvent] = []
        with self._lock:
            seen: set[str] = set()
            for peer in peers:
                seen.add(peer.id)
                source = getattr(peer, "source", "") or self._sources.get(peer.id, "")
                self._sources[peer.id] = source
                if peer.address:
                    self._addresses[peer.id] = peer.address
                before = self._states.get(peer.id)
                self._states[peer.id] = peer.state
                kind = _change(before, peer.state)
                if kind is not None:
                    fresh.append(PeerEvent(now, kind, peer.id, peer.address, source))
            for peer_id in [p for p in self._states if p not in seen]:
                if self._states.pop(peer_id) == "ready":
                    address = self._addresses.get(peer_id, "")
                    fresh.append(
                        PeerEvent(now, LEFT, peer_id, address, self._sources.get(peer_id, ""))
                    )
            self._events.extend(fresh)
        return fresh

    def clear(self) -> None:
        with self._lock:
            self._events.clear()
            self._states.clear()
            self._addresses.clear()
            self._sources.clear()


def _change(before: str | None, now: str) -> str | None:
    if now == "ready":
        return JOINED if before != "ready" else None
    if before != "ready":
        return None
    return LOST if now == "lost" else LEFT
