"""The first cells a newcomer writes, in a real kernel.

``%load_ext wool`` and ``%wool start`` in one cell, ``%wool`` inside an ``if``
or through ``run_line_magic``, calls made while the mesh is still starting,
the public handle on the kernel's pool, and the note naming the worker that
raised, visible in the cell's error output.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator

import pytest
from kernel_harness import EXIT_TIMEOUT, WORKERS, Kernel, alive, wait_until

pytestmark = pytest.mark.jupyter

ROUTINES = """
import asyncio, os, sys, wool, wool_jupyter

@wool.routine
async def whoami():
    return os.getpid()

@wool.routine
async def fail(x):
    raise ValueError(f"bad {x}")
"""


def states(kernel: Kernel) -> list[str]:
    """The states of the workers of the kernel's pool, read through the public handle."""
    value = kernel.value("[w.state for w in wool_jupyter.current_pool().workers]")
    return ast.literal_eval(value)


def assert_gone(kernel: Kernel, pids: set[int]) -> None:
    wait_until(
        lambda: not any(alive(pid, kernel.workers[pid]) for pid in pids),
        EXIT_TIMEOUT,
        f"workers {sorted(pids)} to exit",
    )


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    """A kernel with the extension loaded and the routines defined, but no mesh."""
    kernel = Kernel(tmp_path_factory.mktemp("first")).start()
    try:
        kernel.run("%load_ext wool")
        kernel.run(ROUTINES)
        yield kernel
    finally:
        survivors = kernel.close()
        assert not survivors, f"wool workers outlived the kernel: {survivors}"


@pytest.fixture
def kernel(loaded: Kernel) -> Iterator[Kernel]:
    """The module's kernel, its mesh stopped again after each test (and its workers gone)."""
    yield loaded
    pids = loaded.worker_pids()
    loaded.run("%wool stop")
    assert_gone(loaded, pids)


def test_load_ext_start_and_a_call_in_one_cell_then_in_the_next(
    new_kernel: Callable[[], Kernel],
) -> None:
    kernel = new_kernel()
    cell = kernel.run(
        f"%load_ext wool\n%wool start -n {WORKERS}\n{ROUTINES}\n"
        "at_start = [w.state for w in wool_jupyter.current_pool().workers]\n"
        "await whoami()\n"
    )
    assert f"starting {WORKERS} local workers in the background" in cell.stdout
    assert cell.result is not None and int(cell.result) in kernel.worker_pids()
    # start returned before the workers were ready: the call in the cell waited for them.
    assert "starting" in kernel.value("at_start")
    assert states(kernel) == ["ready"] * WORKERS
    assert int(kernel.value("await whoami()")) in kernel.worker_pids()
    assert len(kernel.worker_pids()) == WORKERS


def test_start_and_stop_inside_an_if(kernel: Kernel) -> None:
    cell = kernel.run(f"if True:\n    %wool start -n {WORKERS}\nawait whoami()")
    assert "in the background" in cell.stdout
    assert cell.result is not None and int(cell.result) in kernel.worker_pids()
    pids = kernel.worker_pids()
    assert len(pids) == WORKERS
    stopped = kernel.run("if pids := wool_jupyter.current_pool():\n    %wool stop\n")
    assert f"Stopped {WORKERS} local workers" in stopped.stdout
    assert_gone(kernel, pids)
    assert kernel.value("wool_jupyter.current_pool() is None") == "True"


def test_start_through_run_line_magic_with_a_call_in_the_same_cell(kernel: Kernel) -> None:
    cell = kernel.run(
        f"get_ipython().run_line_magic('wool', 'start -n {WORKERS}')\n"
        "print(sorted({await whoami() for _ in range(4)}))\n"
    )
    pids = ast.literal_eval(cell.stdout.strip().splitlines()[-1])
    assert set(pids) <= kernel.worker_pids()
    status = kernel.run("x = 1\n%wool status\ny = 2")
    assert "from this kernel" in status.displays[0]["text/plain"]


def test_a_call_waiting_for_a_mesh_that_is_stopped_gets_a_typed_error(kernel: Kernel) -> None:
    cell = kernel.execute(
        f"%wool start -n {WORKERS}\nwaiting = asyncio.ensure_future(whoami())\n"
        "for _ in range(20):\n    await asyncio.sleep(0)\n"  # the call is inside its wait now
        "assert not waiting.done(), waiting\n"
        "%wool stop\nawait waiting"
    )
    assert cell.ename == "MeshNotRunning", cell.error and cell.error.text
    assert cell.error is not None
    assert "Cannot dispatch whoami(): no wool mesh" in cell.error.text


def test_the_public_handle_is_the_running_pool(kernel: Kernel) -> None:
    assert kernel.value("wool_jupyter.current_pool() is None") == "True"
    kernel.run(f"%wool start -n {WORKERS} --tag cpu")
    kernel.run("await whoami()")
    assert kernel.value("isinstance(wool_jupyter.current_pool(), wool.WorkerPool)") == "True"
    assert kernel.value("wool_jupyter.current_pool().tags") == "('cpu',)"
    pids = ast.literal_eval(kernel.value("[w.pid for w in wool_jupyter.current_pool().workers]"))
    assert set(pids) == kernel.worker_pids()
    kernel.run("stats = await wool_jupyter.current_pool().statistics()")
    assert int(kernel.value("stats.caller.completed")) >= 1
    assert kernel.value("len(stats.peers)") == str(WORKERS)


def test_the_worker_that_raised_is_named_in_the_error_output(kernel: Kernel) -> None:
    kernel.run(f"%wool start -n {WORKERS}")
    cell = kernel.execute("await fail(3)")
    assert cell.ename == "ValueError"
    assert cell.error is not None
    assert "ValueError: bad 3" in cell.error.text
    assert "[wool] raised remotely on worker" in cell.error.text, cell.error.text
    assert cell.error.text.count("[wool] raised remotely") == 1
    # The exception itself is unchanged: its own type and args.
    assert kernel.value("type(sys.last_value).__name__, sys.last_value.args", timeout=10) == (
        "('ValueError', ('bad 3',))"
    )
