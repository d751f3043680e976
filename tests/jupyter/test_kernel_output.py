"""What routines print appears in the cell that called them, in order, while they run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from kernel_harness import Execution, Kernel

pytestmark = pytest.mark.jupyter

ROUTINES = """
import pathlib

async def released(path, seconds=30):
    for _ in range(int(seconds * 100)):
        if pathlib.Path(path).exists():
            return True
        await asyncio.sleep(0.01)
    return False

@wool.routine
async def talk(release):
    print("first")
    if not await released(release):
        return "never released"
    print("second", file=sys.stderr)
    return "done"

@wool.routine
async def count(n):
    for i in range(n):
        print(i)

@wool.routine
async def late(release, text):
    if release is not None and not await released(release):
        return
    print(text)
"""


@pytest.fixture(scope="module", autouse=True)
def routines(kernel: Kernel) -> None:
    kernel.run(ROUTINES)


def test_output_arrives_while_the_call_runs(kernel: Kernel, tmp_path: Path) -> None:
    release = tmp_path / "release"

    def release_once_first_is_shown(cell: Execution) -> None:
        if "first" in cell.stdout and not release.exists():
            release.touch()

    # The routine goes on only once "first" has reached the cell, so the cell can only
    # finish if output arrives while the call still runs.
    cell = kernel.run(f"await talk({str(release)!r})", watch=release_once_first_is_shown)
    assert cell.result == "'done'"
    assert cell.stdout == "first\n" and cell.stderr == "second\n"
    names = [m.content["name"] for m in cell.messages if m.kind == "stream"]
    assert names == sorted(names, key=["stdout", "stderr"].index), "stdout came first"


def test_lines_keep_their_order(kernel: Kernel) -> None:
    cell = kernel.run("await count(300)")
    assert cell.stdout.splitlines() == [str(i) for i in range(300)]


def test_output_stays_with_the_cell_that_dispatched(kernel: Kernel, tmp_path: Path) -> None:
    release = tmp_path / "late"
    started = kernel.run(
        f"background = asyncio.ensure_future(late({str(release)!r}, 'from the first cell'))"
    )
    # The first cell has ended; only now may its routine print, while the second cell runs.
    waiting = kernel.run(
        f"pathlib.Path({str(release)!r}).touch()\n"
        "await late(None, 'from the second cell')\nawait background"
    )
    assert "from the first cell" not in waiting.stdout
    assert "from the second cell" in waiting.stdout
    late_text = "".join(m.text for parent, m in kernel.late if parent == started.msg_id)
    assert "from the first cell" in late_text


def test_a_flood_is_rate_limited_with_a_note(kernel: Kernel) -> None:
    kernel.run("%config Wool.output_rate_limit = 50")
    try:
        cell = kernel.run("await count(5000)")
    finally:
        kernel.run("%config Wool.output_rate_limit = 200")
    shown = [int(line) for line in cell.stdout.splitlines()]
    # A 5 s burst (250 lines) in full, then at most 50 lines/s for as long as the cell ran.
    print(f"{len(shown)} lines shown in {cell.replied_at:.2f}s")
    assert shown[:250] == list(range(250)) and shown == sorted(set(shown))
    assert len(shown) <= 250 + 50 * cell.replied_at
    notes = re.findall(r"… ([\d,]+) lines suppressed", cell.stderr)
    assert notes, cell.stderr
    complete = cell.stdout.count("\n")
    assert complete + sum(int(n.replace(",", "")) for n in notes) == 5000


def test_every_peer_prefixes_its_lines(kernel: Kernel) -> None:
    cell = kernel.run('%%wool --all\nprint("one")\nprint("two", end="")\nprint("!")')
    lines = cell.stdout.splitlines()
    peers = {line.split(" ", 1)[0] for line in lines}
    assert len(peers) == len(kernel.worker_pids())
    for peer in peers:
        assert re.fullmatch(r"\[[0-9a-f]+\]", peer)
        assert [line for line in lines if line.startswith(peer)] == [
            f"{peer} one",
            f"{peer} two!",
        ]
