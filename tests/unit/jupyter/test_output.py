"""Remote output forwarding: rate limit, suppression notes, per-peer prefixes."""

from __future__ import annotations

import asyncio
import re

import pytest

from wool_jupyter import output
from wool_jupyter.output import CellOutput, peer_label


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines(n: int, start: int = 0) -> str:
    return "".join(f"{i}\n" for i in range(start, start + n))


def suppressed(err: str) -> int:
    return sum(int(n.replace(",", "")) for n in re.findall(r"… ([\d,]+) lines? suppressed", err))


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_no_limit_shows_everything(capsys: pytest.CaptureFixture[str], clock: Clock) -> None:
    cell = CellOutput(lambda: 0, clock)
    cell.write("stdout", lines(10_000))
    cell.write("stderr", "oops\n")
    out, err = capsys.readouterr()
    assert out == lines(10_000) and err == "oops\n"


def test_a_burst_within_the_limit_shows_in_full(
    capsys: pytest.CaptureFixture[str], clock: Clock
) -> None:
    cell = CellOutput(lambda: 10, clock)
    for i in range(int(10 * output.BURST_S)):
        cell.write("stdout", f"{i}\n")
    cell.flush()
    out, err = capsys.readouterr()
    assert out == lines(int(10 * output.BURST_S)) and err == ""


def test_a_flood_is_cut_then_summarised(capsys: pytest.CaptureFixture[str], clock: Clock) -> None:
    cell = CellOutput(lambda: 10, clock)
    cell.write("stdout", lines(1000))
    clock.now += 0.5
    cell.write("stdout", lines(100, 1000))  # still in the pause: dropped
    assert cell.suppressed == 1000 - 50 + 100
    cell.flush()
    out, err = capsys.readouterr()
    assert out == lines(50)
    assert suppressed(err) == 1050
    assert "Wool.output_rate_limit" in err
    cell.flush()
    assert capsys.readouterr() == ("", "")


def test_output_resumes_after_the_pause_with_the_note_first(
    capsys: pytest.CaptureFixture[str], clock: Clock
) -> None:
    cell = CellOutput(lambda: 10, clock)
    cell.write("stdout", lines(60))
    clock.now += output.PAUSE_S + 0.01
    cell.write("stdout", "after\n")
    out, err = capsys.readouterr()
    assert out == lines(50) + "after\n"
    assert suppressed(err) == 10


def test_long_lines_without_newlines_are_limited_too(
    capsys: pytest.CaptureFixture[str], clock: Clock
) -> None:
    cell = CellOutput(lambda: 1, clock)
    for _ in range(100):
        cell.write("stdout", "x" * output.CHARS_PER_LINE)
    cell.flush()
    out, err = capsys.readouterr()
    assert len(out) < 100 * output.CHARS_PER_LINE
    assert re.search(r"… [\d,]+ characters suppressed", err)


def test_the_note_starts_on_a_new_line(capsys: pytest.CaptureFixture[str], clock: Clock) -> None:
    cell = CellOutput(lambda: 1, clock)
    cell.write("stderr", "partial")
    cell.write("stderr", lines(100))
    cell.flush()
    _, err = capsys.readouterr()
    assert err.startswith("partial") and "\n… " in err


def test_peer_labels_prefix_every_line(capsys: pytest.CaptureFixture[str], clock: Clock) -> None:
    cell = CellOutput(lambda: 0, clock)
    with peer_label("a1"):
        cell.write("stdout", "one\ntw")
    with peer_label("b2"):
        cell.write("stdout", "uno\n")
    with peer_label("a1"):
        cell.write("stdout", "o\nthree\n")
    cell.write("stdout", "plain\n")
    out, _ = capsys.readouterr()
    assert out == "[a1] one\n[a1] tw[b2] uno\no\n[a1] three\nplain\n"


async def test_the_note_is_written_after_the_pause_without_more_output(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(output, "PAUSE_S", 0.05)
    cell = CellOutput(lambda: 2)
    cell.write("stdout", lines(100))
    out = err = ""
    async with asyncio.timeout(5):
        while "suppressed" not in err:
            await asyncio.sleep(0.01)
            more_out, more_err = capsys.readouterr()
            out, err = out + more_out, err + more_err
    assert out == lines(10)
    assert suppressed(err) == 90


def test_the_forwarder_never_raises(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Broken:
        def write(self, text: str) -> int:
            raise ValueError("closed")

    class Settings:
        output_rate_limit = 0

    forwarder = output.OutputForwarder(shell=None, settings=Settings())  # type: ignore[arg-type]
    forwarder("stdout", "before\n")
    monkeypatch.setattr("sys.stdout", Broken())
    forwarder("stdout", "lost\n")
    monkeypatch.undo()
    assert capsys.readouterr().out == "before\n"
