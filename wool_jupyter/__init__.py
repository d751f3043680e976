"""Jupyter integration for wool: magics, kernel-side mesh, live widget."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import wool

__all__ = ["current_pool", "load_ipython_extension", "unload_ipython_extension"]


def current_pool() -> "wool.WorkerPool | None":
    """The ``wool.WorkerPool`` that ``%wool start`` made in this IPython, while it
    starts or runs; ``None`` when there is none.

    For ``await pool.statistics()``, ``pool.workers`` and ``pool.tags``; see
    :func:`wool_jupyter.extension.current_pool`.
    """
    from wool_jupyter.extension import current_pool as current

    return current()


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext wool_jupyter``: see :mod:`wool_jupyter.extension`."""
    from wool_jupyter.extension import load_ipython_extension as load

    load(ip)


def unload_ipython_extension(ip: Any) -> None:
    """``%unload_ext wool_jupyter``: see :mod:`wool_jupyter.extension`."""
    from wool_jupyter.extension import unload_ipython_extension as unload

    unload(ip)
