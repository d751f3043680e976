"""KernelMesh.start returns at once; calls made meanwhile wait, and a failed start is typed.

The pool is a stand-in whose start is gated by the test, so the order of
events (start returned, call waiting, start failed) is what is asserted.
"""

import asyncio
import threading
from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell

import wool
from wool_jupyter.config import Wool
from wool_jupyter.mesh import KernelMesh


class GatedPool:
    """Enough of ``wool.WorkerPool`` for KernelMesh; ``astart`` fails once the gate opens."""

    gate: threading.Event
    stops = 0

    def __init__(self, *tags: str, spawn: int, start_timeout: float) -> None:
        self.tags = tags
        self.size = spawn
        self.running = False
        self.workers: tuple[wool.WorkerInfo, ...] = ()

    async def astart(self, *, default: bool = False) -> "GatedPool":
        await asyncio.to_thread(self.gate.wait, 10)
        raise wool.WorkerStartError("worker w1 exited with code 3 while starting")

    async def astop(self) -> None:
        GatedPool.stops += 1

    def stop(self) -> None:
        GatedPool.stops += 1

    def statistics_sync(self, timeout: float = 2.0) -> wool.MeshStatistics:
        return wool.MeshStatistics(taken_at=0.0)


async def loop_turns(n: int) -> None:
    """Let other tasks run ``n`` steps (enough for a call to reach its wait)."""
    for _ in range(n):
        await asyncio.sleep(0)


@wool.routine
async def noop() -> None:
    return None


@pytest.fixture
def mesh(shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> Iterator[KernelMesh]:
    GatedPool.gate = threading.Event()
    monkeypatch.setattr(wool, "WorkerPool", GatedPool)
    settings = Wool(parent=shell)
    settings.start_timeout = 5
    backend = KernelMesh(shell, settings)
    yield backend
    GatedPool.gate.set()
    backend.close()


async def test_a_call_waits_for_the_start_and_gets_its_failure_typed(mesh: KernelMesh) -> None:
    message = mesh.start(2, [])
    assert "starting 2 local workers in the background" in message
    assert mesh.describe() == "2 local workers, still starting"
    assert mesh.pool is not None
    call = asyncio.ensure_future(noop())
    await loop_turns(20)
    assert not call.done(), "the call waits while the mesh starts"
    GatedPool.gate.set()
    async with asyncio.timeout(10):
        with pytest.raises(wool.WorkerStartError) as caught:
            await call
    text = str(caught.value)
    assert "noop() could not run" in text and "worker w1 exited with code 3" in text
    assert isinstance(caught.value.__cause__, wool.WorkerStartError)
    status = str(mesh.status())
    assert status.startswith("Wool did not start (2 local workers): WorkerStartError")
    assert "%wool start to try again" in status
    assert mesh.describe() is None and mesh.pool is None
    with pytest.raises(wool.MeshNotRunning):
        await asyncio.wait_for(noop(), 5)


async def test_stopping_a_start_ends_the_wait_with_mesh_not_running(mesh: KernelMesh) -> None:
    mesh.start(1, [])
    call = asyncio.ensure_future(noop())
    await loop_turns(20)
    assert not call.done()
    assert await mesh.stop() == "Stopped 0 local workers."
    GatedPool.gate.set()
    async with asyncio.timeout(10):
        with pytest.raises(wool.MeshNotRunning, match=r"noop\(\)"):
            await call
    assert mesh.status() == "Wool is not running; start it with %wool start."
