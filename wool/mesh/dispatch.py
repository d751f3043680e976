"""What awaiting or iterating a routine does on the caller's side.

A coroutine call is one Dispatch frame and one Outcome. A generator call is
pull-based: one Outcome per ``__anext__``/``asend``/``athrow``, and leaving
it early (``break``, ``aclose()``, garbage collection) closes the remote
generator. Cancelling the caller cancels the remote routine.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from wool import codec, contextvar, task
from wool.errors import DispatchTimeout, SerializationError, WorkerLost
from wool.mesh import context
from wool.mesh.connection import Connection, OutputSink
from wool.protocol import chunks
from wool.protocol.frames import (
    CANCELLED,
    NEXT,
    RAISE,
    RETURN,
    SEND,
    STOP,
    THROW,
    YIELD,
    Outcome,
    Payload,
)

if TYPE_CHECKING:
    from wool.mesh.client import MeshClient
    from wool.routine import Routine

CLOSE_WAIT = 5.0

OutputHandler = Callable[[str, str], None]
_STREAMS = ("stdout", "stderr")
_scoped_output: ContextVar[OutputHandler | None] = ContextVar("wool_output", default=None)
_default_output: OutputHandler | None = None


def set_output_handler(handler: OutputHandler | None) -> OutputHandler | None:
    """Forward what routines print to ``handler(stream, text)`` in this process.

    ``stream`` is ``"stdout"`` or ``"stderr"``. The handler runs on the
    caller's event loop, in the context of the call that produced the
    output, in order, while the call runs; an exception it raises is
    logged, not propagated. ``None`` (the default) leaves output on the
    workers' own stdout and stderr. Returns the handler it replaces, so a
    caller can put it back.
    """
    global _default_output
    previous, _default_output = _default_output, handler
    return previous


@contextlib.contextmanager
def output_handler(handler: OutputHandler | None) -> Iterator[None]:
    """Like set_output_handler, for the calls made inside the block only."""
    token = _scoped_output.set(handler)
    try:
        yield
    finally:
        _scoped_output.reset(token)


def _sink() -> OutputSink | None:
    handler = _scoped_output.get() or _default_output
    if handler is None:
        return None
    run = contextvars.copy_context().run
    return lambda stream, text: run(handler, _STREAMS[stream], text)


def _connect(mesh: MeshClient, routine: Routine) -> Coroutine[Any, Any, Connection]:
    return mesh.connect(routine.worker, routine.tags)


def _parent() -> str:
    current = task.current_task()
    return current.id if current is not None else ""


def _settle(conn: Connection, routine: Routine, outcome: Outcome) -> None:
    """Raise what a non-value outcome means for the caller."""
    __tracebackhide__ = True  # IPython: show the user's frames, not ours
    kind = outcome.kind
    if kind == RAISE:
        raise codec.decode_exception(
            outcome.value,
            outcome.error_type,
            outcome.error_message,
            outcome.traceback,
            f"{conn.describe()} in {routine.__qualname__}()",
        )
    if kind == CANCELLED:
        raise WorkerLost(f"{conn.describe()} stopped while running {routine.__qualname__}()")
    raise WorkerLost(f"{conn.describe()} sent an unknown outcome ({kind})")


async def _wait(
    waiter: asyncio.Future[Outcome],
    deadline: tuple[float, float],
    conn: Connection,
    call: int,
    routine: Routine,
) -> Outcome:
    """The outcome, or DispatchTimeout (and a remote cancel) once ``deadline`` passes."""
    __tracebackhide__ = True
    try:
        async with asyncio.timeout_at(_loop_time(deadline[0])):
            return await conn.wait(waiter)
    except TimeoutError:
        if waiter.done() and not waiter.cancelled():
            return waiter.result()  # it arrived as the deadline passed: keep it
        conn.cancel(call)
        raise DispatchTimeout(
            f"{routine.__qualname__}() ran past its {deadline[1]:.3g}s deadline on "
            f"{conn.describe()} and was cancelled there"
        ) from None
    except asyncio.CancelledError:
        conn.cancel(call)
        raise


async def _drain(conn: Connection, deadline: tuple[float, float] | None, routine: Routine) -> None:
    """Wait while the stream has much queued (bounded memory), but never past the deadline."""
    __tracebackhide__ = True
    if deadline is None:
        await conn.drain()
        return
    try:
        async with asyncio.timeout_at(_loop_time(deadline[0])):
            await conn.drain()
    except TimeoutError:
        raise DispatchTimeout(
            f"{routine.__qualname__}() reached its {deadline[1]:.3g}s deadline before "
            f"{conn.describe()} could take its arguments; nothing was sent"
        ) from None


def _loop_time(deadline: float) -> float:
    """A time.monotonic() deadline on the running loop's clock."""
    return asyncio.get_running_loop().time() + (deadline - time.monotonic())


