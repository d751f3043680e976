"""Runs received routines on the worker's routine loop and reports their outcomes.

The routine loop also serves the dispatch streams, so a frame reaches its
routine without a thread hop; statistics are served from another thread
(see service.py). Frames arrive in batches; outcomes leave through the
session's outbox, one gRPC message per batch.
"""

from __future__ import annotations

import asyncio
import threading
import time
import types
from collections.abc import Callable
from functools import partial
from typing import Any

from wool import callglobals, codec, contextvar, registry, task
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
    Context,
    Credit,
    Dispatch,
    Frame,
    NeedCode,
    Outcome,
    Output,
    Payload,
    Resume,
    Value,
    encode,
)
from wool.protocol.plain import Writer, make_writer
from wool.protocol.writer import Salvage, Write
from wool.routine import Routine
from wool.stats import Counters
from wool.worker import output


class Session:
    """One caller's stream as the worker sees it; used on the routine loop only.

    An outcome that cannot be encoded is replaced by a RAISE outcome for its
    call alone; ``abort`` ends the stream (its caller then fails every call
    on it at once) when nothing more can be written to it.
    """

    def __init__(self, number: int, write: Write, abort: Callable[[BaseException], None]) -> None:
        self.number = number
        self.writer: Writer[Frame] = make_writer(
            write, abort, Salvage(encode, self._reject, self._requeue)
        )
        self.tasks: dict[int, asyncio.Task] = {}
        self.resumes: dict[int, asyncio.Queue[Resume]] = {}
        self.contexts: dict[int, Payload] = {}  # Context frames waiting for their Dispatch/Resume

    def _requeue(self, frames: list[Frame]) -> None:
        self.writer.requeue(frames)

    def emit(self, frame: Frame) -> None:
        self.writer.send(frame)

    def _reject(self, frame: Frame, error: Exception) -> Frame | None:
        if type(frame) is Context and frame.then is not None:
            frame = frame.then  # the outcome's ContextVar changes are dropped with it
        if type(frame) is not Outcome:
            return None  # an Output too large to send is dropped; its call goes on
        if frame.kind == YIELD:
            running = self.tasks.get(frame.call)
            if running is not None:
                running.cancel()  # its caller hears RAISE and sends no further step
        what = _WHAT.get(frame.kind, "outcome")
        if frame.kind == RAISE:
            what = f"{frame.error_type} it raised ({frame.error_message[:200]!r})"
        return raise_frame(
            frame.call, SerializationError(f"the {what} could not be sent back: {error}")
        )


_WHAT = {RETURN: "value it returned", YIELD: "value it yielded"}


def raise_frame(call: int, exc: BaseException) -> Outcome:
    """The RAISE outcome telling ``call``'s caller about ``exc`` (never raises itself)."""
    payload, type_name, message, text = codec.encode_exception(exc)
    return Outcome(call, RAISE, payload, type_name, message, text)


