"""%%wool cells and top-level %wool lines become awaits on the running loop."""

import asyncio
import linecache

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell

from wool_jupyter.magics import WoolMagics

from .conftest import fake

CELL = "get_ipython().find_cell_magic('wool').__self__.wool_cell_async"
LINE = "get_ipython().find_line_magic('wool').__self__.wool_line_async"


async def run_like_ipykernel(shell: InteractiveShell, raw: str) -> ExecutionResult:
    """What ipykernel does with a cell: transform, then await run_cell_async on its loop."""
    transformed = shell.transform_cell(raw)
    assert shell.should_run_async(raw, transformed_cell=transformed)
    return await asyncio.wait_for(
        shell.run_cell_async(raw, store_history=True, transformed_cell=transformed), 20
    )


async def run_like_ipykernel_or_not(shell: InteractiveShell, raw: str) -> ExecutionResult:
    """Run ``raw`` on the running loop whether or not IPython would await it (as ipykernel)."""
    transformed = shell.transform_cell(raw)
    return await asyncio.wait_for(
        shell.run_cell_async(raw, store_history=True, transformed_cell=transformed), 20
    )


class TestRewriting:
    def test_cell(self, loaded: WoolMagics, shell: InteractiveShell) -> None:
        assert shell.transform_cell("%%wool --all -o r\nx = 1\nx\n") == (
            f"await {CELL}('--all -o r', 'x = 1\\nx\\n')\n"
        )

    def test_cell_without_arguments_or_body(self, loaded: WoolMagics, shell) -> None:
        assert shell.transform_cell("%%wool") == f"await {CELL}('', '')\n"

    def test_cell_trailing_semicolon_is_kept(self, loaded: WoolMagics, shell) -> None:
        assert shell.transform_cell("%%wool\nx;  # quiet\n").endswith(";\n")
        assert not shell.transform_cell("%%wool\nx\n# x;\n").endswith(";\n")

    def test_cell_body_quotes_survive(self, loaded: WoolMagics, shell) -> None:
        body = "s = '''a\\\"b'''\n\"x\" + 'y' + s\n"
        transformed = shell.transform_cell("%%wool\n" + body)
        assert eval(transformed.removeprefix(f"await {CELL}"), {}) == ("", body)

    @pytest.mark.parametrize(
        "line", ["%wool start -n 4", "%wool", "%wool status  ", "%wool start \\\n  -n 2"]
    )
    def test_top_level_line(self, loaded: WoolMagics, shell, line: str) -> None:
        transformed = shell.transform_cell(line)
        assert transformed.startswith(f"await {LINE}(")
        assert transformed.count("\n") == 1

    def test_line_among_other_statements(self, loaded: WoolMagics, shell) -> None:
        transformed = shell.transform_cell("x = 1\n%wool start\nif x:\n    y = 2\n%wool status\n")
        assert transformed == (
            f"x = 1\nawait {LINE}('start')\nif x:\n    y = 2\nawait {LINE}('status')\n"
        )

    @pytest.mark.parametrize(
        "source",
        [
            "if True:\n    %wool stop\n",
            "s = '''\n%wool start\n'''\n",
            "%woolly start\n",
            "x = %wool status\n",
        ],
    )
    def test_lines_left_to_ipython(self, loaded: WoolMagics, shell, source: str) -> None:
        assert "wool_line_async" not in shell.transform_cell(source)

    def test_help_syntax_is_left_to_ipython(self, loaded: WoolMagics, shell) -> None:
        assert "wool_" not in shell.transform_cell("%wool?")
        assert "wool_" not in shell.transform_cell("%%wool?")

    def test_other_cell_magics_are_untouched(self, loaded: WoolMagics, shell) -> None:
        assert shell.transform_cell("%%woolen\nx\n").startswith("get_ipython().run_cell_magic(")

    def test_nothing_is_rewritten_without_autoawait(self, loaded: WoolMagics, shell) -> None:
        shell.autoawait = False
        assert "await" not in shell.transform_cell("%%wool\nx\n")
        assert "await" not in shell.transform_cell("%wool start\n")

    def test_cell_magic_input_stays_incomplete_until_a_blank_line(
        self, loaded: WoolMagics, shell
    ) -> None:
        manager = shell.input_transformer_manager
        assert manager.check_complete("%%wool\nx = 1")[0] == "incomplete"
        assert manager.check_complete("%%wool\nx = 1\n\n")[0] == "complete"
        assert manager.check_complete("%wool start")[0] == "complete"

    def test_syntax_errors_surface_while_transforming(self, loaded: WoolMagics, shell) -> None:
        with pytest.raises(SyntaxError, match="'return' is not allowed") as caught:
            shell.transform_cell("%%wool --all\nx = 1\nreturn x\n")
        assert caught.value.lineno == 3
        assert linecache.getlines(caught.value.filename)[2] == "return x\n"


