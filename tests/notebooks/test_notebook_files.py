"""The notebooks as stored: valid, outputs cleared, and the Binder files that open them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import nbformat
import pytest
from notebook_support import NOTEBOOKS, ROOT, notebook_paths
from packaging.specifiers import SpecifierSet

BINDER_URL = re.compile(
    r"https://mybinder\.org/v2/gh/(?P<repo>[\w.-]+/[\w.-]+)/HEAD\?urlpath=lab/tree/(?P<path>\S+?)\)"
)


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda path: path.stem)
def test_notebook_is_stored_clean(path: Path) -> None:
    """Valid nbformat 4, no outputs, no execution counts, no saved widget state."""
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: clear the outputs of cells {dirty} before committing"
    assert "widgets" not in notebook.metadata, f"{path.name}: saved widget state"
    assert notebook.metadata.kernelspec.name == "python3"


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda path: path.stem)
def test_notebook_explains_itself(path: Path) -> None:
    """Opens with a markdown title, and has more prose cells than just that one."""
    notebook = nbformat.read(path, as_version=4)
    first = notebook.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert sum(cell.cell_type == "markdown" for cell in notebook.cells) >= 3


LOCAL = [p for p in notebook_paths() if p.stem != "multihost"]


@pytest.mark.parametrize("path", LOCAL, ids=lambda path: path.stem)
def test_notebook_starts_a_small_mesh_and_stops_it(path: Path) -> None:
    """Two workers fit on Binder and on CI; the last code cell stops them."""
    notebook = nbformat.read(path, as_version=4)
    code = [cell.source.strip() for cell in notebook.cells if cell.cell_type == "code"]
    assert "%load_ext wool" in code
    assert "%wool start -n 2" in code
    assert code[-1] == "%wool stop"


def test_the_multihost_notebook_connects_and_disconnects() -> None:
    """Its workers are separate ``wool worker`` processes: it connects to them, then leaves."""
    notebook = nbformat.read(NOTEBOOKS / "multihost.ipynb", as_version=4)
    code = [cell.source.strip() for cell in notebook.cells if cell.cell_type == "code"]
    assert "%load_ext wool" in code
    connects = re.compile(r'%wool connect |run_line_magic\(\s*"wool",\s*f?"connect ')
    assert any(connects.search(cell) for cell in code)
    assert "%wool disconnect" in code


def test_binder_installs_this_repository_with_its_jupyter_extras() -> None:
    """repo2docker runs ``pip install -r binder/requirements.txt`` from the repository root."""
    lines = [
        line.split("#", 1)[0].strip()
        for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    ]
    requirements = [line for line in lines if line]
    assert requirements == [".[jupyter]"]


def test_binder_python_satisfies_the_project() -> None:
    """repo2docker's default Python is older than ours, so runtime.txt must pin one."""
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-(\d+\.\d+)", runtime)
    assert match, f"binder/runtime.txt should read python-X.Y, not {runtime!r}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert SpecifierSet(project["requires-python"]).contains(match[1] + ".0")


def test_readme_binder_link_opens_the_quickstart_in_jupyterlab() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "https://mybinder.org/badge_logo.svg" in readme
    links = list(BINDER_URL.finditer(readme))
    assert links, "no mybinder.org link in README.md"
    for link in links:
        assert link["path"] == "notebooks/quickstart.ipynb"
        assert (ROOT / link["path"]).is_file()
    assert (NOTEBOOKS / "quickstart.ipynb").is_file()