class Executor:
    """Starts, drives and cancels routine tasks; lives on the routine loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, worker_id: str) -> None:
        self.loop = loop
        self.worker_id = worker_id
        self._thread = threading.get_ident()
        self.executed = Counters()
        self.code_received = 0
        self._cache: dict[tuple[str, str], Routine] = {}

    def receive(self, session: Session, frames: list[Frame]) -> None:
        for frame in frames:
            if isinstance(frame, Dispatch):
                self._start(session, frame)
            elif isinstance(frame, Resume):
                queue = session.resumes.get(frame.call)
                if queue is not None:
                    queue.put_nowait(frame)
                elif session.contexts:
                    session.contexts.pop(frame.call, None)
            elif isinstance(frame, Cancel):
                session.resumes.pop(frame.call, None)
                if session.contexts:
                    session.contexts.pop(frame.call, None)
                running = session.tasks.pop(frame.call, None)
                if running is not None:
                    running.cancel()
                    running.add_done_callback(partial(self._confirm_cancel, session, frame.call))
                elif session.writer.transferring(frame.call):
                    # Its outcome is going out in chunks: the rest stays unsent, and the
                    # caller hears Cancel instead (a running generator's CANCELLED follows
                    # its yield, whole, so the caller's sink for its unwinding stays right).
                    session.emit(frame)
            elif type(frame) is Value:
                callglobals.values.put(frame.digest, frame.data)
            elif type(frame) is Context:
                session.contexts[frame.call] = frame.values
            elif type(frame) is Credit:
                session.writer.credit(frame.size)

    def _confirm_cancel(self, session: Session, call: int, running: asyncio.Task) -> None:
        """Answer a call cancelled before its first step (its body, which answers, never ran)."""
        if running.cancelled():
            self.executed.started += 1
            self.executed.cancelled += 1
            session.emit(Outcome(call, CANCELLED))

    def drop(self, session: Session) -> None:
        """The caller's stream ended: nobody is left to answer, so stop its work."""
        session.writer.close()
        for running in list(session.tasks.values()):
            running.cancel()

    def cancel_all(self) -> None:
        """Cancel routines and the tasks they started (shutdown), so their ``finally`` runs.

        gRPC's own tasks (compiled coroutines) are left to the server's stop:
        cancelling them from outside makes gRPC print tracebacks.
        """
        me = asyncio.current_task()
        for running in asyncio.all_tasks(self.loop):
            if running is not me and isinstance(running.get_coro(), types.CoroutineType):
                running.cancel()

    def _resolve(self, session: Session, frame: Dispatch) -> Routine | None:
        if frame.digest:
            routine = registry.routines.get(frame.digest)
            if routine is None:
                if not frame.code:
                    session.emit(NeedCode(frame.call, frame.digest))
                    return None
                routine = registry.routines.rebuild(
                    frame.uid, frame.digest, frame.code, frame.qualname, frame.generator
                )
                self.code_received += 1
            _ = routine.function  # unpickled on first use: fail here, as a load error
            if frame.globals:
                try:
                    namespace = callglobals.values.namespace(frame.globals, routine.__module__)
                except callglobals.MissingValue as missing:
                    session.emit(NeedCode(frame.call, missing.digest))
                    return None
                return routine.bound(namespace)
            return routine
        key = (frame.module, frame.qualname)
        routine = self._cache.get(key)
        if routine is None:
            routine = self._cache[key] = registry.lookup(frame.module, frame.qualname)
        return routine

    def _start(self, session: Session, frame: Dispatch) -> None:
        call = frame.call
        try:
            routine = self._resolve(session, frame)
            if routine is None:
                return
            args, kwargs = codec.decode_call(frame.args)
        except Exception as exc:
            if session.contexts:
                session.contexts.pop(call, None)
            where = f"{frame.module}." if frame.module else "the code sent by value of "
            error = SerializationError(
                f"worker {self.worker_id} could not load {where}{frame.qualname}() or its "
                f"arguments: {type(exc).__name__}: {exc}"
            )
            session.emit(raise_frame(call, error))
            self.executed.started += 1
            self.executed.failed += 1
            return
        identity = task.Task(
            self.worker_id,
            session.number,
            call,
            frame.parent,
            frame.qualname,
            frame.timeout,
            routine.function,
            args,
            kwargs,
        )
        context = session.contexts.pop(call, None) if session.contexts else None
        if frame.generator:
            session.resumes[call] = asyncio.Queue()
            body = self._drive(session, call, routine, args, kwargs, identity, frame, context)
        else:
            body = self._run(session, call, routine, args, kwargs, identity, frame, context)
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
        context: Payload | None,
    ) -> None:
        counters = self.executed
        counters.started += 1
        started = time.perf_counter_ns()
        task.enter(identity, frame.timeout)
        lines = self._capture(session, call) if frame.capture_output else None
        base: contextvar.Values | None = None
        back: bytes | None = None
        try:
            if context is not None:
                base = contextvar.install(context, self._from(routine))
            if frame.timeout:
                async with asyncio.timeout(frame.timeout) as scope:
                    try:
                        result = await routine.function(*args, **kwargs)
                    except TimeoutError:
                        if scope.expired():
                            raise _deadline(routine) from None
                        raise
            else:
                result = await routine.function(*args, **kwargs)
            reply = Outcome(call, RETURN, codec.encode_value(result))
            if contextvar.current() is not base:
                back = contextvar.changes(base, _BACK)
        except asyncio.CancelledError:
            counters.cancelled += 1
            reply = Outcome(call, CANCELLED)
        except BaseException as exc:  # SystemExit too: a routine must not end its worker
            counters.failed += 1
            reply = raise_frame(call, exc)
            if contextvar.current() is not base:
                back = _changes_if_possible(base)
        else:
            counters.completed += 1
            counters.latency.add(time.perf_counter_ns() - started)
        finally:
            session.tasks.pop(call, None)
        if lines is not None:
            lines.flush()
        session.emit(reply if back is None else Context(call, back, reply))

    async def _drive(
        self,
        session: Session,
        call: int,
        routine: Routine,
        args: tuple,
        kwargs: dict,
        identity: task.RemoteTask,
        frame: Dispatch,
        context: Payload | None,
    ) -> None:
        counters = self.executed
        counters.started += 1
        started = time.perf_counter_ns()
        task.enter(identity, frame.timeout)
        deadline = time.monotonic() + frame.timeout if frame.timeout else 0.0
        lines = self._capture(session, call) if frame.capture_output else None
        base: contextvar.Values | None = None

        def reply(outcome: Outcome, back: bytes | None = None) -> None:
            if lines is not None:
                lines.flush()
            session.emit(outcome if back is None else Context(call, back, outcome))

        def changes() -> bytes | None:
            """The generator's changes since the caller last synced; they now agree."""
            nonlocal base
            now = contextvar.current()
            if now is base:
                return None
            back, base = contextvar.changes(base, _BACK), now
            return back

        queue = session.resumes[call]
        try:
            agen = routine.function(*args, **kwargs)
        except BaseException as exc:  # wrong arguments: the call still needs an outcome
            counters.failed += 1
            session.tasks.pop(call, None)
            session.resumes.pop(call, None)
            reply(raise_frame(call, exc))
            return
        step: Resume = Resume(call, 0)
        try:
            if context is not None:
                base = contextvar.install(context, self._from(routine))
            while True:
                try:
                    if step.kind == CLOSE:
                        await agen.aclose()
                        value, kind = None, STOP
                    else:
                        value, kind = await self._step(agen, step, routine, deadline), YIELD
                except StopAsyncIteration:
                    value, kind = None, STOP
                if kind == STOP:
                    back = changes()
                    counters.completed += 1
                    counters.latency.add(time.perf_counter_ns() - started)
                    reply(Outcome(call, STOP), back)
                    return
                payload = codec.encode_value(value)
                reply(Outcome(call, YIELD, payload), changes())
                step = await queue.get()
                if session.contexts:
                    context = session.contexts.pop(call, None)
                    if context is not None:
                        base = contextvar.install(context, self._from(routine))
        except asyncio.CancelledError:
            counters.cancelled += 1
            reply(Outcome(call, CANCELLED))
        except BaseException as exc:
            counters.failed += 1
            reply(raise_frame(call, exc), _changes_if_possible(base))
        finally:
            session.tasks.pop(call, None)
            session.resumes.pop(call, None)
            if session.contexts:
                session.contexts.pop(call, None)
            # A no-op once the generator has finished; otherwise (cancelled, or a
            # value it yielded could not be sent) its finally runs now, not at GC.
            await _quietly_close(agen)

    def _from(self, routine: Routine) -> str:
        return f"to {routine.__qualname__}() on worker {self.worker_id}"

    def _capture(self, session: Session, call: int) -> _Lines:
        """Send this task's print() output to the caller, a line at a time."""
        lines = _Lines(session, call, self.loop, self._thread)
        output.capture(lines.write)
        return lines

    @staticmethod
    async def _step(agen: Any, step: Resume, routine: Routine, deadline: float) -> Any:
        """One step of a remote generator; ``deadline`` (monotonic, 0 = none) bounds the stream."""
        if step.kind == THROW:
            awaitable = agen.athrow(codec.decode_value(step.value))
        elif step.kind == SEND:
            awaitable = agen.asend(codec.decode_value(step.value))
        else:
            awaitable = agen.__anext__()
        if not deadline:
            return await awaitable
        async with asyncio.timeout(deadline - time.monotonic()) as scope:
            try:
                return await awaitable
            except TimeoutError:
                if scope.expired():
                    raise DispatchTimeout(
                        f"{routine.__qualname__}() ran past its deadline"
                    ) from None
                raise


