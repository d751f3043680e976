"""compile_cell: a cell body becomes a shippable async function."""

import asyncio
import builtins
import inspect
import os
import pickle
import subprocess
import sys
import traceback
from collections.abc import Mapping

import dill
import pytest

from wool_jupyter.cells import CELL_FUNCTION_NAME, CellProgram, check_cell, compile_cell


async def run(program: CellProgram) -> object:
    return await asyncio.wait_for(program.function(**program.arguments), 10)


def keyword_parameters(program: CellProgram) -> list[str]:
    parameters = inspect.signature(program.function).parameters.values()
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)
    return [p.name for p in parameters]


class TestResult:
    async def test_last_expression_is_the_result(self) -> None:
        assert await run(compile_cell("x = 20\nx * 2 + 2", {})) == 42

    async def test_no_final_expression_returns_none(self) -> None:
        assert await run(compile_cell("x = 1\nif x:\n    y = 2", {})) is None
        assert await run(compile_cell("x = 1\nx\ny = 2", {})) is None

    async def test_empty_and_comment_only_cells_return_none(self) -> None:
        assert await run(compile_cell("", {})) is None
        assert await run(compile_cell("# nothing here\n", {})) is None

    async def test_a_lone_string_is_the_result(self) -> None:
        assert await run(compile_cell("'text'", {})) == "text"

    async def test_top_level_await_async_for_and_async_with(self) -> None:
        source = """
import asyncio, contextlib

async def numbers():
    for n in range(3):
        await asyncio.sleep(0)
        yield n

@contextlib.asynccontextmanager
async def scaled(factor):
    yield factor

total = 0
async with scaled(10) as factor:
    async for n in numbers():
        total += n * factor
await asyncio.sleep(0)
[n async for n in numbers()], total
"""
        assert await run(compile_cell(source, {})) == ([0, 1, 2], 30)

    async def test_stdout_of_the_cell(self, capsys: pytest.CaptureFixture[str]) -> None:
        await run(compile_cell("print('hello from', 'a cell')", {}))
        assert capsys.readouterr().out == "hello from a cell\n"

    async def test_uniformly_indented_body_is_dedented(self) -> None:
        assert await run(compile_cell("    x = 2\n    x + 1\n", {})) == 3

    async def test_future_import_applies_to_the_cell(self) -> None:
        source = "from __future__ import annotations\ndef f(x: NotDefinedAnywhere): pass\nf"
        function = await run(compile_cell(source, {}))
        assert function.__annotations__ == {"x": "NotDefinedAnywhere"}


