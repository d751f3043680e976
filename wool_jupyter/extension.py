"""Install and remove the Jupyter integration on an IPython shell.

Loading registers the ``%wool``/``%%wool`` magics, the input transformers that
let them await on the kernel's loop (see :mod:`wool_jupyter.transform`), a
``Wool`` settings object known to ``%config``, the per-cell interrupt handling
that cancels awaiting cells (see :mod:`wool_jupyter.interrupts`), exception
notes in every traceback (see :mod:`wool_jupyter.notes`) and a display of
``wool.WorkerPool`` objects as their status. Loading again on the same shell
changes nothing. Unloading removes exactly what loading added and stops any
mesh the magics started. The mesh backend is only created on the first
``%wool start``, so loading stays cheap.
"""

import atexit
import weakref
from dataclasses import dataclass

from IPython.core.getipython import get_ipython
from IPython.core.interactiveshell import InteractiveShell

import wool
from wool_jupyter.backend import BackendFactory, WoolBackend
from wool_jupyter.config import Wool
from wool_jupyter.interrupts import CellInterrupts
from wool_jupyter.magics import WoolMagics
from wool_jupyter.notes import NotesInTracebacks
from wool_jupyter.status import register_pool_display, unregister_pool_display
from wool_jupyter.transform import (
    MAGIC_NAME,
    CellMagicAwait,
    LineMagicAwait,
    line_magic_transformer,
)

__all__ = [
    "current_pool",
    "default_backend_factory",
    "load_ipython_extension",
    "unload_ipython_extension",
]


def default_backend_factory(shell: InteractiveShell, settings: Wool) -> WoolBackend:
    """Make the in-kernel mesh (``wool_jupyter.mesh.KernelMesh``)."""
    from wool_jupyter.mesh import KernelMesh

    return KernelMesh(shell, settings)


@dataclass
class _Installed:
    settings: Wool
    magics: WoolMagics
    cell_transformer: CellMagicAwait
    line_transformer: type[LineMagicAwait]
    interrupts: CellInterrupts
    notes: NotesInTracebacks


_installed: "weakref.WeakKeyDictionary[InteractiveShell, _Installed]" = weakref.WeakKeyDictionary()


def load_ipython_extension(
    ip: InteractiveShell, *, backend_factory: BackendFactory | None = None
) -> None:
    """Install on ``ip``; ``backend_factory`` defaults to :func:`default_backend_factory`.

    A second call for the same shell does nothing, whatever its arguments.
    """
    if ip in _installed:
        return
    settings = Wool(parent=ip)
    magics = WoolMagics(
        ip, settings=settings, backend_factory=backend_factory or default_backend_factory
    )
    installed = _Installed(
        settings=settings,
        magics=magics,
        cell_transformer=CellMagicAwait(ip),
        line_transformer=line_magic_transformer(ip),
        interrupts=CellInterrupts(ip),
        notes=NotesInTracebacks(ip),
    )
    ip.register_magics(magics)
    ip.configurables.append(settings)
    ip.input_transformers_cleanup.append(installed.cell_transformer)
    ip.input_transformer_manager.token_transformers.insert(0, installed.line_transformer)
    installed.interrupts.install()
    installed.notes.install()
    register_pool_display(ip)
    atexit.register(magics.close)
    _installed[ip] = installed


def unload_ipython_extension(ip: InteractiveShell) -> None:
    """Remove everything :func:`load_ipython_extension` added and stop the mesh.

    Does nothing for a shell it was not loaded on.
    """
    installed = _installed.pop(ip, None)
    if installed is None:
        return
    _remove(ip.input_transformers_cleanup, installed.cell_transformer)
    _remove(ip.input_transformer_manager.token_transformers, installed.line_transformer)
    _remove(ip.configurables, installed.settings)
    manager = ip.magics_manager
    for kind in ("line", "cell"):
        table = manager.magics[kind]
        if getattr(table.get(MAGIC_NAME), "__self__", None) is installed.magics:
            del table[MAGIC_NAME]
    name = type(installed.magics).__name__
    if manager.registry.get(name) is installed.magics:
        del manager.registry[name]
    atexit.unregister(installed.magics.close)
    installed.interrupts.uninstall()
    installed.notes.uninstall()
    unregister_pool_display(ip)
    installed.magics.close()


def current_pool(shell: InteractiveShell | None = None) -> "wool.WorkerPool | None":
    """The ``wool.WorkerPool`` that ``%wool start`` made in ``shell`` (default: the
    running IPython), while it starts or runs; ``None`` when there is none.

    The pool is the real one: ``await pool.statistics()``, ``pool.workers``,
    ``pool.tags``. Stop it with ``%wool stop``, not ``pool.stop()``, so the
    magics, the widget and the output forwarding stop with it.
    """
    shell = shell if shell is not None else get_ipython()
    installed = _installed.get(shell) if shell is not None else None
    backend = installed.magics.backend if installed is not None else None
    return backend.pool if backend is not None else None


def _remove(items: list[object], item: object) -> None:
    for index, candidate in enumerate(items):
        if candidate is item:
            del items[index]
            return
