"""What routines print appears in the cell that called them, in order, while they run."""

from __future__ import annotations

import re

import pytest
from kernel_harness import Kernel

pytestmark = pytest.mark.jupyter

ROUTINES = """
@wool.routine
async def talk(pause):
    print("first")
    await asyncio.sleep(pause)
    print("second", file=sys.stderr)
    return "done"

@wool.routine
async def count(n):
    for i in range(n):
        print(i)

@wool.routine
async def late(delay, text):
    await asyncio.sleep(delay)
    print(text)
"""


@pytest.fixture(scope="module", autouse=True)
def routines(kernel: Kernel) -> None:
    kernel.run(ROUTINES)


def test_output_arrives_while_the_call_runs(kernel: Kernel) -> None:
    cell = kernel.run("await talk(2.0)")
    (first,) = [m for m in cell.messages if m.kind == "stream" and "first" in m.text]
    (second,) = [m for m in cell.messages if m.kind == "stream" and "second" in m.text]
    assert first.at < 1.5, f"'first' took {first.at:.2f}s to arrive"
    assert second.at >= 2.0
    assert first.content["name"] == "stdout" and second.content["name"] == "stderr"
    assert first.at + 1.0 < cell.replied_at
    assert cell.result == "'done'"


def test_lines_keep_their_order(kernel: Kernel) -> None:
    cell = kernel.run("await count(300)")
    assert cell.stdout.splitlines() == [str(i) for i in range(300)]


def test_output_stays_with_the_cell_that_dispatched(kernel: Kernel) -> None:
    started = kernel.run("background = asyncio.ensure_future(late(1.0, 'from the first cell'))")
    waiting = kernel.run("await late(0.1, 'from the second cell')\nawait background")
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
    shown = cell.stdout.splitlines()
    assert 240 <= len(shown) <= 400  # a 5 s burst, then 50 lines/s
    assert shown == [str(i) for i in range(len(shown))]
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
