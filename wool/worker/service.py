"""The worker's two gRPC services: the dispatch stream, and the control plane.

The dispatch stream is served on the routine loop itself, so a frame goes
from the socket to the routine without crossing threads. The control plane
(statistics) is served by a second, threaded server, so it answers while
user code blocks the routine loop.

Every call is authenticated from its metadata before a byte of its payload
is read; a caller without the mesh secret gets UNAUTHENTICATED and nothing
it sent is ever unpickled.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Final

import grpc
import grpc.aio

from wool.errors import ProtocolError
from wool.mesh.client import MeshClient
from wool.mesh.context import get_default
from wool.protocol import auth
from wool.protocol.chunks import Assembler
from wool.protocol.frames import (
    SERVICE,
    CountersRecord,
    MemberRecord,
    PeerRecord,
    StatsRecord,
    decode,
    encode_members,
    encode_stats,
)
from wool.stats import Counters, ProcessUsage
from wool.worker.executor import Executor, Session

if TYPE_CHECKING:
    from wool.mesh.membership import Membership

SERVER_OPTIONS: Final = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.ping_timeout_ms", 10_000),  # else 60 s, and a stalled caller takes 80 s
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 500),  # callers ping every second
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.so_reuseport", 0),
)


_NO_GOSSIP: Final = "wool: this worker does not gossip; ask its control address"


class Gate:
    """Checks the mesh secret on every call, once per nonce; counts the calls it turned away.

    A refused call ends UNAUTHENTICATED with ``wool: <why>`` (``auth.Refused``:
    wrong secret, stale or replayed handshake) before any of its payload is read.
    """

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.rejected = 0
        self.replays = auth.ReplayGuard()

    async def admit(self, context: grpc.aio.ServicerContext) -> str:
        """The caller's nonce; aborts the call with UNAUTHENTICATED otherwise."""
        try:
            return auth.check_caller(context.invocation_metadata() or (), self.secret, self.replays)
        except auth.Refused as exc:
            self.rejected += 1
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"wool: {exc}")
            raise

    def admit_sync(self, context: grpc.ServicerContext) -> None:
        try:
            auth.check_caller(context.invocation_metadata() or (), self.secret, self.replays)
        except auth.Refused as exc:
            self.rejected += 1
            context.abort(grpc.StatusCode.UNAUTHENTICATED, f"wool: {exc}")


class DispatchService:
    """The long-lived dispatch streams; runs on the routine loop."""

    def __init__(self, gate: Gate, executor: Executor) -> None:
        self._gate = gate
        self._executor = executor
        self._sessions = itertools.count(1)

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Dispatch": grpc.stream_stream_rpc_method_handler(self.dispatch),
                "Gossip": grpc.unary_unary_rpc_method_handler(self.gossip),
            },
        )

    async def gossip(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """Gossip on the dispatch address too, so a ``--join`` address answers; merging is
        quick. Only a worker that gossips (its mesh has a membership) answers here."""
        nonce = await self._gate.admit(context)
        mesh = get_default()
        membership = mesh.membership if mesh is not None else None
        if membership is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, _NO_GOSSIP)
        assert membership is not None
        await context.send_initial_metadata(auth.worker_proof(self._gate.secret, nonce))
        try:
            return membership.handle(request)
        except ProtocolError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"wool: {exc}")
            raise

    async def dispatch(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> None:
        nonce = await self._gate.admit(context)
        await context.send_initial_metadata(auth.worker_proof(self._gate.secret, nonce))

        handler = asyncio.current_task()
        broken: list[BaseException] = []

        def abort(exc: BaseException) -> None:  # nothing more can be written: end the RPC
            if not broken and handler is not None:
                broken.append(exc)
                handler.cancel()

        session = Session(next(self._sessions), context.write, abort)
        executor = self._executor
        chunks = Assembler()
        try:
            async for data in requests:
                try:
                    frames = chunks.feed(decode(data))
                except ProtocolError as exc:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"wool: {exc}")
                    return
                executor.receive(session, frames)
                if chunks.credit:
                    session.emit(chunks.take_credit())
                del data, frames  # a large message is not kept alive until the next one
        except asyncio.CancelledError:
            if not broken:
                return  # the server is stopping; the caller sees the stream end
            detail = f"{type(broken[0]).__name__}: {broken[0]}"
            await context.abort(grpc.StatusCode.INTERNAL, f"wool: cannot write: {detail}")
        finally:
            executor.drop(session)


def _record(c: Counters) -> CountersRecord:
    h = c.latency
    return CountersRecord(
        c.started, c.completed, c.failed, c.cancelled, h.sparse(), h.total_ns, h.max_ns
    )


class ControlService:
    """Statistics, served by gRPC's threaded server (peer tables arrive on stdin).

    Deliberately not asyncio: a second asyncio loop bound to gRPC in the
    same process would share the dispatch loop's completion queue and add
    a thread hop to every dispatch.
    """

    def __init__(
        self, gate: Gate, identity: PeerRecord, executor: Executor, mesh: MeshClient
    ) -> None:
        self.identity = identity
        self._gate = gate
        self._executor = executor
        self._mesh = mesh
        self._usage = ProcessUsage()

    membership: Membership | None = None
    """The worker's gossip (else its mesh client's); without one, Gossip answers with this
    worker's own entry, so a pool can verify a spawned worker it discovered."""

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Stats": grpc.unary_unary_rpc_method_handler(self.stats),
                "Gossip": grpc.unary_unary_rpc_method_handler(self.gossip),
            },
        )

    def gossip_reply(self, request: bytes) -> bytes:
        """Merge a caller's member list (if this worker gossips) and answer with ours."""
        membership = self.membership or self._mesh.membership
        if membership is not None:
            return membership.handle(request)
        return encode_members([MemberRecord(self.identity)])

    def gossip(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self._gate.admit_sync(context)
        nonce = dict(context.invocation_metadata() or ()).get(auth.NONCE)
        context.send_initial_metadata(auth.worker_proof(self._gate.secret, str(nonce)))
        try:
            return self.gossip_reply(request)
        except ProtocolError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"wool: {exc}")
            raise

    def stats(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self._gate.admit_sync(context)
        cpu, rss, uptime = self._usage.sample()
        me = self.identity
        executor = self._executor
        return encode_stats(
            StatsRecord(
                me.id,
                me.address,
                os.getpid(),
                me.tags,
                _record(executor.executed),
                _record(self._mesh.dispatched),
                cpu,
                rss,
                uptime,
                executor.code_received,
                self._gate.rejected,
            )
        )
