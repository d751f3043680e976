"""What the magics need from the thing that owns the mesh.

``%wool`` and ``%%wool`` never talk to the runtime directly; they call one
object satisfying :class:`WoolBackend`, made on first ``%wool start`` by a
:data:`BackendFactory`. In a kernel that object is a ``KernelMesh``; tests pass
fakes.

Threading and loops: every method is called on the thread that runs the
shell's cells. Awaitables returned by the ``Awaitable`` methods are awaited on
the loop that runs the cell, which in ipykernel is the kernel's own asyncio
loop, so they must not block it. ``start`` never waits: it begins the start
in the background, so ``%wool start`` works wherever a line magic can stand.
Other blocking methods (``describe``, ``status``, ``widget``) must return
promptly, and ``close`` within a bound.
"""

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeAlias

from IPython.core.interactiveshell import InteractiveShell

import wool
from wool_jupyter.cells import CellProgram
from wool_jupyter.config import Wool
from wool_jupyter.remote import RemoteMesh

__all__ = ["NOT_RUNNING", "BackendFactory", "WoolBackend"]

NOT_RUNNING = "Wool is not running; start it with %wool start."
"""What the magics, and a backend asked for its status while stopped, tell the user."""


class WoolBackend(Protocol):
    """The operations behind the ``%wool`` subcommands and ``%%wool`` cells.

    Messages returned as ``str`` are printed to the cell's output as they are;
    an empty string prints nothing. Exceptions propagate to the cell and are
    shown as the cell's error. The magics decide idempotency (``%wool start``
    while running or starting, ``%wool stop`` while stopped) from
    :meth:`describe`, so ``start`` and ``stop`` are only called when they make
    sense; ``%wool restart`` is ``stop`` then ``start`` with the last size and tags.
    """

    def describe(self) -> str | None:
        """One line naming what is running or starting (size, addresses), or ``None``
        when stopped (a failed start counts as stopped)."""
        ...

    @property
    def pool(self) -> "wool.WorkerPool | None":
        """The ``wool.WorkerPool`` behind the mesh while it starts or runs, else ``None``.

        What ``wool_jupyter.current_pool()`` hands to users.
        """
        ...

    def start(self, workers: int, tags: list[str]) -> str:
        """Begin launching ``workers`` (at least 1) local workers carrying ``tags``.

        Returns at once, with a message for the user; the mesh comes up in the
        background. Routine calls made before it is ready wait for it (bounded
        by ``Wool.start_timeout``), and a start that fails leaves nothing
        running and is reported by :meth:`status` and to those calls.
        """
        ...

    def connect(self, remote: RemoteMesh) -> str:
        """Begin joining the remote mesh ``remote`` describes; returns at once, like
        :meth:`start`. Unreadable credentials raise ``wool.CredentialsError`` here."""
        ...

    def scale(self, workers: int) -> Awaitable[str]:
        """Grow or shrink the running local workers to ``workers`` (at least 1) while
        calls run; resolves to a message naming who was added or removed."""
        ...

    def disconnect(self) -> Awaitable[str]:
        """Leave the remote mesh (its workers keep running); resolves to a message,
        which says so when there is no remote mesh to leave."""
        ...

    def stop(self) -> Awaitable[str]:
        """Stop every worker this backend started (a start under way too); resolves
        to a message."""
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

    def close(self) -> str:
        """:meth:`stop` without an event loop, returning its message: used where a
        magic cannot await (nested in a block, ``run_line_magic`` in a running
        loop), when the extension unloads and at interpreter exit. Blocks until
        the workers are gone (bounded); safe to call more than once and when
        stopped."""
        ...


BackendFactory: TypeAlias = Callable[[InteractiveShell, Wool], WoolBackend]
"""Makes the backend for a shell; receives the shell and its live ``Wool`` settings."""
