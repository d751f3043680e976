"""However a kernel ends, the workers it started end with it (checked by PID)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kernel_harness import EXIT_TIMEOUT, WORKERS, Kernel, alive, wait_until

pytestmark = pytest.mark.jupyter


def start_mesh(kernel: Kernel) -> set[int]:
    """Load the extension, start two workers, use them once; return their PIDs."""
    kernel.run("%load_ext wool")
    kernel.run(f"%wool start -n {WORKERS}")
    kernel.run("import asyncio, wool\n@wool.routine\nasync def square(x):\n    return x * x")
    assert kernel.value("await square(9)") == "81"
    pids = kernel.worker_pids()
    assert len(pids) == WORKERS
    return pids


def assert_gone(kernel: Kernel, pids: set[int]) -> None:
    wait_until(
        lambda: not any(alive(pid, kernel.workers[pid]) for pid in pids),
        EXIT_TIMEOUT,
        f"workers {sorted(pids)} to exit",
    )


def test_stop_ends_every_worker_and_start_works_again(new_kernel: Callable[[], Kernel]) -> None:
    kernel = new_kernel()
    first = start_mesh(kernel)
    assert "Stopped 2 local workers" in kernel.run("%wool stop").stdout
    assert_gone(kernel, first)
    assert kernel.execute("await square(2)").ename == "MeshNotRunning"
    assert "not running" in kernel.run("%wool status").stdout
    kernel.run(f"%wool start -n {WORKERS}")
    second = kernel.worker_pids()
    assert len(second) == WORKERS and not second & first
    assert kernel.value("await square(3)") == "9"
    kernel.run("%wool stop")
    assert_gone(kernel, second)
    kernel.run(f"%wool start -n {WORKERS} --tag cpu")
    assert kernel.value("%%wool --tag cpu\n'tagged'") == "'tagged'"
    per_peer = kernel.value("%%wool --all --tag cpu\nimport os\nos.getpid()")
    assert per_peer.count(":") == WORKERS
    third = kernel.worker_pids()
    kernel.run("%wool restart")
    assert_gone(kernel, third)
    fourth = kernel.worker_pids()
    assert len(fourth) == WORKERS and kernel.value("await square(4)") == "16"
    assert "cpu" in kernel.run("%wool status").displays[0]["text/plain"]
    kernel.run("%unload_ext wool")
    assert_gone(kernel, fourth)


def test_shutdown_leaves_no_worker(new_kernel: Callable[[], Kernel]) -> None:
    kernel = new_kernel()
    pids = start_mesh(kernel)
    kernel.shutdown()
    assert_gone(kernel, pids)


def test_restart_leaves_no_worker(new_kernel: Callable[[], Kernel]) -> None:
    kernel = new_kernel()
    pids = start_mesh(kernel)
    old = kernel.pid
    kernel.restart()
    assert kernel.pid != old
    assert_gone(kernel, pids)
    assert kernel.worker_pids() == set()
    assert start_mesh(kernel).isdisjoint(pids)


def test_kill_9_leaves_no_worker(new_kernel: Callable[[], Kernel]) -> None:
    kernel = new_kernel()
    pids = start_mesh(kernel)
    kernel.kill()
    assert_gone(kernel, pids)