class TestArguments:
    def test_reads_become_keyword_parameters_with_current_values(self) -> None:
        data = [1, 2, 3]
        program = compile_cell("total = sum(data) * scale\ntotal", {"data": data, "scale": 2})
        assert program.arguments == {"data": data, "scale": 2}
        assert program.arguments["data"] is data
        assert keyword_parameters(program) == ["data", "scale"]
        assert program.missing == ()

    async def test_values_are_passed_not_looked_up(self) -> None:
        namespace = {"value": 1}
        program = compile_cell("value + 1", namespace)
        namespace["value"] = 100
        assert await run(program) == 2

    def test_builtins_are_not_passed(self) -> None:
        program = compile_cell("print(len(range(3)))", {"print": print})
        assert program.arguments == {}
        assert program.missing == ()

    async def test_a_notebook_name_shadowing_a_builtin_is_passed(self) -> None:
        program = compile_cell("len", {"len": "shadowed"})
        assert program.arguments == {"len": "shadowed"}
        assert await run(program) == "shadowed"

    def test_names_the_cell_defines_before_use_are_not_passed(self) -> None:
        namespace = {"os": os, "x": 1, "helper": len, "item": 0}
        source = (
            "import os\nx = 5\ndef helper(): return x\nfor item in [1]:\n    item\nos, x, helper"
        )
        assert compile_cell(source, namespace).arguments == {}

    def test_a_loop_variable_read_after_the_loop_may_be_unbound(self) -> None:
        program = compile_cell("for item in []:\n    pass\nitem", {"item": "notebook"})
        assert program.arguments == {"item": "notebook"}

    async def test_augmented_assignment_reads_the_notebook_value(self) -> None:
        program = compile_cell("count += 1\ncount", {"count": 41})
        assert program.arguments == {"count": 41}
        assert await run(program) == 42

    async def test_conditionally_bound_name_falls_back_to_the_notebook(self) -> None:
        program = compile_cell("if flag:\n    x = 'cell'\nx", {"flag": False, "x": "notebook"})
        assert set(program.arguments) == {"flag", "x"}
        assert await run(program) == "notebook"

    async def test_comprehensions_lambdas_and_nested_defs(self) -> None:
        source = """
squares = [x * x for x in data if x > low]
scale = lambda v, s=factor: v * s
def shift(v):
    return v + offset
[shift(scale(s)) for s in squares]
"""
        namespace = {"data": [1, 2, 3], "low": 1, "factor": 10, "offset": 1, "x": "unused"}
        program = compile_cell(source, namespace)
        assert set(program.arguments) == {"data", "low", "factor", "offset"}
        assert await run(program) == [41, 91]

    async def test_del_of_a_notebook_name_reads_it(self) -> None:
        program = compile_cell("del big\n'gone'", {"big": object()})
        assert set(program.arguments) == {"big"}
        assert await run(program) == "gone"

    def test_missing_names_are_recorded(self) -> None:
        program = compile_cell("print(nowhere)\nlater = 1\nfor i in range(2):\n    later", {})
        assert program.missing == ("nowhere",)
        assert program.arguments == {}

    async def test_missing_names_raise_name_error_when_run(self) -> None:
        program = compile_cell("nowhere", {})
        with pytest.raises(NameError, match="nowhere"):
            await run(program)

    def test_namespace_can_be_any_mapping(self) -> None:
        class Lookup(Mapping[str, object]):
            def __getitem__(self, name: str) -> object:
                if name == "answer":
                    return 42
                raise KeyError(name)

            def __iter__(self):  # type: ignore[no-untyped-def]
                return iter(["answer"])

            def __len__(self) -> int:
                return 1

        assert compile_cell("answer + question", Lookup()).arguments == {"answer": 42}


class TestFunction:
    def test_is_a_plain_main_module_coroutine_function(self) -> None:
        program = compile_cell("secret", {"secret": "s3"})
        function = program.function
        assert inspect.iscoroutinefunction(function)
        assert function.__module__ == "__main__"
        assert function.__name__ == CELL_FUNCTION_NAME
        assert function.__closure__ is None
        assert set(function.__globals__) == {"__name__", "__builtins__"}

    async def test_survives_dill_by_value(self) -> None:
        source = """
import math
def area(r):
    return math.pi * r * r
class Box:
    def __init__(self, v):
        self.v = v
rounded = [round(area(r), 2) for r in radii]
Box(rounded).v
"""
        program = compile_cell(source, {"radii": [1, 2]})
        blob = dill.dumps(program.function, recurse=True)
        arguments = pickle.loads(dill.dumps(program.arguments))
        restored = dill.loads(blob)
        assert await asyncio.wait_for(restored(**arguments), 10) == [3.14, 12.57]

    def test_runs_in_a_fresh_interpreter(self, tmp_path: pytest.TempPathFactory) -> None:
        program = compile_cell(
            "import os\nawait asyncio.sleep(0)\nf'{greeting}, {os.getpid() != parent}'",
            {"greeting": "hello", "parent": os.getpid(), "asyncio": asyncio},
        )
        payload = dill.dumps((program.function, program.arguments), recurse=True)
        script = (
            "import asyncio, sys, dill\n"
            "fn, kwargs = dill.loads(sys.stdin.buffer.read())\n"
            "print(asyncio.run(fn(**kwargs)))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            input=payload,
            capture_output=True,
            timeout=60,
            check=True,
        )
        assert done.stdout.decode().strip() == "hello, True"

    async def test_tracebacks_point_at_cell_lines(self) -> None:
        source = "def inner():\n    raise ValueError('boom')\n\ninner()\n"
        program = compile_cell(source, {}, filename="<cell-7>", first_line=2)
        assert program.filename == "<cell-7>"
        assert program.source == source
        with pytest.raises(ValueError, match="boom") as caught:
            await run(program)
        frames = [
            (frame.filename, frame.lineno, frame.name)
            for frame in traceback.extract_tb(caught.value.__traceback__)
            if frame.filename == "<cell-7>"
        ]
        assert frames == [("<cell-7>", 5, CELL_FUNCTION_NAME), ("<cell-7>", 3, "inner")]


