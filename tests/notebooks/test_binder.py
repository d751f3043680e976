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
import urllib.request
from pathlib import Path

import pytest
from notebook_support import NOTEBOOKS, ROOT, assert_no_workers_left, outputs_of, runner

INSTALL_TIMEOUT = 720.0
CELL_TIMEOUT = 90.0
INDEX_CHECK_TIMEOUT = 5.0
DEFAULT_INDEX = "https://pypi.org/simple/"


def index_url() -> str:
    """The index pip installs from here: ``PIP_INDEX_URL``, pip's config, or PyPI."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"].split()[0]
    found = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    configured = found.stdout.strip() if found.returncode == 0 else ""
    return configured or DEFAULT_INDEX


def index_unreachable(url: str) -> str | None:
    """Why ``url`` cannot be reached within :data:`INDEX_CHECK_TIMEOUT` seconds, or None."""
    if url.startswith("file:"):
        return None
    try:
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=INDEX_CHECK_TIMEOUT):
            return None
    except OSError as error:  # URLError, timeouts and refused connections alike
        return f"{type(error).__name__}: {error}"


@pytest.fixture
def package_index() -> str:
    """The package index, checked reachable; offline runs skip saying why, CI always runs."""
    url = index_url()
    if os.environ.get("CI") == "true":
        return url
    why = index_unreachable(url)
    if why is not None:
        pytest.skip(
            f"the Binder test installs binder/requirements.txt from {url}, which is "
            f"unreachable ({why}); CI=true runs it regardless"
        )
    return url


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
@pytest.mark.network
@pytest.mark.timeout(900)
def test_binder_requirements_run_the_quickstart(tmp_path: Path, package_index: str) -> None:
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
