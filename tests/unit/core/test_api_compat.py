"""The rest of the wool package's API programs use: version, Task, RuntimeContext, pool args."""

from __future__ import annotations

import asyncio
import contextvars
import importlib.metadata
import math
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import wool
from wool import distribution, task

ROOT = Path(__file__).resolve().parents[3]


# -- wool.__version__ -------------------------------------------------------------


def test_version_is_the_installed_distributions() -> None:
    assert wool.__version__ == importlib.metadata.version("wool-jupyter")


def test_importing_wool_leaves_the_version_unread() -> None:
    code = (
        "import sys, wool, wool.worker.process\n"
        "print('importlib.metadata' in sys.modules, 'wool.distribution' in sys.modules)\n"
        "v = wool.__version__\n"
        "print('wool.distribution' in sys.modules, wool.__dict__['__version__'] == v)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "True", "True"]


def _missing(name: str) -> str:
    raise importlib.metadata.PackageNotFoundError(name)


def test_an_uninstalled_tree_reads_its_pyproject(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "version", _missing)
    with (ROOT / "pyproject.toml").open("rb") as file:
        expected = tomllib.load(file)["project"]["version"]
    assert distribution.version() == expected


@pytest.mark.parametrize(
    "pyproject",
    [None, '[project]\nname = "something-else"\nversion = "9.9"\n', "not toml ["],
)
def test_without_a_usable_pyproject_the_version_is_unknown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pyproject: str | None
) -> None:
    (tmp_path / "wool").mkdir()
    if pyproject is not None:
        (tmp_path / "pyproject.toml").write_text(pyproject)
    monkeypatch.setattr(importlib.metadata, "version", _missing)
    monkeypatch.setattr(distribution, "__file__", str(tmp_path / "wool" / "distribution.py"))
    assert distribution.version() == distribution.UNKNOWN == "0+unknown"


# -- wool.Task ----------------------------------------------------------------------


async def _sample(x: int, *, y: int = 0) -> int:
    return x + y


def _task(parent: str = "", timeout: float = 0.0) -> wool.Task:
    return wool.Task("w1", 3, 7, parent, "_sample", timeout, _sample, (1,), {"y": 2})


def test_task_offers_our_fields_and_the_wool_packages() -> None:
    t = _task(timeout=4.5)
    assert (t.worker, t.stream, t.call, t.parent, t.routine) == ("w1", 3, 7, "", "_sample")
    assert t.id == "w1/3/7"
    assert t.caller is None
    assert t.function == "_sample"
    assert t.callable is _sample
    assert (t.args, t.kwargs) == ((1,), {"y": 2})
    assert t.timeout == 4.5
    line = _sample.__code__.co_firstlineno
    assert (t.filename, t.line_no) == (_sample.__code__.co_filename, line)
    assert t.tag == f"{__name__}._sample:{line}"
    assert "w1/3/7" in repr(t) and "_sample" in repr(t)


def test_a_nested_tasks_caller_is_its_parents_id() -> None:
    t = _task(parent="w0/1/2")
    assert t.caller == t.parent == "w0/1/2"
    assert "caller=w0/1/2" in repr(t)


def test_task_without_a_callable_still_answers() -> None:
    t = wool.Task("w1", 0, 1, "", "gone")
    assert (t.filename, t.line_no, t.args, t.kwargs, t.timeout) == (None, None, (), {}, 0.0)
    assert t.tag == "?.gone"


def test_task_is_slotted_and_remote_task_is_its_old_name() -> None:
    assert wool.RemoteTask is wool.Task
    assert not hasattr(_task(), "__dict__")
    for absent in ("proxy", "namespace", "exception", "runtime_context"):
        assert not hasattr(_task(), absent), absent


def test_current_task_is_the_installed_one_and_none_in_the_caller() -> None:
    assert wool.current_task() is None
    t = _task(timeout=2.0)

    def inside() -> tuple[wool.Task | None, float | None]:
        task.enter(t, t.timeout)
        return wool.current_task(), task.time_left(None)

    current, left = contextvars.copy_context().run(inside)
    assert current is t
    assert left is not None and 0 < left <= 2.0
    assert wool.current_task() is None


