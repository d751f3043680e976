"""The live mesh widget in a real JupyterLab: peers, counters while the kernel blocks, a
lost worker, and the final state after ``%wool stop``.

Every figure is read from the rendered DOM: the widget's HTML carries ``data-*`` hooks
(root ``.wool-mesh``, one ``.wool-peer`` row per peer). Only the live widget's view is
read (``.widget-html-content .wool-mesh``), never the static ``text/html`` fallback.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import lab
import nbformat
import psutil
import pytest

if TYPE_CHECKING:
    from conftest import JupyterLab
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

_T = TypeVar("_T")

WORKERS = 2
# fib(FIB_N) makes 2 * F(FIB_N + 1) - 1 routine calls, almost all of them nested calls
# that go peer to peer; fib(23) is 92,735 calls, several seconds on two busy cores.
FIB_N = 23
FIB_VALUE = 28657
FIB_CALLS = 92735
RELEASE = "mesh_widget.release"  # the blocking cell holds the kernel's loop until this exists
BLOCK_LIMIT_S = 60  # ... or for this long at most

CELLS = [
    "%load_ext wool",
    f"%wool start -n {WORKERS}",
    """\
import asyncio
import os
import time

import wool


@wool.routine
async def fib(n: int) -> int:
    if n < 2:
        return n
    a, b = await asyncio.gather(fib(n - 1), fib(n - 2))
    return a + b


print(f"kernel pid {os.getpid()}")
""",
    f"task = asyncio.ensure_future(fib({FIB_N}))",
    f"""\
import pathlib

# Blocks the kernel's event loop until the test has seen the counters move.
for _ in range({BLOCK_LIMIT_S * 20}):
    if pathlib.Path({RELEASE!r}).exists():
        break
    time.sleep(0.05)
""",
    'print(f"fib = {await task}")',
    "%wool stop",
]
START, DEFINE, LAUNCH, BLOCK, AWAIT, STOP = 1, 2, 3, 4, 5, 6

# One atomic read of every live mesh widget view in the visible notebook: the root's
# data-* hooks plus each peer row's data-* hooks and its "pid" column.
_MESH_JS = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!panel) return [];
  return [...panel.querySelectorAll('.widget-html-content .wool-mesh')].map(root => {
    const heads = [...root.querySelectorAll('table.wool-peers thead th')]
      .map(th => th.textContent.trim());
    const pidAt = heads.indexOf('pid');
    const rows = [...root.querySelectorAll('tr.wool-peer')].map(tr => ({
      ...tr.dataset,
      pid: pidAt >= 0 && tr.cells[pidAt] ? tr.cells[pidAt].textContent.trim() : '',
    }));
    return {...root.dataset, rows, spark: root.querySelectorAll('svg.wool-spark').length};
  });
}"""

MESH = ".jp-NotebookPanel:not(.lm-mod-hidden) .widget-html-content .wool-mesh"


def _write_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nbformat.write(nb, str(path))


def _mesh(page: Page) -> dict[str, Any]:
    """The one live widget view's hooks; fails if there is not exactly one."""
    views = page.evaluate(_MESH_JS)
    assert len(views) == 1, f"expected one live mesh widget view, found {len(views)}"
    return views[0]


def _maybe_mesh(page: Page) -> dict[str, Any] | None:
    views = page.evaluate(_MESH_JS)
    return views[0] if len(views) == 1 else None


def _poll(
    read: Callable[[], _T],
    done: Callable[[_T], bool],
    what: str,
    page: Page,
    timeout: float,
    interval: float = 0.1,
) -> _T:
    """Read until ``done(value)``; fail after ``timeout`` s showing the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout}s; last read: {value!r}")
        page.wait_for_timeout(interval * 1000)


def _running(page: Page, index: int) -> bool:
    return lab.cell_prompts(page)[index] == "[*]:"


def _worker_pids(owner: int) -> list[int]:
    """Pids of live ``python -m wool.worker --owner OWNER`` processes, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv if a]
        if "wool.worker" not in args or "--owner" not in args:
            continue
        at = args.index("--owner")
        if at + 1 < len(args) and args[at + 1] == str(owner):
            found.append(int(entry.name))
    return sorted(found)


