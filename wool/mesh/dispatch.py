"""What awaiting or iterating a routine does on the caller's side.

A coroutine call is one Dispatch frame and one Outcome. A generator call is
pull-based: one Outcome per ``__anext__``/``asend``/``athrow``, and leaving
it early (``break``, ``aclose()``, garbage collection) closes the remote
generator. Cancelling the caller cancels the remote routine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from wool import codec, task
from wool.errors import DispatchTimeout, WorkerLost
from wool.mesh import context
from wool.mesh.connection import Connection, OutputSink
from wool.protocol.frames import CANCELLED, NEXT, RAISE, RETURN, SEND, STOP, THROW, YIELD, Outcome

if TYPE_CHECKING:
    from wool.routine import Routine

CLOSE_WAIT = 5.0

output_sink: ContextVar[OutputSink | None] = ContextVar("wool_output_sink", default=None)
"""Where remote print() output of calls made in this context goes (None: local stdout)."""


def _parent() -> str:
    current = task.current_task()
    return current.id if current is not None else ""


def _settle(conn: Connection, routine: Routine, outcome: Outcome) -> None:
    """Raise what a non-value outcome means for the caller."""
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
    seconds: float | None,
    conn: Connection,
    call: int,
    routine: Routine,
) -> Outcome:
    try:
        if seconds is None:
            return await waiter
        async with asyncio.timeout(seconds):
            return await waiter
    except TimeoutError:
        if not waiter.done() or waiter.cancelled():
            conn.cancel(call)
            raise DispatchTimeout(
                f"{routine.__qualname__}() ran past its {seconds:.3g}s deadline on "
                f"{conn.describe()} and was cancelled there"
            ) from None
        raise
    except asyncio.CancelledError:
        conn.cancel(call)
        raise


async def call(routine: Routine, args: tuple, kwargs: dict, timeout: float | None) -> Any:
    """Run ``routine(*args, **kwargs)`` on a peer and return its result."""
    mesh = context.current(routine.__qualname__)
    data = codec.encode_call(routine.__qualname__, args, kwargs)
    seconds = task.time_left(timeout)
    if seconds is not None and seconds <= 0:
        raise DispatchTimeout(f"{routine.__qualname__}() was called after its deadline passed")
    conn = await mesh.connection()
    counters = mesh.dispatched
    call_id, waiter = conn.dispatch(routine, data, seconds, _parent(), output_sink.get())
    counters.started += 1
    started = time.perf_counter_ns()
    try:
        outcome = await _wait(waiter, seconds, conn, call_id, routine)
    except asyncio.CancelledError:
        counters.cancelled += 1
        raise
    except BaseException:
        counters.failed += 1
        raise
    if outcome.kind != RETURN:
        counters.failed += 1
        _settle(conn, routine, outcome)
    result = codec.decode_value(outcome.value)
    counters.completed += 1
    counters.latency.add(time.perf_counter_ns() - started)
    return result


async def stream(
    routine: Routine, args: tuple, kwargs: dict, timeout: float | None
) -> AsyncGenerator[Any, Any]:
    """Drive a remote async generator one step per request, as if it were local."""
    mesh = context.current(routine.__qualname__)
    data = codec.encode_call(routine.__qualname__, args, kwargs)
    seconds = task.time_left(timeout)
    conn = await mesh.connection()
    counters = mesh.dispatched
    call_id, waiter = conn.dispatch(routine, data, seconds, _parent(), output_sink.get())
    counters.started += 1
    started = time.perf_counter_ns()
    finished = False
    try:
        while True:
            outcome = await _wait(waiter, seconds, conn, call_id, routine)
            if outcome.kind != YIELD:
                finished = True
                if outcome.kind == STOP:
                    counters.completed += 1
                    counters.latency.add(time.perf_counter_ns() - started)
                    return
                _settle(conn, routine, outcome)
                return
            value = codec.decode_value(outcome.value)
            try:
                sent = yield value
            except GeneratorExit:
                raise
            except BaseException as exc:
                waiter = conn.resume(call_id, THROW, codec.encode_value(exc))
            else:
                if sent is None:
                    waiter = conn.resume(call_id, NEXT)
                else:
                    waiter = conn.resume(call_id, SEND, codec.encode_value(sent))
    except asyncio.CancelledError:
        finished = True
        counters.cancelled += 1
        raise
    except GeneratorExit:
        finished = True
        counters.completed += 1
        await _close_remote(conn, call_id)
        raise
    except BaseException:
        finished = True
        counters.failed += 1
        raise
    finally:
        if not finished:
            conn.cancel(call_id)


async def _close_remote(conn: Connection, call_id: int) -> None:
    """Ask the remote generator to close and wait (bounded) until its finally has run."""
    waiter = conn.close_stream(call_id)
    if waiter is None:
        return
    try:
        async with asyncio.timeout(CLOSE_WAIT):
            await waiter
    except (TimeoutError, WorkerLost):
        conn.cancel(call_id)
