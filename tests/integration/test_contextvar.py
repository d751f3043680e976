"""wool.ContextVar across real workers: values go with each call and changes come back.

Every test here would fail if values did not travel: the routines read
and set the variables in another process.
"""

from __future__ import annotations

import asyncio
import contextvars
import types
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import routines_contextvar as rc

import wool
from wool.mesh.connection import Connection
from wool.protocol import frames

pytestmark = pytest.mark.timeout(60)

BOUND = 20.0
"""Seconds any one test's calls may take."""

T = TypeVar("T")


def fresh(fn: Callable[[], Awaitable[T]]) -> Awaitable[T]:
    """Run ``fn`` in a task with an empty context: no wool.ContextVar is set there."""
    return asyncio.get_running_loop().create_task(fn(), context=contextvars.Context())


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[frames.Frame]]:
    """Every frame this process sends to a worker, in order."""
    log: list[frames.Frame] = []
    original = Connection._send

    def spy(self: Connection, frame: frames.Frame) -> None:
        log.append(frame)
        original(self, frame)

    monkeypatch.setattr(Connection, "_send", spy)
    yield log


async def test_the_callers_value_is_seen_on_the_worker(pool: wool.WorkerPool) -> None:
    async def check() -> None:
        async with pool, asyncio.timeout(BOUND):
            assert await rc.read() == (rc.UNSET, "info")  # unset: each falls back there
            rc.request_id.set("r-1")
            rc.level.set("debug")
            assert await rc.read() == ("r-1", "debug")

    await fresh(check)


async def test_an_unset_variable_without_a_default_raises_lookup_error_there(
    pool: wool.WorkerPool,
) -> None:
    async def check() -> None:
        async with pool, asyncio.timeout(BOUND):
            with pytest.raises(LookupError):
                await rc.read_strict()
            rc.request_id.set("now set")
            assert await rc.read_strict() == "now set"

    await fresh(check)


async def test_a_workers_set_comes_back_when_the_routine_returns_or_raises(
    pool: wool.WorkerPool,
) -> None:
    async def check() -> None:
        async with pool, asyncio.timeout(BOUND):
            assert await rc.write("from the worker") == "from the worker"
            assert rc.request_id.get() == "from the worker"
            with pytest.raises(ValueError, match="raised after setting failed"):
                await rc.write_then_raise("failed")
            assert rc.request_id.get() == "failed"  # as if the routine had run here
            assert await rc.set_and_reset("gone") == "gone"
            assert rc.request_id.get() == "failed"

    await fresh(check)


async def test_the_callers_token_resets_past_a_workers_change(pool: wool.WorkerPool) -> None:
    async def check() -> None:
        async with pool, asyncio.timeout(BOUND):
            token = rc.request_id.set("mine")
            await rc.write("theirs")
            assert rc.request_id.get() == "theirs"
            rc.request_id.reset(token)
            with pytest.raises(LookupError):
                rc.request_id.get()
            assert await rc.read() == (rc.UNSET, "info")

    await fresh(check)


async def test_a_stream_brings_changes_back_at_each_yield_and_takes_the_callers_at_each_step(
    pool: wool.WorkerPool,
) -> None:
    async def check() -> None:
        async with pool, asyncio.timeout(BOUND):
            rc.request_id.set("start")
            stream = rc.steps(5)
            assert await stream.__anext__() == "start"
            assert await stream.__anext__() == "start"
            assert rc.request_id.get() == "step-0"  # its set() came back with the yield
            rc.request_id.set("changed here")
            assert await stream.__anext__() == "changed here"  # ours went with __anext__
            assert rc.request_id.get() == "step-1"
            assert await stream.asend("sent value") == "step-1"
            assert rc.request_id.get() == "sent value"
            rc.request_id.set("before asend")
            assert await stream.asend("x") == "before asend"  # and with asend
            assert rc.request_id.get() == "x"
            with pytest.raises(StopAsyncIteration):
                await stream.__anext__()
            assert rc.request_id.get() == "step-4"  # the last set() came back with the stop

    await fresh(check)


async def test_a_reset_on_the_worker_comes_back_as_no_value(pool: wool.WorkerPool) -> None:
    async def check() -> None:
        async with pool, asyncio.timeout(BOUND):
            stream = rc.set_then_reset()
            assert await stream.__anext__() == "set"
            assert rc.request_id.get() == "temporary"
            assert await stream.__anext__() == "reset"
            with pytest.raises(LookupError):
                rc.request_id.get()
            await stream.aclose()

    await fresh(check)


