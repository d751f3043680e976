"""Put ``%%wool`` cells and ``%wool`` lines onto the kernel's running event loop.

IPython magics are synchronous functions. In ipykernel a cell runs as a task on
the kernel's asyncio loop, so a magic can neither ``await`` nor start a loop of
its own (``asyncio.run`` and ``run_until_complete`` fail while that loop runs),
and blocking until remote work finishes would freeze the loop that the work and
the widgets depend on.

What does run on that loop is a cell containing a top-level ``await``:
ipykernel asks ``shell.should_run_async`` about the *transformed* cell text and,
when it is true, awaits ``shell.run_cell_async`` on the kernel loop itself. So
before IPython turns magics into ``get_ipython().run_cell_magic(...)`` calls,
these transformers rewrite

* a cell whose first line is ``%%wool ARGS`` into the single statement
  ``await <magics>.wool_cell_async('ARGS', 'BODY')``, and
* a line ``%wool ARGS`` that starts at column 0 (a top-level statement) into
  ``await <magics>.wool_line_async('ARGS')``,

where ``<magics>`` is ``get_ipython().find_cell_magic('wool').__self__`` (or
``find_line_magic``), the registered :class:`~wool_jupyter.magics.WoolMagics`.
The ``await`` is the cell's last expression, so IPython displays its value as
the cell's result; a trailing ``;`` on the body is carried over to keep the
usual way of silencing that. A body that is not valid for ``%%wool`` raises its
``SyntaxError`` here, during transformation, which IPython shows without any
traceback, like a syntax error in an ordinary cell. The same rewrite makes
``%%wool`` work in terminal IPython, where ``shell.loop_runner`` runs the await.

Nothing is rewritten while ``%autoawait`` is off (top-level ``await`` would be a
syntax error), nor for ``%wool`` lines nested in a block, nor in the cell that
runs ``%load_ext wool`` (IPython transformed it before these transformers
existed); those reach the synchronous magics, which work there too (see
:mod:`wool_jupyter.magics`).

The cell transformer is a cleanup transformer marked ``has_side_effects`` so
``check_complete`` skips it: IPython then keeps treating ``%%wool`` input as an
unfinished cell magic until a blank line, as for any cell magic. The line
transformer is a token transformer, so ``%wool`` inside strings is left alone.
"""

import re
import tokenize
from typing import ClassVar

from IPython.core.displayhook import DisplayHook
from IPython.core.inputtransformer2 import (
    TokenTransformBase,
    assemble_continued_line,
    find_end_of_continued_line,
)
from IPython.core.interactiveshell import InteractiveShell

from wool_jupyter.cells import check_cell

__all__ = [
    "MAGIC_NAME",
    "CellMagicAwait",
    "LineMagicAwait",
    "cache_cell_source",
    "line_magic_transformer",
]

MAGIC_NAME = "wool"
_CELL_HANDLE = f"get_ipython().find_cell_magic({MAGIC_NAME!r}).__self__"
_LINE_HANDLE = f"get_ipython().find_line_magic({MAGIC_NAME!r}).__self__"
_CELL_HEADER = re.compile(rf"%%{MAGIC_NAME}(?:[ \t]+(?P<args>.*?))?[ \t]*\r?\n?\Z")


class CellMagicAwait:
    """Cleanup transformer turning a ``%%wool`` cell into a top-level ``await``."""

    has_side_effects = True

    def __init__(self, shell: InteractiveShell) -> None:
        self.shell = shell

    def __call__(self, lines: list[str]) -> list[str]:
        if not lines or not self.shell.autoawait:
            return lines
        header = _CELL_HEADER.match(lines[0])
        if header is None:
            return lines
        args = header.group("args") or ""
        body = "".join(lines[1:])
        check_cell(body, filename=cache_cell_source(self.shell, args, body), first_line=2)
        call = f"await {_CELL_HANDLE}.wool_cell_async({args!r}, {body!r})"
        if _ends_with_semicolon(body):
            call += ";"
        return [call + "\n"]


class LineMagicAwait(TokenTransformBase):
    """Token transformer turning a top-level ``%wool ...`` line into an ``await``.

    Use :func:`line_magic_transformer` to get a subclass bound to a shell.
    """

    # Between HelpEnd (5), which must win for ``%wool?``, and EscapedCommand (10).
    priority = 7
    shell: ClassVar[InteractiveShell | None] = None

    @classmethod
    def find(cls, tokens_by_line: list[list[tokenize.TokenInfo]]) -> "LineMagicAwait | None":
        if cls.shell is None or not cls.shell.autoawait:
            return None
        for line in tokens_by_line:
            start = _wool_line_start(line)
            if start is not None:
                return cls(start)
        return None

    def transform(self, lines: list[str]) -> list[str]:
        end = find_end_of_continued_line(lines, self.start_line)
        text = assemble_continued_line(lines, (self.start_line, 0), end)
        args = text[1:].partition(" ")[2]
        call = f"await {_LINE_HANDLE}.wool_line_async({args!r})\n"
        return [*lines[: self.start_line], call, *lines[end + 1 :]]


def cache_cell_source(shell: InteractiveShell, args: str, body: str) -> str:
    """Register the ``%%wool`` cell's text for tracebacks; returns the filename to compile with.

    Uses the shell's own cell cache, so tracebacks label the frames
    ``Cell In[N], line L`` with ``L`` counted from the ``%%wool`` line.
    """
    text = f"%%{MAGIC_NAME} {args}".rstrip() + "\n" + body
    return shell.compile.cache(text, shell.execution_count, raw_code=text)


def line_magic_transformer(shell: InteractiveShell) -> type[LineMagicAwait]:
    """A :class:`LineMagicAwait` subclass that consults ``shell`` for ``autoawait``."""
    return type("WoolLineMagicAwait", (LineMagicAwait,), {"shell": shell})


def _wool_line_start(line: list[tokenize.TokenInfo]) -> tuple[int, int] | None:
    tokens = [t for t in line if t.type not in (tokenize.INDENT, tokenize.DEDENT)]
    if len(tokens) < 2:
        return None
    escape, name = tokens[0], tokens[1]
    if escape.string != "%" or escape.start[1] != 0:
        return None
    if name.type != tokenize.NAME or name.string != MAGIC_NAME:
        return None
    if name.start != (escape.start[0], 1):
        return None
    if len(line) > 2 and line[-2].string == "?":
        return None
    return escape.start


def _ends_with_semicolon(body: str) -> bool:
    try:
        return DisplayHook.semicolon_at_end_of_expression(body)
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return False
