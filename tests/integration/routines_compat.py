"""Routines for test_compat.py that report the wool.Task they run as (workers import this)."""

from __future__ import annotations

import wool


@wool.routine
async def describe(*args: object, **kwargs: object) -> dict:
    current = wool.current_task()
    assert isinstance(current, wool.Task)
    return {
        "id": current.id,
        "worker": current.worker,
        "parent": current.parent,
        "caller": current.caller,
        "function": current.function,
        "tag": current.tag,
        "callable": current.callable.__qualname__ if current.callable else None,
        "args": current.args,
        "kwargs": current.kwargs,
        "timeout": current.timeout,
        "filename": current.filename,
        "line_no": current.line_no,
    }


@wool.routine
async def nested() -> tuple[str, dict]:
    current = wool.current_task()
    assert current is not None
    return current.id, await describe("inner")
