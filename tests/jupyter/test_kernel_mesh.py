"""``%wool start`` in a real kernel: routines defined in the notebook, awaited across cells."""

from __future__ import annotations

import ast

import pytest
from kernel_harness import WORKERS, Kernel

pytestmark = pytest.mark.jupyter

SQUARE = """
@wool.routine
async def square(x):
    await asyncio.sleep(0.01)
    return x * x

@wool.routine
async def whoami():
    return os.getpid()
"""

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module", autouse=True)
def routines(kernel: Kernel) -> None:
    kernel.run(SQUARE)


def test_start_runs_workers_as_children_of_the_kernel(kernel: Kernel) -> None:
    assert len(kernel.worker_pids()) == WORKERS
    again = kernel.run(f"%wool start -n {WORKERS}")
    assert "already running" in again.stdout
    assert len(kernel.worker_pids()) == WORKERS


def test_routine_defined_in_the_notebook_runs_on_a_worker(kernel: Kernel) -> None:
    assert kernel.value("await square(7)") == "49"
    pids = {int(kernel.value("await whoami()")) for _ in range(4)}
    assert pids <= kernel.worker_pids()
    assert kernel.pid not in pids


def test_values_flow_between_cells(kernel: Kernel) -> None:
    kernel.run("x = await square(3)")
    assert kernel.value("await square(x)") == "81"
    kernel.run("pending = asyncio.ensure_future(square(12))")
    assert kernel.value("await pending") == "144"


def test_gather_a_thousand_calls(kernel: Kernel) -> None:
    total = kernel.value("sum(await asyncio.gather(*(square(i) for i in range(1000))))")
    assert int(total) == sum(i * i for i in range(1000))


def test_generator_iterated_across_cells(kernel: Kernel) -> None:
    kernel.run(
        """
@wool.routine
async def countdown(n):
    while n >= 0:
        yield n, os.getpid()
        n -= 1

steps = countdown(4)
"""
    )
    first, pid = ast.literal_eval(kernel.value("await steps.__anext__()"))
    assert first == 4 and pid in kernel.worker_pids()
    assert ast.literal_eval(kernel.value("await steps.__anext__()"))[0] == 3
    rest = ast.literal_eval(kernel.value("[n async for n, _ in steps]"))
    assert rest == [2, 1, 0]


def test_a_redefined_routine_runs_its_new_body(kernel: Kernel) -> None:
    kernel.run("@wool.routine\nasync def version():\n    return 'first'")
    assert kernel.value("await version()") == "'first'"
    kernel.run("@wool.routine\nasync def version():\n    return 'second'")
    assert kernel.value("{await version() for _ in range(4)}") == "{'second'}"


def test_the_mesh_works_after_a_cell_that_blocks(kernel: Kernel) -> None:
    kernel.run("started = asyncio.ensure_future(asyncio.gather(*(square(i) for i in range(50))))")
    kernel.run("time.sleep(1.0)")
    assert int(kernel.value("sum(await started)")) == sum(i * i for i in range(50))
    assert kernel.value("await square(11)") == "121"


def test_status_lists_every_peer(kernel: Kernel) -> None:
    status = kernel.run("%wool status")
    (data,) = status.displays
    text = data["text/plain"]
    for pid in kernel.worker_pids():
        assert str(pid) in text
    assert text.count("ready") >= WORKERS
    assert 'class="wool-mesh"' in data["text/html"]
    assert f'data-peers="{WORKERS}"' in data["text/html"]


def test_widget_displays_with_a_fallback(kernel: Kernel) -> None:
    shown = kernel.run("%wool widget")
    (data,) = shown.displays
    assert WIDGET_MIME in data
    assert 'class="wool-mesh"' in data["text/html"]
    assert "wool mesh [running]" in data["text/plain"]


def test_the_pool_displays_as_its_status(kernel: Kernel) -> None:
    kernel.run("mesh = get_ipython().find_line_magic('wool').__self__.backend")
    shown = kernel.run("mesh.pool")
    assert shown.result is not None and "wool mesh [running]" in shown.result
    ids = ast.literal_eval(kernel.value("[w.id for w in mesh.pool.workers]"))
    for worker_id in ids:
        assert worker_id in shown.result