class _Lines:
    """One call's captured output, sent a line (or 8 KiB) at a time, flushed before outcomes.

    Whole lines keep the output of several peers from interleaving mid-line
    at the caller. Capture follows the routine's context: its tasks and
    threads started with a copy of it (``asyncio.to_thread``) are captured;
    a bare ``threading.Thread`` prints to the worker's own stdout.
    """

    __slots__ = ("_call", "_home", "_loop", "_parts", "_session")
    _LIMIT = 8192

    def __init__(
        self, session: Session, call: int, loop: asyncio.AbstractEventLoop, home: int
    ) -> None:
        self._session = session
        self._call = call
        self._loop = loop
        self._home = home
        self._parts: dict[int, str] = {}

    def write(self, stream: int, text: str) -> None:
        if threading.get_ident() == self._home:
            self._add(stream, text)
        else:
            self._loop.call_soon_threadsafe(self._add, stream, text)

    def _add(self, stream: int, text: str) -> None:
        pending = self._parts.get(stream, "") + text
        cut = max(pending.rfind("\n"), pending.rfind("\r")) + 1
        if not cut and len(pending) > self._LIMIT:
            cut = len(pending)
        if cut:
            self._session.emit(Output(self._call, stream, pending[:cut]))
            pending = pending[cut:]
        self._parts[stream] = pending

    def flush(self) -> None:
        for stream, pending in self._parts.items():
            if pending:
                self._session.emit(Output(self._call, stream, pending))
        self._parts.clear()


_BACK = "back to the caller"


def _changes_if_possible(base: contextvar.Values | None) -> bytes | None:
    """A failed routine's ContextVar changes; dropped if they cannot be sent (its error wins)."""
    if contextvar.current() is base:
        return None
    try:
        return contextvar.changes(base, _BACK)
    except SerializationError:
        return None


def _deadline(routine: Routine) -> DispatchTimeout:
    return DispatchTimeout(f"{routine.__qualname__}() ran past its deadline")


async def _quietly_close(agen: Any) -> None:
    try:
        await agen.aclose()
    except BaseException:
        pass