def _deadline(routine: Routine, timeout: float | None) -> tuple[float, float] | None:
    """(monotonic time a new call must be done by, its budget), or None; raises if past."""
    seconds = task.time_left(timeout)
    if seconds is None:
        return None
    if seconds <= 0:
        raise DispatchTimeout(f"{routine.__qualname__}() was called after its deadline passed")
    return time.monotonic() + seconds, seconds


async def call(routine: Routine, args: tuple, kwargs: dict, timeout: float | None) -> Any:
    """Run ``routine(*args, **kwargs)`` on a peer and return its result."""
    __tracebackhide__ = True
    mesh = context.current(routine.__qualname__)
    deadline = _deadline(routine, timeout)
    data = codec.encode_call(routine.__qualname__, args, kwargs, mesh.max_payload)
    values = contextvar.current()
    ctx = None if values is None else contextvar.encode(values, _to(routine))
    conn = await _connect(mesh, routine)
    if chunks.heavy(len(data)):
        await _drain(conn, deadline, routine)
    counters = mesh.dispatched
    call_id, waiter = conn.dispatch(routine, data, _left(deadline), _parent(), _sink(), ctx)
    counters.started += 1
    started = time.perf_counter_ns()
    try:
        if deadline is None:
            outcome = await conn.wait(waiter)
        else:
            outcome = await _wait(waiter, deadline, conn, call_id, routine)
    except asyncio.CancelledError:
        conn.cancel(call_id)
        counters.cancelled += 1
        raise
    except BaseException:
        counters.failed += 1
        raise
    if conn.contexts:
        unread = _adopt(conn, call_id, routine)
        if unread is not None and outcome.kind == RETURN:
            counters.failed += 1
            raise unread
    if outcome.kind != RETURN:
        counters.failed += 1
        _settle(conn, routine, outcome)
    try:
        result = codec.decode_value(outcome.value)
    except Exception as exc:
        counters.failed += 1
        raise _undecodable(conn, routine, "returned", exc) from exc
    counters.completed += 1
    counters.latency.add(time.perf_counter_ns() - started)
    return result


