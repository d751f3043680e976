"""Imports made by earlier ``%%wool`` cells, replayed where later cells need them.

A ``%%wool`` cell runs on a worker, so ``import os`` in it binds ``os`` there,
not in the notebook. Notebook users still expect the next ``%%wool`` cell to
see ``os``. :class:`ImportMemory` keeps the kernel-side record that makes this
work: the import statements at the top level of each ``%%wool`` cell, one per
bound name, as source. When a later cell reads a name that neither the
notebook, the builtins nor the cell itself define, and an earlier cell
imported that name, the compiled cell starts by running that import again.

Replaying the statement rather than shipping the module keeps the module by
reference: the kernel never imports it (it may exist only where workers
run), and the worker imports it the way the user wrote it, which costs a
dictionary lookup once ``sys.modules`` has it. Only statements directly at a
cell's top level are remembered; an import inside ``if``/``try``/``with`` or a
function is conditional, so replaying it on its own could do what the cell
never did. A later import of the same name replaces the earlier one, as
rebinding would in one namespace; notebook variables always win, because a
name the notebook defines is passed as a value and never looked up here.
"""

import ast
import copy
from collections.abc import Iterable

__all__ = ["ImportMemory", "top_level_imports"]


def top_level_imports(module: ast.Module) -> dict[str, list[ast.stmt]]:
    """Each name bound by an import statement at the top level of ``module``.

    Maps the bound name to single-name import statements, in source order;
    ``import a.b, a.c`` gives ``{"a": [import a.b, import a.c]}``, since both
    are needed for ``a.b`` and ``a.c`` to work. ``from __future__`` and
    ``from x import *`` are skipped.
    """
    found: dict[str, list[ast.stmt]] = {}
    for node in module.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.asname or alias.name.partition(".")[0]
                found.setdefault(name, []).append(ast.Import(names=[copy.copy(alias)]))
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            for alias in node.names:
                if alias.name == "*":
                    continue
                single = ast.ImportFrom(
                    module=node.module, names=[copy.copy(alias)], level=node.level
                )
                found.setdefault(alias.asname or alias.name, []).append(single)
    return found


class ImportMemory:
    """The import statements earlier ``%%wool`` cells made, keyed by the name they bind."""

    def __init__(self) -> None:
        self._statements: dict[str, list[ast.stmt]] = {}

    def remember(self, imports: dict[str, list[ast.stmt]]) -> None:
        """Record a cell's :func:`top_level_imports`; a name imported again is replaced."""
        for name, statements in imports.items():
            self._statements[name] = list(statements)

    def forget(self) -> None:
        self._statements.clear()

    def names(self) -> tuple[str, ...]:
        """Every name an earlier cell imported, oldest first."""
        return tuple(self._statements)

    def replay(self, names: Iterable[str], line: int) -> list[ast.stmt]:
        """Fresh copies of the statements binding ``names`` (unknown names are skipped).

        Every node is placed on ``line`` so an error raised by a replayed
        import points at one line of the cell instead of a line it lacks.
        """
        replayed: list[ast.stmt] = []
        seen: set[str] = set()
        for name in names:
            for statement in self._statements.get(name, ()):
                text = ast.unparse(statement)
                if text in seen:
                    continue
                seen.add(text)
                fresh = copy.deepcopy(statement)
                for node in ast.walk(fresh):
                    if isinstance(node, ast.stmt | ast.alias):
                        node.lineno = node.end_lineno = line
                        node.col_offset = node.end_col_offset = 0
                replayed.append(fresh)
        return replayed

    def __contains__(self, name: object) -> bool:
        return name in self._statements

    def __len__(self) -> int:
        return len(self._statements)