class TestErrors:
    @pytest.mark.parametrize(
        ("source", "line", "message"),
        [
            ("x = 1\nreturn x", 3, "'return' is not allowed at the top level"),
            ("if True:\n    return 1", 3, "'return' is not allowed at the top level"),
            ("x = yield 1", 2, "'yield' is not allowed at the top level"),
            ("for x in y:\n    yield from x", 3, "'yield from' is not allowed at the top level"),
            ("nonlocal x", 2, "'nonlocal' is not allowed at the top level"),
            ("def f():\n    global g\n    g = 1", 3, "'global' is not supported"),
            ("global g", 2, "'global' is not supported"),
            ("from os import *", 2, "'from ... import \\*' is not supported"),
        ],
    )
    def test_unsupported_statements(self, source: str, line: int, message: str) -> None:
        with pytest.raises(SyntaxError, match=message) as caught:
            compile_cell(source, {}, filename="<cell>", first_line=2)
        assert caught.value.lineno == line
        assert caught.value.filename == "<cell>"
        assert f"line {line}" in str(caught.value)

    def test_yield_and_return_inside_nested_functions_are_fine(self) -> None:
        program = compile_cell("def gen():\n    yield 1\n    return 2\nlist(gen())", {})
        assert asyncio.run(run(program)) == [1]

    @pytest.mark.parametrize(
        ("source", "line"),
        [
            ("x = 1\ny = (\n", 3),
            ("x = 1\n  y = 2\n", 3),
            ("def f():\n    nonlocal q\n", 3),
            ("def f():\n    await g()\n", 3),
            ("x = 1\nfrom __future__ import annotations\n", 3),
        ],
    )
    def test_syntax_errors_carry_cell_line_numbers(self, source: str, line: int) -> None:
        with pytest.raises(SyntaxError) as caught:
            compile_cell(source, {}, filename="<cell>", first_line=2)
        assert (caught.value.filename, caught.value.lineno) == ("<cell>", line)

    def test_first_error_in_source_order_is_reported(self) -> None:
        with pytest.raises(SyntaxError) as caught:
            compile_cell("return 1\nyield 2", {})
        assert caught.value.lineno == 1

    def test_check_cell_raises_the_same_errors(self) -> None:
        check_cell("await thing()\nvalue")
        with pytest.raises(SyntaxError, match="'return'") as caught:
            check_cell("\nreturn 1", filename="<c>", first_line=5)
        assert caught.value.lineno == 6

    def test_first_line_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="first_line"):
            compile_cell("1", {}, first_line=0)


def test_compile_warnings_are_reported_once() -> None:
    with pytest.warns(SyntaxWarning) as records:
        check_cell("x = 1\nx is 1")
        compile_cell("x = 1\nx is 1", {}, filename="<cell>")
    assert [(r.filename, r.lineno) for r in records] == [("<cell>", 2)]


def test_builtins_module_is_untouched() -> None:
    before = dict(vars(builtins))
    compile_cell("x = 1\nx", {"len": len})
    assert vars(builtins) == before
