"""Value, call, exception and routine-code encoding (no workers involved)."""

import dataclasses
import pickle
import threading

import pytest

import wool
from wool import codec


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
    lock_ok = codec.encode_call("f", (threading.Lock(),), {})  # dill recreates locks
    assert lock_ok


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


def test_routine_code_is_digested_once_and_self_references_resolve() -> None:
    ns: dict = {"__name__": "__main__", "wool": wool}
    exec(
        "@wool.routine\nasync def again(n):\n    return await again(n - 1) if n else 0\n",
        ns,
    )
    routine = ns["again"]
    assert not routine.importable
    ref = routine.by_value()
    assert routine.by_value() is ref
    assert ref.digest == codec.digest_of(ref.code)
    rebuilt = codec.rebuild_routine(ref.uid, ref.digest, ref.code, "again", False)
    assert rebuilt.function.__globals__["again"] is rebuilt
    assert pickle.loads(pickle.dumps(routine)).uid == routine.uid


def test_routine_rejects_plain_functions() -> None:
    def sync() -> None: ...

    with pytest.raises(TypeError, match="async def"):
        wool.routine(sync)


def _main_routine(source: str, **names: object) -> wool.Routine:
    ns: dict = {"__name__": "__main__", "wool": wool, **names}
    exec(source, ns)
    return ns["task"]


def test_an_unpicklable_global_is_named() -> None:
    task = _main_routine(
        "@wool.routine\nasync def task():\n    return gen\n", gen=(i for i in range(3))
    )
    with pytest.raises(wool.SerializationError, match=r"'gen' cannot be pickled"):
        task.by_value()


def test_a_huge_global_is_named_with_its_size() -> None:
    task = _main_routine(
        "@wool.routine\nasync def task():\n    return len(blob)\n", blob=b"x" * (11 << 20)
    )
    with pytest.raises(wool.SerializationError, match=r"'blob' \(11\.0 MiB\)"):
        task.by_value()
