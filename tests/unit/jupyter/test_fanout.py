"""The one "run all, then report the first failure in input order" helper."""

from __future__ import annotations

import asyncio

import pytest

from wool_jupyter.fanout import cancel_all, outcomes


async def _finish(value: object, gate: asyncio.Event) -> object:
    await asyncio.wait_for(gate.wait(), 5)
    if isinstance(value, BaseException):
        raise value
    return value


async def test_failures_come_in_input_order_not_in_the_order_they_happened() -> None:
    gates = [asyncio.Event() for _ in range(4)]
    values: list[object] = ["a", KeyError("second"), "c", ValueError("fourth")]
    tasks = [asyncio.ensure_future(_finish(v, g)) for v, g in zip(values, gates, strict=True)]
    tasks[2].cancel()
    for gate in reversed(gates):  # the fourth fails before the second
        gate.set()
        await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.wait(tasks), 5)
    results, failures = outcomes(tasks)
    assert [i for i, _ in failures] == [1, 2, 3]
    assert isinstance(failures[1][1], asyncio.CancelledError)
    assert results[0] == "a" and results[1] is failures[0][1] and results[3] is failures[2][1]


async def test_cancel_all_waits_for_each_task_s_cleanup() -> None:
    cleaned: list[int] = []

    async def hold(i: int) -> None:
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0)
            cleaned.append(i)

    tasks = [asyncio.ensure_future(hold(i)) for i in range(3)]
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_all(tasks), 5)
    assert sorted(cleaned) == [0, 1, 2] and all(t.cancelled() for t in tasks)
    await cancel_all([])


def test_outcomes_of_nothing() -> None:
    assert outcomes([]) == ([], [])


@pytest.mark.parametrize("n", [1, 3])
async def test_all_succeeded(n: int) -> None:
    tasks = [asyncio.ensure_future(asyncio.sleep(0, result=i)) for i in range(n)]
    await asyncio.wait_for(asyncio.wait(tasks), 5)
    assert outcomes(tasks) == (list(range(n)), [])
