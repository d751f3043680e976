"""One authenticated, long-lived gRPC stream to one peer, shared by every dispatch.

A frame is written at once when the stream is idle; frames queued while a
write is in flight leave together in the next message, so a burst of calls
costs a few gRPC writes rather than one per call. A read is always in
flight; a caller waiting for its outcome reads it itself when no other
caller is (``StreamReader``), which saves the hop through a reader task.
A broken stream fails every call still waiting on it with ``WorkerLost``
at once. Large payloads travel in chunks both ways (``wool.protocol.chunks``);
``drain()`` is how a caller about to send another large call waits while
this stream already has much queued.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TypeVar

import grpc
import grpc.aio

from wool.errors import AuthenticationError, SerializationError, WorkerLost
from wool.mesh import transport
from wool.protocol import auth
from wool.protocol.chunks import Assembler
from wool.protocol.frames import (
    CLOSE,
    DISPATCH_METHOD,
    STDERR,
    YIELD,
    Cancel,
    Chunk,
    Context,
    Credit,
    Dispatch,
    Frame,
    NeedCode,
    Outcome,
    Output,
    Payload,
    PeerRecord,
    Resume,
    decode,
    encode,
)
from wool.protocol.plain import Reader, Writer, make_reader, make_writer
from wool.protocol.writer import Salvage

if TYPE_CHECKING:
    from wool.credentials import WorkerCredentials
    from wool.routine import Routine, Shipment

KEEPALIVE_MS: Final = 1_000
"""A ping goes to a peer after this long without a byte from it."""
PING_TIMEOUT_MS: Final = 3_000
"""A peer that has not acked a ping this long after it was sent is lost (README: Liveness).

