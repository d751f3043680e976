"""Workers serving mutual TLS on loopback: calls work, and every kind of intruder is refused
before a single byte it sent is unpickled, with a typed error that says why."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import pathlib
import pickle
import signal
import time
from collections.abc import Iterator

import grpc
import grpc.aio
import psutil
import pytest
import routines
from support import alive, until

import wool
from wool import certs
from wool.credentials import WorkerCredentials
from wool.mesh import transport
from wool.mesh.client import MeshClient
from wool.protocol import auth, frames

pytestmark = pytest.mark.timeout(90)


class _Tripwire:
    """Unpickling this creates a file: proof that bytes were unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def _evil_envelope(path: pathlib.Path) -> bytes:
    args = pickle.dumps(((_Tripwire(str(path)),), {}))
    return frames.encode([frames.Dispatch(1, "routines", "echo", b"", b"", "", args)])


def _make(directory: pathlib.Path) -> dict[str, pathlib.Path]:
    with contextlib.redirect_stderr(io.StringIO()):
        return certs.init(directory)


def _creds(paths: dict[str, pathlib.Path], who: str, mutual: bool = True) -> WorkerCredentials:
    return WorkerCredentials.from_files(
        ca_path=paths["ca.pem"],
        key_path=paths[f"{who}.key"],
        cert_path=paths[f"{who}.pem"],
        mutual=mutual,
    )


@pytest.fixture(scope="module")
def mesh_certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pathlib.Path]:
    return _make(tmp_path_factory.mktemp("mesh"))


@pytest.fixture(scope="module")
def other_certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pathlib.Path]:
    return _make(tmp_path_factory.mktemp("other"))


@pytest.fixture(scope="module")
def tls_pool(mesh_certs: dict[str, pathlib.Path]) -> Iterator[wool.WorkerPool]:
    """Two spawned workers serving mutual TLS; the pool dials them with the client cert."""
    shared = wool.WorkerPool(spawn=2, credentials=_creds(mesh_certs, "worker")).start()
    pids = [w.pid for w in shared.workers]
    try:
        yield shared
    finally:
        shared.stop()
        _gone, alive = psutil.wait_procs(
            [psutil.Process(p) for p in pids if psutil.pid_exists(p)], 5
        )
        assert not alive, f"pool workers still running after stop: {alive}"


async def _raw_dispatch(
    address: str, credentials: WorkerCredentials | None, metadata: tuple, payload: bytes
) -> tuple[grpc.StatusCode, str]:
    """Send ``payload`` on a dispatch stream and read to the end; the status it ended with."""
    async with asyncio.timeout(15), transport.aio_channel(address, credentials) as channel:
        call = channel.stream_stream(frames.DISPATCH_METHOD)(metadata=metadata)
        try:
            if payload:
                await call.write(payload)
            await call.done_writing()
            async for _ in call:
                pass
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""
        return await call.code(), await call.details() or ""


async def _client_error(
    pool: wool.WorkerPool, secret: bytes, credentials: WorkerCredentials | None
) -> wool.WoolError:
    """The error a MeshClient with these credentials gets from the pool's first worker."""
    client = MeshClient(secret, credentials=credentials, connect_timeout=10.0)
    client.set_peers(pool._mesh.peers[:1])
    try:
        async with asyncio.timeout(15):
            with pytest.raises(wool.WoolError) as caught:
                await client.connect()
    finally:
        await client.close_loop()
    return caught.value


async def _worker_ran_nothing(pool: wool.WorkerPool, tripwire: pathlib.Path) -> None:
    """A call worker 0 takes after the refusal: a frame it had accepted would have run first."""
    async with pool:
        assert await routines.add.options(worker=pool.workers[0].id)(1, 1) == 2
    assert not tripwire.exists()


async def test_calls_and_nested_calls_work_over_mutual_tls(tls_pool: wool.WorkerPool) -> None:
    async with tls_pool:
        assert await routines.add(2, 3) == 5
        assert await routines.fib(7) == 13  # nested: workers dial each other over TLS
        stats = await tls_pool.statistics()  # the control servers serve TLS too
    assert len(stats.peers) == 2


