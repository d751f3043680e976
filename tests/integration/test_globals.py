"""By-value routines see the globals they read as they are at each call, on every worker.

Routines here live in a fresh module dict named ``__main__``, as a notebook's
do: workers cannot import them, so they travel by value.
"""

from __future__ import annotations

import asyncio
import threading
import types
from pathlib import Path
from typing import Any

import pytest
from support import until

import wool

pytestmark = pytest.mark.timeout(90)

SOURCE = """
import asyncio, os
import wool

SCALE = 10
data = [1, 2, 3]

def helper(x):
    return x + SCALE

class Shape:
    def area(self):
        return 1

@wool.routine
async def use(x):
    return helper(x)

@wool.routine
async def total():
    return sum(data)

@wool.routine
async def measure():
    return Shape().area(), Shape.__name__

@wool.routine
async def scaled():
    return SCALE

@wool.routine
async def outer(where):
    return await scaled.options(worker=where)(), wool.current_task().worker

@wool.routine
async def gated(tag, folder):
    seen = SCALE
    open(os.path.join(folder, tag + ".started"), "w").close()
    gate = os.path.join(folder, "gate")
    for _ in range(3000):
        if os.path.exists(gate):
            break
        await asyncio.sleep(0.01)
    return seen, SCALE, helper(0)

@wool.routine
async def grow():
    data.append(0)
    return len(data)

@wool.routine
async def size_of_big():
    return len(BIG)

@wool.routine
async def cache_figures():
    from wool import callglobals
    return callglobals.values.offered, callglobals.values.hits

@wool.routine
async def locked():
    return lock

def make():
    def offset(x):
        return x + SCALE
    @wool.routine
    async def inner():
        return SCALE
    @wool.routine
    async def closed(add=offset):
        return await inner(), add(1)
    return closed

closed = make()

@wool.routine
async def attribute(holder):
    return holder.lock
"""


@pytest.fixture
def main() -> dict[str, Any]:
    """A notebook-like ``__main__`` namespace holding the routines above."""
    ns: dict[str, Any] = {"__name__": "__main__"}
    exec(SOURCE, ns)
    return ns


async def test_the_issue_example_sees_changes_redefinitions_and_mutations(
    pool: wool.WorkerPool, main: dict[str, Any]
) -> None:
    async with pool, asyncio.timeout(60):
        use, total = main["use"], main["total"]
        assert await use(1) == 11
        main["SCALE"] = 100
        assert await use(1) == 101
        exec("def helper(x):\n    return x * 1000 + SCALE\n", main)
        assert await use(2) == 2100
        assert await total() == 6
        main["data"].append(100)
        assert await total() == 106


async def test_routines_and_functions_in_closures_and_defaults_see_current_globals(
    pool: wool.WorkerPool, main: dict[str, Any]
) -> None:
    async with pool, asyncio.timeout(60):
        assert await main["closed"]() == (10, 11)
        main["SCALE"] = 50
        assert await main["closed"]() == (50, 51)


async def test_an_attribute_named_like_an_unpicklable_global_is_not_a_global(
    pool: wool.WorkerPool, main: dict[str, Any]
) -> None:
    main["lock"] = threading.Lock()
    async with pool, asyncio.timeout(60):
        assert await main["attribute"](types.SimpleNamespace(lock=3)) == 3


async def test_a_redefined_class_is_seen(pool: wool.WorkerPool, main: dict[str, Any]) -> None:
    async with pool, asyncio.timeout(60):
        assert await main["measure"]() == (1, "Shape")
        exec("class Shape:\n    def area(self):\n        return SCALE * 2\n", main)
        assert await main["measure"]() == (20, "Shape")


async def test_a_nested_call_on_another_worker_carries_the_callers_values(
    pool: wool.WorkerPool, main: dict[str, Any]
) -> None:
    first, second = (w.id for w in pool.workers)
    outer = main["outer"].options(worker=first)
    async with pool, asyncio.timeout(60):
        assert await outer(second) == (10, first)
        main["SCALE"] = 77
        assert await outer(second) == (77, first)


async def test_a_fan_out_after_a_change_sees_the_new_value_everywhere(
    pool: wool.WorkerPool, main: dict[str, Any]
) -> None:
    scaled = main["scaled"]
    async with pool, asyncio.timeout(60):
        assert set(await asyncio.gather(*(scaled() for _ in range(20)))) == {10}
        main["SCALE"] = 11
        pinned = [scaled.options(worker=w.id)() for w in pool.workers for _ in range(10)]
        assert await asyncio.gather(*pinned) == [11] * 20


async def test_concurrent_calls_each_see_their_own_values(
    pool: wool.WorkerPool, main: dict[str, Any], tmp_path: Path
) -> None:
    gated = main["gated"].options(worker=pool.workers[0].id)
    folder = str(tmp_path)
    async with pool, asyncio.timeout(60):
        first = asyncio.create_task(gated("a", folder))
        await until((tmp_path / "a.started").exists, 30, "the first call to start")
        main["SCALE"] = 20
        exec("def helper(x):\n    return x - SCALE\n", main)
        second = asyncio.create_task(gated("b", folder))
        await until((tmp_path / "b.started").exists, 30, "the second call to start")
        (tmp_path / "gate").touch()
        assert await first == (10, 10, 10)  # the first call's namespace was not touched
        assert await second == (20, 20, -20)


