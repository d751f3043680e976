"""Every notebook in ``notebooks/`` runs top to bottom in a real kernel, and leaves no worker."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from nbformat import NotebookNode
from notebook_support import (
    assert_no_workers_left,
    mime_types_of,
    notebook_paths,
    outputs_of,
    runner,
)

CELL_TIMEOUT = 90.0
WIDGET = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def seconds_in(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in {text!r}"
    return float(found[1])


def widget_states(notebook: NotebookNode) -> list[dict[str, object]]:
    """The saved state of every widget model the run displayed."""
    saved = notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {})
    return [model["state"] for model in saved.get("state", {}).values()]


def check_quickstart(notebook: NotebookNode) -> None:
    assert WIDGET in mime_types_of(notebook, "%wool start -n 2")
    assert outputs_of(notebook, "await square(7)") == "49"
    kernel, routine = re.findall(r"\d+", outputs_of(notebook, "await where()"))
    assert kernel != routine
    assert outputs_of(notebook, "asyncio.gather(*(square(i)").endswith("332833500")
    assert outputs_of(notebook, "await progress(").endswith("332833500")
    assert outputs_of(notebook, "total += await square(i)").endswith("285")
    assert len(re.findall(r": \d+", outputs_of(notebook, "%%wool --all"))) == 2
    assert WIDGET in mime_types_of(notebook, "%wool widget")
    meshes = [state for state in widget_states(notebook) if "peers" in state]
    assert meshes, "the live mesh widget left no saved state"
    final = meshes[0]
    assert final["peers"] == 2 and final["status"] == "stopped"
    assert final["completed"] >= 2000, "the widget missed the fan-out"


def check_nested(notebook: NotebookNode) -> None:
    sort = outputs_of(notebook, "await merge_sort(numbers)")
    assert "same as sorted(): True" in sort
    assert "workers that took part: 2" in sort
    pi = float(re.search(r"pi is about (\d\.\d+)", outputs_of(notebook, "await estimate_pi"))[1])
    assert abs(pi - 3.1416) < 0.02
    status = outputs_of(notebook, "%wool status")

    def calls(row: str) -> int:
        return int(re.search(rf"^{row}\s+([\d,]+)", status, re.MULTILINE)[1].replace(",", ""))

    dispatched, nested = calls("from this kernel"), calls("worker to worker")
    ran = calls("on workers")
    assert dispatched == 2 and nested > 100, "the workers should have made the nested calls"
    assert ran == dispatched + nested, status


def check_streaming(notebook: NotebookNode) -> None:
    steps = outputs_of(notebook, "async for report in crunch(5)")
    assert [int(n) for n in re.findall(r"step (\d)/5", steps)] == [1, 2, 3, 4, 5]
    seconds = [float(s) for s in re.findall(r"^ *(\d+\.\d)s", steps, re.MULTILINE)]
    assert seconds == sorted(seconds) and seconds[-1] - seconds[0] >= 0.9, "not streamed"
    game = outputs_of(notebook, "secret = 737")
    assert "the worker found 737 in" in game and "its generator has finished" in game
    assert "the worker gave up" in outputs_of(notebook, "game = guesser(1, 10)")
    early = outputs_of(notebook, "contextlib.aclosing(ticker(")
    assert "tick 3" in early and "tick 4" not in early
    assert "closed the ticker after 3 values" in early


def check_errors_and_cancellation(notebook: NotebookNode) -> None:
    assert outputs_of(notebook, 'await basket_total(["apple", "pear", "fig"])') == "2.5"
    remote = outputs_of(notebook, '["apple", "durian"]')
    assert "caught KeyError: 'durian'" in remote
    assert "in price_of" in remote and "return PRICES[item]" in remote, "no remote frames"
    assert "raised remotely on worker" in remote
    assert "one call: nap() ran past its 0.5s deadline" in outputs_of(notebook, "timeout=0.5")
    block = outputs_of(notebook, "with wool.timeout(1.0)")
    assert block.count("slept 0.2s") == 2
    # Before the block's nap(10) could have ended: the block's deadline stopped it.
    assert 1.0 <= seconds_in(r"the block, after (\d+\.\d)s", block) < 10.0
    cancel = outputs_of(notebook, "job = asyncio.create_task(long_job(600")
    assert "long_job was cancelled" in cancel and "long_job cleaned up on worker" in cancel
    interrupted = outputs_of(notebook, "cell_work = asyncio.create_task(")
    # Cancelled after its 1 s, far before its 600 s of work.
    assert 1.0 <= seconds_in(r"interrupted after (\d+\.\d)s", interrupted) < 60.0
    assert "long_job cleaned up on worker" in interrupted
    assert outputs_of(notebook, "and carry on") == "3.25"


def check_multihost(notebook: NotebookNode) -> None:
    assert "fib(16) = 987" in outputs_of(notebook, "await until_peers(3)")
    status = outputs_of(notebook, "%wool status")
    assert all(host in status for host in ("host-a", "host-b", "host-c")), status
    lost = outputs_of(notebook, 'hosts["host-c"].kill()')
    assert "the call running on host-c failed: WorkerLost" in lost
    assert "after losing host-c, fib(14) = 377" in lost
    assert WIDGET in mime_types_of(notebook, "%wool widget")
    meshes = [state for state in widget_states(notebook) if "peers" in state]
    assert meshes and meshes[0]["joins"] == 3 and meshes[0]["leaves"] >= 1, meshes
    # host-c was killed (-9); the others drained on SIGTERM and exited 0.
    assert outputs_of(notebook, "proc.terminate()").endswith(
        "{'host-a': 0, 'host-b': 0, 'host-c': -9}"
    )


def check_data(notebook: NotebookNode) -> None:
    assert WIDGET in mime_types_of(notebook, "%wool start -n 2")
    stats = outputs_of(notebook, "functools.reduce(combine, parts)")
    assert "block statistics: 32/32" in stats and "matches numpy here: True" in stats, stats
    assert WIDGET in mime_types_of(notebook, "functools.reduce(combine, parts)"), "no progress bar"
    assert "same as computing here: True" in outputs_of(notebook, "np.concatenate(")
    assert "within 4 standard errors: True" in outputs_of(notebook, "def simulate(")
    frames = outputs_of(notebook, "fit_trend(group) for group in groups")
    if "not installed" not in outputs_of(notebook, "import pandas as pd"):
        assert "stations: 40/40" in frames and "same as computing here: True" in frames, frames
    meshes = [state for state in widget_states(notebook) if "peers" in state]
    assert meshes, "the live mesh widget left no saved state"
    final = meshes[0]
    assert final["peers"] == 2 and final["status"] == "stopped"
    assert final["completed"] >= 128, "the widget missed the fan-out"


CHECKS = {
    "quickstart": check_quickstart,
    "nested": check_nested,
    "streaming": check_streaming,
    "errors-and-cancellation": check_errors_and_cancellation,
    "multihost": check_multihost,
    "data": check_data,
}


def test_every_notebook_has_checks() -> None:
    assert {path.stem for path in notebook_paths()} == set(CHECKS)


@pytest.mark.jupyter
@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", notebook_paths(), ids=lambda path: path.stem)
def test_notebook_runs(path: Path) -> None:
    """Run with nbclient in a fresh kernel: no cell may fail; key outputs are right."""
    run = asyncio.run(runner.execute(path, timeout=CELL_TIMEOUT))
    try:
        summary = runner.summarize(run.notebook)
        if not run.ok:
            pytest.fail(f"{path.name} failed:\n{run.error}\n\nwhat ran:\n{summary}")
        try:
            CHECKS[path.stem](run.notebook)
        except AssertionError as failed:
            raise AssertionError(f"{failed}\n\nwhat ran:\n{summary}") from None
    finally:
        assert_no_workers_left(run.kernel_pid)
