"""Runs received routines on the worker's routine loop and reports their outcomes.

The routine loop is not the loop that serves gRPC: user code that blocks it
(a CPU-bound step, ``time.sleep``) does not stop the worker from taking in
frames, cancellations or statistics requests. Frames arrive here in batches
from the serving loop; outcomes go back through the session's outbox.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from wool import codec, task
from wool.errors import DispatchTimeout, SerializationError
from wool.protocol.frames import (
    CANCELLED,
    CLOSE,
    RAISE,
    RETURN,
    SEND,
    STOP,
    THROW,
    YIELD,
    Cancel,
    Dispatch,
    Frame,
    NeedCode,
    Outcome,
    Output,
    Resume,
)
from wool.routine import Routine
from wool.stats import Counters
from wool.worker import output


class Session:
    """One caller's stream as the worker sees it.

    ``emit`` may be called from the routine loop's thread; it wakes the
    serving loop at most once per batch of frames.
    """

    def __init__(self, serve_loop: asyncio.AbstractEventLoop, number: int) -> None:
        self.number = number
        self.outbox: deque[Frame] = deque()
        self.wake = asyncio.Event()
        self.tasks: dict[int, asyncio.Task] = {}
        self.resumes: dict[int, asyncio.Queue[Resume]] = {}
        self._serve_loop = serve_loop
        self._scheduled = False
        self.closed = False

    def emit(self, frame: Frame) -> None:
        if self.closed:
            return
        self.outbox.append(frame)
        if not self._scheduled:
            self._scheduled = True
            self._serve_loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._scheduled = False
        self.wake.set()


def _raise_frame(call: int, exc: BaseException) -> Outcome:
    payload, type_name, message, text = codec.encode_exception(exc)
    return Outcome(call, RAISE, payload, type_name, message, text)


class Executor:
    """Starts, drives and cancels routine tasks; lives on the routine loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, worker_id: str) -> None:
        self.loop = loop
        self.worker_id = worker_id
        self.executed = Counters()
        self.code_received = 0
        self._cache: dict[tuple[str, str], Routine] = {}

    def receive(self, session: Session, frames: list[Frame]) -> None:
        for frame in frames:
            kind = type(frame)
            if kind is Dispatch:
                self._start(session, frame)
            elif kind is Resume:
                queue = session.resumes.get(frame.call)
                if queue is not None:
                    queue.put_nowait(frame)
            elif kind is Cancel:
                session.resumes.pop(frame.call, None)
                running = session.tasks.pop(frame.call, None)
                if running is not None:
                    running.cancel()

    def drop(self, session: Session) -> None:
        """The caller's stream ended: nobody is left to answer, so stop its work."""
        session.closed = True
        for running in list(session.tasks.values()):
            running.cancel()

    def cancel_all(self) -> None:
        for running in asyncio.all_tasks(self.loop):
            running.cancel()

    def _resolve(self, session: Session, frame: Dispatch) -> Routine | None:
        if frame.digest:
            routine = codec.routines.get(frame.digest)
            if routine is None:
                if not frame.code:
                    session.emit(NeedCode(frame.call, frame.digest))
                    return None
                routine = codec.routines.rebuild(
                    frame.uid, frame.digest, frame.code, frame.qualname, frame.generator
                )
                self.code_received += 1
            return routine
        key = (frame.module, frame.qualname)
        routine = self._cache.get(key)
        if routine is None:
            routine = self._cache[key] = codec.lookup(frame.module, frame.qualname)
        return routine

    def _start(self, session: Session, frame: Dispatch) -> None:
        call = frame.call
        try:
            routine = self._resolve(session, frame)
            if routine is None:
                return
            args, kwargs = codec.decode_call(frame.args)
        except Exception as exc:
            error = SerializationError(
                f"worker {self.worker_id} could not load {frame.module or '<by value>'}."
                f"{frame.qualname} or its arguments: {type(exc).__name__}: {exc}"
            )
            session.emit(_raise_frame(call, error))
            self.executed.started += 1
            self.executed.failed += 1
            return
        identity = task.RemoteTask(
            f"{self.worker_id}/{session.number}/{call}", frame.parent, frame.qualname
        )
        if frame.generator:
            session.resumes[call] = asyncio.Queue()
            body = self._drive(session, call, routine, args, kwargs, identity, frame)
        else:
            body = self._run(session, call, routine, args, kwargs, identity, frame)
        session.tasks[call] = self.loop.create_task(body)

    async def _run(
        self,
        session: Session,
        call: int,
        routine: Routine,
        args: tuple,
        kwargs: dict,
        identity: task.RemoteTask,
        frame: Dispatch,
    ) -> None:
        counters = self.executed
        counters.started += 1
        started = time.perf_counter_ns()
        task.enter(identity, frame.timeout)
        if frame.capture_output:
            output.capture(lambda stream, text: session.emit(Output(call, stream, text)))
        try:
            if frame.timeout:
                async with asyncio.timeout(frame.timeout) as scope:
                    try:
                        result = await routine.function(*args, **kwargs)
                    except TimeoutError:
                        if scope.expired():
                            raise _deadline(routine, frame.timeout) from None
                        raise
            else:
                result = await routine.function(*args, **kwargs)
            reply = Outcome(call, RETURN, codec.encode_value(result))
        except asyncio.CancelledError:
            counters.cancelled += 1
            session.emit(Outcome(call, CANCELLED))
            return
        except BaseException as exc:
            counters.failed += 1
            session.emit(_raise_frame(call, exc))
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            session.tasks.pop(call, None)
            output.flush()
        counters.completed += 1
        counters.latency.add(time.perf_counter_ns() - started)
        session.emit(reply)

    async def _drive(
        self,
        session: Session,
        call: int,
        routine: Routine,
        args: tuple,
        kwargs: dict,
        identity: task.RemoteTask,
        frame: Dispatch,
    ) -> None:
        counters = self.executed
        counters.started += 1
        started = time.perf_counter_ns()
        task.enter(identity, 0)
        if frame.capture_output:
            output.capture(lambda stream, text: session.emit(Output(call, stream, text)))
        queue = session.resumes[call]
        agen = routine.function(*args, **kwargs)
        step: Resume = Resume(call, 0)
        finished = False
        try:
            while True:
                try:
                    if step.kind == CLOSE:
                        await agen.aclose()
                        value, kind = None, STOP
                    else:
                        value, kind = await self._step(agen, step, routine, frame.timeout), YIELD
                except StopAsyncIteration:
                    value, kind = None, STOP
                if kind == STOP:
                    finished = True
                    counters.completed += 1
                    counters.latency.add(time.perf_counter_ns() - started)
                    session.emit(Outcome(call, STOP))
                    return
                session.emit(Outcome(call, YIELD, codec.encode_value(value)))
                step = await queue.get()
        except asyncio.CancelledError:
            counters.cancelled += 1
            session.emit(Outcome(call, CANCELLED))
        except BaseException as exc:
            finished = True
            counters.failed += 1
            session.emit(_raise_frame(call, exc))
            if not isinstance(exc, Exception):
                raise
        finally:
            session.tasks.pop(call, None)
            session.resumes.pop(call, None)
            if not finished:
                await _quietly_close(agen)
            output.flush()

    @staticmethod
    async def _step(agen: Any, step: Resume, routine: Routine, seconds: float) -> Any:
        if step.kind == THROW:
            awaitable = agen.athrow(codec.decode_value(step.value))
        elif step.kind == SEND:
            awaitable = agen.asend(codec.decode_value(step.value))
        else:
            awaitable = agen.__anext__()
        if not seconds:
            return await awaitable
        async with asyncio.timeout(seconds) as scope:
            try:
                return await awaitable
            except TimeoutError:
                if scope.expired():
                    raise _deadline(routine, seconds) from None
                raise


def _deadline(routine: Routine, seconds: float) -> DispatchTimeout:
    return DispatchTimeout(f"{routine.__qualname__}() ran past its {seconds:.3g}s deadline")


async def _quietly_close(agen: Any) -> None:
    try:
        await agen.aclose()
    except BaseException:
        pass


def start_routine_loop(name: str) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    """A loop on its own thread, for user code, apart from the gRPC serving loop."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    ready.wait(10)
    return loop, thread


OnStop = Callable[[], None]
