"""wool_jupyter uses wool's public API, plus the one declared exception (the starting hook)."""

from __future__ import annotations

import ast
import pathlib

import wool_jupyter

ALLOWED_PRIVATE = {"wool.mesh.context"}  # set_starting: calls wait for a mesh still starting


def test_wool_jupyter_imports_nothing_private_from_wool() -> None:
    found: set[str] = set()
    for path in pathlib.Path(wool_jupyter.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module in ALLOWED_PRIVATE:
                    continue
                # ``from wool.mesh import context`` imports the module wool.mesh.context.
                names = [f"{node.module}.{a.name}" for a in node.names]
                if node.module == "wool":
                    continue
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name.startswith("wool.") and name not in ALLOWED_PRIVATE:
                    found.add(f"{path.name}: {name}")
    assert not found, f"wool_jupyter reaches past wool's public API: {sorted(found)}"
