"""Globals of by-value routines, current at every call: snapshots, the value cache, binding."""

import pickle
import threading
from typing import Any

import pytest

import wool
from wool import callglobals, codec, registry
from wool.protocol import frames


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
    rebuilt = registry.rebuild_routine(ref.uid, ref.digest, ref.code, "again", False)
    snapshot = callglobals.snapshot(routine.function, "again")
    assert snapshot is not None
    cache = callglobals.ValueCache(1 << 20)
    for digest, data in snapshot[1].items():
        assert cache.put(digest, data)
    bound = rebuilt.bound(cache.namespace(snapshot[0], "__main__"))
    again = bound.function.__globals__["again"]
    assert again.uid == routine.uid and again.function.__globals__ is bound.function.__globals__
    assert pickle.loads(pickle.dumps(routine)).uid == routine.uid


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
        callglobals.snapshot(task.function, "task")


def test_a_global_over_the_message_limit_is_named_with_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    task = _main_routine(
        "@wool.routine\nasync def task():\n    return len(blob)\n", blob=b"x" * (11 << 20)
    )
    assert callglobals.snapshot(task.function, "task") is not None  # no 10 MiB cap any more
    monkeypatch.setattr(frames, "LIMIT", 1 << 20)
    task.function.__globals__["blob"] = b"y" * (2 << 20)
    with pytest.raises(
        wool.SerializationError, match=r"global 'blob' \(bytes\).*over the 1\.0 MiB"
    ):
        callglobals.snapshot(task.function, "task")


# -- globals read at every call -----------------------------------------------------


def _ship(task: wool.Routine, cache: callglobals.ValueCache) -> dict[str, Any]:
    """What a worker with ``cache`` would run ``task`` with, for a call made now."""
    snapshot = callglobals.snapshot(task.function, "task")
    assert snapshot is not None
    for digest, data in snapshot[1].items():
        cache.put(digest, data)
    return cache.namespace(snapshot[0], "__main__")


def test_a_routine_without_globals_has_no_snapshot() -> None:
    task = _main_routine("@wool.routine\nasync def task(x):\n    return len(x)\n")
    assert callglobals.snapshot(task.function, "task") is None


def test_snapshots_follow_changes_mutations_and_helpers() -> None:
    source = (
        "def helper(x):\n    return x + SCALE\n"
        "@wool.routine\nasync def task():\n    return helper(1), sum(data)\n"
    )
    ns: dict = {"__name__": "__main__", "wool": wool, "SCALE": 10, "data": [1, 2]}
    exec(source, ns)
    task, cache = ns["task"], callglobals.ValueCache(1 << 20)

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
    first = callglobals.snapshot(task.function, "task")
    again = callglobals.snapshot(task.function, "task")
    assert first is not None and again is not None and first[0] == again[0]
    [data] = [v for d, v in first[1].items() if d != first[0]]
    [same] = [v for d, v in again[1].items() if d != again[0]]
    assert same is data  # an immutable value bound to the same object is pickled once
    cache = callglobals.ValueCache(1 << 20)
    _ship(task, cache)
    hits = cache.hits
    received = cache.received
    assert _ship(task, cache)["big"] == "x" * 1000
    assert cache.hits == hits + 2 and cache.received == received


def test_the_value_cache_is_bounded_by_bytes_and_rejects_wrong_digests() -> None:
    cache = callglobals.ValueCache(100)
    blobs = [bytes([i]) * 60 for i in range(3)]
    for blob in blobs:
        assert cache.put(codec.value_digest(blob), blob)
    assert cache.size == 60  # the newest stays; older ones were evicted
    assert not cache.put(codec.value_digest(b"a"), b"b")
    with pytest.raises(callglobals.MissingValue):
        cache.namespace(codec.value_digest(blobs[0]), "__main__")


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


def test_attribute_names_are_not_read_as_globals() -> None:
    task = _main_routine(
        "@wool.routine\nasync def task(b, cfg):\n    return b.lock, cfg.model\n",
        lock=threading.Lock(),
        model=b"x" * 1000,
    )
    assert callglobals.snapshot(task.function, "task") is None  # no 'lock', no 'model'
    assert not callglobals.reads_globals(task.function)


def test_closures_and_defaults_of_the_namespace_see_the_calls_globals() -> None:
    ns: dict = {"__name__": "__main__", "wool": wool, "SCALE": 10}
    exec(
        "def make():\n"
        "    def helper(x):\n        return x + SCALE\n"
        "    @wool.routine\n    async def inner():\n        return SCALE\n"
        "    @wool.routine\n    async def task(h=helper):\n"
        "        return h(1), helper(2), inner\n"
        "    return task\n"
        "task = make()\n",
        ns,
    )
    task = ns["task"]
    rebuilt = registry.rebuild_routine(*_args(task))
    cache = callglobals.ValueCache(1 << 20)

    def run() -> tuple:
        fn = rebuilt.bound(_ship(task, cache)).function
        h = fn.__defaults__[0]
        cells = dict(zip(fn.__code__.co_freevars, fn.__closure__, strict=True))
        helper, inner = cells["helper"].cell_contents, cells["inner"].cell_contents
        return h(1), helper(2), inner.function.__globals__["SCALE"]

    assert run() == (11, 12, 10)
    ns["SCALE"] = 100
    assert run() == (101, 102, 100)


def _args(task: wool.Routine) -> tuple:
    ref = task.by_value()
    return ref.uid, ref.digest, ref.code, task.__qualname__, False


def test_large_immutable_globals_are_not_kept_by_identity() -> None:
    big, small = "b" * (callglobals.FIXED_ITEM + 1), "s" * 10
    task = _main_routine(
        "@wool.routine\nasync def task():\n    return big, small\n", big=big, small=small
    )
    callglobals.snapshot(task.function, "task")
    kept = {id(value) for value, _ in callglobals._fixed.values()}
    assert id(small) in kept and id(big) not in kept
    assert callglobals._fixed_bytes <= callglobals.FIXED_LIMIT
