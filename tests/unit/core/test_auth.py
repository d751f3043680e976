"""Mutual proof of the mesh secret, without sending it."""

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
