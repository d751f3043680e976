"""wool.ContextVar in one process: the contextvars surface, identity by key, the wire payloads."""

from __future__ import annotations

import asyncio
import contextvars
import pickle
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

import wool
from wool import contextvar
from wool.protocol import frames

T = TypeVar("T")

# Keys are process-wide; each test declares its own names.
plain: wool.ContextVar[str] = wool.ContextVar("unit_plain")
with_default: wool.ContextVar[int] = wool.ContextVar("unit_default", default=7)


def isolated(fn: Callable[[], T]) -> T:
    """Run ``fn`` in an empty context, as a fresh task would see it."""
    return contextvars.Context().run(fn)


def test_get_falls_back_to_the_argument_then_the_default_then_raises() -> None:
    def check() -> None:
        with pytest.raises(LookupError):
            plain.get()
        assert plain.get("fallback") == "fallback"
        assert with_default.get() == 7
        assert with_default.get(8) == 8
        plain.set("value")
        assert plain.get() == plain.get("fallback") == "value"

    isolated(check)


def test_set_returns_a_token_that_resets_once_in_its_own_context() -> None:
    def check() -> None:
        first = plain.set("a")
        assert first.var is plain and first.old_value is wool.Token.MISSING
        second = plain.set("b")
        assert second.old_value == "a"
        plain.reset(second)
        assert plain.get() == "a"
        with pytest.raises(RuntimeError):
            plain.reset(second)
        with pytest.raises(ValueError, match="different ContextVar"):
            with_default.reset(first)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            contextvars.Context().run(plain.reset, first)
        plain.reset(first)
        with pytest.raises(LookupError):
            plain.get()

    isolated(check)


def test_a_reset_keeps_other_variables_set_since() -> None:
    def check() -> None:
        token = plain.set("a")
        with_default.set(1)
        plain.reset(token)
        assert with_default.get() == 1
        with pytest.raises(LookupError):
            plain.get()

    isolated(check)


async def test_concurrent_tasks_keep_their_own_values() -> None:
    started = asyncio.Event()
    count = 0

    async def one(i: int) -> str:
        nonlocal count
        plain.set(f"task-{i}")
        count += 1
        if count == 5:
            started.set()
        await asyncio.wait_for(started.wait(), 5)  # all five have set theirs by now
        return plain.get()

    tasks = [asyncio.create_task(one(i), context=contextvars.Context()) for i in range(5)]
    assert await asyncio.gather(*tasks) == [f"task-{i}" for i in range(5)]


def test_a_variable_is_its_namespace_and_name() -> None:
    again = wool.ContextVar("unit_default", default=7)
    assert again is with_default
    assert (again.name, again.namespace) == ("unit_default", __name__.partition(".")[0])
    other = wool.ContextVar("unit_default", namespace="elsewhere")
    assert other is not with_default
    with pytest.raises(wool.ContextVarCollision, match="unit_default"):
        wool.ContextVar("unit_default", default=8)
    assert with_default.get() == 7


def test_a_parametrized_declaration_takes_the_declaring_modules_namespace() -> None:
    generic = wool.ContextVar[int]("unit_generic", default=1)
    assert generic.namespace == with_default.namespace != "typing"


def test_in_main_the_newest_declaration_sets_the_default() -> None:
    first = wool.ContextVar("unit_cell", namespace="__main__", default=1)
    again = wool.ContextVar("unit_cell", namespace="__main__", default=2)  # the cell, edited
    assert again is first
    assert isolated(first.get) == 2


def test_a_variable_pickles_as_its_key() -> None:
    restored = pickle.loads(pickle.dumps(with_default))
    assert restored is with_default
    # A process that never declared it gets it, default included, when it arrives.
    data = pickle.dumps(wool.ContextVar("unit_shipped", namespace="far", default="d"))
    del contextvar._registry[("far", "unit_shipped")]
    arrived = pickle.loads(data)
    assert (arrived.namespace, arrived.name, isolated(arrived.get)) == ("far", "unit_shipped", "d")


def test_a_name_must_be_a_non_empty_str() -> None:
    with pytest.raises(TypeError):
        wool.ContextVar("")
    with pytest.raises(TypeError):
        wool.ContextVar(3)  # type: ignore[arg-type]


