"""What Binder would build runs the quickstart.

repo2docker installs ``binder/requirements.txt`` with pip from the repository
root into the environment the kernel runs in. This test does the same in a
fresh virtualenv (reusing pip's download cache, unlike Binder), then runs the
quickstart on a kernel started from that virtualenv's interpreter.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from notebook_support import NOTEBOOKS, ROOT, assert_no_workers_left, outputs_of, runner

INSTALL_TIMEOUT = 720.0
CELL_TIMEOUT = 90.0


def clean_env() -> dict[str, str]:
    """This environment minus what would leak the outer interpreter into the virtualenv."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_NO_CACHE_DIR", "PIP_TARGET"):
        env.pop(name, None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def run(command: list[str], *, timeout: float, **kwargs: object) -> str:
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.mark.jupyter
@pytest.mark.timeout(900)
def test_binder_requirements_run_the_quickstart(tmp_path: Path) -> None:
    env = clean_env()
    started = time.perf_counter()
    venv = tmp_path / "binder-venv"
    run([sys.executable, "-m", "venv", str(venv)], timeout=120, env=env)
    python = str(venv / "bin" / "python")
    run(
        [python, "-m", "pip", "install", "--quiet", "-r", "binder/requirements.txt"],
        timeout=INSTALL_TIMEOUT,
        cwd=ROOT,  # as repo2docker does: "." in the file is the repository root
        env=env,
    )
    installed = time.perf_counter()

    where = run(
        [python, "-c", "import wool, wool_jupyter, ipykernel, ipywidgets; print(wool.__file__)"],
        timeout=60,
        cwd=NOTEBOOKS,
        env=env,
    )
    assert Path(where.strip()).is_relative_to(venv), "wool should come from the virtualenv"

    result = asyncio.run(
        runner.execute(NOTEBOOKS / "quickstart.ipynb", python=python, timeout=CELL_TIMEOUT, env=env)
    )
    try:
        if not result.ok:
            pytest.fail(f"{result.error}\n\nwhat ran:\n{runner.summarize(result.notebook)}")
        assert outputs_of(result.notebook, "await square(7)") == "49"
    finally:
        assert_no_workers_left(result.kernel_pid)
    finished = time.perf_counter()
    print(
        f"\nbinder simulation: install {installed - started:.1f}s, "
        f"quickstart {finished - installed:.1f}s, total {finished - started:.1f}s"
    )
