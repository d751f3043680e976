"""Interrupting the kernel: awaiting cells cancel their routines, blocking cells stop at once.

Each test interrupts only once the remote routine has written its ``started``
marker, so the interrupt always lands while the cell waits on the mesh.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from kernel_harness import WORKERS, Execution, Kernel, wait_until

pytestmark = pytest.mark.jupyter

HOLD = """
import pathlib

@wool.routine
async def hold(marker, seconds=30):
    path = pathlib.Path(marker)
    path.with_suffix(".started").write_text(str(os.getpid()))
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        path.write_text("cancelled")
        raise
    path.write_text("finished")

@wool.routine
async def square(x):
    return x * x
"""


@pytest.fixture(scope="module", autouse=True)
def routines(kernel: Kernel) -> None:
    kernel.run(HOLD)


def started(*markers: Path) -> Callable[[Execution], bool]:
    assert markers, "nothing to wait for: the interrupt would land before any routine ran"
    return lambda _: all(m.with_suffix(".started").exists() for m in markers)


def assert_interrupted(cell: Execution) -> None:
    assert cell.interrupted_at is not None, "the kernel was never interrupted"
    assert cell.ename == "KeyboardInterrupt", cell.error.text if cell.error else cell.messages
    assert cell.reply["status"] == "error"
    assert cell.reply["ename"] == "KeyboardInterrupt"
    assert "CancelledError" not in (cell.error.text if cell.error else "")
    # Every interrupted cell would otherwise run for 30 s, past the harness's wait for it.
    print(f"the cell ended {cell.replied_at - cell.interrupted_at:.2f}s after the interrupt")


def assert_cancelled(*markers: Path) -> None:
    assert markers, "no routine to check"
    for marker in markers:
        wait_until(marker.exists, 5, f"{marker.name} to be written")
        assert marker.read_text() == "cancelled"


def test_interrupting_an_awaiting_cell_cancels_the_routine(kernel: Kernel, tmp_path: Path) -> None:
    marker = tmp_path / "one"
    cell = kernel.execute(f"await hold({str(marker)!r})", interrupt_when=started(marker))
    assert_interrupted(cell)
    assert "await hold(" in cell.error.text if cell.error else False
    assert_cancelled(marker)
    assert kernel.value("await square(5)") == "25"


def test_interrupting_a_gather_cancels_every_routine(kernel: Kernel, tmp_path: Path) -> None:
    markers = [tmp_path / f"many{i}" for i in range(4)]
    code = "await asyncio.gather(" + ", ".join(f"hold({str(m)!r})" for m in markers) + ")"
    cell = kernel.execute(code, interrupt_when=started(*markers))
    assert_interrupted(cell)
    assert_cancelled(*markers)
    assert kernel.value("sum(await asyncio.gather(*(square(i) for i in range(100))))") == str(
        sum(i * i for i in range(100))
    )


def test_interrupting_a_wool_cell(kernel: Kernel, tmp_path: Path) -> None:
    marker = tmp_path / "cell"
    code = (
        "%%wool\nimport pathlib\n"
        f"path = pathlib.Path({str(marker)!r})\n"
        "path.with_suffix('.started').write_text('x')\n"
        "try:\n    await asyncio.sleep(30)\n"
        "except asyncio.CancelledError:\n    path.write_text('cancelled')\n    raise\n"
    )
    cell = kernel.execute(code, interrupt_when=started(marker))
    assert_interrupted(cell)
    assert_cancelled(marker)
    assert kernel.value("%%wool\n'next'") == "'next'"


def test_interrupting_every_peer(kernel: Kernel, tmp_path: Path) -> None:
    marker = tmp_path / "everywhere"
    code = (
        "%%wool --all\nimport pathlib\n"
        f"path = pathlib.Path({str(marker)!r} + str(os.getpid()))\n"
        "path.with_suffix('.started').write_text('x')\n"
        "try:\n    await asyncio.sleep(30)\n"
        "except asyncio.CancelledError:\n    path.write_text('cancelled')\n    raise\n"
    )
    pids = kernel.worker_pids()
    assert len(pids) == WORKERS, f"expected {WORKERS} workers, found {sorted(pids)}"
    markers = [Path(f"{marker}{pid}") for pid in sorted(pids)]
    cell = kernel.execute(code, interrupt_when=started(*markers))
    assert_interrupted(cell)
    assert_cancelled(*markers)


def test_a_sigint_delivered_to_another_thread_still_wakes_the_cell(kernel: Kernel) -> None:
    code = (
        "import signal, threading\n"
        "def _send():\n"
        "    time.sleep(0.3)\n"
        "    signal.pthread_kill(threading.get_ident(), signal.SIGINT)\n"
        "threading.Thread(target=_send, daemon=True).start()\n"
        "await asyncio.sleep(30)\n"
    )
    cell = kernel.execute(code, timeout=15)
    # Unwoken, the cell would sleep 30 s, past the 15 s the harness waits.
    assert cell.ename == "KeyboardInterrupt"
    print(f"the cell ended {cell.replied_at:.2f}s after it was sent")


def blocking(cell: Execution) -> bool:
    return "blocking\n" in cell.stdout


def test_interrupting_a_blocking_cell(kernel: Kernel) -> None:
    cell = kernel.execute("print('blocking', flush=True)\ntime.sleep(30)", interrupt_when=blocking)
    assert_interrupted(cell)
    assert "time.sleep(30)" in cell.error.text if cell.error else False
    assert kernel.value("await square(6)") == "36"


def test_interrupting_blocking_code_in_an_awaiting_cell(kernel: Kernel) -> None:
    code = "await square(2)\nprint('blocking', flush=True)\ntime.sleep(30)"
    cell = kernel.execute(code, interrupt_when=blocking)
    assert_interrupted(cell)
    assert "time.sleep(30)" in cell.error.text if cell.error else False
    assert kernel.value("await square(7)") == "49"


def test_an_interrupted_cell_leaves_the_workers_counting_it_cancelled(
    kernel: Kernel, tmp_path: Path
) -> None:
    kernel.run("mesh = get_ipython().find_line_magic('wool').__self__.backend")
    before = int(kernel.value("(await mesh.pool.statistics()).executed.cancelled"))
    marker = tmp_path / "counted"
    assert_interrupted(
        kernel.execute(f"await hold({str(marker)!r})", interrupt_when=started(marker))
    )
    assert_cancelled(marker)
    after = int(kernel.value("(await mesh.pool.statistics()).executed.cancelled"))
    assert after == before + 1
    assert kernel.value("sorted(w.state for w in mesh.pool.workers)") == "['ready', 'ready']"
