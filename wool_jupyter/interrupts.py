"""Interrupting a cell that awaits: cancel what it awaits and report ``KeyboardInterrupt``.

In ipykernel (6.29 and 7.x; ipykernel issue #881) interrupting a cell that
is suspended in ``await`` does nothing until the awaited thing finishes by
itself, and then the cell ends with ``CancelledError``. The kernel's SIGINT
handler for such cells only queues a callback on the event loop with
``call_soon``, which does not wake a loop sleeping in its selector, and the
``CancelledError`` that eventually arrives is shown as it is.

:class:`CellInterrupts` replaces that behaviour for the duration of each cell
(from ``pre_run_cell`` to ``post_run_cell``) with a SIGINT handler that
decides by what the main thread is doing when the signal is handled:

* the cell's own task is running (it blocks in ``time.sleep``, a C call or a
  CPU loop): raise ``KeyboardInterrupt`` right there, as Python's default
  handler does, so blocking code stops at once;
* anything else (the loop idle in its selector, or running another task or
  callback): cancel the cell's task through ``call_soon_threadsafe``, which
  wakes the loop. The cancellation reaches whatever the cell awaits; wool
  cancels remote routines whose caller is cancelled. Raising there instead
  would break the event loop or an unrelated task.

A wake-up fd makes sure a SIGINT delivered to another thread still wakes the
loop. The ``CancelledError`` a cancel of ours produces is shown as
``KeyboardInterrupt`` (through ``shell.set_custom_exc``, chained to any
handler set before), with the traceback cut at the first frame inside
asyncio or wool, so it shows where the notebook code was waiting; the
execution result and the kernel's reply say ``KeyboardInterrupt`` too, and
the task's cancellation count is restored with ``Task.uncancel``. Cells run
outside the main thread, or without a running loop, are left alone.
"""

import asyncio
import contextlib
import signal
import socket
import threading
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any

from IPython.core.interactiveshell import InteractiveShell

from wool_jupyter.tracebacks import MACHINERY, frames_until

__all__ = ["CellInterrupts"]


@dataclass
class _Cell:
    """One running cell as the SIGINT handler sees it."""

    task: asyncio.Task[Any]
    loop: asyncio.AbstractEventLoop
    previous_handler: Any
    wakeup_set: bool
    requested: int = 0
    shown: list[KeyboardInterrupt] = field(default_factory=list)


class _Wakeup:
    """A socket pair whose write end serves as the signal wake-up fd of one loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)
        loop.add_reader(self._read.fileno(), self._drain)

    @property
    def fd(self) -> int:
        return self._write.fileno()

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            while self._read.recv(4096):
                pass

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self._read.fileno())
        self._read.close()
        self._write.close()


class CellInterrupts:
    """Per-cell SIGINT handling for one shell; see the module docstring."""

    def __init__(self, shell: InteractiveShell) -> None:
        self._shell = shell
        self._cells: list[_Cell] = []
        self._wakeup: _Wakeup | None = None
        self._previous_exc: tuple[tuple[type[BaseException], ...], Any] | None = None
        self._installed_tb: Any = None

    def install(self) -> None:
        if self._previous_exc is not None:
            return
        shell = self._shell
        self._previous_exc = (tuple(shell.custom_exceptions), shell.CustomTB)
        handled = (*self._previous_exc[0], asyncio.CancelledError)
        shell.set_custom_exc(handled, self._custom_tb)
        self._installed_tb = shell.CustomTB
        shell.events.register("pre_run_cell", self._pre_run_cell)
        shell.events.register("post_run_cell", self._post_run_cell)

    def uninstall(self) -> None:
        if self._previous_exc is None:
            return
        shell = self._shell
        for event, callback in (
            ("pre_run_cell", self._pre_run_cell),
            ("post_run_cell", self._post_run_cell),
        ):
            with contextlib.suppress(ValueError):
                shell.events.unregister(event, callback)
        if shell.CustomTB is self._installed_tb:
            shell.custom_exceptions, shell.CustomTB = self._previous_exc
        self._previous_exc = None
        while self._cells:
            self._leave(self._cells.pop())
        if self._wakeup is not None:
            self._wakeup.close()
            self._wakeup = None

    # -- cell events ------------------------------------------------------------

    def _pre_run_cell(self, *_: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = asyncio.current_task(loop)
        if task is None:
            return
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        self._cells.append(_Cell(task, loop, previous, self._set_wakeup(loop)))

    def _post_run_cell(self, result: Any = None, *_: Any) -> None:
        if not self._cells or threading.current_thread() is not threading.main_thread():
            return
        cell = self._cells.pop()
        self._leave(cell)
        error = getattr(result, "error_in_exec", None)
        if cell.shown and isinstance(error, asyncio.CancelledError):
            result.error_in_exec = cell.shown[-1]

    def _leave(self, cell: _Cell) -> None:
        if signal.getsignal(signal.SIGINT) == self._on_sigint:
            signal.signal(signal.SIGINT, cell.previous_handler)
        if cell.wakeup_set and self._wakeup is not None:
            current = signal.set_wakeup_fd(-1)
            if current != self._wakeup.fd:
                # Someone replaced ours during the cell: theirs stays.
                signal.set_wakeup_fd(current)
        self._uncancel(cell)

    def _set_wakeup(self, loop: asyncio.AbstractEventLoop) -> bool:
        if self._wakeup is not None and self._wakeup.loop is not loop:
            self._wakeup.close()
            self._wakeup = None
        if self._wakeup is None:
            self._wakeup = _Wakeup(loop)
        try:
            previous = signal.set_wakeup_fd(self._wakeup.fd, warn_on_full_buffer=False)
        except ValueError:
            return False
        if previous != -1:
            # The loop (or someone) already wakes on signals: leave their fd in place.
            signal.set_wakeup_fd(previous)
            return False
        return True

    # -- the signal -------------------------------------------------------------

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        cell = self._cells[-1] if self._cells else None
        if cell is None or cell.task.done() or cell.loop.is_closed():
            raise KeyboardInterrupt
        if asyncio.current_task(cell.loop) is cell.task:
            raise KeyboardInterrupt
        cell.loop.call_soon_threadsafe(self._cancel, cell)

    @staticmethod
    def _cancel(cell: _Cell) -> None:
        if cell.task.cancel():
            cell.requested += 1

    @staticmethod
    def _uncancel(cell: _Cell) -> None:
        while cell.requested and cell.task.cancelling():
            cell.task.uncancel()
            cell.requested -= 1
        cell.requested = 0

    # -- showing the result -----------------------------------------------------

    def _custom_tb(
        self,
        shell: InteractiveShell,
        etype: type[BaseException],
        value: BaseException,
        tb: TracebackType | None,
        tb_offset: int | None = None,
    ) -> None:
        cell = self._cells[-1] if self._cells else None
        ours = (
            cell is not None
            and cell.requested > 0
            and isinstance(value, asyncio.CancelledError)
            and _current_task() is cell.task
        )
        if ours:
            assert cell is not None
            self._uncancel(cell)
            interrupt = KeyboardInterrupt()
            cell.shown.append(interrupt)
            frames = frames_until(tb, MACHINERY)
            shell.showtraceback((KeyboardInterrupt, interrupt, frames), running_compiled_code=True)
            return
        previous = self._previous_exc
        if previous is not None and previous[0] and isinstance(value, previous[0]):
            previous[1](etype, value, tb, tb_offset=tb_offset)
            return
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset, running_compiled_code=True)


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None
