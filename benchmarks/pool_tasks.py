"""Functions the ``ProcessPoolExecutor`` floor runs in its worker processes.

Kept in a module of their own that imports nothing, so the pool's worker processes
start as fast as a pool can.
"""


def noop() -> None:
    """Do nothing: the pool floor's no-op call."""
    return None


def echo(data: bytes) -> bytes:
    """Return ``data`` unchanged: the pool floor's payload round trip."""
    return data
