"""Loading and unloading the extension on a shell."""

import asyncio

import pytest
from IPython.core.interactiveshell import InteractiveShell

import wool
import wool_jupyter
import wool_jupyter.extension as extension
from wool_jupyter.config import Wool
from wool_jupyter.extension import load_ipython_extension, unload_ipython_extension
from wool_jupyter.interrupts import CellInterrupts
from wool_jupyter.magics import WoolMagics
from wool_jupyter.transform import CellMagicAwait, LineMagicAwait

from .conftest import FakeBackend, fake


def installed_parts(shell: InteractiveShell) -> dict[str, int]:
    manager = shell.magics_manager
    return {
        "line": int("wool" in manager.magics["line"]),
        "cell": int("wool" in manager.magics["cell"]),
        "registry": sum(isinstance(m, WoolMagics) for m in manager.registry.values()),
        "cleanup": sum(isinstance(t, CellMagicAwait) for t in shell.input_transformers_cleanup),
        "tokens": sum(
            issubclass(t, LineMagicAwait)
            for t in shell.input_transformer_manager.token_transformers
        ),
        "configurables": sum(isinstance(c, Wool) for c in shell.configurables),
        "cell_hooks": sum(
            isinstance(getattr(callback, "__self__", None), CellInterrupts)
            for event in ("pre_run_cell", "post_run_cell")
            for callback in shell.events.callbacks[event]
        ),
        "cancelled_error": int(asyncio.CancelledError in shell.custom_exceptions),
        "pool_display": sum(
            wool.WorkerPool in shell.display_formatter.formatters[mime].type_printers
            for mime in ("text/html", "text/plain")
        ),
        "notes": int("structured_traceback" in vars(shell.InteractiveTB)),
    }


ALL = {
    "line": 1,
    "cell": 1,
    "registry": 1,
    "cleanup": 1,
    "tokens": 1,
    "configurables": 1,
    "cell_hooks": 2,
    "cancelled_error": 1,
    "pool_display": 2,
    "notes": 1,
}
NONE = dict.fromkeys(ALL, 0)


def test_load_installs_everything_once(shell: InteractiveShell) -> None:
    assert installed_parts(shell) == NONE
    load_ipython_extension(shell, backend_factory=FakeBackend)
    assert installed_parts(shell) == ALL
    first = shell.find_line_magic("wool").__self__
    load_ipython_extension(shell, backend_factory=FakeBackend)
    assert installed_parts(shell) == ALL
    assert shell.find_line_magic("wool").__self__ is first


def test_loading_creates_no_backend(loaded: WoolMagics) -> None:
    assert loaded.backend is None


def test_unload_removes_everything_and_closes_the_backend(
    loaded: WoolMagics, shell: InteractiveShell
) -> None:
    shell.run_line_magic("wool", "start -n 1")
    backend = fake(loaded)
    unload_ipython_extension(shell)
    assert installed_parts(shell) == NONE
    assert backend.closed == 1
    assert shell.find_cell_magic("wool") is None
    assert "await" not in shell.transform_cell("%%wool\nx\n")
    unload_ipython_extension(shell)
    assert backend.closed == 1


def test_unload_without_a_backend(loaded: WoolMagics, shell: InteractiveShell) -> None:
    unload_ipython_extension(shell)
    assert installed_parts(shell) == NONE


def test_unload_leaves_someone_elses_wool_magic_alone(
    loaded: WoolMagics, shell: InteractiveShell
) -> None:
    def other(line: str) -> str:
        return "other"

    shell.register_magic_function(other, "line", "wool")
    unload_ipython_extension(shell)
    assert shell.run_line_magic("wool", "") == "other"
    del shell.magics_manager.magics["line"]["wool"]


def test_reload_after_unload(shell: InteractiveShell) -> None:
    load_ipython_extension(shell, backend_factory=FakeBackend)
    unload_ipython_extension(shell)
    load_ipython_extension(shell, backend_factory=FakeBackend)
    assert installed_parts(shell) == ALL
    shell.run_line_magic("wool", "start -n 1")
    assert shell.run_cell("%%wool\n'again'\n").result == "again"


def test_load_ext_and_unload_ext(shell: InteractiveShell, monkeypatch, capsys) -> None:
    monkeypatch.setattr(extension, "default_backend_factory", FakeBackend)
    shell.run_line_magic("load_ext", "wool_jupyter")
    try:
        assert installed_parts(shell) == ALL
        shell.run_line_magic("load_ext", "wool_jupyter")
        assert "already loaded" in capsys.readouterr().out
        shell.run_line_magic("wool", "start -n 2")
        backend = fake(shell.find_line_magic("wool").__self__)
        assert backend.calls[0] == ("start", (2, []))
    finally:
        shell.run_line_magic("unload_ext", "wool_jupyter")
    assert installed_parts(shell) == NONE
    assert backend.closed == 1


def test_package_entry_points_delegate(shell: InteractiveShell, monkeypatch) -> None:
    monkeypatch.setattr(extension, "default_backend_factory", FakeBackend)
    wool_jupyter.load_ipython_extension(shell)
    assert installed_parts(shell) == ALL
    wool_jupyter.unload_ipython_extension(shell)
    assert installed_parts(shell) == NONE


def test_interpreter_exit_closes_the_backend(shell: InteractiveShell, monkeypatch) -> None:
    registered: list[object] = []
    monkeypatch.setattr(extension.atexit, "register", registered.append)
    monkeypatch.setattr(extension.atexit, "unregister", registered.remove)
    load_ipython_extension(shell, backend_factory=FakeBackend)
    magics = shell.find_line_magic("wool").__self__
    assert registered == [magics.close]
    shell.run_line_magic("wool", "start -n 1")
    registered[0]()  # what atexit would do
    assert fake(magics).closed == 1
    unload_ipython_extension(shell)
    assert registered == []


@pytest.mark.parametrize("autoawait", [True, False])
def test_works_with_and_without_autoawait(shell: InteractiveShell, autoawait: bool) -> None:
    load_ipython_extension(shell, backend_factory=FakeBackend)
    shell.autoawait = autoawait
    assert shell.run_cell("%wool start -n 1").success
    result = shell.run_cell("%%wool\nimport asyncio\nawait asyncio.sleep(0)\n7\n")
    assert result.success, result.error_in_exec
    assert result.result == 7
