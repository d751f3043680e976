"""Failures reach the caller as typed errors: remote exceptions, bad arguments, dead workers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import traceback

import pytest
import routines
from support import alive, until

import wool

pytestmark = pytest.mark.timeout(60)


async def test_remote_exception_keeps_type_message_traceback_and_worker(
    pool: wool.WorkerPool,
) -> None:
    async with pool:
        with pytest.raises(routines.Boom, match="kaboom") as info:
            await routines.explode("kaboom")
    exc = info.value
    assert exc.code == 42
    text = "".join(traceback.format_exception(exc))
    assert "_inner_explode" in text, "the remote frames are in the traceback"
    assert "routines.py" in text
    notes = " ".join(getattr(exc, "__notes__", []))
    assert "raised remotely on worker" in notes
    assert any(str(w.pid) in notes for w in pool.workers)


async def test_exception_from_a_nested_call_crosses_two_hops(pool: wool.WorkerPool) -> None:
    async with pool:
        with pytest.raises(routines.Boom, match="deep") as info:
            await routines.nested_explode("deep")
    assert len(info.value.__notes__) == 2, "each hop says where it came from"


async def test_exception_that_cannot_be_rebuilt_becomes_remote_error(
    pool: wool.WorkerPool,
) -> None:
    async with pool:
        with pytest.raises(wool.RemoteError) as info:
            await routines.explode_unrebuildable()
    assert info.value.type_name == "routines.Unrebuildable"
    assert "needs 1 and 2" in str(info.value)
    assert "explode_unrebuildable" in info.value.remote_traceback


async def test_unpicklable_argument_fails_before_sending(pool: wool.WorkerPool) -> None:
    async with pool:
        before = (await pool.statistics()).executed.started
        with pytest.raises(wool.SerializationError, match=r"keyword argument 'y' \(generator\)"):
            await routines.add(1, y=(i for i in range(3)))
        sock = socket.socket()
        with sock, pytest.raises(wool.SerializationError, match=r"argument 0 \(socket\)"):
            await routines.echo(sock)
        after = (await pool.statistics()).executed.started
    assert after == before, "nothing was dispatched"


async def test_unpicklable_yield_fails_the_stream_and_closes_the_generator(
    pool: wool.WorkerPool, tmp_path
) -> None:
    marker = tmp_path / "closed"
    async with pool:
        stream = routines.yield_unpicklable(str(marker))
        with pytest.raises(wool.SerializationError):
            await anext(stream)
        await until(marker.exists, 5, "the generator's finally on the worker")
        assert await routines.add(1, 1) == 2


async def test_worker_killed_mid_call_fails_only_its_own_call_and_pool_serves_on() -> None:
    async with wool.WorkerPool(spawn=2) as pool:
        victim, survivor = pool.workers
        # Pin a long call on each worker, then kill one of them.
        calls = [asyncio.create_task(routines.pid_then_sleep(30)) for _ in range(2)]
        async with asyncio.timeout(5):  # both calls running, one on each worker
            while sorted(p.executed.in_flight for p in (await pool.statistics()).peers) != [1, 1]:
                await asyncio.sleep(0.01)
        os.kill(victim.pid, signal.SIGKILL)
        started = time.monotonic()
        done, pending = await asyncio.wait(calls, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        print(f"the caller saw the kill after {time.monotonic() - started:.2f}s")
        # The lost call ends on its own, long before the other call's 30 s sleep could.
        assert len(done) == 1 and len(pending) == 1, "the kill did not end the victim's call"
        (failed,) = done
        with pytest.raises(wool.WorkerLost, match=victim.id):
            failed.result()
        for _ in range(10):
            assert await routines.whoami() == survivor.pid
        assert {w.id: w.state for w in pool.workers}[victim.id] == "lost"
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    assert not alive(victim.pid) and not alive(survivor.pid)


async def test_no_reachable_worker_gives_a_typed_error() -> None:
    async with wool.WorkerPool(spawn=1) as pool:
        assert await routines.noop() is None
        (worker,) = pool.workers
        os.kill(worker.pid, signal.SIGKILL)
        with pytest.raises((wool.WorkerLost, wool.NoWorkersAvailable)):
            for _ in range(3):
                await routines.noop()
        with pytest.raises(wool.NoWorkersAvailable, match="lost"):
            await routines.noop()


async def test_blocking_routine_does_not_stop_stats_or_dispatch_intake() -> None:
    async with wool.WorkerPool(spawn=1) as pool:
        await routines.noop()
        blocked = asyncio.create_task(routines.block_cpu(4.0))
        async with asyncio.timeout(5):  # the worker has started it, and is now stuck in it
            while (await pool.statistics()).peers[0].executed.in_flight != 1:
                await asyncio.sleep(0.01)
        before = (await pool.statistics()).peers[0].uptime_s
        # Long enough to wait out the block: only the figures tell when the worker answered.
        stats = await pool.statistics(timeout=10.0)
        assert stats.peers[0].uptime_s > before, "a fresh answer, not the pool's last figures"
        assert stats.peers[0].executed.in_flight == 1, "answered while the routine loop was blocked"
        queued = asyncio.create_task(routines.add(1, 1))
        assert await queued == 2
        assert await blocked == pool.workers[0].pid


async def test_a_peer_that_never_answers_gives_a_typed_error_within_the_bound() -> None:
    from wool.mesh.client import MeshClient
    from wool.protocol.frames import PeerRecord

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    port = silent.getsockname()[1]
    client = MeshClient(b"secret", connect_timeout=0.5)
    client.set_peers([PeerRecord("mute", f"127.0.0.1:{port}", 0)])
    started = time.monotonic()
    try:
        with pytest.raises(wool.NoWorkersAvailable, match="did not answer"):
            await client.connect()
    finally:
        silent.close()
        await client.close_loop()
    assert time.monotonic() - started < 3


async def test_sys_exit_in_a_routine_reaches_the_caller_and_the_worker_lives_on(
    pool: wool.WorkerPool,
) -> None:
    async with pool:
        with pytest.raises(wool.RemoteError) as info:  # as itself it would end this process
            await routines.exit_worker()
        assert info.value.type_name == "builtins.SystemExit"
        assert [w.state for w in pool.workers] == ["ready", "ready"]
        assert await routines.add(1, 1) == 2


async def test_cancelling_the_caller_that_opens_a_connection_does_not_strand_others() -> None:
    from wool.mesh.client import MeshClient
    from wool.protocol.frames import PeerRecord

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    client = MeshClient(b"secret", connect_timeout=1.0)
    client.set_peers([PeerRecord("mute", f"127.0.0.1:{silent.getsockname()[1]}", 0)])
    try:
        opener = asyncio.create_task(client.connect())
        joiner = asyncio.create_task(client.connect())
        await until(
            lambda: sum(c.opening for c in client._connections().values()) == 2,
            5,
            "both callers waiting inside the connect",
        )
        opener.cancel()
        started = time.monotonic()
        with pytest.raises(wool.NoWorkersAvailable, match="did not answer"):
            await asyncio.wait_for(joiner, 5)
        assert time.monotonic() - started < 3, "the joiner retried within its own bound"
    finally:
        silent.close()
        await client.close_loop()


async def test_undecodable_text_in_errors_and_output_does_not_stall_the_stream(
    pool: wool.WorkerPool,
) -> None:
    received: list[str] = []
    async with pool:
        with pytest.raises(ValueError, match="caf"):
            await routines.raise_with_surrogate()
        with wool.output_handler(lambda stream, text: received.append(text)):
            assert await routines.print_surrogate() is None
        assert await routines.add(1, 2) == 3
    assert "caf" in "".join(received)
