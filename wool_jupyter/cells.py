"""Turn the body of a ``%%wool`` cell into a function the runtime can ship.

A cell becomes one ``async def`` whose body is the cell, so top-level
``await``, ``async for`` and ``async with`` work as they do in a notebook. The
value of the cell's final expression statement is the function's return value.

The names the cell reads from the notebook become keyword-only parameters and
their current values are captured in :attr:`CellProgram.arguments`. The
function's globals contain only ``__name__`` (``"__main__"``) and
``__builtins__``, so serialising it by value (``dill.dumps(fn, recurse=True)``)
carries the cell's code and nothing of the notebook beyond those arguments.

Code objects keep the cell's filename and line numbers, so tracebacks raised
anywhere the function runs point at the lines of the cell. This module does not
touch :mod:`linecache`; callers that want source lines in tracebacks register
the cell text under the filename themselves.
"""

import ast
import builtins
import textwrap
import warnings
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wool_jupyter._scopes import analyze_cell
from wool_jupyter.imports import ImportMemory, top_level_imports

__all__ = ["CELL_FUNCTION_NAME", "CellProgram", "check_cell", "compile_cell"]

CELL_FUNCTION_NAME = "wool_cell"
"""``__name__`` of every compiled cell function; tracebacks show it as the frame name."""

_FUTURE = "__future__"


@dataclass(frozen=True)
class CellProgram:
    """A compiled cell, ready to ship.

    Calling ``function(**arguments)`` returns a coroutine that runs the cell
    and resolves to the value of its last expression, or ``None``.
    """

    function: Callable[..., Coroutine[Any, Any, object]]
    """Plain ``async def`` function; ``__module__`` is ``"__main__"``."""
    arguments: dict[str, object]
    """Values of the notebook names the cell reads, keyed by parameter name."""
    missing: tuple[str, ...]
    """Names the cell reads that neither the notebook, builtins nor the cell define.

    They are left alone: reading one raises ``NameError`` where the cell runs.
    """
    filename: str = "<wool-cell>"
    """Filename the code objects carry."""
    source: str = ""
    """The cell text as given to :func:`compile_cell`."""
    replayed: tuple[str, ...] = ()
    """Names bound by imports of earlier cells that the function runs first."""
    imports: dict[str, list[ast.stmt]] = field(default_factory=dict)
    """This cell's own top-level imports (see :func:`~wool_jupyter.imports.top_level_imports`)."""


def compile_cell(
    source: str,
    namespace: Mapping[str, object],
    *,
    filename: str = "<wool-cell>",
    first_line: int = 1,
    imports: ImportMemory | None = None,
) -> CellProgram:
    """Compile a cell body against the notebook ``namespace``.

    ``first_line`` is the line number the first line of ``source`` has in the
    cell as the user sees it (``2`` when a ``%%wool`` line precedes the body);
    every line number in errors and tracebacks is counted that way.

    Values are read from ``namespace`` once, now. A name from ``namespace``
    that shadows a builtin is passed like any other; a name whose value *is*
    the builtin of that name is not passed.

    A name nothing defines that an earlier cell imported (per ``imports``)
    is bound by running that import first, placed on the line before
    ``first_line`` (the ``%%wool`` line). ``imports`` is only read; record the
    returned program's :attr:`~CellProgram.imports` in it to extend it.

    Raises ``SyntaxError`` (with ``filename`` and cell line numbers) when the
    cell does not parse, when it would not compile as a notebook cell, or when
    it uses ``return``, ``yield`` or ``nonlocal`` at its top level, ``global``
    anywhere, or ``from ... import *``.
    """
    module = _parse_checked(source, filename, first_line)
    use = analyze_cell(module)
    visible = vars(builtins)
    arguments: dict[str, object] = {}
    missing: list[str] = []
    for name in use.reads:
        if name == "__debug__":
            continue
        if name in namespace:
            value = namespace[name]
            if not (name in visible and visible[name] is value):
                arguments[name] = value
        elif name not in visible and name not in use.bound:
            missing.append(name)

    prelude: list[ast.stmt] = []
    replayed: list[str] = []
    if imports is not None and missing:
        replayed = [name for name in missing if name in imports]
        prelude = imports.replay(replayed, max(1, first_line - 1))
        missing = [name for name in missing if name not in replayed]

    function = _build_function(module, list(arguments), filename, first_line, prelude)
    return CellProgram(
        function=function,
        arguments=arguments,
        missing=tuple(missing),
        filename=filename,
        source=source,
        replayed=tuple(replayed),
        imports=top_level_imports(module),
    )


def check_cell(source: str, *, filename: str = "<wool-cell>", first_line: int = 1) -> None:
    """Raise the ``SyntaxError`` :func:`compile_cell` would raise for ``source``, if any.

    Needs no namespace, so it can run before the cell does (IPython shows a
    ``SyntaxError`` raised while transforming input without any traceback).
    """
    _parse_checked(source, filename, first_line)


