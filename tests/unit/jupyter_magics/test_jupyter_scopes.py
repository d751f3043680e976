"""Which names a cell reads from outside itself (wool_jupyter._scopes)."""

import ast
import textwrap

import pytest

from wool_jupyter._scopes import analyze_cell


def reads(source: str) -> list[str]:
    return list(analyze_cell(ast.parse(textwrap.dedent(source))).reads)


def bound(source: str) -> set[str]:
    return analyze_cell(ast.parse(textwrap.dedent(source))).bound


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a + b", ["a", "b"]),
        ("x = 1\nx + y", ["y"]),
        ("x = x + 1", ["x"]),
        ("x += 1", ["x"]),
        ("x[0] = 1", ["x"]),
        ("x.attr = 1", ["x"]),
        ("del x", ["x"]),
        ("x = 1\ndel x\nx", ["x"]),
        ("import os\nos.getpid()", []),
        ("import os.path\nos.path", []),
        ("from os import path as p\np.join", []),
        ("for i in items:\n    total = i\ntotal", ["items", "total"]),
        ("with open(f) as handle:\n    handle.read()", ["open", "f"]),
        ("x: int\nx", ["x"]),
        ("x: Annotation = 1\nx", []),
        ("f'{value!r:>{width}}'", ["value", "width"]),
    ],
)
def test_straight_line_reads(source: str, expected: list[str]) -> None:
    assert reads(source) == expected


def test_reads_are_in_source_order() -> None:
    assert reads("c\nb = a\na = b\nz") == ["c", "a", "z"]


def test_comprehension_variables_are_not_reads() -> None:
    assert reads("[x * k for x in data if x > t]") == ["k", "data", "t"]
    assert reads("{k: v for k, v in pairs}") == ["pairs"]
    assert reads("[y for x in rows for y in x]") == ["rows"]
    assert reads("(n for n in range(limit))") == ["range", "limit"]


def test_comprehension_walrus_binds_in_the_cell() -> None:
    assert reads("[last := v for v in values]\nlast") == ["values"]
    assert "last" in bound("[last := v for v in values]")


def test_walrus_in_a_condition_binds_for_the_body() -> None:
    assert reads("if (n := len(items)) > 1:\n    print(n)") == ["len", "items", "print"]


def test_lambda_parameters_are_local_and_defaults_are_read() -> None:
    assert reads("f = lambda a, *rest, b=default, **kw: a + b + scale") == ["default", "scale"]


def test_nested_function_scope() -> None:
    source = """
    def outer(a, b=fallback):
        local = a + b + free
        def inner():
            return local + deeper
        return inner
    outer(1)
    """
    assert reads(source) == ["fallback", "free", "deeper"]
    assert "outer" in bound(source)


def test_function_decorators_and_annotations_are_read() -> None:
    assert reads("@decorate\ndef f(x: In) -> Out:\n    return x") == ["decorate", "In", "Out"]


def test_recursive_function_reads_itself_only_if_unbound_at_definition() -> None:
    # The body runs later, but the name is passed when the notebook has one: safe.
    assert reads("def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)") == ["fact"]


def test_nonlocal_in_nested_function_resolves_through_the_enclosing_function() -> None:
    source = """
    def counter():
        count = 0
        def bump():
            nonlocal count
            count += 1
            return count
        return bump
    """
    assert reads(source) == []


def test_class_scope_is_invisible_to_methods() -> None:
    source = """
    class Thing(Base, metaclass=Meta):
        size = default_size
        doubled = size * 2
        def method(self):
            return size + helper
    """
    assert reads(source) == ["Base", "Meta", "default_size", "size", "helper"]


def test_conditional_binding_is_conservative() -> None:
    assert reads("if flag:\n    x = 1\nx") == ["flag", "x"]
    assert reads("if flag:\n    x = 1\nelse:\n    x = 2\nx") == ["flag"]
    assert reads("while more():\n    x = 1\nx") == ["more", "x"]


def test_try_fallback_binds_on_every_path() -> None:
    source = """
    try:
        import numpy as np
    except ImportError:
        np = None
    np
    """
    assert reads(source) == ["ImportError"]


def test_exception_name_is_unbound_after_the_handler() -> None:
    assert reads("try:\n    pass\nexcept E as err:\n    err\nerr") == ["E", "err"]


def test_match_captures_bind_in_their_case() -> None:
    source = """
    match command:
        case Point(x=px, y=0):
            px
        case [first, *rest]:
            first + rest
        case {"k": v, **others}:
            v, others
        case Color.RED:
            pass
    """
    assert reads(source) == ["command", "Point", "Color"]


def test_names_bound_anywhere_are_recorded() -> None:
    assert bound("import os\nx = 1\ndef f(): pass\nclass C: pass\nfor i in y: pass") == {
        "os",
        "x",
        "f",
        "C",
        "i",
    }