def _proc_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` from /proc (``"Z"`` for a zombie), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _frame_widget(page: Page) -> None:
    """Scroll the widget into view (for the screenshot) and park the mouse over nothing.

    The widget replaces its HTML twice a second, so the element found may be detached
    before the scroll reaches it; framing is cosmetic, so a few tries are enough.
    """
    from playwright.sync_api import Error as PlaywrightError

    for _ in range(5):
        try:
            page.locator(MESH).first.scroll_into_view_if_needed(timeout=2000)
            break
        except PlaywrightError:
            continue
    page.mouse.move(600, 740)  # the status bar


@contextlib.contextmanager
def _reap_workers_of(owner: Callable[[], int | None]) -> Iterator[None]:
    """On the way out, SIGKILL (by pid) any wool worker still owned by the test's kernel."""
    try:
        yield
    finally:
        kernel_pid = owner()
        if kernel_pid is not None:
            for pid in _worker_pids(kernel_pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def test_live_mesh_widget_in_jupyterlab(browser_page: Page, jupyter_lab: JupyterLab) -> None:
    """2 ready peers; counters move while a cell blocks the loop; a killed worker shows as
    lost; ``%wool stop`` leaves the widget stopped and no worker of the kernel alive."""
    page = browser_page
    _write_notebook(jupyter_lab.root_dir / "mesh_widget.ipynb")
    kernel: dict[str, int] = {}
    timings: dict[str, float] = {}
    t0 = time.monotonic()

    with _reap_workers_of(lambda: kernel.get("pid")):
        lab.open_notebook(page, jupyter_lab, "mesh_widget.ipynb")
        timings["open"] = time.monotonic() - t0

        # 1. The widget renders with two ready peers.
        for index in range(START + 1):
            lab.run_cell(page, index)
        lab.wait_cell_done(page, START, timeout=90)
        timings["start"] = time.monotonic() - t0
        started = lab.cell_output_text(page, START)
        assert f"starting {WORKERS} local workers in the background" in started, started
        mesh = _poll(
            lambda: _maybe_mesh(page),
            lambda m: (
                m is not None
                and m["peers"] == str(WORKERS)
                and m["ready"] == str(WORKERS)
                and [r["state"] for r in m["rows"]] == ["ready"] * WORKERS
            ),
            "widget with 2 ready peers",
            page,
            timeout=15,
        )
        assert mesh["status"] == "running" and mesh["lost"] == "0", mesh
        rows = mesh["rows"]
        assert all(r["pid"].isdigit() for r in rows), rows

        lab.run_cell(page, DEFINE)
        lab.wait_cell_done(page, DEFINE)
        match = re.search(r"kernel pid (\d+)", lab.cell_output_text(page, DEFINE))
        assert match, lab.cell_output_text(page, DEFINE)
        kernel["pid"] = kernel_pid = int(match.group(1))
        server_children = {p.pid for p in psutil.Process(jupyter_lab.pid).children(recursive=True)}
        assert kernel_pid in server_children, "the kernel is not a child of our server"
        workers = _worker_pids(kernel_pid)
        assert workers == sorted(int(r["pid"]) for r in rows), (workers, rows)

        # 2. Counters move while nested work runs, also while a cell blocks the loop.
        before = int(_mesh(page)["completed"])
        lab.run_cell(page, LAUNCH)
        lab.wait_cell_done(page, LAUNCH)
        # The first dispatch must be out before the loop blocks; the widget shows it.
        _poll(
            lambda: _mesh(page),
            lambda m: int(m["inflight"]) > 0 or int(m["completed"]) > before,
            "work visible in the widget",
            page,
            timeout=15,
        )
        release = jupyter_lab.root_dir / RELEASE
        release.unlink(missing_ok=True)
        lab.run_cell(page, BLOCK)
        _poll(lambda: _running(page, BLOCK), bool, "blocking cell running", page, timeout=10)
        t_block = time.monotonic()
        first = int(_mesh(page)["completed"])
        samples = [(0.0, first)]

        def read_counter() -> tuple[float, int]:
            sample = (time.monotonic() - t_block, int(_mesh(page)["completed"]))
            samples.append(sample)
            return sample

        # The cell blocks until released below, so every read here is during the block.
        _, second = _poll(
            read_counter,
            lambda s: s[1] > first,
            f"completed count above {first} during the blocking cell",
            page,
            timeout=30,
        )
        moving = _mesh(page)
        _frame_widget(page)
        lab.screenshot(page, "mesh-widget-running")
        assert _running(page, BLOCK), f"the blocking cell ended unreleased: {samples}"
        release.touch()
        assert second > first, samples
        assert moving["status"] == "running", moving
        timings["block_reads"] = time.monotonic() - t_block
        print(f"completed during the blocking cell (s after first read, count): {samples}")

        lab.wait_cell_done(page, BLOCK, timeout=30)
        lab.run_cell(page, AWAIT)
        lab.wait_cell_done(page, AWAIT, timeout=90)
        assert f"fib = {FIB_VALUE}" in lab.cell_output_text(page, AWAIT)
        done = _poll(
            lambda: _mesh(page),
            lambda m: int(m["completed"]) >= before + FIB_CALLS and m["inflight"] == "0",
            "all fib calls counted",
            page,
            timeout=10,
        )
        print(f"completed before fib {before}, after {done['completed']} (+{FIB_CALLS} calls)")
        # Totals add up: runs on workers = calls from the kernel + nested peer-to-peer calls.
        assert int(done["nested"]) >= FIB_CALLS - 1, done
        assert int(done["executed"]) == int(done["dispatched"]) + int(done["nested"]), done
        timings["work"] = time.monotonic() - t0

        # 3. A worker killed with SIGKILL is marked lost, not dropped. Its pid comes from
        # the widget's row; it must be one of this kernel's workers before it is killed.
        victim = _mesh(page)["rows"][0]
        victim_pid = int(victim["pid"])
        assert victim_pid in _worker_pids(kernel_pid), (victim, _worker_pids(kernel_pid))
        os.kill(victim_pid, signal.SIGKILL)
        t_kill = time.monotonic()
        lost = _poll(
            lambda: _mesh(page),
            lambda m: any(r["state"] == "lost" for r in m["rows"]),
            "a lost row",
            page,
            timeout=30,
        )
        timings["lost_after_kill"] = time.monotonic() - t_kill
        assert len(lost["rows"]) == WORKERS, lost
        (gone,) = [r for r in lost["rows"] if r["state"] == "lost"]
        assert gone["id"] == victim["id"] and gone["pid"] == victim["pid"], (gone, victim)
        assert lost["lost"] == "1" and lost["peers"] == str(WORKERS), lost
        assert lost["status"] == "running", lost

        # 4. %wool stop: the widget's last render says stopped; no worker of ours is left.
        lab.run_cell(page, STOP)
        lab.wait_cell_done(page, STOP, timeout=60)
        assert "Stopped" in lab.cell_output_text(page, STOP), lab.cell_output_text(page, STOP)
        final = _poll(
            lambda: _mesh(page),
            lambda m: m["status"] == "stopped",
            "widget status stopped",
            page,
            timeout=10,
        )
        assert len(final["rows"]) == WORKERS, final
        assert final["ready"] == "0", final
        assert sorted(r["state"] for r in final["rows"]) == ["lost", "stopped"], final
        _frame_widget(page)
        lab.screenshot(page, "mesh-widget-stopped")
        left = _poll(
            lambda: _worker_pids(kernel_pid), lambda pids: not pids, "workers gone", page, 10
        )
        assert not left
        assert psutil.pid_exists(kernel_pid), "the kernel itself should still be running"
        timings["total"] = time.monotonic() - t0
        zombie = _proc_state(victim_pid)
        print(f"final widget: {final}")
        print(f"killed worker {victim_pid} /proc state after stop: {zombie}")
        print("timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
    lab.shutdown_kernels(jupyter_lab)
