"""The original ``wool`` from PyPI on the peer workloads, in a virtualenv of its own.

It shares our import name, so it cannot be installed beside this project; its documented
API (``@wool.routine``, ``async with wool.WorkerPool(spawn=N)``, nested routines awaited
inside routines) is the same one :class:`run_wool.WoolAdapter` drives.
"""

from __future__ import annotations

import workload
from run_wool import WoolAdapter


class WoolPypiAdapter(WoolAdapter):
    """``wool`` from PyPI: ``WorkerPool(spawn=2)``, routines in ``wool_routines.py``."""

    name = "wool-pypi"


ADAPTERS = {"wool-pypi": WoolPypiAdapter}

if __name__ == "__main__":
    workload.main(ADAPTERS)
