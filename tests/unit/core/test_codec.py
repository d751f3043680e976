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
    snapshot = codec.snapshot(routine.function, "again")
    assert snapshot is not None
    cache = codec.ValueCache(1 << 20)
    for digest, data in snapshot[1].items():
        assert cache.put(digest, data)
    bound = rebuilt.bound(cache.namespace(snapshot[0], "__main__"))
    again = bound.function.__globals__["again"]
    assert again.uid == routine.uid and again.function.__globals__ is bound.function.__globals__
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
        "@wool.routine\nasync def task():\n    return gen, fine\n",
        gen=(i for i in range(3)),
        fine=1,
    )
    task.by_value()  # the code alone ships: globals travel with each call
    with pytest.raises(wool.SerializationError, match=r"task\(\).*global 'gen' cannot be sent"):
        codec.snapshot(task.function, "task")


def test_a_global_over_the_message_limit_is_named_with_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    task = _main_routine(
        "@wool.routine\nasync def task():\n    return len(blob)\n", blob=b"x" * (11 << 20)
    )
    assert codec.snapshot(task.function, "task") is not None  # no 10 MiB cap any more
    monkeypatch.setattr(frames, "LIMIT", 1 << 20)
    task.function.__globals__["blob"] = b"y" * (2 << 20)
    with pytest.raises(
        wool.SerializationError, match=r"global 'blob' \(bytes\).*over the 1\.0 MiB"
    ):
        codec.snapshot(task.function, "task")


# -- globals read at every call -----------------------------------------------------


def _ship(task: wool.Routine, cache: codec.ValueCache) -> dict[str, Any]:
    """What a worker with ``cache`` would run ``task`` with, for a call made now."""
    snapshot = codec.snapshot(task.function, "task")
    assert snapshot is not None
    for digest, data in snapshot[1].items():
        cache.put(digest, data)
    return cache.namespace(snapshot[0], "__main__")


def test_a_routine_without_globals_has_no_snapshot() -> None:
    task = _main_routine("@wool.routine\nasync def task(x):\n    return len(x)\n")
    assert codec.snapshot(task.function, "task") is None


def test_snapshots_follow_changes_mutations_and_helpers() -> None:
    source = (
        "def helper(x):\n    return x + SCALE\n"
        "@wool.routine\nasync def task():\n    return helper(1), sum(data)\n"
    )
    ns: dict = {"__name__": "__main__", "wool": wool, "SCALE": 10, "data": [1, 2]}
    exec(source, ns)
    task, cache = ns["task"], codec.ValueCache(1 << 20)

    def run() -> tuple:
        namespace = _ship(task, cache)
        helper = namespace["helper"]
        assert helper.__globals__ is namespace  # helpers see the call's own values
        return helper(1), sum(namespace["data"])

    assert run() == (11, 3)
    ns["SCALE"] = 100
    ns["data"].append(100)
    assert run() == (101, 103)
    exec("def helper(x):\n    return x * 1000 + SCALE\n", ns)
    assert run() == (1100, 103)


def test_an_unchanged_global_is_not_pickled_again_and_hits_the_cache() -> None:
    task = _main_routine("@wool.routine\nasync def task():\n    return big\n", big="x" * 1000)
    first = codec.snapshot(task.function, "task")
    again = codec.snapshot(task.function, "task")
    assert first is not None and again is not None and first[0] == again[0]
    [data] = [v for d, v in first[1].items() if d != first[0]]
    [same] = [v for d, v in again[1].items() if d != again[0]]
    assert same is data  # an immutable value bound to the same object is pickled once
    cache = codec.ValueCache(1 << 20)
    _ship(task, cache)
    hits = cache.hits
    received = cache.received
    assert _ship(task, cache)["big"] == "x" * 1000
    assert cache.hits == hits + 2 and cache.received == received


def test_the_value_cache_is_bounded_by_bytes_and_rejects_wrong_digests() -> None:
    cache = codec.ValueCache(100)
    blobs = [bytes([i]) * 60 for i in range(3)]
    for blob in blobs:
        assert cache.put(codec.value_digest(blob), blob)
    assert cache.size == 60  # the newest stays; older ones were evicted
    assert not cache.put(codec.value_digest(b"a"), b"b")
    with pytest.raises(codec.MissingValue):
        cache.namespace(codec.value_digest(blobs[0]), "__main__")


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
    found = codec._pickled_buffers({"blob": blob})
    assert isinstance(found, codec.Buffers)  # the buffer was left out of the pickle
    data, digest = bytes(found), found.digest()
    assert digest == codec.value_digest(data)  # what the worker checks on arrival
    rebuilt = codec._load(data)["blob"]
    assert bytes(rebuilt.data) == bytes(blob.data)
    assert rebuilt.data.readonly and rebuilt.data.obj is data  # a view of the cached bytes
    assert codec._load(b"") is None
    blob.data[0] = 0  # a mutation changes the digest: the next call sends it again
    changed = codec._pickled_buffers({"blob": blob})
    assert isinstance(changed, codec.Buffers) and changed.digest() != digest


def test_the_memo_reuses_an_unchanged_snapshot_and_notices_every_change() -> None:
    ns: dict = {"__name__": "__main__", "wool": wool, "N": 1, "items": [1]}
    exec(
        "def helper():\n    return N\n"
        "@wool.routine\nasync def task():\n    return helper(), items\n",
        ns,
    )
    task = ns["task"]
    first = task.snapshot()
    assert first is not None and task.snapshot() is first  # nothing changed: reused whole
    ns["items"].append(2)
    mutated = task.snapshot()
    assert mutated is not None and mutated[0] != first[0]
    ns["N"] = 2
    rebound = task.snapshot()
    assert rebound is not None and rebound[0] != mutated[0]
    exec("def other():\n    return N + 1\n", ns)
    ns["helper"].__code__ = ns["other"].__code__  # same function object, new code
    recoded = task.snapshot()
    assert recoded is not None and recoded[0] != rebound[0]
    assert task.snapshot() is recoded
