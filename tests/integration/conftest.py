"""Integration fixtures: real worker processes on loopback, and proof none outlives its test."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psutil
import pytest

import wool


def wool_workers() -> dict[int, psutil.Process]:
    """Worker processes descended from this test process."""
    found = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            if "wool.worker" in proc.cmdline():
                found[proc.pid] = proc
        except psutil.Error:
            continue
    return found


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def no_orphans() -> Iterator[None]:
    """Fail a test that leaves a worker it started running."""
    before = set(wool_workers())
    yield
    deadline = time.monotonic() + 10
    left = {pid: p for pid, p in wool_workers().items() if pid not in before}
    while left and time.monotonic() < deadline:
        _, alive = psutil.wait_procs(list(left.values()), timeout=0.1)
        left = {p.pid: p for p in alive}
    if left:
        for proc in left.values():
            proc.kill()
        pytest.fail(f"worker processes outlived the test: {sorted(left)}")


@pytest.fixture(scope="module")
def pool() -> Iterator[wool.WorkerPool]:
    """Two workers shared by a module's tests; each test enters it with `async with pool`."""
    shared = wool.WorkerPool(spawn=2).start()
    pids = [w.pid for w in shared.workers]
    try:
        yield shared
    finally:
        shared.stop()
        _gone, alive = psutil.wait_procs(
            [psutil.Process(p) for p in pids if psutil.pid_exists(p)], 5
        )
        assert not alive, f"pool workers still running after stop: {alive}"
