"""Proof of the mesh secret, carried in gRPC metadata on every call.

The caller sends a fresh nonce and an HMAC of it; the worker checks the HMAC
before it reads a single frame and answers with its own HMAC over the same
nonce, so the caller also knows the worker holds the secret before it
unpickles anything the worker sends. The secret itself never crosses the wire.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from typing import Final

NONCE: Final = "x-wool-nonce"
MAC: Final = "x-wool-mac"
PROOF: Final = "x-wool-proof"


def new_secret() -> bytes:
    return os.urandom(32)


def _mac(secret: bytes, role: bytes, nonce: str) -> str:
    return hmac.new(secret, role + nonce.encode(), hashlib.sha256).hexdigest()


def client_metadata(secret: bytes) -> tuple[tuple[str, str], ...]:
    nonce = os.urandom(16).hex()
    return ((NONCE, nonce), (MAC, _mac(secret, b"caller:", nonce)))


def verify_caller(metadata: Iterable[tuple[str, str | bytes]], secret: bytes) -> str | None:
    """The caller's nonce when its MAC is right, else None."""
    values = {k: v for k, v in metadata if isinstance(v, str)}
    nonce, mac = values.get(NONCE), values.get(MAC)
    if not nonce or not mac or len(nonce) > 64:
        return None
    if not hmac.compare_digest(mac, _mac(secret, b"caller:", nonce)):
        return None
    return nonce


def worker_proof(secret: bytes, nonce: str) -> tuple[tuple[str, str], ...]:
    return ((PROOF, _mac(secret, b"worker:", nonce)),)


def verify_worker(
    metadata: Iterable[tuple[str, str | bytes]] | None, secret: bytes, sent: tuple
) -> bool:
    nonce = dict(sent)[NONCE]
    values = {k: v for k, v in (metadata or ()) if isinstance(v, str)}
    proof = values.get(PROOF)
    return proof is not None and hmac.compare_digest(proof, _mac(secret, b"worker:", nonce))