class TestSyncShell:
    """Terminal-style execution: IPython runs the await with its own loop runner."""

    def test_cell_result_is_displayed_and_stored(
        self, loaded: WoolMagics, shell, capsys: pytest.CaptureFixture[str]
    ) -> None:
        shell.run_cell("%wool start -n 2", store_history=True)
        shell.run_cell("value = 20", store_history=True)
        result = shell.run_cell("%%wool -o doubled\nvalue * 2 + 2\n", store_history=True)
        assert result.success, result.error_in_exec
        assert result.result == 42
        assert shell.user_ns["doubled"] == 42
        assert shell.user_ns["_"] == 42
        assert "Out[3]: 42" in capsys.readouterr().out

    def test_semicolon_silences_the_result(self, loaded: WoolMagics, shell, capsys) -> None:
        shell.run_cell("%wool start -n 1", store_history=True)
        capsys.readouterr()
        result = shell.run_cell("%%wool -o kept\n6 * 7;\n", store_history=True)
        assert result.result is None
        assert shell.user_ns["kept"] == 42
        assert "Out" not in capsys.readouterr().out

    def test_syntax_error_is_shown_without_running(self, loaded: WoolMagics, shell, capsys):
        shell.run_cell("%wool start -n 1", store_history=True)
        result = shell.run_cell("%%wool\nx = 1\nyield x\n", store_history=True)
        assert isinstance(result.error_before_exec, SyntaxError)
        assert "run_cell" not in fake(loaded).names()
        text = capsys.readouterr().out
        assert "line 3" in text
        assert "'yield' is not allowed" in text

    def test_remote_style_traceback_points_at_the_cell(self, loaded: WoolMagics, shell, capsys):
        shell.run_cell("%wool start -n 1", store_history=True)
        capsys.readouterr()
        result = shell.run_cell(
            "%%wool\ndef f():\n    raise KeyError('nope')\nf()\n", store_history=True
        )
        assert isinstance(result.error_in_exec, KeyError)
        text = capsys.readouterr().out
        assert "raise KeyError('nope')" in text
        assert "line 4" in text

    def test_not_running_is_a_usage_error(self, loaded: WoolMagics, shell, capsys) -> None:
        result = shell.run_cell("%%wool\n1\n", store_history=True)
        assert isinstance(result.error_in_exec, UsageError)
        assert "not running" in capsys.readouterr().err


