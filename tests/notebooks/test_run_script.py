"""``notebooks/run.py``: prints what each cell showed; exits non-zero when a cell fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from notebook_support import NOTEBOOKS

SCRIPT = NOTEBOOKS / "run.py"


def write_notebook(path: Path, *sources: str) -> Path:
    cells = [new_markdown_cell("# a test notebook")]
    cells += [new_code_cell(source) for source in sources]
    nbformat.write(new_notebook(cells=cells), path)
    return path


def run_script(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.mark.jupyter
def test_prints_each_cells_text_and_exits_zero(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "fine.ipynb",
        "import os\nprint('hello from', 'the kernel')\n6 * 7",
        "import sys\nprint('to stderr', file=sys.stderr)",
        "os.getcwd()",
    )
    done = run_script(notebook)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "hello from the kernel" in out and "| 42" in out and "to stderr" in out
    assert repr(str(tmp_path)) in out, "the kernel should run in the notebook's folder"
    assert "ran 3 code cells" in out
    stored = nbformat.read(notebook, as_version=4)
    assert not any(cell.get("outputs") for cell in stored.cells), "run.py changed the notebook"


@pytest.mark.jupyter
def test_a_failing_cell_exits_non_zero_and_says_why(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "broken.ipynb", "print('before')", "1 / 0", "print('never reached')"
    )
    done = run_script(notebook, "--output", tmp_path / "executed.ipynb")
    assert done.returncode == 1
    assert "before" in done.stdout and "never reached" not in done.stdout
    assert "ZeroDivisionError" in done.stdout and "ZeroDivisionError" in done.stderr
    assert "FAILED" in done.stderr
    executed = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    assert executed.cells[2].outputs[0].ename == "ZeroDivisionError"


@pytest.mark.jupyter
def test_a_cell_past_its_timeout_fails(tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "slow.ipynb", "import time\ntime.sleep(30)")
    done = run_script(notebook, "--timeout", "1")
    assert done.returncode == 1
    assert "timed out" in done.stderr.lower() or "timeout" in done.stderr.lower()


def test_a_missing_notebook_is_a_usage_error(tmp_path: Path) -> None:
    done = run_script(tmp_path / "nope.ipynb")
    assert done.returncode == 2 and "no such notebook" in done.stderr
