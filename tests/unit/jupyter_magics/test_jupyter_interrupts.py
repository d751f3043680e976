"""Per-cell SIGINT handling, driven in a real shell by calling the handler directly.

The handler is called as the signal machinery would call it, never through a
real signal, so a bug cannot interrupt the test run itself.
"""

import asyncio
import re
import signal

import pytest
from IPython.core.interactiveshell import InteractiveShell

from wool_jupyter.extension import load_ipython_extension, unload_ipython_extension
from wool_jupyter.magics import WoolMagics

INTERRUPT_FROM_THE_LOOP = """
import asyncio, signal
handler = signal.getsignal(signal.SIGINT)
asyncio.get_running_loop().call_later(0.05, handler, signal.SIGINT, None)
await asyncio.sleep(10)
"""

INTERRUPT_FROM_THE_CELL = """
import asyncio, signal
handler = signal.getsignal(signal.SIGINT)
await asyncio.sleep(0)
handler(signal.SIGINT, None)
"""


def test_an_awaiting_cell_is_cancelled_and_reports_keyboard_interrupt(
    loaded: WoolMagics, shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    before = signal.getsignal(signal.SIGINT)
    result = shell.run_cell(INTERRUPT_FROM_THE_LOOP)
    # Uninterrupted, the cell's 10 s sleep would end without an error.
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    shown = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)
    assert "KeyboardInterrupt" in shown and "CancelledError" not in shown
    assert "await asyncio.sleep(10)" in shown
    assert signal.getsignal(signal.SIGINT) is before


def test_a_cell_running_its_own_code_gets_keyboard_interrupt_at_once(
    loaded: WoolMagics, shell: InteractiveShell
) -> None:
    result = shell.run_cell(INTERRUPT_FROM_THE_CELL)
    assert isinstance(result.error_in_exec, KeyboardInterrupt)


def test_a_cancelled_error_of_the_cell_s_own_stays_what_it_is(
    loaded: WoolMagics, shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    result = shell.run_cell("import asyncio\nraise asyncio.CancelledError('mine')")
    assert isinstance(result.error_in_exec, asyncio.CancelledError)
    assert "CancelledError" in capsys.readouterr().out


def test_cells_without_a_loop_are_left_alone(loaded: WoolMagics, shell: InteractiveShell) -> None:
    before = signal.getsignal(signal.SIGINT)
    shell.run_cell("import signal\nduring = signal.getsignal(signal.SIGINT)")
    assert shell.user_ns["during"] is before


def test_a_custom_exception_handler_set_before_keeps_working(shell: InteractiveShell) -> None:
    seen: list[BaseException] = []

    def handler(self, etype, value, tb, tb_offset=None):
        seen.append(value)

    shell.set_custom_exc((ValueError,), handler)
    previous = shell.CustomTB
    try:
        load_ipython_extension(shell)
        assert set(shell.custom_exceptions) == {ValueError, asyncio.CancelledError}
        shell.run_cell("raise ValueError('for the earlier handler')")
        assert [str(e) for e in seen] == ["for the earlier handler"]
        unload_ipython_extension(shell)
        assert shell.custom_exceptions == (ValueError,)
        assert shell.CustomTB is previous
    finally:
        shell.set_custom_exc((), None)
