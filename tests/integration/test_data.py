"""Data-sized work on real workers: large buffers round trip exactly, memory stays bounded,
a small call overtakes a large transfer, and an argument over the pool's limit is never sent.

Round trips share the module's two-worker ``pool``; the ordering and limit tests start
their own one-worker pool, so the worker they watch has done nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
import routines
import routines_data as rd
from support import until

import wool

MIB = 1 << 20
BIG = 256 * MIB

pytestmark = pytest.mark.timeout(180)


def digest(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


class PeakRss:
    """Samples the resident size of some processes every few milliseconds, on the loop."""

    def __init__(self, pids: list[int]) -> None:
        self.baseline = {pid: rss(pid) for pid in pids}
        self.peak = dict(self.baseline)
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            for pid in self.peak:
                self.peak[pid] = max(self.peak[pid], rss(pid))
            await asyncio.sleep(0.005)

    async def __aenter__(self) -> PeakRss:
        self._task = asyncio.get_running_loop().create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.wait([self._task])
        if not self._task.cancelled() and self._task.exception() is not None:
            raise AssertionError("sampling stopped early") from self._task.exception()

    def growth(self) -> int:
        """The largest rise above its baseline any of the processes showed."""
        return max(self.peak[pid] - self.baseline[pid] for pid in self.peak)


@pytest.fixture(scope="module")
def rng() -> Iterator[np.random.Generator]:
    yield np.random.default_rng(12)


async def test_a_stream_read_slowly_is_not_run_ahead(pool: wool.WorkerPool, tmp_path: Path) -> None:
    """50 blocks of 10 MiB, read at 20 ms each: the worker makes one only when asked."""
    marker = tmp_path / "produced"
    count, size = 50, 10 * MIB
    async with pool, asyncio.timeout(120):
        await asyncio.gather(routines.noop(), routines.noop())
        received = 0
        async with PeakRss([w.pid for w in pool.workers]) as memory:
            async for block in rd.blocks(count, size, str(marker)):
                produced = int(marker.read_text())
                assert produced <= received + 2, f"ran ahead: {produced} made, {received} read"
                assert len(block) == size and block[0] == block[-1] == received % 256
                received += 1
                await asyncio.sleep(0.02)  # a slow consumer, not a synchronization
    assert received == count
    grown = memory.growth()
    assert grown < 200 * MIB, f"a worker grew by {grown / MIB:.0f} MiB while streaming"


async def test_a_256_mib_array_round_trips_byte_exact(
    pool: wool.WorkerPool, rng: np.random.Generator
) -> None:
    array = rng.random((4096, BIG // 8 // 4096))
    assert array.nbytes == BIG
    async with pool, asyncio.timeout(150):
        assert await rd.sha256_of(array) == digest(array.data.cast("B"))
        back = await routines.echo(array)
    assert isinstance(back, np.ndarray)
    assert back.dtype == array.dtype and back.shape == array.shape
    assert np.array_equal(back, array)


async def test_256_mib_of_bytes_round_trip_byte_exact(
    pool: wool.WorkerPool, rng: np.random.Generator
) -> None:
    data = rng.bytes(BIG)
    expected = digest(data)
    async with pool, asyncio.timeout(150):
        assert await rd.sha256_of(data) == expected
        back = await routines.echo(data)
    assert type(back) is bytes
    assert len(back) == BIG and digest(back) == expected


async def test_a_pandas_frame_round_trips_equal(pool: wool.WorkerPool) -> None:
    pd = pytest.importorskip("pandas")
    rows = 200_000
    frame = pd.DataFrame(
        {
            "id": np.arange(rows, dtype=np.int64),
            "value": np.linspace(0.0, 1.0, rows),
            "flag": np.arange(rows) % 3 == 0,
            "station": pd.Categorical(np.array(["north", "south", "east"])[np.arange(rows) % 3]),
            "when": pd.date_range("2026-01-01", periods=rows, freq="min"),
            "label": [f"row {i}" for i in range(rows)],
        },
        index=pd.RangeIndex(10, 10 + rows, name="row"),
    )
    async with pool, asyncio.timeout(60):
        back = await routines.echo(frame)
    pd.testing.assert_frame_equal(back, frame)


async def test_a_no_op_overtakes_a_256_mib_transfer_to_the_same_worker(
    rng: np.random.Generator,
) -> None:
    """Ordering, not time: the no-op is sent once the big argument is reaching the worker,
    and its result must come back while that call is still unfinished."""
    data = rng.bytes(BIG)
    finished: list[str] = []
    async with asyncio.timeout(150), wool.WorkerPool(spawn=1) as pool:
        await routines.noop()
        pid = pool.workers[0].pid
        before = rss(pid)
        big = asyncio.create_task(rd.size_of(data))
        big.add_done_callback(lambda _: finished.append("big"))
        await until(lambda: big.done() or rss(pid) > before + 32 * MIB, 60, "the transfer to begin")
        assert not big.done(), "the 256 MiB call ended before the worker's memory grew"
        small = asyncio.create_task(routines.noop())
        small.add_done_callback(lambda _: finished.append("no-op"))
        await asyncio.wait([big, small])
    assert finished == ["no-op", "big"], "the no-op waited behind the 256 MiB transfer"
    assert big.result() == BIG and small.result() is None


async def test_an_argument_over_the_limit_is_refused_before_sending() -> None:
    async with asyncio.timeout(60), wool.WorkerPool(spawn=1, max_payload=MIB) as pool:
        assert await rd.size_of(b"x" * 1024) == 1024
        with pytest.raises(wool.PayloadTooLarge) as refused:
            await rd.size_of(b"x" * (2 * MIB))
        message = str(refused.value)
        assert isinstance(refused.value, wool.SerializationError)
        assert "positional argument 0" in message and "size_of" in message, message
        assert re.search(r"\b2(\.0+)? ?MiB|\b2,?097,?\d{3} bytes", message), message
        with pytest.raises(wool.PayloadTooLarge, match="value"):
            await rd.size_of(value=bytearray(2 * MIB))
        await routines.noop()
        (peer,) = (await pool.statistics()).peers
    assert peer.executed.started == 2, "a refused call reached the worker"
    assert peer.executed.completed == 2 and peer.executed.failed == 0


async def test_a_result_over_the_pools_limit_fails_its_call_alone() -> None:
    async with asyncio.timeout(60), wool.WorkerPool(spawn=1, max_payload=MIB) as pool:
        with pytest.raises(wool.PayloadTooLarge, match="max_payload"):
            await rd.zeros(2 * MIB)
        assert await rd.zeros(1024) == bytes(1024)
        (peer,) = (await pool.statistics()).peers
    assert peer.executed.failed == 1 and peer.executed.completed == 1


async def test_cancelling_a_call_stops_its_result_on_the_way_back() -> None:
    async with asyncio.timeout(120), wool.WorkerPool(spawn=1) as pool:
        assert await rd.zeros(16) == bytes(16)
        (conn,) = pool._mesh._connections().values()  # the caller's stream to the worker
        big = asyncio.create_task(rd.zeros(BIG))
        await until(lambda: conn._chunks.taken > 8 * MIB, 60, "the result to start arriving")
        big.cancel()
        await until(lambda: not conn._chunks.open, 60, "the partial result to be dropped")
        taken = conn._chunks.taken
        assert await rd.zeros(1024) == bytes(1024)  # the stream carries on
        assert conn._chunks.taken == taken
    assert taken < BIG // 2, f"{taken} of {BIG} bytes came back after the cancel"
