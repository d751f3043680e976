"""In a real kernel, routines see the notebook's globals as they are at each call, everywhere.

Each test is one case of issue 10's example (or its list of further
cases), run cell by cell as a user would, with two workers.
"""

from __future__ import annotations

import ast

import pytest
from kernel_harness import WORKERS, Kernel

pytestmark = pytest.mark.jupyter


@pytest.fixture(scope="module")
def worker_ids(kernel: Kernel) -> list[str]:
    kernel.run("mesh = get_ipython().find_line_magic('wool').__self__.backend")
    ids = ast.literal_eval(kernel.value("[w.id for w in mesh.pool.workers]"))
    assert len(ids) == WORKERS
    return ids


def test_a_changed_global_is_seen(kernel: Kernel) -> None:
    kernel.run(
        "SCALE = 10\n"
        "def helper(x): return x + SCALE\n"
        "@wool.routine\n"
        "async def use(x): return helper(x)\n"
    )
    assert kernel.value("await use(1)") == "11"
    kernel.run("SCALE = 100")
    assert kernel.value("await use(1)") == "101"


def test_a_redefined_helper_is_seen(kernel: Kernel) -> None:
    kernel.run(
        "SCALE = 100\n"
        "def helper(x): return x + SCALE\n"
        "@wool.routine\n"
        "async def use(x): return helper(x)\n"
    )
    assert kernel.value("await use(2)") == "102"
    kernel.run("def helper(x): return x * 1000 + SCALE")
    assert kernel.value("await use(2)") == "2100"


def test_a_mutated_list_is_seen(kernel: Kernel) -> None:
    kernel.run("data = [1, 2, 3]\n@wool.routine\nasync def total(): return sum(data)\n")
    assert kernel.value("await total()") == "6"
    kernel.run("data.append(100)")
    assert kernel.value("await total()") == "106"


def test_a_redefined_class_is_seen(kernel: Kernel) -> None:
    kernel.run(
        "class Shape:\n"
        "    sides = 3\n"
        "    def describe(self): return f'{type(self).__name__} {self.sides}'\n"
        "@wool.routine\n"
        "async def shape(): return Shape().describe()\n"
    )
    assert kernel.value("await shape()") == "'Shape 3'"
    kernel.run(
        "class Shape:\n    sides = 4\n    def describe(self): return f'square {self.sides}'\n"
    )
    assert kernel.value("await shape()") == "'square 4'"


def test_a_nested_routine_on_another_worker_reads_the_changed_global(
    kernel: Kernel, worker_ids: list[str]
) -> None:
    first, second = worker_ids
    kernel.run(
        "LIMIT = 5\n"
        "@wool.routine\n"
        "async def inner(): return LIMIT, wool.current_task().worker\n"
        "@wool.routine\n"
        "async def outer(where):\n"
        "    return await inner.options(worker=where)(), wool.current_task().worker\n"
    )
    nested = f"await outer.options(worker={first!r})({second!r})"
    assert ast.literal_eval(kernel.value(nested)) == ((5, second), first)
    kernel.run("LIMIT = 50")
    assert ast.literal_eval(kernel.value(nested)) == ((50, second), first)


def test_a_fan_out_of_twenty_after_a_change_sees_the_new_value_on_every_worker(
    kernel: Kernel, worker_ids: list[str]
) -> None:
    kernel.run(
        "OFFSET = 1\n"
        "@wool.routine\n"
        "async def shifted(i): return i + OFFSET, wool.current_task().worker\n"
    )
    kernel.run("await asyncio.gather(*(shifted(i) for i in range(20)))")
    kernel.run("OFFSET = 1000")
    got = ast.literal_eval(
        kernel.value(
            "await asyncio.gather(*(shifted.options(worker=w)(i)\n"
            f"    for i, w in enumerate({worker_ids!r} * 10)))"
        )
    )
    assert [value for value, _ in got] == [i + 1000 for i in range(20)]
    assert {where for _, where in got} == set(worker_ids)
    unpinned = ast.literal_eval(
        kernel.value("await asyncio.gather(*(shifted(i) for i in range(20)))")
    )
    assert [value for value, _ in unpinned] == [i + 1000 for i in range(20)]


def test_a_wool_cell_sees_current_globals_and_helpers(kernel: Kernel) -> None:
    kernel.run("RATE = 2\ndef rated(x): return x * RATE")
    assert kernel.value("%%wool\nrated(5)") == "10"
    kernel.run("RATE = 3\nitems = [1]")
    assert kernel.value("%%wool\nrated(5), sum(items)") == "(15, 1)"
    kernel.run("def rated(x): return -x * RATE\nitems.append(9)")
    assert kernel.value("%%wool\nrated(5), sum(items)") == "(-15, 10)"


def test_routines_and_helpers_in_a_closure_see_the_changed_global(kernel: Kernel) -> None:
    kernel.run(
        "FACTOR = 3\n"
        "def make():\n"
        "    def times(x): return x * FACTOR\n"
        "    @wool.routine\n"
        "    async def inner(): return FACTOR\n"
        "    @wool.routine\n"
        "    async def outer(): return await inner(), times(2)\n"
        "    return outer\n"
        "closed = make()\n"
    )
    assert kernel.value("await closed()") == "(3, 6)"
    kernel.run("FACTOR = 5")
    assert kernel.value("await closed()") == "(5, 10)"


def test_an_attribute_named_like_a_lock_global_is_no_global(kernel: Kernel) -> None:
    kernel.run(
        "import threading, types\n"
        "lock = threading.Lock()\n"
        "@wool.routine\n"
        "async def read(b): return b.lock\n"
    )
    assert kernel.value("await read(types.SimpleNamespace(lock=7))") == "7"
