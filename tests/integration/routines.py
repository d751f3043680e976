"""Routines the integration tests dispatch; workers import this module by name."""

from __future__ import annotations

import asyncio
import os
import pathlib
import time

import wool


@wool.routine
async def add(x: int, y: int) -> int:
    return x + y


@wool.routine
async def noop() -> None:
    return None


@wool.routine
async def echo(value: object) -> object:
    return value


@wool.routine
async def whoami() -> int:
    return os.getpid()


@wool.routine
async def fib(n: int) -> int:
    if n <= 1:
        return n
    async with asyncio.TaskGroup() as tg:
        a = tg.create_task(fib(n - 1))
        b = tg.create_task(fib(n - 2))
    return a.result() + b.result()


@wool.routine
async def count(n: int):
    for i in range(n):
        yield i


@wool.routine
async def accumulate(marker: str | None = None):
    """Yields a running total of the values sent in; records how it ended."""
    total = 0
    try:
        while True:
            try:
                value = yield total
            except ValueError:
                total = 0
                continue
            total += value or 0
    finally:
        if marker:
            pathlib.Path(marker).write_text(f"closed at {total}")


@wool.routine
async def ticker(marker: str):
    """An endless stream; writes `marker` from its finally when the caller leaves."""
    try:
        i = 0
        while True:
            yield i
            i += 1
    finally:
        pathlib.Path(marker).write_text("finally ran")


@wool.routine
async def yield_unpicklable(marker: str):
    """Yields something that cannot be pickled; records that its finally ran."""
    try:
        yield (i for i in range(3))
    finally:
        pathlib.Path(marker).write_text("finally ran")


class Boom(Exception):
    """A user exception with a custom field."""

    def __init__(self, message: str, code: int = 7) -> None:
        super().__init__(message)
        self.code = code


class Unrebuildable(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"needs {a} and {b}")


@wool.routine
async def explode(message: str) -> None:
    await asyncio.sleep(0)
    _inner_explode(message)


def _inner_explode(message: str) -> None:
    raise Boom(message, code=42)


@wool.routine
async def explode_unrebuildable() -> None:
    raise Unrebuildable(1, 2)


@wool.routine
async def nested_explode(message: str) -> None:
    await explode(message)


@wool.routine
async def sleep_then_mark(seconds: float, marker: str) -> str:
    """Sleeps; records in `marker` whether it finished or was cancelled."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        pathlib.Path(marker).write_text("cancelled")
        raise
    pathlib.Path(marker).write_text("finished")
    return "finished"


@wool.routine
async def pid_then_sleep(seconds: float) -> int:
    await asyncio.sleep(seconds)
    return os.getpid()


@wool.routine
async def block_cpu(seconds: float) -> int:
    """Blocks its worker's routine loop (no await) for `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return os.getpid()


@wool.routine
async def remote_time_left() -> float | None:
    return wool.task.time_left(None)


@wool.routine
async def forget_code() -> None:
    """Test hook: drop every by-value routine this worker received."""
    from wool import registry

    registry.routines.forget()


@wool.routine
async def chatty(lines: int) -> int:
    for i in range(lines):
        print(f"line {i}")
    return lines


class Greeter:
    def __init__(self, greeting: str) -> None:
        self.greeting = greeting

    @wool.routine
    async def greet(self, name: str) -> str:
        return f"{self.greeting}, {name} from {os.getpid()}"

    @wool.routine
    @classmethod
    async def kind(cls) -> str:
        return cls.__name__

    @classmethod
    @wool.routine
    async def kind_outer(cls) -> str:
        return f"outer {cls.__name__}"

    @wool.routine
    @staticmethod
    async def shout(text: str) -> str:
        return text.upper()


# -- the shape of the original wool demo: a routine that drives another's stream


class StartOver(Exception):
    """Thrown into `seek` to restart its search."""


@wool.routine
async def seek(alphabet: str):
    """Binary search over `alphabet`, steered by "up"/"down" hints sent in."""
    low, high = 0, len(alphabet) - 1
    while True:
        middle = (low + high) // 2
        try:
            hint = yield alphabet[middle]
        except StartOver:
            low, high = 0, len(alphabet) - 1
            continue
        if hint == "up":
            low = middle + 1
        elif hint == "down":
            high = middle - 1
        if low > high:
            low, high = 0, len(alphabet) - 1


@wool.routine
async def find(target: str, alphabet: str, restart_after: int = 4):
    """Runs on a worker and drives `seek` on a peer; yields each guess."""
    guesses = seek(alphabet)
    guess = await anext(guesses)
    tries = 0
    while True:
        yield guess
        if guess == target:
            await guesses.aclose()
            return
        tries += 1
        if tries == restart_after:
            guess = await guesses.athrow(StartOver())
        else:
            guess = await guesses.asend("up" if guess < target else "down")


@wool.routine
async def exit_worker() -> None:
    import sys

    sys.exit(3)


@wool.routine
async def print_while_cancelled(marker: str) -> None:
    try:
        print("started")
        pathlib.Path(marker).write_text("running")
        await asyncio.sleep(30)
    finally:
        print("cleaning up")


@wool.routine
async def raise_with_surrogate() -> None:
    raise ValueError(f"cannot parse {os.fsdecode(b'caf' + bytes([0xE9]) + b'.txt')}")


@wool.routine
async def print_surrogate() -> None:
    print(os.fsdecode(b"caf" + bytes([0xE9])))


@wool.routine
async def slow_steps(steps: int, seconds: float):
    for i in range(steps):
        await asyncio.sleep(seconds)
        yield i


@wool.routine
async def time_left_in_stream():
    yield wool.task.time_left(None)


@wool.routine
async def failing_cleanup():
    try:
        yield 1
    finally:
        raise RuntimeError("cleanup failed")


@wool.routine
async def only_through_options(x: int) -> int:
    return x * 10