# -- wool.RuntimeContext ------------------------------------------------------------


@pytest.mark.parametrize("keyword", ["timeout", "dispatch_timeout"])
def test_runtime_context_bounds_the_block_like_timeout(keyword: str) -> None:
    assert task.time_left(None) is None
    ctx = wool.RuntimeContext(**{keyword: 5})
    assert ctx.timeout == ctx.dispatch_timeout == 5
    with ctx as entered:
        assert entered is ctx
        left = task.time_left(None)
        assert left is not None and 4 < left <= 5
    assert task.time_left(None) is None


async def test_runtime_context_works_with_async_with() -> None:
    async with wool.RuntimeContext(timeout=3) as ctx:
        assert isinstance(ctx, wool.RuntimeContext)
        left = task.time_left(None)
        assert left is not None and 2 < left <= 3
    assert task.time_left(None) is None


def test_runtime_context_keeps_the_nearer_deadline_like_timeout() -> None:
    with wool.timeout(1), wool.RuntimeContext(timeout=60):
        left = task.time_left(None)
        assert left is not None and left <= 1
    with wool.RuntimeContext(timeout=60), wool.timeout(1):
        left = task.time_left(None)
        assert left is not None and left <= 1
    with wool.RuntimeContext(timeout=1), wool.RuntimeContext(timeout=60):
        left = task.time_left(None)
        assert left is not None and left <= 1


def test_runtime_context_without_a_timeout_leaves_the_surrounding_one() -> None:
    with wool.timeout(2):
        before = task.time_left(None)
        with wool.RuntimeContext(), wool.RuntimeContext(timeout=None):
            inner = task.time_left(None)
            assert before is not None and inner is not None and inner <= before
    assert task.time_left(None) is None


def test_runtime_context_restores_the_deadline_when_the_block_raises() -> None:
    with pytest.raises(KeyError), wool.RuntimeContext(timeout=5):
        raise KeyError("x")
    assert task.time_left(None) is None


@pytest.mark.parametrize("seconds", [0, -1.0, math.nan])
def test_runtime_context_refuses_unusable_timeouts_when_made(seconds: float) -> None:
    with pytest.raises(ValueError, match="positive number of seconds"):
        wool.RuntimeContext(timeout=seconds)
    with pytest.raises(ValueError, match="positive number of seconds"):
        wool.RuntimeContext(dispatch_timeout=seconds)


def test_runtime_context_refuses_both_spellings_at_once() -> None:
    with pytest.raises(TypeError, match="not both"):
        wool.RuntimeContext(timeout=1, dispatch_timeout=2)


def test_runtime_context_names_what_it_does_not_support() -> None:
    with pytest.raises(wool.UnsupportedArgument, match=r"RuntimeContext\(credentials=") as err:
        wool.RuntimeContext(credentials=object())
    assert "secret" in str(err.value)
    assert isinstance(err.value, TypeError) and isinstance(err.value, wool.WoolError)
    with pytest.raises(TypeError, match="unexpected keyword argument 'tiemout'") as typo:
        wool.RuntimeContext(tiemout=1)  # type: ignore[call-arg]
    assert not isinstance(typo.value, wool.UnsupportedArgument)


def test_runtime_context_is_one_block_at_a_time_then_reusable() -> None:
    ctx = wool.RuntimeContext(timeout=5)
    with ctx:
        with pytest.raises(RuntimeError, match="already active"), ctx:
            pass
        assert task.time_left(None) is not None
    assert task.time_left(None) is None
    with ctx:
        assert task.time_left(None) is not None


async def test_runtime_context_values_stay_in_their_own_task() -> None:
    seen: dict[str, float | None] = {}
    entered = asyncio.Event()

    async def bounded() -> None:
        with wool.RuntimeContext(timeout=5):
            entered.set()
            await asyncio.sleep(0)
            seen["bounded"] = task.time_left(None)

    async def free() -> None:
        await entered.wait()
        seen["free"] = task.time_left(None)

    async with asyncio.timeout(5):
        await asyncio.gather(bounded(), free())
    assert seen["free"] is None
    assert seen["bounded"] is not None


