"""Value, call, exception and routine-code encoding (no workers involved)."""

import dataclasses
import functools
import json
import os
import pickle
import re
import socket
import sys
import threading
import traceback
from typing import Any

import pytest

import wool
from wool import codec
from wool.protocol import frames


@dataclasses.dataclass
class Plain:
    x: int


def test_values_round_trip_and_none_is_empty() -> None:
    assert codec.encode_value(None) == b""
    assert codec.decode_value(b"") is None
    for value in (1, "s", b"b" * 100_000, [1, {"a": (2, 3)}], Plain(3)):
        assert codec.decode_value(codec.encode_value(value)) == value


def test_main_objects_fall_back_to_dill() -> None:
    ns: dict = {"__name__": "__main__"}
    exec("class Local:\n    def __init__(self): self.v = 5\n", ns)
    data = codec.encode_value(ns["Local"]())
    assert b"dill" in data
    assert codec.decode_value(data).v == 5


def test_unpicklable_argument_is_named() -> None:
    with pytest.raises(wool.SerializationError, match=r"keyword argument 'gen' \(generator\)"):
        codec.encode_call("f", (1,), {"gen": (i for i in range(2))})
    assert codec.encode_call("f", (), {}) == codec.EMPTY_CALL


class Unrebuildable(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a}{b}")


def _raise(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_exceptions_keep_type_traceback_and_say_where() -> None:
    payload, type_name, message, text = codec.encode_exception(_raise(KeyError("k")))
    assert type_name == "builtins.KeyError" and "_raise" in text
    exc = codec.decode_exception(payload, type_name, message, text, "worker w1")
    assert isinstance(exc, KeyError)
    assert exc.__traceback__ is not None
    assert exc.__notes__ == ["[wool] raised remotely on worker w1"]


def test_exception_that_cannot_be_rebuilt_becomes_remote_error() -> None:
    payload, type_name, message, text = codec.encode_exception(_raise(Unrebuildable(1, 2)))
    assert payload == b""
    exc = codec.decode_exception(payload, type_name, message, text, "w")
    assert isinstance(exc, wool.RemoteError)
    assert exc.type_name.endswith("Unrebuildable")


def test_routine_rejects_plain_functions() -> None:
    def sync() -> None: ...

    with pytest.raises(TypeError, match="async def"):
        wool.routine(sync)


# -- objects that belong to one process, and sizes --------------------------------


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (threading.Lock, "_thread.lock"),
        (threading.RLock, "_thread.RLock"),
        (socket.socket, "socket"),
        (functools.partial(open, os.devnull), "_io.TextIOWrapper"),
    ],
)
def test_objects_of_one_process_are_refused_not_copied(make: Any, kind: str) -> None:
    obj = make()
    try:
        with pytest.raises(wool.SerializationError, match=r"positional argument 1 \(\w+\)"):
            codec.encode_call("f", (1, obj), {})
        # Python 3.13 names the type without its module ("'TextIOWrapper' instances").
        short = kind.rsplit(".", 1)[-1]
        with pytest.raises(wool.SerializationError, match=rf"'([\w.]+\.)?{re.escape(short)}'"):
            codec.encode_value({"nested": [obj]})
    finally:
        if hasattr(obj, "close"):
            obj.close()


def test_a_lock_inside_an_object_shipped_by_value_is_refused_too() -> None:
    ns: dict = {"__name__": "__main__"}
    exec("class Holder:\n    def __init__(self, x): self.x = x\n", ns)
    assert codec.decode_value(codec.encode_value(ns["Holder"](5))).x == 5
    for inner, kind in ((threading.Lock(), "_thread.lock"), (threading.Event(), "_thread.lock")):
        # Python 3.13 names the type without its module ("'TextIOWrapper' instances").
        short = kind.rsplit(".", 1)[-1]
        with pytest.raises(wool.SerializationError, match=rf"'([\w.]+\.)?{re.escape(short)}'"):
            codec.encode_value(ns["Holder"](inner))
    with open(os.devnull) as handle, pytest.raises(wool.SerializationError, match="TextIOWrapper"):
        codec.encode_value(ns["Holder"](handle))


def test_dill_still_ships_modules_lambdas_and_nested_functions() -> None:
    def outer() -> Any:
        def inner(x: int) -> int:
            return x + 1

        return inner

    assert codec.decode_value(codec.encode_value(json)) is json
    assert codec.decode_value(codec.encode_value(lambda x: x * 2))(2) == 4
    assert codec.decode_value(codec.encode_value(outer()))(1) == 2


def test_a_value_over_the_message_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames, "LIMIT", 1000)
    assert codec.decode_value(codec.encode_value(b"x" * 900)) == b"x" * 900
    with pytest.raises(wool.SerializationError, match=r"a bytes value is 1001 bytes, over the"):
        codec.encode_value(b"x" * 1001)
    with pytest.raises(wool.SerializationError, match=r"a list value encodes to \d+ bytes"):
        codec.encode_value([b"x" * 600, b"y" * 600])
    with pytest.raises(wool.SerializationError, match=r"^f\(\): the arguments come to"):
        codec.encode_call("f", (b"x" * 600, b"y" * 600), {})


