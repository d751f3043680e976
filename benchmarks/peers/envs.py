"""Each peer system's own virtualenv under the scratch directory, with pinned versions.

:func:`ensure` creates ``<scratch>/<name>`` with ``python -m venv`` and installs
:data:`PINS` from PyPI with pip; a stamp file holding the pins makes later runs skip the
install while the pins are unchanged. ``ipykernel`` is in every system's environment so
the kernel measurement can start a kernel from it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: Pinned requirements per virtualenv (every pin installs on CPython 3.11, Linux x86-64).
PINS: dict[str, list[str]] = {
    "ray": ["ray==2.60.0", "ipykernel==7.4.0"],
    "dask": ["dask==2026.8.0", "distributed==2026.8.0", "ipykernel==7.4.0"],
    "ipyparallel": ["ipyparallel==9.2.0", "ipykernel==7.4.0"],
    "wool-pypi": ["wool==0.15.7", "ipykernel==7.4.0"],
    "charts": ["matplotlib==3.11.2"],
}
#: Bound on creating one virtualenv and installing into it (ray is a large download).
INSTALL_TIMEOUT = 1800.0
STAMP = ".peers-pins"


def scratch_dir() -> Path:
    """``$WOOL_PEERS_DIR``, else ``/tmp/wool-peers``."""
    return Path(os.environ.get("WOOL_PEERS_DIR") or "/tmp/wool-peers")


def python_of(name: str, root: Path) -> Path:
    """The interpreter of virtualenv ``name`` under ``root``."""
    return root / name / "bin" / "python"


def ensure(name: str, root: Path) -> Path:
    """Create virtualenv ``name`` with its pins installed, unless it already has them."""
    venv = root / name
    python = python_of(name, root)
    stamp = venv / STAMP
    wanted = "\n".join(PINS[name]) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    root.mkdir(parents=True, exist_ok=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    print(f"installing {' '.join(PINS[name])} into {venv}", flush=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        + PINS[name],
        check=True,
        timeout=INSTALL_TIMEOUT,
    )
    stamp.write_text(wanted)
    return python