# -- WorkerPool arguments of the wool package -----------------------------------------


@pytest.mark.parametrize(
    ("argument", "instead"),
    [
        ({"discovery": object()}, "wool.LocalDiscovery(namespace)"),
        ({"lease": 2}, "spawn=N workers it starts"),
        ({"credentials": object()}, "secret="),
        ({"loadbalancer": object()}, "routine.options(worker=..., tags=...)"),
        ({"worker": object()}, "spawn=N"),
        ({"options": object()}, "connect_timeout="),
        ({"quorum_timeout": 5.0}, "start_timeout="),
    ],
)
def test_pool_arguments_we_lack_are_refused_by_name(argument: dict, instead: str) -> None:
    (name,) = argument
    with pytest.raises(wool.UnsupportedArgument) as err:
        wool.WorkerPool(spawn=1, **argument)
    message = str(err.value)
    assert f"WorkerPool({name}=)" in message
    assert instead in message
    assert isinstance(err.value, TypeError)


def test_every_refused_pool_argument_is_named_at_once() -> None:
    with pytest.raises(wool.UnsupportedArgument) as err:
        wool.WorkerPool(spawn=1, lease=1, credentials=object(), options=object())
    assert "WorkerPool(credentials=, options=, lease=)" in str(err.value)


def test_discovery_makes_a_durable_or_hybrid_pool() -> None:
    found = wool.LocalDiscovery("compat-test")
    durable = wool.WorkerPool(discovery=found, lease=2)
    assert durable.size == 0 and not durable.running
    assert wool.WorkerPool(discovery=found, spawn=0).size == 0
    hybrid = wool.WorkerPool("gpu", discovery=found, spawn=2, lease=0)
    assert hybrid.size == 2 and hybrid.tags == ("gpu",)


@pytest.mark.parametrize(
    ("argument", "error", "match"),
    [
        ({"lease": -1}, ValueError, "0 or more"),
        ({"lease": 1.5}, TypeError, "whole number"),
        ({"lease": True}, TypeError, "whole number"),
        ({"credentials": object()}, wool.UnsupportedArgument, "wool.WorkerCredentials"),
    ],
)
def test_discovery_arguments_are_checked(argument: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        wool.WorkerPool(discovery=wool.LocalDiscovery("compat-test"), **argument)


def test_credentials_are_accepted_by_durable_and_hybrid_pools() -> None:
    from wool.credentials import WorkerCredentials

    creds = object.__new__(WorkerCredentials)  # only its type matters here
    pool = wool.WorkerPool(discovery=wool.LocalDiscovery("compat-test"), credentials=creds)
    assert pool.size == 0
    hybrid = wool.WorkerPool(spawn=1, discovery=wool.LocalDiscovery("x"), credentials=creds)
    assert hybrid.size == 1


@pytest.mark.parametrize(
    "argument",
    [{"lease": 0}, {"lazy": True}, {"lazy": False}, {"quorum": 2}, {"quorum": 0}],
)
def test_pool_arguments_we_already_honour_are_accepted(argument: dict) -> None:
    pool = wool.WorkerPool(spawn=2, **argument)
    assert pool.size == 2 and not pool.running


def test_a_quorum_the_pool_can_never_meet_is_refused() -> None:
    with pytest.raises(ValueError, match=r"quorum=3\) can never be met by a pool of 2"):
        wool.WorkerPool(spawn=2, quorum=3)


def test_lazy_takes_a_bool() -> None:
    with pytest.raises(TypeError, match="lazy="):
        wool.WorkerPool(spawn=1, lazy="yes")  # type: ignore[arg-type]


def test_our_own_pool_arguments_are_unchanged() -> None:
    assert wool.WorkerPool("gpu", spawn=2, respawn=True).tags == ("gpu",)
    assert wool.WorkerPool(size=3).size == 3
    with pytest.raises(ValueError, match="not both"):
        wool.WorkerPool(spawn=1, size=2)
    with pytest.raises(ValueError, match="loopback"):
        wool.WorkerPool(spawn=1, host="0.0.0.0")
