"""Routines for test_contextvar.py: reading, setting and resetting wool.ContextVars on workers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import wool

request_id: wool.ContextVar[str] = wool.ContextVar("request_id")
level: wool.ContextVar[str] = wool.ContextVar("level", default="info")

UNSET = "<unset>"


def _here() -> str:
    current = wool.current_task()
    assert current is not None, "routines_contextvar routines run on workers"
    return current.worker


@wool.routine
async def read() -> tuple[str, str]:
    """(request_id or UNSET, level) as this routine sees them."""
    return request_id.get(UNSET), level.get()


@wool.routine
async def read_strict() -> str:
    return request_id.get()  # LookupError when neither the caller nor a default sets it


@wool.routine
async def write(value: str) -> str:
    request_id.set(value)
    return value


@wool.routine
async def write_then_raise(value: str) -> None:
    request_id.set(value)
    raise ValueError(f"raised after setting {value}")


@wool.routine
async def set_and_reset(value: str) -> str:
    """Sets, then resets with its own token: the caller sees no change."""
    token = request_id.set(value)
    seen = request_id.get()
    request_id.reset(token)
    return seen


@wool.routine
async def write_lock() -> None:
    request_id.set(threading.Lock())  # type: ignore[arg-type]


@wool.routine
async def steps(count: int) -> AsyncIterator[str]:
    """Yields what each step starts with, after setting ``step-i`` (a sent value, as is)."""
    seen = request_id.get(UNSET)
    for i in range(count):
        sent = yield seen
        seen = request_id.get(UNSET)
        request_id.set(sent if sent is not None else f"step-{i}")


@wool.routine
async def set_then_reset() -> AsyncIterator[str]:
    """Sets at the first step and resets it at the second: the caller sees both."""
    token = request_id.set("temporary")
    yield "set"
    request_id.reset(token)
    yield "reset"


@wool.routine
async def relay(target: str, value: str) -> dict[str, str]:
    """Runs on worker A: reads, calls ``hop`` pinned to worker ``target``, reads again."""
    before = request_id.get(UNSET)
    far = await hop.options(worker=target)(value)
    return {"a": _here(), "a_saw": before, "b": far["b"], "b_saw": far["b_saw"],
            "a_after": request_id.get(UNSET)}  # fmt: skip


@wool.routine
async def hop(value: str) -> dict[str, str]:
    seen = request_id.get(UNSET)
    request_id.set(value)
    return {"b": _here(), "b_saw": seen}


_arrived: dict[str, int] = {}
_all_in: dict[str, asyncio.Event] = {}


@wool.routine
async def rendezvous(group: str, size: int) -> str:
    """Waits (bounded) until ``size`` calls of ``group`` run at once here, then sets and returns.

    Each returns the value it saw and sets ``<value>-done``: all of them are
    in flight together on this worker when they do.
    """
    event = _all_in.setdefault(group, asyncio.Event())
    _arrived[group] = _arrived.get(group, 0) + 1
    if _arrived[group] == size:
        event.set()
    seen = request_id.get(UNSET)
    await asyncio.wait_for(event.wait(), 10)
    request_id.set(f"{seen}-done")
    return seen