async def stream(
    routine: Routine, args: tuple, kwargs: dict, timeout: float | None
) -> AsyncGenerator[Any, Any]:
    """Drive a remote async generator one step per request, as if it were local."""
    __tracebackhide__ = True
    mesh = context.current(routine.__qualname__)
    deadline = _deadline(routine, timeout)
    data = codec.encode_call(routine.__qualname__, args, kwargs, mesh.max_payload)
    known = contextvar.current()  # the values the remote generator runs with
    ctx = None if known is None else contextvar.encode(known, _to(routine))
    conn = await _connect(mesh, routine)
    if chunks.heavy(len(data)):
        await _drain(conn, deadline, routine)
    counters = mesh.dispatched
    call_id, waiter = conn.dispatch(routine, data, _left(deadline), _parent(), _sink(), ctx)
    counters.started += 1
    started = time.perf_counter_ns()
    finished = False
    try:
        while True:
            if deadline is None:
                outcome = await _await_step(waiter, conn, call_id)
            else:
                outcome = await _wait(waiter, deadline, conn, call_id, routine)
            if conn.contexts:
                unread = _adopt(conn, call_id, routine)
                if unread is not None and outcome.kind != RAISE:
                    if outcome.kind == YIELD:
                        conn.cancel(call_id)
                    raise unread
                known = contextvar.current()
            if outcome.kind != YIELD:
                finished = True
                if outcome.kind == STOP:
                    counters.completed += 1
                    counters.latency.add(time.perf_counter_ns() - started)
                    return
                _settle(conn, routine, outcome)
                return
            try:
                value = codec.decode_value(outcome.value)
            except Exception as exc:
                conn.cancel(call_id)
                raise _undecodable(conn, routine, "yielded", exc) from exc
            try:
                sent = yield value
            except GeneratorExit:
                raise
            except BaseException as exc:
                step, payload = THROW, _step_value(conn, call_id, exc, mesh.max_payload)
            else:
                step, payload = NEXT, b""
                if sent is not None:
                    step, payload = SEND, _step_value(conn, call_id, sent, mesh.max_payload)
            ctx = _changed(conn, call_id, routine, known)
            if ctx is not None:
                known = contextvar.current()
            waiter = conn.resume(call_id, step, payload, ctx)
    except asyncio.CancelledError:
        finished = True
        counters.cancelled += 1
        raise
    except GeneratorExit:
        finished = True
        counters.completed += 1
        await _close_remote(conn, call_id, routine)
        raise
    except BaseException:
        finished = True
        counters.failed += 1
        raise
    finally:
        if not finished:
            conn.cancel(call_id)


def _to(routine: Routine) -> str:
    return f"to a worker with {routine.__qualname__}()"


def _adopt(conn: Connection, call: int, routine: Routine) -> SerializationError | None:
    """Apply the ContextVar changes ``call`` came back with; the error if they can't be read.

    The caller raises that error instead of a value, never instead of the
    routine's own exception.
    """
    payload = conn.contexts.pop(call, None)
    if payload is not None:
        try:
            contextvar.adopt(payload, f"set by {routine.__qualname__}() on {conn.describe()}")
        except SerializationError as exc:
            return exc
    return None


def _changed(conn: Connection, call: int, routine: Routine, known: Any) -> bytes | None:
    """The caller's values for a stream's next step, if they changed since the last one."""
    values = contextvar.current()
    if values is known:
        return None
    try:
        return contextvar.encode(values, _to(routine))
    except SerializationError:
        conn.cancel(call)  # else it would wait for this step forever
        raise


def _undecodable(
    conn: Connection, routine: Routine, what: str, exc: Exception
) -> SerializationError:
    return SerializationError(
        f"the value {routine.__qualname__}() {what} on {conn.describe()} cannot be rebuilt "
        f"here: {type(exc).__name__}: {exc}"
    )


def _step_value(conn: Connection, call: int, value: object, limit: int | None) -> Payload:
    """``value`` encoded for a remote generator; if it cannot be, the generator is cancelled."""
    try:
        return codec.encode_value(value, limit)
    except SerializationError:
        conn.cancel(call)  # else it would wait for this step forever
        raise


async def _await_step(waiter: asyncio.Future[Outcome], conn: Connection, call: int) -> Outcome:
    try:
        return await conn.wait(waiter)
    except asyncio.CancelledError:
        conn.cancel(call)
        raise


def _left(deadline: tuple[float, float] | None) -> float | None:
    return None if deadline is None else max(deadline[0] - time.monotonic(), 1e-3)


async def _close_remote(conn: Connection, call_id: int, routine: Routine) -> None:
    """Close the remote generator and wait (bounded) until its finally has run.

    An exception its ``finally`` raises comes back out of ``aclose()``.
    """
    __tracebackhide__ = True
    waiter = conn.close_stream(call_id)
    if waiter is None:
        return
    try:
        async with asyncio.timeout(CLOSE_WAIT):
            outcome = await conn.wait(waiter)
    except (TimeoutError, WorkerLost):
        conn.cancel(call_id)
        return
    if conn.contexts:
        _adopt(conn, call_id, routine)  # what its finally set; unreadable, it is dropped
    if outcome.kind == RAISE:
        _settle(conn, routine, outcome)