@pytest.mark.parametrize(
    ("intruder", "says"),
    [
        ("other-ca", "TLS handshake failed"),
        ("no-client-cert", "requires a client certificate"),
        ("plaintext", "it serves TLS"),
    ],
)
async def test_transport_intruders_are_refused_before_anything_is_unpickled(
    tls_pool: wool.WorkerPool,
    other_certs: dict[str, pathlib.Path],
    mesh_certs: dict[str, pathlib.Path],
    tmp_path: pathlib.Path,
    intruder: str,
    says: str,
) -> None:
    credentials = {
        "other-ca": _creds(other_certs, "client"),
        "no-client-cert": _creds(mesh_certs, "client", mutual=False),
        "plaintext": None,
    }[intruder]
    secret = tls_pool._mesh.secret  # even with the right secret
    tripwire = tmp_path / "unpickled"
    address = tls_pool.workers[0].address
    code, details = await _raw_dispatch(
        address, credentials, auth.client_metadata(secret), _evil_envelope(tripwire)
    )
    assert code == grpc.StatusCode.UNAVAILABLE, details

    error = await _client_error(tls_pool, secret, credentials)
    assert isinstance(error, wool.AuthenticationError), error
    assert says in str(error)
    await _worker_ran_nothing(tls_pool, tripwire)


async def test_wrong_secret_over_good_tls_is_refused(
    tls_pool: wool.WorkerPool, mesh_certs: dict[str, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    credentials = _creds(mesh_certs, "client")
    tripwire = tmp_path / "unpickled"
    before = sum(p.rejected for p in (await tls_pool.statistics()).peers)
    code, _ = await _raw_dispatch(
        tls_pool.workers[0].address,
        credentials,
        auth.client_metadata(b"not the secret"),
        _evil_envelope(tripwire),
    )
    # The refusal races the frame we wrote (see test_security).
    assert code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INTERNAL)
    assert sum(p.rejected for p in (await tls_pool.statistics()).peers) == before + 1

    error = await _client_error(tls_pool, b"not the secret", credentials)
    assert isinstance(error, wool.AuthenticationError)
    assert "the mesh secret differs" in str(error)
    await _worker_ran_nothing(tls_pool, tripwire)


async def test_a_replayed_handshake_opens_nothing(
    tls_pool: wool.WorkerPool,
    mesh_certs: dict[str, pathlib.Path],
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    credentials = _creds(mesh_certs, "client")
    secret = tls_pool._mesh.secret
    address = tls_pool.workers[0].address
    captured = auth.client_metadata(secret)
    code, details = await _raw_dispatch(address, credentials, captured, b"")
    assert code == grpc.StatusCode.OK, details  # the handshake was genuine, once

    tripwire = tmp_path / "unpickled"
    code, details = await _raw_dispatch(address, credentials, captured, _evil_envelope(tripwire))
    assert code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INTERNAL), details

    monkeypatch.setattr(auth, "client_metadata", lambda secret: captured)
    error = await _client_error(tls_pool, secret, credentials)
    monkeypatch.undo()
    assert isinstance(error, wool.AuthenticationError)
    assert "replayed handshake" in str(error)
    await _worker_ran_nothing(tls_pool, tripwire)


async def test_a_stale_handshake_is_refused(
    tls_pool: wool.WorkerPool,
    mesh_certs: dict[str, pathlib.Path],
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    credentials = _creds(mesh_certs, "client")
    secret = tls_pool._mesh.secret
    stale = auth.client_metadata(secret, now=time.time() - 2 * auth.WINDOW)
    tripwire = tmp_path / "unpickled"
    code, _ = await _raw_dispatch(
        tls_pool.workers[0].address, credentials, stale, _evil_envelope(tripwire)
    )
    assert code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INTERNAL)

    monkeypatch.setattr(auth, "client_metadata", lambda secret: stale)
    error = await _client_error(tls_pool, secret, credentials)
    monkeypatch.undo()
    assert isinstance(error, wool.AuthenticationError)
    assert "stale handshake" in str(error)
    await _worker_ran_nothing(tls_pool, tripwire)


async def test_a_tls_caller_to_a_plaintext_worker_is_told_so(
    pool: wool.WorkerPool, mesh_certs: dict[str, pathlib.Path]
) -> None:
    error = await _client_error(pool, pool._mesh.secret, _creds(mesh_certs, "client"))
    assert isinstance(error, wool.AuthenticationError)
    assert "does not speak TLS" in str(error)


async def test_a_killed_tls_worker_fails_its_calls_with_worker_lost_at_once(
    mesh_certs: dict[str, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    pool = wool.WorkerPool(spawn=1, credentials=_creds(mesh_certs, "worker")).start()
    worker = pool.workers[0]
    try:
        async with pool:
            call = asyncio.ensure_future(routines.sleep_then_mark(30, str(tmp_path / "m")))
            await until(
                lambda: any(c.pending for c in pool._mesh._connections().values()),
                10,
                "the call to be in flight",
            )
            os.kill(worker.pid, signal.SIGKILL)
            killed = time.monotonic()
            with pytest.raises(wool.WorkerLost):
                async with asyncio.timeout(10):
                    await call
            took = time.monotonic() - killed
    finally:
        pool.stop()
    print(f"WorkerLost {took * 1000:.0f} ms after SIGKILL over TLS")
    assert took < 1.0
    assert not alive(worker.pid)
