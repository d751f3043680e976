"""Imports made by one ``%%wool`` cell are known to later cells, by reference."""

import ast
import asyncio
import json

import pytest
from IPython.core.interactiveshell import InteractiveShell

from wool_jupyter.cells import compile_cell
from wool_jupyter.imports import ImportMemory, top_level_imports
from wool_jupyter.magics import WoolMagics


def run(program) -> object:
    return asyncio.run(program.function(**program.arguments))


def remembered(*cells: str) -> ImportMemory:
    memory = ImportMemory()
    for cell in cells:
        memory.remember(compile_cell(cell, {}).imports)
    return memory


def test_top_level_imports_binds_each_name_once_per_statement() -> None:
    module = ast.parse(
        "from __future__ import annotations\n"
        "import os, os.path as p, xml.dom\n"
        "from json import dumps as d, loads\n"
        "from math import *\n"
        "if True:\n    import sys\n"
        "def f():\n    import re\n"
    )
    found = {
        name: [ast.unparse(statement) for statement in statements]
        for name, statements in top_level_imports(module).items()
    }
    assert found == {
        "os": ["import os"],
        "p": ["import os.path as p"],
        "xml": ["import xml.dom"],
        "d": ["from json import dumps as d"],
        "loads": ["from json import loads"],
    }


def test_a_later_cell_replays_the_import_it_needs() -> None:
    memory = remembered("import json\nimport os")
    program = compile_cell("json.dumps([1])", {}, imports=memory)
    assert program.replayed == ("json",)
    assert program.missing == ()
    assert program.arguments == {}
    assert run(program) == "[1]"


def test_notebook_values_win_over_remembered_imports() -> None:
    memory = remembered("import json")
    program = compile_cell("json", {"json": "notebook"}, imports=memory)
    assert program.replayed == ()
    assert run(program) == "notebook"


def test_the_cell_s_own_import_wins() -> None:
    memory = remembered("import json as codec")
    program = compile_cell("import pickle as codec\ncodec.__name__", {}, imports=memory)
    assert program.replayed == ()
    assert run(program) == "pickle"


def test_a_later_import_of_a_name_replaces_the_earlier() -> None:
    memory = remembered("import json as codec", "import pickle as codec")
    assert run(compile_cell("codec.__name__", {}, imports=memory)) == "pickle"


def test_unknown_names_stay_missing() -> None:
    program = compile_cell("undefined_name", {}, imports=remembered("import json"))
    assert program.missing == ("undefined_name",)


def test_a_failing_replayed_import_points_at_the_magic_line() -> None:
    memory = remembered("import wool_no_such_module as gone")
    program = compile_cell("gone", {}, filename="<cell>", first_line=2, imports=memory)
    with pytest.raises(ModuleNotFoundError) as failure:
        run(program)
    tb = failure.value.__traceback__
    cell_lines = []
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<cell>":
            cell_lines.append(tb.tb_lineno)
        tb = tb.tb_next
    assert cell_lines == [1]


def test_magics_remember_imports_between_cells(loaded: WoolMagics, shell: InteractiveShell) -> None:
    shell.run_line_magic("wool", "start")
    shell.run_cell_magic("wool", "", "import json\njson.dumps(0)")
    assert "json" not in shell.user_ns
    assert shell.run_cell_magic("wool", "", "json.dumps({'a': 1})") == json.dumps({"a": 1})
    assert "json" in loaded.imports
