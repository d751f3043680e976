"""Workers bind loopback and refuse callers without the mesh secret before unpickling."""

from __future__ import annotations

import pathlib
import pickle

import grpc
import grpc.aio
import pytest
import routines

import wool
from wool.mesh.client import MeshClient
from wool.protocol import auth, frames

pytestmark = pytest.mark.timeout(60)


class _Tripwire:
    """Unpickling this creates a file: proof that bytes were unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def _evil_envelope(path: pathlib.Path) -> bytes:
    args = pickle.dumps(((_Tripwire(str(path)),), {}))
    dispatch = frames.Dispatch(1, "routines", "echo", b"", b"", "", args)
    return frames.encode([dispatch])


async def _raw_dispatch(address: str, metadata: tuple, payload: bytes) -> grpc.StatusCode:
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.stream_stream(frames.DISPATCH_METHOD)(metadata=metadata)
        try:
            await call.write(payload)
            await call.done_writing()
            async for _ in call:
                pass
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return await call.code()


async def test_workers_listen_on_loopback_only(pool: wool.WorkerPool) -> None:
    assert all(w.address.startswith("127.0.0.1:") for w in pool.workers)


@pytest.mark.parametrize("credentials", ["none", "wrong"])
async def test_wrong_secret_is_rejected_before_anything_is_unpickled(
    pool: wool.WorkerPool, tmp_path: pathlib.Path, credentials: str
) -> None:
    tripwire = tmp_path / "unpickled"
    metadata = () if credentials == "none" else auth.client_metadata(b"not the secret")
    before = sum(p.rejected for p in (await pool.statistics()).peers)
    code = await _raw_dispatch(pool.workers[0].address, metadata, _evil_envelope(tripwire))
    # The refusal races the frame we wrote: gRPC reports it as UNAUTHENTICATED, or as
    # INTERNAL when the stream reset overtakes the status.
    assert code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INTERNAL)
    after = sum(p.rejected for p in (await pool.statistics()).peers)
    assert after == before + 1
    # A call worker 0 takes after the refusal: a frame it had accepted would have run first.
    async with pool:
        assert await routines.add.options(worker=pool.workers[0].id)(1, 1) == 2
    assert not tripwire.exists()


async def test_a_mesh_client_with_the_wrong_secret_gets_authentication_error(
    pool: wool.WorkerPool,
) -> None:
    intruder = MeshClient(b"wrong secret")
    intruder.set_peers(pool._mesh.peers)
    with pytest.raises(wool.AuthenticationError, match="refused our credentials"):
        await intruder.connect()
    await intruder.close_loop()


async def test_malformed_frames_are_refused_and_the_worker_serves_on(
    pool: wool.WorkerPool,
) -> None:
    metadata = auth.client_metadata(pool._mesh.secret)
    code = await _raw_dispatch(pool.workers[0].address, metadata, b"\xff\xfe not protobuf")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    async with pool:
        assert await routines.add(2, 3) == 5
