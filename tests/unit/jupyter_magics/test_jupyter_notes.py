"""Exception notes in every traceback, the public pool handle, and what MeshNotRunning says."""

from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

import wool
import wool_jupyter
from wool_jupyter.extension import current_pool, load_ipython_extension
from wool_jupyter.magics import WoolMagics
from wool_jupyter.notes import NotesInTracebacks, missing_notes

from .conftest import FakeBackend, fake

NOTE = "[wool] raised remotely on worker w1 (127.0.0.1:5001) in f()"
# The note is joined at run time so that the traceback's source lines do not show it.
RAISE = f"e = ValueError('bad', 3)\ne.add_note({NOTE[:10]!r} + {NOTE[10:]!r})\nraise e\n"


@pytest.fixture
def old_ipython(shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the shell's traceback formatter leave notes out, as IPython 8.12's does."""
    formatter = type(shell.InteractiveTB)
    original = formatter.structured_traceback

    def without_notes(self: Any, *args: Any, **kwargs: Any) -> list[str]:
        return [line for line in original(self, *args, **kwargs) if NOTE not in line]

    monkeypatch.setattr(formatter, "structured_traceback", without_notes)
    yield


def shown(shell: InteractiveShell, capsys: pytest.CaptureFixture[str], code: str) -> str:
    result = shell.run_cell(code)
    assert result.error_in_exec is not None
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_old_ipython_hides_the_note_without_the_extension(
    shell: InteractiveShell, old_ipython: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert NOTE not in shown(shell, capsys, RAISE)


def test_the_extension_shows_a_note_the_formatter_left_out_once(
    old_ipython: None, loaded: WoolMagics, shell: InteractiveShell, capsys
) -> None:
    # old_ipython first: the extension must wrap the formatter that leaves notes out.
    text = shown(shell, capsys, RAISE)
    assert text.count(NOTE) == 1
    assert text.index("ValueError") < text.index(NOTE)
    assert shell.user_ns["e"].args == ("bad", 3)
    assert shell.user_ns["e"].__notes__ == [NOTE]


def test_an_ipython_that_shows_notes_gets_each_once(
    loaded: WoolMagics, shell: InteractiveShell, capsys
) -> None:
    assert shown(shell, capsys, RAISE).count(NOTE) == 1


def test_unloading_puts_the_formatter_back(shell: InteractiveShell) -> None:
    formatter = shell.InteractiveTB
    hook = NotesInTracebacks(shell)
    hook.install()
    assert "structured_traceback" in vars(formatter)
    hook.uninstall()
    hook.uninstall()
    assert "structured_traceback" not in vars(formatter)


def test_missing_notes() -> None:
    error = ValueError("x")
    assert missing_notes(error, ["ValueError: x"]) == []
    error.add_note("first")
    error.add_note("second")
    assert missing_notes(error, ["ValueError: x", "\x1b[0;31mfirst\x1b[0m"]) == ["second"]


class TestCurrentPool:
    def test_none_until_started_then_the_backends_pool_then_none(
        self, loaded: WoolMagics, shell: InteractiveShell
    ) -> None:
        assert current_pool(shell) is None
        assert wool_jupyter.current_pool() is None
        shell.run_line_magic("wool", "start -n 2")
        pool = fake(loaded).pool_value
        assert current_pool(shell) is pool
        assert wool_jupyter.current_pool() is pool
        shell.run_cell("%wool stop")
        assert wool_jupyter.current_pool() is None

    def test_none_without_the_extension(self, shell: InteractiveShell) -> None:
        assert current_pool(shell) is None
        load_ipython_extension(shell, backend_factory=FakeBackend)
        assert current_pool(shell) is None

    def test_it_is_public(self) -> None:
        assert "current_pool" in wool_jupyter.__all__


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("square", "Cannot dispatch square(): no wool mesh is running here."),
        ("Model.fit", "Cannot dispatch Model.fit(): no wool mesh"),
        ("this %%wool cell", "Cannot dispatch this %%wool cell: no wool mesh"),
        ("", "Cannot dispatch: no wool mesh"),
    ],
)
def test_mesh_not_running_reads_well(name: str, message: str) -> None:
    assert str(wool.MeshNotRunning(name)).startswith(message)