def _sent_and_installed(setup: Callable[[], object]) -> dict[tuple[str, str], Any]:
    """What a worker's context holds after receiving the values ``setup`` set here."""

    def send() -> bytes:
        setup()
        values = contextvar.current()
        return contextvar.encode(values, "to test")

    payload = isolated(send)
    return dict(isolated(lambda: contextvar.install(payload, "to test")) or {})


def test_every_value_travels_and_nothing_else() -> None:
    def setup() -> None:
        plain.set("x")
        with_default.set(3)

    installed = _sent_and_installed(setup)
    assert installed == {plain._key: "x", with_default._key: 3}
    assert _sent_and_installed(lambda: None) == {}


def test_only_what_the_routine_changed_comes_back() -> None:
    def routine() -> bytes | None:
        base = contextvar.install(contextvar.encode({plain._key: "ab", ("n", "m"): [1]}, ""), "")
        assert contextvar.changes(base, "back") is None  # read only: nothing to send
        with_default.set(4)
        # An equal value, but a new object (made at run time: one-letter strings are shared
        # singletons, and Python 3.13 unpickles them as such): it counts as a change.
        plain.set("".join(["a", "b"]))
        return contextvar.changes(base, "back")

    payload = isolated(routine)
    assert payload is not None
    raw = pickle.loads(payload)
    assert set(raw) == {with_default._key, plain._key}


def test_changes_come_back_into_the_callers_values() -> None:
    def routine() -> bytes | None:
        base = contextvar.install(contextvar.encode({plain._key: "a"}, ""), "")
        token = plain.set("gone soon")
        with_default.set(5)
        plain.reset(token)  # back to the caller's "a": no change to send
        return contextvar.changes(base, "back")

    def caller(payload: bytes) -> tuple[str, int]:
        plain.set("a")
        contextvar.adopt(payload, "from test")
        return plain.get(), with_default.get()

    payload = isolated(routine)
    assert payload is not None
    assert isolated(lambda: caller(payload)) == ("a", 5)


def test_a_variable_reset_to_no_value_comes_back_as_unset() -> None:
    def step() -> bytes | None:
        token = plain.set("temporary")
        base = contextvar.current()  # the caller has heard of it (a stream's yield)
        plain.reset(token)
        return contextvar.changes(base, "back")

    def caller(payload: bytes) -> str:
        plain.set("temporary")
        contextvar.adopt(payload, "from test")
        return plain.get("unset")

    payload = isolated(step)
    assert payload is not None
    assert isolated(lambda: caller(payload)) == "unset"


def test_an_unpicklable_value_names_its_variable() -> None:
    def check() -> None:
        plain.set(threading.Lock())  # type: ignore[arg-type]
        with pytest.raises(wool.SerializationError, match=r"'unit_plain'.*to a worker"):
            contextvar.encode(contextvar.current(), "to a worker")

    isolated(check)


@pytest.mark.parametrize(
    "payload",
    [b"", b"not a pickle", pickle.dumps([1, 2]), pickle.dumps({"key": b""}),
     pickle.dumps({("a", "b"): b"\x80garbage"})],
)  # fmt: skip
def test_a_malformed_payload_is_a_serialization_error(payload: bytes) -> None:
    with pytest.raises(wool.SerializationError):
        isolated(lambda: contextvar.install(payload, "from test"))
    with pytest.raises(wool.SerializationError):
        isolated(lambda: contextvar.adopt(payload, "from test"))


def test_a_value_that_cannot_be_rebuilt_names_its_variable() -> None:
    raw = {plain._key: b"\x80\x05garbage"}
    with pytest.raises(wool.SerializationError, match=r"'unit_plain'.*cannot be rebuilt"):
        isolated(lambda: contextvar.install(pickle.dumps(raw), "from test"))


def test_the_context_frame_round_trips_and_carries_its_frame_in_the_same_message() -> None:
    dispatch = frames.Dispatch(3, "m", "q", b"", b"", "", b"a")
    sent = [frames.Context(3, b"values"), dispatch]
    assert frames.decode(frames.encode(sent)) == sent
    assert frames.decode(frames.encode([frames.Context(3, b"values", dispatch)])) == sent
    assert frames.decode(frames.encode([frames.Context(2**64 - 1, b"")])) == [
        frames.Context(2**64 - 1, b"")
    ]
    with pytest.raises(wool.ProtocolError):
        frames.decode(frames.encode([frames.Context(1, b"values")])[:-1])
