"""Proof of the mesh secret, carried in gRPC metadata on every call, that cannot be replayed.

The caller sends a fresh nonce, its wall-clock time and an HMAC over both;
the worker checks the HMAC before it reads a single frame, refuses a time
more than ``WINDOW`` seconds from its own and a nonce it has already seen
within the window (``ReplayGuard``), and answers with its own HMAC over the
same nonce, so the caller also knows the worker holds the secret before it
unpickles anything the worker sends. The secret itself never crosses the
wire, and a captured handshake opens nothing: within the window its nonce
is spent, after it its time is stale.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Final

NONCE: Final = "x-wool-nonce"
TIME: Final = "x-wool-time"
MAC: Final = "x-wool-mac"
PROOF: Final = "x-wool-proof"

WINDOW: Final = 60.0
"""Seconds a handshake's time may differ from the worker's clock (either way)."""
CACHE_LIMIT: Final = 100_000
"""Nonces a worker remembers at most; beyond it the oldest go, and times up to theirs with them."""

WRONG_SECRET: Final = "wrong or missing mesh credentials"
STALE: Final = "stale handshake: its time is more than 60 s from the worker's clock"
REPLAYED: Final = "replayed handshake: this nonce was already used"


class Refused(Exception):
    """A caller's handshake that a worker turns away; ``str()`` says why (one of the above)."""


def new_secret() -> bytes:
    return os.urandom(32)


def _mac(secret: bytes, role: bytes, nonce: str, stamp: str = "") -> str:
    return hmac.new(
        secret, role + stamp.encode() + b"|" + nonce.encode(), hashlib.sha256
    ).hexdigest()


def client_metadata(secret: bytes, now: float | None = None) -> tuple[tuple[str, str], ...]:
    """A fresh handshake for one call: nonce, time, and their HMAC under the secret."""
    nonce = os.urandom(16).hex()
    stamp = f"{time.time() if now is None else now:.3f}"
    return ((NONCE, nonce), (TIME, stamp), (MAC, _mac(secret, b"caller:", nonce, stamp)))


class ReplayGuard:
    """The nonces seen within the window, so each opens one call; thread-safe and bounded.

    Only handshakes whose HMAC is right reach it, so only holders of the
    secret can fill it. When full, the entries with the oldest times are
    dropped and every time up to theirs is refused from then on, so a
    dropped nonce still cannot be replayed (callers with a sane clock send
    the current time and are not affected).
    """

    def __init__(
        self,
        window: float = WINDOW,
        limit: int = CACHE_LIMIT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window = window
        self.limit = limit
        self._clock = clock
        self._seen: set[str] = set()
        self._order: list[tuple[float, str]] = []
        self._floor = float("-inf")
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def admit(self, nonce: str, stamp: float) -> None:
        """Record ``nonce``; raises Refused when ``stamp`` is out of the window or it was seen."""
        now = self._clock()
        if not now - self.window <= stamp <= now + self.window:
            raise Refused(STALE)
        with self._lock:
            order = self._order
            horizon = now - self.window
            while order and order[0][0] < horizon:
                self._seen.discard(heapq.heappop(order)[1])
            if stamp <= self._floor or nonce in self._seen:
                raise Refused(REPLAYED)
            while len(order) >= self.limit:
                oldest, dropped = heapq.heappop(order)
                self._seen.discard(dropped)
                self._floor = max(self._floor, oldest)
                if stamp <= self._floor:
                    raise Refused(REPLAYED)
            self._seen.add(nonce)
            heapq.heappush(order, (stamp, nonce))


def check_caller(
    metadata: Iterable[tuple[str, str | bytes]], secret: bytes, guard: ReplayGuard | None
) -> str:
    """The caller's nonce when its handshake holds; raises Refused saying why otherwise.

    Without a ``guard`` only the HMAC is checked (tests, tools).
    """
    values = {k: v for k, v in metadata if isinstance(v, str)}
    nonce, stamp, mac = values.get(NONCE), values.get(TIME), values.get(MAC)
    if not nonce or not mac or not stamp or len(nonce) > 64 or len(stamp) > 32:
        raise Refused(WRONG_SECRET)
    if not hmac.compare_digest(mac, _mac(secret, b"caller:", nonce, stamp)):
        raise Refused(WRONG_SECRET)
    if guard is not None:
        try:
            when = float(stamp)
        except ValueError:
            raise Refused(STALE) from None
        guard.admit(nonce, when)
    return nonce


def verify_caller(
    metadata: Iterable[tuple[str, str | bytes]],
    secret: bytes,
    guard: ReplayGuard | None = None,
) -> str | None:
    """The caller's nonce when its handshake holds, else None (``check_caller`` says why)."""
    try:
        return check_caller(metadata, secret, guard)
    except Refused:
        return None


def worker_proof(secret: bytes, nonce: str) -> tuple[tuple[str, str], ...]:
    return ((PROOF, _mac(secret, b"worker:", nonce)),)


def verify_worker(
    metadata: Iterable[tuple[str, str | bytes]] | None, secret: bytes, sent: tuple
) -> bool:
    nonce = dict(sent)[NONCE]
    values = {k: v for k, v in (metadata or ()) if isinstance(v, str)}
    proof = values.get(PROOF)
    return proof is not None and hmac.compare_digest(proof, _mac(secret, b"worker:", nonce))
