"""Jupyter integration for wool: magics, kernel-side mesh, live widget."""

from typing import Any


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext wool_jupyter``: see :mod:`wool_jupyter.extension`."""
    from wool_jupyter.extension import load_ipython_extension as load

    load(ip)


def unload_ipython_extension(ip: Any) -> None:
    """``%unload_ext wool_jupyter``: see :mod:`wool_jupyter.extension`."""
    from wool_jupyter.extension import unload_ipython_extension as unload

    unload(ip)