# -- exceptions that resist encoding ----------------------------------------------


def _recurse(depth: int) -> None:
    if depth:
        _recurse(depth - 1)
    raise ValueError("bottom")


def test_an_exception_from_deep_down_keeps_its_type_and_innermost_frames() -> None:
    try:  # as deep as the stack allows, as a routine raising from ~990 frames on a worker
        _recurse(sys.getrecursionlimit() - len(traceback.extract_stack()) - 30)
    except ValueError as caught:
        exc = caught
    payload, type_name, message, text = codec.encode_exception(exc)
    assert payload and type_name == "builtins.ValueError" and message == "bottom"
    rebuilt = codec.decode_exception(payload, type_name, message, text, "w")
    assert isinstance(rebuilt, ValueError)
    frames_kept = traceback.extract_tb(rebuilt.__traceback__)
    assert len(frames_kept) == codec.TRACEBACK_FRAMES
    assert (
        frames_kept[-1].name == "_recurse" and frames_kept[-1].line == 'raise ValueError("bottom")'
    )
    assert "Previous line repeated" in text


def test_unbounded_recursion_is_encoded() -> None:
    def forever(n: int) -> int:
        return forever(n + 1)

    try:
        forever(0)
    except RecursionError as caught:
        exc = caught
    payload, type_name, message, text = codec.encode_exception(exc)
    assert isinstance(
        codec.decode_exception(payload, type_name, message, text, "w"), RecursionError
    )


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def test_an_exception_whose_str_raises_is_still_encoded() -> None:
    payload, type_name, message, text = codec.encode_exception(_raise(BadStr("x")))
    assert type_name.endswith("BadStr")
    assert message == "<str() of the exception raised RuntimeError>"
    assert "BadStr" in text
    assert isinstance(codec.decode_exception(payload, type_name, message, text, "w"), BadStr)


def test_an_exception_that_cannot_be_pickled_at_all_keeps_type_and_message() -> None:
    exc = _raise(ValueError(threading.Lock()))
    payload, type_name, message, text = codec.encode_exception(exc)
    assert payload == b""
    rebuilt = codec.decode_exception(payload, type_name, message, text, "w")
    assert isinstance(rebuilt, wool.RemoteError)
    assert rebuilt.type_name == "builtins.ValueError" and "_thread.lock" in rebuilt.message


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt(), GeneratorExit()])
def test_a_remote_base_exception_arrives_as_remote_error(exc: BaseException) -> None:
    payload, type_name, message, text = codec.encode_exception(_raise(exc))
    rebuilt = codec.decode_exception(payload, type_name, message, text, "worker w1")
    assert isinstance(rebuilt, wool.RemoteError)
    assert rebuilt.type_name == f"builtins.{type(exc).__name__}"
    assert "_raise" in rebuilt.remote_traceback
    assert rebuilt.__notes__ == ["[wool] raised remotely on worker w1"]


def test_remote_error_pickles_as_itself() -> None:
    error = wool.RemoteError("builtins.SystemExit", "3", "Traceback ...")
    again = pickle.loads(pickle.dumps(error))
    assert (again.type_name, again.message, again.remote_traceback) == (
        "builtins.SystemExit",
        "3",
        "Traceback ...",
    )


class Blob:
    """Pickles its buffer out of band, as a numpy array does."""

    def __init__(self, data: bytearray | memoryview) -> None:
        self.data = data

    def __reduce_ex__(self, protocol: object) -> tuple:
        return (_blob, (pickle.PickleBuffer(self.data),))


def _blob(data: memoryview) -> Blob:
    return Blob(data)


def test_large_buffers_are_hashed_in_place_and_rebuilt_without_a_copy() -> None:
    blob = Blob(bytearray(b"ab" * 5000))
    found = codec.pickled_buffers({"blob": blob})
    assert isinstance(found, codec.Buffers)  # the buffer was left out of the pickle
    data, digest = bytes(found), found.digest()
    assert digest == codec.value_digest(data)  # what the worker checks on arrival
    rebuilt = codec.load_buffers(data)["blob"]
    assert bytes(rebuilt.data) == bytes(blob.data)
    assert rebuilt.data.readonly and rebuilt.data.obj is data  # a view of the cached bytes
    assert codec.load_buffers(b"") is None
    blob.data[0] = 0  # a mutation changes the digest: the next call sends it again
    changed = codec.pickled_buffers({"blob": blob})
    assert isinstance(changed, codec.Buffers) and changed.digest() != digest


class _Exit(Exception):
    def __str__(self) -> str:
        raise SystemExit(3)


class _Interrupt(Exception):
    def __reduce__(self) -> tuple:
        raise KeyboardInterrupt


@pytest.mark.parametrize("exc", [_Exit(), _Interrupt("x")])
def test_encode_exception_never_raises_even_base_exceptions(exc: BaseException) -> None:
    payload, type_name, message, text = codec.encode_exception(_raise(exc))
    assert type_name.endswith(type(exc).__qualname__) and text
    rebuilt = codec.decode_exception(payload, type_name, message, text, "w")
    assert isinstance(rebuilt, Exception)