gRPC answers pings on its own threads, so a routine blocking the peer's
loop does not delay the ack. Both gRPC timeouts are set: with a keepalive
time, the general ping timeout defaults to 60 s and would win.
"""
CHANNEL_OPTIONS: Final = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.keepalive_time_ms", KEEPALIVE_MS),
    ("grpc.keepalive_timeout_ms", PING_TIMEOUT_MS),
    ("grpc.http2.ping_timeout_ms", PING_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.enable_retries", 0),
    ("grpc.use_local_subchannel_pool", 1),
)
_log = logging.getLogger("wool")
T = TypeVar("T")
_closing: set[asyncio.Task] = set()  # keeps channel-close tasks alive until done
_UNWINDING_LIMIT: Final = 1024
_ASK_LIMIT: Final = 3
_ENDED_BY_WORKER: Final = (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)
_UNREACHABLE: Final = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
)
OutputSink = Callable[[int, str], None]


def _print_output(stream: int, text: str) -> None:
    (sys.stderr if stream == STDERR else sys.stdout).write(text)


class OpenCancelled(WorkerLost):
    """The task opening a connection was cancelled; whoever waited on it should retry."""


class PendingCall:
    """Caller-side state of one dispatch: who waits for the answer, and what to resend.

    ``shipment`` is kept only for routines shipped by value, the one case
    where a worker may ask for part of it again (NeedCode); other calls
    don't hold on to their arguments while they run.
    """

    __slots__ = ("asked", "routine", "shipment", "sink", "waiter")

    def __init__(
        self,
        shipment: Shipment | None,
        routine: Routine,
        waiter: asyncio.Future,
        sink: OutputSink | None,
    ) -> None:
        self.shipment = shipment
        self.routine = routine
        self.waiter = waiter
        self.sink = sink
        self.asked = 0


class Connection:
    """The stream to ``peer`` on the event loop that opened it."""

    def __init__(
        self,
        peer: PeerRecord,
        secret: bytes,
        on_lost: Callable[[Connection, WorkerLost], None],
        credentials: WorkerCredentials | None = None,
    ) -> None:
        self.peer = peer
        self.pending: dict[int, PendingCall] = {}
        self._unwinding: dict[int, OutputSink] = {}
        self.contexts: dict[int, Payload] = {}  # Context frames waiting for their call's Outcome
        self.known: set[bytes] = set()
        self.lost: WorkerLost | None = None
        self.ended_by_worker = False
        self._secret = secret
        self._credentials = credentials
        self._on_lost = on_lost
        self._next_call = 0
        self._loop = asyncio.get_running_loop()
        self._writer: Writer[Frame] | None = None
        self._opened: asyncio.Future[None] = self._loop.create_future()
        self._channel: grpc.aio.Channel | None = None
        self._call: grpc.aio.StreamStreamCall | None = None
        self._reader: Reader | None = None
        self._chunks = Assembler()
        self.opening = 0  # callers waiting for this connection to open (MeshClient counts them)

    @property
    def load(self) -> int:
        """Calls in flight here, counting those still waiting for the connection to open."""
        return len(self.pending) + self.opening

    @property
    def ready(self) -> bool:
        return self._opened.done() and self.lost is None

    def describe(self) -> str:
        p = self.peer
        return f"worker {p.id} at {p.address} (pid {p.pid})"

    async def wait_open(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            await asyncio.shield(self._opened)

    async def open(self, timeout: float) -> None:
        """Connect, authenticate both ways, and start the reader and writer."""
        try:
            self._channel = transport.aio_channel(
                self.peer.address, self._credentials, CHANNEL_OPTIONS
            )
            async with asyncio.timeout(timeout):
                await transport.settled(self._channel)
                metadata = auth.client_metadata(self._secret)
                call = self._channel.stream_stream(DISPATCH_METHOD)(metadata=metadata)
                self._call = call
                initial = await call.initial_metadata()
                if not auth.verify_worker(initial, self._secret, metadata):
                    raise self._refused(await call.code(), await call.details())
        except TimeoutError:
            error = WorkerLost(f"{self.describe()} did not answer within {timeout:g}s")
            await self._abandon(error)
            raise error from None
        except AuthenticationError as exc:
            await self._abandon(exc)
            raise
        except grpc.aio.AioRpcError as exc:
            failed = self._refused(exc.code(), exc.details())
            await self._abandon(failed)
            raise failed from None
        except (grpc.RpcError, OSError) as exc:
            error = WorkerLost(f"cannot reach {self.describe()}: {exc}")
            await self._abandon(error)
            raise error from None
        except BaseException:  # cancelled: callers that joined this attempt must not hang
            await asyncio.shield(self._abandon(OpenCancelled(self.describe())))
            raise
        self._writer = make_writer(
            self._call.write, self._fail, Salvage(encode, self._reject, self._requeue)
        )
        self._reader = make_reader(self._call.read, grpc.aio.EOF, self._receive, self._fail)
        self._reader.start()
        self._opened.set_result(None)

    def _refused(
        self, code: grpc.StatusCode | None, details: str | None
    ) -> AuthenticationError | WorkerLost:
        """The typed error for a handshake that did not end with the worker's proof."""
        if code == grpc.StatusCode.UNAUTHENTICATED:
            why = (details or "").removeprefix("wool: ")
            if not why or why == auth.WRONG_SECRET:
                why = "the mesh secret differs"
            return AuthenticationError(f"{self.describe()} refused our credentials: {why}")
        refused = transport.refusal(code, details, self._credentials)
        if refused is not None:
            return AuthenticationError(f"{self.describe()} refused the connection: {refused}")
        if code in _UNREACHABLE:
            return WorkerLost(f"cannot reach {self.describe()}: {details or code}")
        return AuthenticationError(f"{self.describe()} did not prove it holds the mesh secret")

    async def _abandon(self, error: WorkerLost | AuthenticationError) -> None:
        # Never handed out again; a joiner opens a fresh one.
        self.lost = error if isinstance(error, WorkerLost) else WorkerLost(str(error))
        if not self._opened.done():
            self._opened.set_exception(error)
            self._opened.exception()  # retrieved here; waiters get it via shield
        if self._channel is not None:
            await self._channel.close(grace=None)

    # -- sending ------------------------------------------------------------

    def _requeue(self, frames: list[Frame]) -> None:
        assert self._writer is not None
        self._writer.requeue(frames)

    def _send(self, frame: Frame) -> None:
        assert self._writer is not None
        self._writer.send(frame)

    async def drain(self) -> None:
        """Wait while too many payload bytes wait to be written here (``chunks.HIGH_WATER``)."""
        if self._writer is not None:
            await self._writer.drain()

    def _reject(self, frame: Frame, error: Exception) -> Frame | None:
        """A frame that cannot be encoded fails its own call, not the stream or the peer."""
        if type(frame) is Context and frame.then is not None:
            frame = frame.then
        if type(frame) is not Dispatch and type(frame) is not Resume:
            return None
        entry = self.pending.pop(frame.call, None)
        if entry is not None and not entry.waiter.done():
            entry.waiter.set_exception(
                SerializationError(
                    f"{entry.routine.__qualname__}() could not be sent to {self.describe()}: "
                    f"{error}"
                )
            )
        return Cancel(frame.call) if type(frame) is Resume else None

    def dispatch(
        self,
        routine: Routine,
        args: Payload,
        timeout: float | None,
        parent: str,
        sink: OutputSink | None = None,
        context: bytes | None = None,
    ) -> tuple[int, asyncio.Future[Outcome]]:
        if self.lost is not None:
            raise self.lost
        self._next_call = call = self._next_call + 1
        request = routine.request(call, args, timeout or 0.0, parent, sink is not None, self.known)
        waiter: asyncio.Future[Outcome] = self._loop.create_future()
        if isinstance(request, Dispatch):
            self.pending[call] = PendingCall(None, routine, waiter, sink)
            frame = request
        else:
            # Registered before anything is written: a write failing at once fails it too.
            self.pending[call] = PendingCall(request, routine, waiter, sink)
            for value in request.frames:
                self._send(value)
            frame = request.dispatch
        self._send(frame if context is None else Context(call, context, frame))
        return call, waiter

    def resume(
        self, call: int, kind: int, value: Payload = b"", context: bytes | None = None
    ) -> asyncio.Future[Outcome]:
        """Ask a remote generator for its next step; the future holds the outcome."""
        if self.lost is not None:
            raise self.lost
        pending = self.pending.get(call)
        if pending is None:
            raise WorkerLost(f"{self.describe()} no longer knows call {call}")
        pending.waiter = waiter = self._loop.create_future()
        step = Resume(call, kind, value)
        self._send(step if context is None else Context(call, context, step))
        return waiter

    def cancel(self, call: int) -> None:
        """Forget ``call`` here and ask the worker to cancel it (best effort).

        Output the routine prints while it unwinds (its ``finally``) still
        goes to the call's sink until the worker confirms the cancellation.
        """
        entry = self.pending.pop(call, None)
        if self.contexts:
            self.contexts.pop(call, None)
        if entry is not None and self.lost is None:
            if entry.sink is not None:
                if len(self._unwinding) >= _UNWINDING_LIMIT:
                    self._unwinding.pop(next(iter(self._unwinding)))
                self._unwinding[call] = entry.sink
            self._send(Cancel(call))

    def close_stream(self, call: int) -> asyncio.Future[Outcome] | None:
        if call in self.pending and self.lost is None:
            return self.resume(call, CLOSE)
        return None

    # -- receiving ----------------------------------------------------------

    async def wait(self, waiter: asyncio.Future[T]) -> T:
        """The result of a future this stream's messages complete (see StreamReader)."""
        if self._reader is None or self.lost is not None:
            return await waiter
        return await self._reader.wait(waiter)

    def _receive(self, data: bytes) -> None:
        pending = self.pending
        chunks = self._chunks
        for frame in decode(data):
            if type(frame) is Outcome:
                if chunks.open:
                    chunks.fill(frame)
                entry = pending.get(frame.call)
                if entry is None:
                    if self._unwinding:
                        self._unwinding.pop(frame.call, None)
                    if self.contexts:
                        self.contexts.pop(frame.call, None)
                    continue
                if frame.kind != YIELD:
                    del pending[frame.call]
                if not entry.waiter.done():
                    entry.waiter.set_result(frame)
            elif type(frame) is Output:
                entry = pending.get(frame.call)
                sink = entry.sink if entry is not None else None
                if sink is None:
                    sink = self._unwinding.get(frame.call, _print_output)
                try:
                    sink(frame.stream, frame.text)
                except Exception:
                    _log.exception("wool: the output handler raised; output dropped")
            elif type(frame) is NeedCode:
                self._resend_with_code(frame)
            elif type(frame) is Context and frame.call in pending:
                self.contexts[frame.call] = frame.values
            elif type(frame) is Chunk:
                chunks.add(frame)
            elif type(frame) is Credit:
                assert self._writer is not None
                self._writer.credit(frame.size)
            elif type(frame) is Cancel:  # the worker stopped sending a cancelled call's outcome
                chunks.fill(frame)  # and nothing more of that call follows
                if self._unwinding:
                    self._unwinding.pop(frame.call, None)
        if chunks.credit:
            self._send(chunks.take_credit())

    def _resend_with_code(self, request: NeedCode) -> None:
        """Send again only what the worker named (one value, or the code), then the Dispatch."""
        entry = self.pending.get(request.call)
        if entry is None or entry.shipment is None:
            return
        entry.asked += 1
        if entry.asked > _ASK_LIMIT + entry.shipment.parts:
            del self.pending[request.call]
            self._send(Cancel(request.call))  # the worker forgets what it holds for the call
            if not entry.waiter.done():
                entry.waiter.set_exception(
                    SerializationError(
                        f"{entry.routine.__qualname__}() could not start on {self.describe()}: "
                        f"it lacked its code or globals after {entry.asked - 1} re-sends (are "
                        "they larger than its value cache, WOOL_VALUE_CACHE?)"
                    )
                )
            return
        for frame in entry.shipment.again(request.digest, self.known):
            self._send(frame)

    def _fail(self, exc: BaseException, *, report: bool = True) -> None:
        if self.lost is not None:
            return
        if isinstance(exc, grpc.aio.AioRpcError):
            detail = exc.details() or ""
            # The worker ended this stream itself (it could not write to it): it is alive.
            self.ended_by_worker = exc.code() in _ENDED_BY_WORKER and detail.startswith("wool:")
        elif isinstance(exc, EOFError):
            detail = "the worker closed the stream"
        else:
            detail = str(exc)
        self.lost = lost = WorkerLost(f"lost {self.describe()}: {detail or type(exc).__name__}")
        if self._writer is not None:
            self._writer.close()
        pending, self.pending = self.pending, {}
        self.contexts.clear()
        self._chunks.open.clear()
        for entry in pending.values():
            if not entry.waiter.done():
                entry.waiter.set_exception(lost)
        if self._reader is not None:
            self._reader.close()
        if report:
            self._on_lost(self, lost)
            if self._channel is not None:
                closing = self._loop.create_task(self._channel.close(grace=None))
                _closing.add(closing)
                closing.add_done_callback(_closing.discard)

    async def close(self) -> None:
        """Close the stream; calls still waiting fail with WorkerLost."""
        if self.lost is None:
            self._fail(ConnectionError("the mesh was closed"), report=False)
        if self._channel is not None:
            await self._channel.close(grace=None)
