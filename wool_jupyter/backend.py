"""What the magics need from the thing that owns the mesh.

``%wool`` and ``%%wool`` never talk to the runtime directly; they call one
object satisfying :class:`WoolBackend`, made on first ``%wool start`` by a
:data:`BackendFactory`. In a kernel that object is a ``KernelMesh``; tests pass
fakes.

Threading and loops: every method is called on the thread that runs the
shell's cells. Awaitables returned by the ``Awaitable`` methods are awaited on
the loop that runs the cell, which in ipykernel is the kernel's own asyncio
loop, so they must not block it. Blocking methods (``describe``, ``status``,
``widget``, ``close``) must return promptly.
"""

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeAlias

from IPython.core.interactiveshell import InteractiveShell

from wool_jupyter.cells import CellProgram
from wool_jupyter.config import Wool

__all__ = ["NOT_RUNNING", "BackendFactory", "WoolBackend"]

NOT_RUNNING = "Wool is not running; start it with %wool start."
"""What the magics, and a backend asked for its status while stopped, tell the user."""


class WoolBackend(Protocol):
    """The operations behind the ``%wool`` subcommands and ``%%wool`` cells.

    Messages returned as ``str`` are printed to the cell's output as they are;
    an empty string prints nothing. Exceptions propagate to the cell and are
    shown as the cell's error. The magics decide idempotency (``%wool start``
    while running, ``%wool stop`` while stopped) from :meth:`describe`, so
    ``start``, ``stop`` and ``restart`` are only called when they make sense.
    """

    def describe(self) -> str | None:
        """One line naming what is running (size, addresses), or ``None`` when stopped."""
        ...

    def start(self, workers: int, tags: list[str]) -> Awaitable[str]:
        """Launch ``workers`` (at least 1) local workers carrying ``tags``.

        Resolves once the mesh accepts work, to a message for the user.
        Honour ``Wool.start_timeout`` and leave nothing running on failure.
        """
        ...

    def stop(self) -> Awaitable[str]:
        """Stop every worker this backend started; resolves to a message."""
        ...

    def restart(self) -> Awaitable[str]:
        """Stop, then start again with the same size and tags; resolves to a message."""
        ...

    def status(self) -> object:
        """Peers, addresses, pids, tags, work in flight and totals.

        A ``str`` is printed; anything else is passed to IPython's ``display``
        (so an object with ``_repr_html_`` renders as HTML).
        """
        ...

    def widget(self) -> object | None:
        """The live mesh widget to display, or ``None`` when there is none to show."""
        ...

    def run_cell(
        self,
        program: CellProgram,
        *,
        all_peers: bool,
        tags: list[str],
        timeout: float | None,
    ) -> Awaitable[object]:
        """Run ``program.function(**program.arguments)`` on the mesh.

        With ``all_peers`` false, run it once on one peer and resolve to its
        return value; with ``all_peers`` true, run it once on every matching
        peer and resolve to a ``dict`` keyed by peer (``KernelMesh`` uses the
        worker id). Only peers carrying every tag in ``tags`` are eligible.
        ``timeout`` bounds the whole run in seconds (``None``: no bound).
        Remote stdout/stderr belongs in the calling cell's output while the
        awaitable is pending. Cancelling the awaitable (a kernel interrupt
        does that) must cancel the remote work.
        """
        ...

    def close(self) -> None:
        """Stop everything without an event loop: used when the extension unloads
        and at interpreter exit. Safe to call more than once and when stopped."""
        ...


BackendFactory: TypeAlias = Callable[[InteractiveShell, Wool], WoolBackend]
"""Makes the backend for a shell; receives the shell and its live ``Wool`` settings."""