async def test_values_go_through_nested_calls_and_come_back_up(pool: wool.WorkerPool) -> None:
    a, b = pool.workers[0].id, pool.workers[1].id

    async def check() -> None:
        async with pool, asyncio.timeout(BOUND):
            rc.request_id.set("from the caller")
            report = await rc.relay.options(worker=a)(b, "set on b")
            assert (report["a"], report["b"]) == (a, b)  # two workers, as pinned
            assert report["a_saw"] == "from the caller"
            assert report["b_saw"] == "from the caller"  # through A
            assert report["a_after"] == "set on b"  # B's set came back to A
            assert rc.request_id.get() == "set on b"  # and on to us

    await fresh(check)


async def test_concurrent_tasks_keep_their_own_values(pool: wool.WorkerPool) -> None:
    """Ten calls in flight at once on one worker, each from its own task with its own value."""
    worker = pool.workers[0].id
    size = 10

    async def one(i: int) -> tuple[str, str]:
        rc.request_id.set(f"task-{i}")
        seen = await rc.rendezvous.options(worker=worker)("concurrent", size)
        return seen, rc.request_id.get()

    async def check() -> list[tuple[str, str]]:
        async with pool, asyncio.timeout(BOUND):
            return await asyncio.gather(*(one(i) for i in range(size)))

    results = await fresh(check)
    assert results == [(f"task-{i}", f"task-{i}-done") for i in range(size)]


async def test_a_workers_values_do_not_leak_into_the_next_call(pool: wool.WorkerPool) -> None:
    worker = pool.workers[1].id

    async def first() -> None:
        async with pool:
            assert await rc.write.options(worker=worker)("left behind?") == "left behind?"
            assert rc.request_id.get() == "left behind?"  # it came back to this task only

    async def second() -> tuple[str, str]:
        async with pool:
            return await rc.read.options(worker=worker)()

    async with asyncio.timeout(BOUND):
        await fresh(first)
        assert await fresh(second) == (rc.UNSET, "info")


async def test_only_calls_with_values_carry_a_context_frame_with_their_dispatch(
    pool: wool.WorkerPool, sent: list[frames.Frame]
) -> None:
    async def check() -> None:
        async with pool, asyncio.timeout(BOUND):
            await rc.read()
            assert [type(f) for f in sent] == [frames.Dispatch]
            rc.request_id.set("r")
            sent.clear()
            await rc.read()
            assert [type(f) for f in sent] == [frames.Context]
            context = sent[0]
            assert isinstance(context, frames.Context)
            assert isinstance(context.then, frames.Dispatch)  # one write: one message
            assert context.then.call == context.call

    await fresh(check)


async def test_an_unpicklable_value_is_a_serialization_error_naming_the_variable(
    pool: wool.WorkerPool, sent: list[frames.Frame]
) -> None:
    async def check() -> None:
        async with pool, asyncio.timeout(BOUND):
            import threading

            rc.request_id.set(threading.Lock())  # type: ignore[arg-type]
            with pytest.raises(wool.SerializationError, match=r"'request_id'.*lock"):
                await rc.read()
            assert not sent, "nothing is sent when a value cannot be"
            rc.request_id.set("fine")
            with pytest.raises(wool.SerializationError, match=r"'request_id'.*back to the caller"):
                await rc.write_lock()
            assert rc.request_id.get() == "fine"
            assert await rc.read() == ("fine", "info")  # the mesh carries on

    await fresh(check)


async def test_a_routine_shipped_by_value_finds_its_variable_by_name(
    pool: wool.WorkerPool,
) -> None:
    module = types.ModuleType("notebook_like")
    exec(
        "import wool\n"
        "tenant = wool.ContextVar('tenant', default='none')\n"
        "@wool.routine\n"
        "async def who():\n"
        "    seen = tenant.get()\n"
        "    tenant.set(seen + '+worker')\n"
        "    return seen\n",
        module.__dict__,
    )
    who: Any = module.who
    assert not who.importable
    assert module.tenant.namespace == "notebook_like"

    async def check() -> None:
        async with pool, asyncio.timeout(BOUND):
            assert await who() == "none"
            assert module.tenant.get() == "none+worker"
            module.tenant.set("acme")
            assert await who() == "acme"
            assert module.tenant.get() == "acme+worker"

    await fresh(check)
