"""Programs written for the original wool package run unchanged.

The shape mirrors that project's own demo: `WorkerPool(size=N)`, a routine
that drives another routine's stream with asend/athrow/aclose from a
worker, and many such streams consumed concurrently by the caller.
"""

from __future__ import annotations

import asyncio
import string

import pytest
import routines
import routines_compat
import routines_liveness

import wool

pytestmark = pytest.mark.timeout(60)


async def test_nested_bidirectional_streams_with_the_older_size_spelling() -> None:
    alphabet = "".join(sorted(string.ascii_letters + string.digits + " !"))
    target = "Hello world!"
    found = [""] * len(target)

    async def solve(position: int, char: str) -> int:
        guesses = 0
        async for guess in routines.find(char, alphabet):
            guesses += 1
            found[position] = guess
        return guesses

    async with wool.WorkerPool(size=2) as pool:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(solve(i, c)) for i, c in enumerate(target)]
        stats = await pool.statistics()
    assert "".join(found) == target
    assert all(t.result() >= 1 for t in tasks)
    assert stats.caller.completed == len(target)
    assert sum(p.dispatched.started for p in stats.peers) == len(target), "seek ran peer to peer"


async def test_current_task_on_a_worker_offers_the_wool_packages_fields(
    pool: wool.WorkerPool,
) -> None:
    describe = routines_compat.describe
    code = describe.function.__code__
    workers = {w.id for w in pool.workers}
    async with pool, asyncio.timeout(30):
        top = await describe(1, "a", k=2)
        with wool.RuntimeContext(timeout=20):
            bounded = await describe()
        outer_id, inner = await routines_compat.nested()

    assert top["worker"] in workers
    assert top["id"].startswith(top["worker"] + "/")
    assert top["caller"] is None and top["parent"] == ""
    assert top["function"] == top["callable"] == describe.__qualname__
    assert top["args"] == (1, "a") and top["kwargs"] == {"k": 2}
    assert top["timeout"] == 0
    assert (top["filename"], top["line_no"]) == (code.co_filename, code.co_firstlineno)
    assert top["tag"] == f"routines_compat.describe:{code.co_firstlineno}"
    assert 0 < bounded["timeout"] <= 20, bounded["timeout"]
    # A call made from a routine names the task that made it.
    assert inner["caller"] == inner["parent"] == outer_id
    assert outer_id.split("/")[0] in workers
    assert inner["args"] == ("inner",)


async def test_runtime_context_bounds_calls_like_timeout(pool: wool.WorkerPool) -> None:
    async with pool, asyncio.timeout(30):
        with pytest.raises(wool.DispatchTimeout):
            async with wool.RuntimeContext(dispatch_timeout=0.3):
                await routines_liveness.wait(60)
        with wool.RuntimeContext(timeout=10):
            assert await routines.echo("still serving") == "still serving"
