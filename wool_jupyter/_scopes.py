"""Which names a ``%%wool`` cell reads from outside itself.

The cell body runs as the body of one ``async def``. A name read at the cell's
top level (or from a nested def, lambda, class or comprehension, which resolve
unknown names through the cell) must be passed in as a parameter whenever it
might still be unbound at the point of the read. The analysis is conservative:
when control flow makes it unclear whether the cell has already bound a name,
the name is reported as read. Passing a value that turns out to be unused is
harmless; failing to pass one would change the cell's meaning.

Dynamic lookups (``eval``, ``exec``, ``locals()``, ``globals()``) are invisible
to this analysis.
"""

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["NameUse", "analyze_cell"]

_ScopeKind = Literal["function", "class", "comprehension"]
_Read = tuple[str, int, int]


@dataclass
class NameUse:
    """Result of :func:`analyze_cell`.

    ``reads`` maps each name that may be read before the cell binds it to the
    ``(line, column)`` of its first such read, in source order. ``bound`` holds every name
    the cell binds anywhere at its own level.
    """

    reads: dict[str, tuple[int, int]] = field(default_factory=dict)
    bound: set[str] = field(default_factory=set)


class _Scope(ast.NodeVisitor):
    """Collects the loads and stores of one scope, treating nested scopes as units."""

    def __init__(self, kind: _ScopeKind) -> None:
        self.kind = kind
        self.loads: list[_Read] = []
        self.nested_loads: list[_Read] = []
        self.stores: set[str] = set()
        self.deletes: set[str] = set()
        self.declared: dict[str, tuple[int, int]] = {}
        # Targets of ``:=`` inside a comprehension bind in the enclosing scope.
        self.escaping_stores: set[str] = set()

    def free(self) -> list[_Read]:
        """Names this scope resolves through its enclosing scope, in order."""
        local = self.stores - self.declared.keys()
        declared = [(name, *where) for name, where in self.declared.items()]
        if self.kind == "class":
            own = [read for read in self.loads if read[0] not in local]
            return own + self.nested_loads + declared
        reads = self.loads + self.nested_loads
        return [read for read in reads if read[0] not in local] + declared

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.loads.append((node.id, node.lineno, node.col_offset))
        elif isinstance(node.ctx, ast.Store):
            self.stores.add(node.id)
        else:
            self.loads.append((node.id, node.lineno, node.col_offset))
            self.stores.add(node.id)
            self.deletes.add(node.id)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):
            target = node.target
            self.loads.append((target.id, target.lineno, target.col_offset))
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        # Annotations of variables are only evaluated in class bodies here:
        # every other scope in a cell is (part of) a function.
        if self.kind == "class":
            self.visit(node.annotation)
        self.visit(node.target)
        if node.value is not None:
            self.visit(node.value)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        if self.kind == "comprehension":
            self.escaping_stores.add(node.target.id)
        else:
            self.stores.add(node.target.id)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.stores.add(alias.asname or alias.name.partition(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self.stores.add(alias.asname or alias.name)

    def visit_Global(self, node: ast.Global) -> None:
        self._declare(node)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self._declare(node)

    def _declare(self, node: ast.Global | ast.Nonlocal) -> None:
        for name in node.names:
            self.declared.setdefault(name, (node.lineno, node.col_offset))

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.stores.add(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self.stores.add(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.stores.add(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self.stores.add(node.rest)
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._visit_all(node.decorator_list)
        self._visit_signature(node.args)
        for annotation in _annotations(node.args):
            self.visit(annotation)
        if node.returns is not None:
            self.visit(node.returns)
        self.stores.add(node.name)
        inner = _Scope("function")
        inner.stores.update(_parameters(node.args))
        inner._visit_all(node.body)
        self._absorb(inner)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_signature(node.args)
        inner = _Scope("function")
        inner.stores.update(_parameters(node.args))
        inner.visit(node.body)
        self._absorb(inner)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._visit_all(node.decorator_list)
        self._visit_all(node.bases)
        self._visit_all(node.keywords)
        self.stores.add(node.name)
        inner = _Scope("class")
        inner._visit_all(node.body)
        self._absorb(inner)

    def visit_ListComp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp) -> None:
        self._visit_comprehension(node.generators, [node.elt])

    visit_SetComp = visit_ListComp
    visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._visit_comprehension(node.generators, [node.key, node.value])

    def _visit_comprehension(
        self, generators: list[ast.comprehension], results: list[ast.expr]
    ) -> None:
        # The first iterable is evaluated in the enclosing scope; everything
        # else runs inside the comprehension's own scope.
        self.visit(generators[0].iter)
        inner = _Scope("comprehension")
        for index, generator in enumerate(generators):
            if index:
                inner.visit(generator.iter)
            inner.visit(generator.target)
            inner._visit_all(generator.ifs)
        inner._visit_all(results)
        self._absorb(inner)

    def _visit_signature(self, arguments: ast.arguments) -> None:
        self._visit_all(arguments.defaults)
        self._visit_all(default for default in arguments.kw_defaults if default is not None)

    def _visit_all(self, nodes: Iterable[ast.AST]) -> None:
        for node in nodes:
            self.visit(node)

    def _absorb(self, inner: "_Scope") -> None:
        self.nested_loads.extend(inner.free())
        if self.kind == "comprehension":
            self.escaping_stores |= inner.escaping_stores
        else:
            self.stores |= inner.escaping_stores


def _parameters(arguments: ast.arguments) -> set[str]:
    names = {a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)}
    names.update(a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None)
    return names


def _annotations(arguments: ast.arguments) -> list[ast.expr]:
    every = (
        *arguments.posonlyargs,
        *arguments.args,
        *arguments.kwonlyargs,
        *(a for a in (arguments.vararg, arguments.kwarg) if a is not None),
    )
    return [a.annotation for a in every if a.annotation is not None]


class _Flow:
    """Walks the cell's statements in execution order, tracking bound names."""

    def __init__(self) -> None:
        self.use = NameUse()

    def block(self, statements: list[ast.stmt], bound: set[str]) -> set[str]:
        for statement in statements:
            bound = self.statement(statement, bound)
        return bound

    def evaluate(self, nodes: Iterable[ast.AST | None], bound: set[str]) -> set[str]:
        """Record the reads of ``nodes`` (evaluated in order) and return what they bind."""
        scope = _Scope("function")
        for node in nodes:
            if node is not None:
                scope.visit(node)
        for name, line, column in scope.loads + scope.nested_loads:
            if name not in bound:
                self.use.reads.setdefault(name, (line, column))
        self.use.bound |= scope.stores
        return (bound | scope.stores) - scope.deletes

    def statement(self, node: ast.stmt, bound: set[str]) -> set[str]:
        match node:
            case ast.If(test=test, body=body, orelse=orelse):
                bound = self.evaluate([test], bound)
                return self.block(body, set(bound)) & self.block(orelse, set(bound))
            case ast.While(test=test, body=body, orelse=orelse):
                bound = self.evaluate([test], bound)
                self.block(body, set(bound))
                self.block(orelse, set(bound))
                return bound
            case (
                ast.For(target=target, iter=iterable, body=body, orelse=orelse)
                | ast.AsyncFor(target=target, iter=iterable, body=body, orelse=orelse)
            ):
                bound = self.evaluate([iterable], bound)
                self.block(body, self.evaluate([target], bound))
                self.block(orelse, set(bound))
                return bound
            case ast.With(items=items, body=body) | ast.AsyncWith(items=items, body=body):
                for item in items:
                    bound = self.evaluate([item.context_expr, item.optional_vars], bound)
                return self.block(body, bound)
            case (
                ast.Try(body=body, handlers=handlers, orelse=orelse, finalbody=final)
                | ast.TryStar(body=body, handlers=handlers, orelse=orelse, finalbody=final)
            ):
                before = set(bound)
                outcomes = [self.block(orelse, self.block(body, set(before)))]
                for handler in handlers:
                    entered = self.evaluate([handler.type], set(before))
                    if handler.name:
                        self.use.bound.add(handler.name)
                        entered = entered | {handler.name}
                    outcomes.append(self.block(handler.body, entered) - {handler.name or ""})
                after = set.intersection(*outcomes)
                return after | self.block(final, before)
            case ast.AnnAssign(target=ast.Name(id=name), value=None):
                # ``x: T`` makes ``x`` local without binding it.
                self.use.bound.add(name)
                return bound
            case ast.Match(subject=subject, cases=cases):
                bound = self.evaluate([subject], bound)
                for case in cases:
                    entered = self.evaluate([case.pattern, case.guard], set(bound))
                    self.block(case.body, entered)
                return bound
            case _:
                return self.evaluate([node], bound)


def analyze_cell(module: ast.Module) -> NameUse:
    """Find the names a cell reads from outside itself.

    ``module`` is the parsed cell. The result lists every name the cell might
    read before binding it, ordered by the position of its first such read.
    """
    flow = _Flow()
    flow.block(module.body, set())
    use = flow.use
    use.reads = dict(sorted(use.reads.items(), key=lambda item: item[1]))
    return use
