"""What a type checker must see when users call routines; checked by mypy in ``make lint``.

Nothing here runs. Each assignment fails if a routine's call loses its type
(to ``Any`` it would still pass, so the ``# type: ignore[...]`` lines carry
the weight: with ``warn_unused_ignores`` an expected error that stops being
reported fails the check too).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Coroutine
from typing import Any

import wool


@wool.routine
async def square(x: int) -> int:
    return x * x


@wool.routine
async def countdown(n: int) -> AsyncGenerator[int, None]:
    while n >= 0:
        yield n
        n -= 1


@wool.routine
async def echo() -> AsyncGenerator[str, int]:
    sent = yield "ready"
    yield str(sent)


class Greeter:
    def __init__(self, greeting: str) -> None:
        self.greeting = greeting

    @wool.routine
    async def greet(self, name: str) -> str:
        return f"{self.greeting}, {name}"

    @wool.routine
    @classmethod
    async def kind(cls) -> str:
        return cls.__name__

    @wool.routine
    @staticmethod
    async def shout(text: str) -> str:
        return text.upper()


async def coroutine_routines() -> None:
    result: int = await square(3)
    also: int = await square.options(timeout=5)(4)
    pending: Coroutine[Any, Any, int] = square(5)
    routine: wool.Routine[[int], Coroutine[Any, Any, int]] = square
    wrong: str = await square(3)  # type: ignore[assignment]
    await square("three")  # type: ignore[arg-type]
    await square(1, 2)  # type: ignore[call-arg]
    del result, also, pending, routine, wrong


async def generator_routines() -> None:
    steps: list[int] = [n async for n in countdown(3)]
    stream: AsyncGenerator[int, None] = countdown(2)
    first: int = await stream.__anext__()
    words: list[str] = [n async for n in countdown(3)]  # type: ignore[misc]
    await countdown(3)  # type: ignore[misc]
    talk = echo()
    ready: str = await talk.__anext__()
    reply: str = await talk.asend(1)
    await talk.asend("one")  # type: ignore[arg-type]
    del steps, first, words, ready, reply


async def methods() -> None:
    greeting: str = await Greeter("hi").greet("you")
    kind: str = await Greeter.kind()
    shout: str = await Greeter.shout("hey")
    shout_on_instance: str = await Greeter("hi").shout("hey")
    await Greeter("hi").greet("you").upper()  # type: ignore[attr-defined]
    del greeting, kind, shout, shout_on_instance


def not_async(x: int) -> int:
    return x


plain = wool.routine(not_async)  # type: ignore[type-var]