def _parse_checked(source: str, filename: str, first_line: int) -> ast.Module:
    if first_line < 1:
        raise ValueError(f"first_line must be at least 1, got {first_line}")
    padded = "\n" * (first_line - 1) + textwrap.dedent(source)
    with warnings.catch_warnings():
        # Compile-time warnings are left to the one real compile in _build_function.
        warnings.simplefilter("ignore")
        module = ast.parse(padded, filename, mode="exec")
        _reject_unsupported(module, filename, padded)
        _check_compiles_as_cell(module, filename)
    return module


def _reject_unsupported(module: ast.Module, filename: str, padded: str) -> None:
    lines = padded.splitlines()
    for node in ast.walk(module):
        if isinstance(node, ast.Global):
            raise _syntax_error(
                "'global' is not supported in a %%wool cell: the cell runs in another "
                "process and cannot rebind notebook variables; return a value instead",
                node,
                filename,
                lines,
            )
        if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
            raise _syntax_error(
                "'from ... import *' is not supported in a %%wool cell; "
                "import the names the cell uses",
                node,
                filename,
                lines,
            )
    forbidden = [n for n in _top_level_nodes(module) if type(n) in _TOP_LEVEL_FORBIDDEN]
    if forbidden:
        node = min(forbidden, key=lambda n: (n.lineno, n.col_offset))  # type: ignore[attr-defined]
        keyword = _TOP_LEVEL_FORBIDDEN[type(node)]
        hint = _TOP_LEVEL_HINTS.get(keyword, "")
        raise _syntax_error(
            f"'{keyword}' is not allowed at the top level of a %%wool cell{hint}",
            node,
            filename,
            lines,
        )


_TOP_LEVEL_FORBIDDEN: dict[type[ast.AST], str] = {
    ast.Return: "return",
    ast.Yield: "yield",
    ast.YieldFrom: "yield from",
    ast.Nonlocal: "nonlocal",
}
_TOP_LEVEL_HINTS = {
    "return": "; the value of the cell's last expression is its result",
}
_NESTED_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def _top_level_nodes(module: ast.Module) -> list[ast.AST]:
    """Every node of the cell that does not sit inside a def, lambda or class body."""
    found: list[ast.AST] = []
    pending: list[ast.AST] = list(module.body)
    while pending:
        node = pending.pop()
        found.append(node)
        if not isinstance(node, _NESTED_SCOPES):
            pending.extend(ast.iter_child_nodes(node))
    return found


def _syntax_error(message: str, node: ast.AST, filename: str, lines: list[str]) -> SyntaxError:
    line: int = getattr(node, "lineno", 1)
    column: int = getattr(node, "col_offset", 0)
    text = lines[line - 1] if 0 < line <= len(lines) else None
    end_line = getattr(node, "end_lineno", None) or line
    end_column = (getattr(node, "end_col_offset", None) or column) + 1
    return SyntaxError(message, (filename, line, column + 1, text, end_line, end_column))


def _check_compiles_as_cell(module: ast.Module, filename: str) -> None:
    """Raise the ``SyntaxError`` the same code would raise as an ordinary notebook cell."""
    compile(module, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)


def _build_function(
    module: ast.Module,
    parameters: list[str],
    filename: str,
    first_line: int,
    prelude: Sequence[ast.stmt] = (),
) -> Callable[..., Coroutine[Any, Any, object]]:
    body = list(module.body)
    futures = [node for node in body if _is_future_import(node)]
    body = [node for node in body if not _is_future_import(node)]
    if body and isinstance(body[-1], ast.Expr):
        body[-1] = ast.copy_location(ast.Return(value=body[-1].value), body[-1])
    body = [*prelude, *body]

    signature = f"*, {', '.join(parameters)}" if parameters else ""
    template = ast.parse(f"async def {CELL_FUNCTION_NAME}({signature}):\n    pass\n")
    wrapper = template.body[0]
    assert isinstance(wrapper, ast.AsyncFunctionDef)
    def_line = body[0].lineno if body else first_line
    for node in ast.walk(wrapper):
        if isinstance(node, ast.expr | ast.stmt | ast.arg):
            node.lineno = node.end_lineno = def_line
    wrapper.body = body or [ast.copy_location(ast.Pass(), wrapper)]

    code = compile(
        ast.Module(body=[*futures, wrapper], type_ignores=[]),
        filename,
        "exec",
        dont_inherit=True,
    )
    scope: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    exec(code, scope)
    return scope.pop(CELL_FUNCTION_NAME)


def _is_future_import(node: ast.stmt) -> bool:
    return isinstance(node, ast.ImportFrom) and node.module == _FUTURE
