"""``%%wool`` cells in a real kernel: results, every peer, options, remote errors."""

from __future__ import annotations

import ast

import pytest
from kernel_harness import WORKERS, Kernel

pytestmark = pytest.mark.jupyter


@pytest.fixture(scope="module")
def worker_ids(kernel: Kernel) -> list[str]:
    kernel.run("mesh = get_ipython().find_line_magic('wool').__self__.backend")
    ids = ast.literal_eval(kernel.value("[w.id for w in mesh.pool.workers]"))
    assert len(ids) == WORKERS
    return ids


def test_cell_runs_on_a_worker_and_returns_its_last_expression(kernel: Kernel) -> None:
    cell = kernel.run(
        """%%wool
import os, socket
print("hello from", os.getpid())
await asyncio.sleep(0.1)
socket.gethostname()"""
    )
    printed = cell.stdout.split()
    assert printed[:2] == ["hello", "from"]
    assert int(printed[2]) in kernel.worker_pids()
    assert cell.result == repr(__import__("socket").gethostname())


def test_modules_imported_by_a_cell_are_known_to_later_cells(
    kernel: Kernel, worker_ids: list[str]
) -> None:
    kernel.run("%%wool\nimport os, socket\nsocket.gethostname()")
    kernel.run("del os")  # the notebook's own os must not be what makes this work
    try:
        per_peer = ast.literal_eval(kernel.value("%%wool --all\nos.getpid()"))
    finally:
        kernel.run("import os")
    assert sorted(per_peer) == sorted(worker_ids)
    assert set(per_peer.values()) == kernel.worker_pids()


def test_every_peer_runs_the_cell_once(kernel: Kernel, worker_ids: list[str]) -> None:
    kernel.run("calls = 3")
    per_peer = ast.literal_eval(
        kernel.value("%%wool --all\nawait asyncio.sleep(0.05)\n[os.getpid()] * calls")
    )
    assert sorted(per_peer) == sorted(worker_ids)
    pids = {values[0] for values in per_peer.values()}
    assert pids == kernel.worker_pids()
    assert all(len(values) == 3 for values in per_peer.values())


def test_output_option_stores_the_result(kernel: Kernel) -> None:
    cell = kernel.run("%%wool -o answer\nsix = 6\nsix * 7")
    assert cell.result == "42"
    assert kernel.value("answer + 1") == "43"


def test_notebook_values_are_sent_with_the_cell(kernel: Kernel) -> None:
    kernel.run("base = 5\ndef triple(v):\n    return 3 * v")
    assert kernel.value("%%wool\ntriple(base)") == "15"


def test_remote_exception_shows_the_remote_traceback(kernel: Kernel) -> None:
    failed = kernel.execute(
        """%%wool
def invert(x):
    return 1 / x
invert(0)"""
    )
    assert failed.ename == "ZeroDivisionError"
    assert failed.reply["status"] == "error"
    text = failed.error.text if failed.error else ""
    assert "return 1 / x" in text
    assert "invert(0)" in text
    assert "wool/mesh/" not in text, "wool's dispatch frames should be hidden"
    # IPython 8.12 does not print exception notes; the note naming the worker is there.
    notes = kernel.value("sys.last_value.__notes__", timeout=10)
    assert "raised remotely on worker" in notes
    assert kernel.value("%%wool\n'still fine'") == "'still fine'"


def test_tag_selects_peers(kernel: Kernel) -> None:
    failed = kernel.execute("%%wool --tag gpu\n1")
    assert failed.ename == "NoWorkersAvailable"
    failed = kernel.execute("%%wool --all --tag gpu\n1")
    assert failed.ename == "NoWorkersAvailable"


def test_timeout_cancels_the_cell(kernel: Kernel) -> None:
    # Without the timeout the cell would sleep 30 s, past the 15 s the harness waits.
    slow = kernel.execute("%%wool --timeout 0.5\nawait asyncio.sleep(30)", timeout=15)
    assert slow.ename == "DispatchTimeout"
    everywhere = kernel.execute("%%wool --all --timeout 0.5\nawait asyncio.sleep(30)", timeout=15)
    assert everywhere.ename == "DispatchTimeout"
    assert kernel.value("%%wool\n1 + 1") == "2"


def test_a_cell_failing_on_every_peer_raises_the_first_and_names_them_all(
    kernel: Kernel, worker_ids: list[str]
) -> None:
    failed = kernel.execute("%%wool --all\nimport os\nraise ValueError(os.getpid())")
    assert failed.ename == "ValueError"
    first_pid = kernel.value("mesh.pool.workers[0].pid")
    assert kernel.value("sys.last_value.args[0]") == first_pid, "the first peer's error, in order"
    notes = kernel.value("sys.last_value.__notes__", timeout=10)
    assert f"{WORKERS} of {WORKERS} peers failed" in notes
    for worker_id in worker_ids:
        assert f"{worker_id} (ValueError)" in notes