async def test_a_routine_mutating_a_global_does_not_change_the_next_call(
    pool: wool.WorkerPool, main: dict[str, Any]
) -> None:
    grow = main["grow"].options(worker=pool.workers[0].id)
    async with pool, asyncio.timeout(60):
        assert [await grow() for _ in range(3)] == [4, 4, 4]
        assert main["data"] == [1, 2, 3]


async def test_an_unchanged_large_global_is_sent_once_then_hits_the_cache(
    pool: wool.WorkerPool, main: dict[str, Any]
) -> None:
    main["BIG"] = bytearray(8 << 20)
    where = pool.workers[1].id
    size_of_big = main["size_of_big"].options(worker=where)
    figures = main["cache_figures"].options(worker=where)
    async with pool, asyncio.timeout(60):
        assert await size_of_big() == 8 << 20
        offered, hits = await figures()
        for _ in range(3):
            assert await size_of_big() == 8 << 20
        offered_after, hits_after = await figures()
        print(f"bytes offered over 3 calls with BIG unchanged: {offered_after - offered}")
        assert offered_after - offered < 4096  # digests and the manifest only, not 8 MiB
        assert hits_after - hits >= 3 * 2  # each call: the manifest and BIG from the cache
        main["BIG"][0] = 1  # mutated in place: sent again
        assert await size_of_big() == 8 << 20
        assert (await figures())[0] - offered_after > 8 << 20


async def test_an_unpicklable_global_is_named(pool: wool.WorkerPool, main: dict[str, Any]) -> None:
    main["lock"] = threading.Lock()
    async with pool, asyncio.timeout(60):
        with pytest.raises(wool.SerializationError, match=r"locked\(\).*global 'lock'"):
            await main["locked"]()
        main["lock"] = "a plain value now"
        assert await main["locked"]() == "a plain value now"


async def test_a_numpy_array_is_sent_once_and_read_in_place(
    pool: wool.WorkerPool, main: dict[str, Any]
) -> None:
    numpy = pytest.importorskip("numpy")
    main["ARRAY"] = numpy.arange(1 << 20, dtype=numpy.float64)  # 8 MiB, out of band
    exec(
        "@wool.routine\nasync def array_sum():\n"
        "    return float(ARRAY.sum()), ARRAY.flags.writeable\n",
        main,
    )
    where = pool.workers[0].id
    array_sum = main["array_sum"].options(worker=where)
    figures = main["cache_figures"].options(worker=where)
    expected = float(main["ARRAY"].sum())
    async with pool, asyncio.timeout(60):
        assert await array_sum() == (expected, False)  # a read-only view of the cached bytes
        offered, _ = await figures()
        assert [await array_sum() for _ in range(3)] == [(expected, False)] * 3
        assert (await figures())[0] - offered < 4096
        main["ARRAY"][0] = 5.0
        assert (await array_sum())[0] == expected + 5.0


async def test_a_routine_passed_as_an_argument_carries_its_current_globals(
    pool: wool.WorkerPool, main: dict[str, Any]
) -> None:
    exec("@wool.routine\nasync def apply(fn, x):\n    return await fn(x)\n", main)
    apply, use = main["apply"], main["use"]
    async with pool, asyncio.timeout(60):
        assert await apply(use, 1) == 11
        main["SCALE"] = 5
        assert await apply(use, 1) == 6


async def test_a_remote_generator_sees_current_globals(
    pool: wool.WorkerPool, main: dict[str, Any]
) -> None:
    exec(
        "@wool.routine\nasync def steps():\n    for i in range(3):\n        yield i * SCALE\n", main
    )
    steps = main["steps"]
    async with pool, asyncio.timeout(60):
        assert [x async for x in steps()] == [0, 10, 20]
        main["SCALE"] = 2
        assert [x async for x in steps()] == [0, 2, 4]


async def test_a_worker_asks_again_for_evicted_values_and_a_bounded_failure_follows(
    main: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WOOL_VALUE_CACHE", "1500")  # inherited by the worker started here
    main["A"], main["B"] = b"a" * 1000, b"b" * 1000
    exec(
        "@wool.routine\nasync def reads_a():\n    return len(A)\n"
        "@wool.routine\nasync def reads_b():\n    return len(B)\n"
        "@wool.routine\nasync def reads_both():\n    return len(A) + len(B)\n",
        main,
    )
    async with wool.WorkerPool(spawn=1), asyncio.timeout(60):
        assert await main["reads_a"]() == 1000
        assert await main["reads_b"]() == 1000  # evicts A and reads_a's manifest
        assert await main["reads_a"]() == 1000  # sent as known; the worker asks; re-sent
        with pytest.raises(wool.SerializationError, match=r"reads_both\(\).*WOOL_VALUE_CACHE"):
            await main["reads_both"]()  # never fits: fails after a bounded number of asks
        assert await main["reads_a"]() == 1000
