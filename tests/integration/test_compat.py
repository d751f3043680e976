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
