"""Run a batch of tasks to the end, then report every outcome in input order.

Used where Jupyter runs many things at once and must not leave any running:
``%%wool --all`` (one call per peer) and :func:`wool_jupyter.progress.progress`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

__all__ = ["cancel_all", "outcomes"]


async def cancel_all(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Cancel every task and wait until each has finished (cleanup included)."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)


def _error_of(task: asyncio.Future[Any]) -> BaseException | None:
    """A finished task's exception (``CancelledError`` if it was cancelled), or None."""
    return asyncio.CancelledError() if task.cancelled() else task.exception()


def outcomes(
    tasks: Sequence[asyncio.Future[Any]],
) -> tuple[list[Any], list[tuple[int, BaseException]]]:
    """For finished ``tasks``: each result, with a failure's exception in its place,
    and the failures as ``(position, exception)``, both in input order.

    Callers that raise raise ``failures[0]``: the first failure in input order,
    not the first to happen, so the error a user sees does not depend on timing.
    """
    values: list[Any] = []
    failures: list[tuple[int, BaseException]] = []
    for i, task in enumerate(tasks):
        error = _error_of(task)
        if error is None:
            values.append(task.result())
        else:
            values.append(error)
            failures.append((i, error))
    return values, failures
