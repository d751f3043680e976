"""Real-kernel fixtures: one kernel with a running mesh shared per module, fresh ones on demand.

Every kernel is torn down by PID, and each fixture fails its test if a wool
worker that kernel spawned is still alive afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kernel_harness import WORKERS, Kernel


def _finish(kernel: Kernel) -> None:
    survivors = kernel.close()
    assert not survivors, f"wool workers outlived kernel {sorted(kernel.kernels)}: {survivors}"


@pytest.fixture
def new_kernel(tmp_path: Path) -> Iterator[Callable[[], Kernel]]:
    """Start kernels for one test; each is stopped and checked for orphans afterwards."""
    kernels: list[Kernel] = []

    def start() -> Kernel:
        kernel = Kernel(tmp_path)
        kernels.append(kernel)
        return kernel.start()

    yield start
    for kernel in kernels:
        _finish(kernel)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    """A kernel with the extension loaded and ``%wool start -n 2`` done, shared by a module."""
    shared = Kernel(tmp_path_factory.mktemp("kernel")).start()
    try:
        shared.run("%load_ext wool")
        shared.run(f"%wool start -n {WORKERS}")
        shared.run("import asyncio, os, sys, time, wool")
        yield shared
    finally:
        _finish(shared)
