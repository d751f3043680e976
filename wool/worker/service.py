"""The worker's gRPC service: the dispatch stream, statistics and peer updates.

Every call is authenticated from its metadata before a byte of its payload
is read; a caller without the mesh secret gets UNAUTHENTICATED and nothing
it sent is ever unpickled.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator
from typing import Final

import grpc
import grpc.aio

from wool.errors import ProtocolError
from wool.mesh.client import MeshClient
from wool.protocol import auth
from wool.protocol.frames import (
    SERVICE,
    CountersRecord,
    PeerRecord,
    StatsRecord,
    decode,
    decode_peers,
    encode,
    encode_peers,
    encode_stats,
)
from wool.stats import Counters, ProcessUsage
from wool.worker.executor import Executor, Session

SERVER_OPTIONS: Final = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.so_reuseport", 0),
)
_BATCH: Final = 4096


def _record(c: Counters) -> CountersRecord:
    h = c.latency
    return CountersRecord(
        c.started, c.completed, c.failed, c.cancelled, h.sparse(), h.total_ns, h.max_ns
    )


class WorkerService:
    """Serves one worker's peers on the serving loop; user code runs elsewhere."""

    def __init__(
        self,
        identity: PeerRecord,
        secret: bytes,
        executor: Executor,
        mesh: MeshClient,
    ) -> None:
        self.identity = identity
        self._secret = secret
        self._executor = executor
        self._mesh = mesh
        self._usage = ProcessUsage()
        self._sessions = itertools.count(1)
        self.rejected = 0

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Dispatch": grpc.stream_stream_rpc_method_handler(self.dispatch),
                "Stats": grpc.unary_unary_rpc_method_handler(self.stats),
                "SetPeers": grpc.unary_unary_rpc_method_handler(self.set_peers),
            },
        )

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> str:
        nonce = auth.verify_caller(context.invocation_metadata() or (), self._secret)
        if nonce is None:
            self.rejected += 1
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "wool: wrong or missing mesh credentials"
            )
        assert nonce is not None
        return nonce

    async def dispatch(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> None:
        nonce = await self._authenticate(context)
        await context.send_initial_metadata(auth.worker_proof(self._secret, nonce))
        serve_loop = asyncio.get_running_loop()
        session = Session(serve_loop, next(self._sessions))
        executor = self._executor
        routine_loop = executor.loop
        writer = serve_loop.create_task(self._write(session, context))
        try:
            async for data in requests:
                try:
                    frames = decode(data)
                except ProtocolError as exc:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"wool: {exc}")
                    return
                routine_loop.call_soon_threadsafe(executor.receive, session, frames)
        finally:
            routine_loop.call_soon_threadsafe(executor.drop, session)
            writer.cancel()

    @staticmethod
    async def _write(session: Session, context: grpc.aio.ServicerContext) -> None:
        outbox, wake = session.outbox, session.wake
        while True:
            await wake.wait()
            wake.clear()
            while outbox:
                frames = [outbox.popleft() for _ in range(min(len(outbox), _BATCH))]
                await context.write(encode(frames))

    async def stats(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await self._authenticate(context)
        cpu, rss, uptime = self._usage.sample()
        me = self.identity
        return encode_stats(
            StatsRecord(
                me.id,
                me.address,
                os.getpid(),
                me.tags,
                _record(self._executor.executed),
                _record(self._mesh.dispatched),
                cpu,
                rss,
                uptime,
                self._executor.code_received,
                self.rejected,
            )
        )

    async def set_peers(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await self._authenticate(context)
        try:
            peers = decode_peers(request)
        except ProtocolError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"wool: {exc}")
            raise
        self._mesh.set_peers(peers)
        return encode_peers(list(self._mesh.peers))