class TestOnTheRunningLoop:
    """ipykernel-style execution: the cell is awaited on the loop that is already running."""

    async def test_cell_runs_on_the_current_loop_without_blocking_it(
        self, loaded: WoolMagics, shell
    ) -> None:
        result = await run_like_ipykernel(shell, "%wool start -n 3")
        assert result.success, result.error_in_exec
        backend = fake(loaded)
        gate = asyncio.Event()

        async def open_the_gate_once_the_cell_waits() -> None:
            while "run_cell" not in backend.names():
                await asyncio.sleep(0)
            gate.set()

        # The cell can only finish if another task runs on this loop while it waits.
        opener = asyncio.create_task(open_the_gate_once_the_cell_waits())
        try:
            shell.user_ns["gate"] = gate
            result = await run_like_ipykernel(shell, "%%wool --all\nawait gate.wait()\n'done'\n")
        finally:
            opener.cancel()
        assert result.success, result.error_in_exec
        assert result.result == {"peer-0": "done", "peer-1": "done"}
        assert backend.cell_loops == [asyncio.get_running_loop()]

    async def test_top_level_lines_are_awaited(self, loaded: WoolMagics, shell, capsys) -> None:
        result = await run_like_ipykernel(shell, "%wool start -n 2 --tag a\n%wool stop\n")
        assert result.success, result.error_in_exec
        assert fake(loaded).names() == ["start", "widget", "stop"]
        assert "Started 2 workers." in capsys.readouterr().out

    @pytest.mark.parametrize(
        "raw",
        [
            "if True:\n    %wool start -n 2\n",
            "x = 1\nif x:\n    %wool start -n 2\n",
            "get_ipython().run_line_magic('wool', 'start -n 2')\n",
        ],
    )
    async def test_start_works_wherever_a_line_magic_can_stand(
        self, loaded: WoolMagics, shell, capsys, raw: str
    ) -> None:
        result = await run_like_ipykernel_or_not(shell, raw)
        assert result.success, result.error_in_exec
        assert fake(loaded).calls[0] == ("start", (2, []))
        assert "Started 2 workers." in capsys.readouterr().out

    async def test_nested_stop_and_restart_work_without_awaiting(
        self, loaded: WoolMagics, shell, capsys
    ) -> None:
        raw = "if True:\n    %wool start -n 2\n    %wool restart\n    %wool stop\n    %wool stop\n"
        result = await run_like_ipykernel_or_not(shell, raw)
        assert result.success, result.error_in_exec
        backend = fake(loaded)
        assert [c for c in backend.calls if c[0] == "start"] == [("start", (2, []))] * 2
        assert backend.closed == 2
        assert backend.running is None
        text = capsys.readouterr().out
        assert text.count("Stopped now.") == 2
        assert text.rstrip().endswith("not running; start it with %wool start.")

    async def test_nested_lines_that_need_no_loop_still_work(
        self, loaded: WoolMagics, shell, capsys
    ) -> None:
        raw = "if True:\n    %wool status\n"
        transformed = shell.transform_cell(raw)
        result = await shell.run_cell_async(raw, store_history=True, transformed_cell=transformed)
        assert result.success, result.error_in_exec
        assert "not running" in capsys.readouterr().out

    async def test_direct_cell_magic_call_is_refused_on_a_running_loop(
        self, loaded: WoolMagics, shell
    ) -> None:
        with pytest.raises(UsageError, match="%%wool"):
            shell.run_cell_magic("wool", "", "1")

    async def test_cancelling_the_cell_cancels_the_backend_call(
        self, loaded: WoolMagics, shell
    ) -> None:
        await run_like_ipykernel(shell, "%wool start -n 1")
        backend = fake(loaded)
        raw = "%%wool\nimport asyncio\nawait asyncio.sleep(30)\n"
        task = asyncio.ensure_future(
            shell.run_cell_async(
                raw, store_history=True, transformed_cell=shell.transform_cell(raw)
            )
        )
        async with asyncio.timeout(5):
            while "run_cell" not in backend.names():
                await asyncio.sleep(0)
        assert not task.done()
        task.cancel()
        # IPython reports the cancellation as the cell's error, as ipykernel shows it.
        result = await asyncio.wait_for(task, 5)
        assert isinstance(result.error_in_exec, asyncio.CancelledError)
        assert backend.names()[-2:] == ["run_cell", "run_cell cancelled"]
