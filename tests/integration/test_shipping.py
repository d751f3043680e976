"""Code the workers cannot import travels by value once per worker, then by digest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types

import pytest
import routines

import wool

pytestmark = pytest.mark.timeout(60)

MAIN_SCRIPT = textwrap.dedent(
    """
    import asyncio, dataclasses, json, sys, wool
    sys.path.insert(0, {path!r})
    from routines import forget_code

    SCALE = 3

    def helper(x):
        return x * SCALE

    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    @wool.routine
    async def triple(x):
        return helper(x)

    @wool.routine
    async def move(p):
        return Point(p.x + 1, p.y)

    @wool.routine
    async def fib(n):
        if n <= 1:
            return n
        return sum(await asyncio.gather(fib(n - 1), fib(n - 2)))

    async def main():
        report = {{}}
        async with wool.WorkerPool(spawn=2) as pool:
            report["triple"] = [await triple(i) for i in range(50)]
            report["fib"] = await fib(12)
            moved = await move(Point(1, 2))
            report["moved"] = [type(moved).__name__, moved.x, moved.y]
            stats = await pool.statistics()
            report["code_received"] = [p.code_received for p in stats.peers]
            report["executed"] = stats.executed.completed
        async with wool.WorkerPool(spawn=1) as pool:
            await triple(1)
            await forget_code()
            report["after_forget"] = await triple(2)
            report["code_received_single"] = (await pool.statistics()).peers[0].code_received
        print(json.dumps(report))

    asyncio.run(main())
    """
)


def test_main_defined_routines_are_shipped_once_then_by_digest(tmp_path) -> None:
    script = tmp_path / "main_defined.py"
    script.write_text(MAIN_SCRIPT.format(path=os.path.dirname(routines.__file__)))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=50)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["triple"] == [3 * i for i in range(50)]
    assert report["fib"] == 144
    assert report["moved"] == ["Point", 2, 2]
    assert report["executed"] == 50 + 465 + 1
    # Three by-value routines; each worker receives each at most once.
    assert all(1 <= n <= 3 for n in report["code_received"]), report["code_received"]
    # The worker forgot the code, asked for it again, and the caller resent it.
    assert report["after_forget"] == 6
    assert report["code_received_single"] == 2


def make_adder(k: int) -> wool.Routine:
    @wool.routine
    async def add_k(x: int) -> int:
        return x + k

    return add_k


async def test_closures_go_by_value(pool: wool.WorkerPool) -> None:
    add_five = make_adder(5)
    assert not add_five.importable
    async with pool:
        assert await add_five(1) == 6
        assert await make_adder(10)(1) == 11


async def test_routines_in_a_dynamic_module_go_by_value(pool: wool.WorkerPool) -> None:
    module = types.ModuleType("made_at_runtime")
    exec(
        "import wool\n@wool.routine\nasync def square(x):\n    return x * x\n",
        module.__dict__,
    )
    assert not module.square.importable
    async with pool:
        assert await module.square(9) == 81


async def test_importable_routines_go_by_reference() -> None:
    assert routines.add.importable
    assert routines.Greeter.greet.importable


async def test_options_on_a_fresh_routine_still_go_by_reference(pool: wool.WorkerPool) -> None:
    clone = routines.only_through_options.options(timeout=5)
    assert clone.importable and routines.only_through_options.importable
    async with pool:
        assert await clone(4) == 40
