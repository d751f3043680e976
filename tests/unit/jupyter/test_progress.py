"""progress(): ordering, failures, cancellation and the text/widget displays."""

from __future__ import annotations

import asyncio
import re

import pytest

from wool_jupyter import progress as progress_module
from wool_jupyter.progress import _Counts, _WidgetView, progress


async def square(i: int, delay: float = 0.0) -> int:
    await asyncio.sleep(delay)
    return i * i


async def fail_if(i: int, bad: dict[int, float], finished: set[int]) -> int:
    try:
        await asyncio.sleep(bad.get(i, 0.05))
        if i in bad:
            raise ValueError(i)
        return i
    finally:
        finished.add(i)


async def test_results_in_input_order() -> None:
    async with asyncio.timeout(10):
        # later items finish first
        results = await progress((square(i, (20 - i) / 1000) for i in range(20)), display=False)
    assert results == [i * i for i in range(20)]


async def test_many_small_tasks() -> None:
    async with asyncio.timeout(30):
        results = await progress((square(i) for i in range(2000)), display=False)
    assert results[-1] == 1999 * 1999 and len(results) == 2000


async def test_raises_first_failure_in_input_order_after_all_finish() -> None:
    finished: set[int] = set()
    bad = {3: 0.04, 7: 0.0}  # 7 fails first, but 3 comes first in the input
    async with asyncio.timeout(10):
        with pytest.raises(ValueError) as caught:
            await progress((fail_if(i, bad, finished) for i in range(10)), display=False)
    assert caught.value.args == (3,)
    assert finished == set(range(10))


async def test_return_exceptions_puts_them_in_place() -> None:
    bad = {1: 0.0, 4: 0.0}
    async with asyncio.timeout(10):
        results = await progress(
            [fail_if(i, bad, set()) for i in range(6)], return_exceptions=True, display=False
        )
    assert [type(r) for r in results] == [int, ValueError, int, int, ValueError, int]
    assert results[4].args == (4,)


async def test_final_line_on_stderr_outside_a_kernel(capsys: pytest.CaptureFixture[str]) -> None:
    bad = {2: 0.0, 5: 0.0, 8: 0.0}
    async with asyncio.timeout(10):
        await progress(
            (fail_if(i, bad, set()) for i in range(10)),
            description="squares",
            return_exceptions=True,
        )
    err = capsys.readouterr().err
    # stderr is not a terminal here, so only the final line is written
    assert err.endswith("\n") and err.count("\n") == 1
    final = err.split("\r")[-1]
    assert final.startswith("squares: 10/10") and "3 failed" in final and "took" in final


async def test_live_text_line_rewrites_in_place(capsys: pytest.CaptureFixture[str]) -> None:
    async with asyncio.timeout(10):
        await progress((square(i, 0.3) for i in range(5)), display=True)
    err = capsys.readouterr().err
    assert err.startswith("\r") and err.count("\n") == 1
    assert "in flight" in err.split("\r")[1]
    assert err.split("\r")[-1].startswith("5/5")


async def test_empty_input_still_ends_in_a_final_state(capsys: pytest.CaptureFixture[str]) -> None:
    assert await progress([], description="nothing") == []
    assert re.fullmatch(r"\rnothing: 0/0 · took \d+\.\ds\n", capsys.readouterr().err)


async def test_cancelling_progress_cancels_and_awaits_children() -> None:
    started = 0
    all_started = asyncio.Event()
    cancelled: list[int] = []

    async def forever(i: int) -> None:
        nonlocal started
        started += 1
        if started == 5:
            all_started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(0)  # cleanup that itself awaits must be allowed to run
            cancelled.append(i)
            raise

    async with asyncio.timeout(10):
        runner = asyncio.create_task(progress((forever(i) for i in range(5)), display=False))
        await all_started.wait()
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
    assert sorted(cancelled) == [0, 1, 2, 3, 4]


async def test_bad_item_cancels_tasks_already_created() -> None:
    created: list[asyncio.Task[None]] = []

    def items():
        for i in range(3):
            yield square(i, 10.0)
        created.extend(t for t in asyncio.all_tasks() if t is not asyncio.current_task())
        yield 42  # not awaitable

    async with asyncio.timeout(10):
        with pytest.raises(TypeError):
            await progress(items(), display=False)
    assert len(created) == 3 and all(t.cancelled() for t in created)


def test_widget_view_ends_in_its_final_state(capsys: pytest.CaptureFixture[str]) -> None:
    view = _WidgetView("work", total=4)
    try:
        view.update(_Counts(4, 1, 0, 0, 0.5, 2.0))
        assert view._bar.value == 1 and "3 in flight" in view._label.value
        view.finish(_Counts(4, 3, 1, 0, 1.0, 4.0), interrupted=False)
        assert view._bar.value == 4 and view._bar.bar_style == "danger"
        assert "1 failed" in view._label.value
    finally:
        view._box.close()
        view._bar.close()
        view._label.close()
    capsys.readouterr()  # without a shell, IPython's display() prints the bundle


async def test_kernel_detection_picks_the_widget(monkeypatch: pytest.MonkeyPatch) -> None:
    views: list[_WidgetView] = []

    class Recording(_WidgetView):
        def __init__(self, description: str, total: int) -> None:
            super().__init__(description, total)
            views.append(self)

    monkeypatch.setattr(progress_module, "_in_kernel", lambda: True)
    monkeypatch.setattr(progress_module, "_WidgetView", Recording)
    async with asyncio.timeout(10):
        assert await progress([square(2), square(3)], description="k") == [4, 9]
    (view,) = views
    try:
        assert view._bar.value == 2 and view._bar.bar_style == "success"
    finally:
        for widget in (view._box, view._bar, view._label):
            widget.close()


async def test_outer_timeout_leaves_nothing_running() -> None:
    children: list[asyncio.Task[None]] = []

    async def slow() -> None:
        task = asyncio.current_task()
        assert task is not None
        children.append(task)
        await asyncio.sleep(60)

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await progress((slow() for _ in range(4)), display=False)
    assert len(children) == 4 and all(t.cancelled() for t in children)


async def test_cancelled_child_is_reported_as_cancelled(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def gives_up() -> None:
        raise asyncio.CancelledError

    async with asyncio.timeout(10):
        results = await progress([square(1), gives_up()], return_exceptions=True)
    assert results[0] == 1 and isinstance(results[1], asyncio.CancelledError)
    assert "1 cancelled" in capsys.readouterr().err
