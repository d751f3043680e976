"""Mutual proof of the mesh secret, without sending it, and without replays."""

import threading

import pytest

from wool.protocol import auth


def test_caller_and_worker_prove_the_secret_to_each_other() -> None:
    secret = auth.new_secret()
    sent = auth.client_metadata(secret)
    assert secret.hex() not in repr(sent)
    nonce = auth.verify_caller(sent, secret)
    assert nonce is not None
    assert auth.verify_worker(auth.worker_proof(secret, nonce), secret, sent)


def test_wrong_or_missing_credentials_are_refused() -> None:
    secret, other = auth.new_secret(), auth.new_secret()
    assert auth.verify_caller(auth.client_metadata(other), secret) is None
    assert auth.verify_caller((), secret) is None
    sent = auth.client_metadata(secret)
    nonce = auth.verify_caller(sent, secret)
    assert nonce is not None
    assert not auth.verify_worker(auth.worker_proof(other, nonce), secret, sent)
    assert not auth.verify_worker((), secret, sent)


def _handshake(secret: bytes, now: float) -> tuple[tuple[str, str], ...]:
    return auth.client_metadata(secret, now=now)


def test_a_handshake_opens_one_call_only() -> None:
    secret = auth.new_secret()
    guard = auth.ReplayGuard()
    sent = auth.client_metadata(secret)
    assert auth.check_caller(sent, secret, guard) == dict(sent)[auth.NONCE]
    with pytest.raises(auth.Refused, match="replayed handshake"):
        auth.check_caller(sent, secret, guard)
    assert auth.verify_caller(sent, secret, guard) is None
    assert auth.verify_caller(auth.client_metadata(secret), secret, guard) is not None


def test_the_time_is_signed_and_must_be_within_the_window() -> None:
    secret = auth.new_secret()
    now = [1_000_000.0]
    guard = auth.ReplayGuard(window=60.0, clock=lambda: now[0])
    for skew in (-61.0, 61.0):
        with pytest.raises(auth.Refused, match="stale handshake"):
            auth.check_caller(_handshake(secret, now[0] + skew), secret, guard)
    for skew in (-59.0, 59.0):
        assert auth.verify_caller(_handshake(secret, now[0] + skew), secret, guard) is not None
    forged = dict(_handshake(secret, now[0] - 600))
    forged[auth.TIME] = f"{now[0]:.3f}"  # moving the time breaks the MAC
    with pytest.raises(auth.Refused, match="wrong or missing"):
        auth.check_caller(tuple(forged.items()), secret, guard)


def test_a_captured_handshake_is_stale_once_its_nonce_is_forgotten() -> None:
    secret = auth.new_secret()
    now = [1_000_000.0]
    guard = auth.ReplayGuard(window=60.0, clock=lambda: now[0])
    sent = _handshake(secret, now[0])
    auth.check_caller(sent, secret, guard)
    now[0] += 61.0
    auth.check_caller(_handshake(secret, now[0]), secret, guard)  # expires the old entry
    assert len(guard) == 1
    with pytest.raises(auth.Refused, match="stale handshake"):
        auth.check_caller(sent, secret, guard)


def test_the_nonce_cache_is_bounded_and_never_lets_a_dropped_nonce_back_in() -> None:
    secret = auth.new_secret()
    now = [1_000_000.0]
    guard = auth.ReplayGuard(window=60.0, limit=8, clock=lambda: now[0])
    sent = [_handshake(secret, now[0] + i * 0.01) for i in range(20)]
    for metadata in sent:
        auth.check_caller(metadata, secret, guard)
        assert len(guard) <= 8
    for metadata in sent:  # the 12 dropped ones are refused by the floor, the rest as seen
        with pytest.raises(auth.Refused, match="replayed handshake"):
            auth.check_caller(metadata, secret, guard)
    now[0] += 1.0
    assert auth.verify_caller(auth.client_metadata(secret, now=now[0]), secret, guard)
    assert len(guard) == 8


def test_the_guard_is_safe_across_threads() -> None:
    secret = auth.new_secret()
    guard = auth.ReplayGuard(limit=1000)
    sent = auth.client_metadata(secret)
    admitted: list[str | None] = []
    threads = [
        threading.Thread(target=lambda: admitted.append(auth.verify_caller(sent, secret, guard)))
        for _ in range(16)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sum(n is not None for n in admitted) == 1
