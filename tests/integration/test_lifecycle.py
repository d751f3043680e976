"""Workers never outlive their owner; pools start fast and stop cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading

import psutil
import pytest
import routines
from support import alive, until, wait_until

import wool
import wool.tuning

pytestmark = pytest.mark.timeout(60)

OWNER = textwrap.dedent(
    """
    import asyncio, sys, wool
    sys.path.insert(0, {path!r})
    import routines

    async def main():
        async with wool.WorkerPool(spawn=2) as pool:
            assert await routines.add(1, 1) == 2
            print(" ".join(str(w.pid) for w in pool.workers), flush=True)
            await asyncio.sleep(60)

    asyncio.run(main())
    """
)


def test_kill_9_of_the_parent_leaves_no_worker_alive(tmp_path) -> None:
    script = tmp_path / "owner.py"
    script.write_text(OWNER.format(path=os.path.dirname(routines.__file__)))
    with subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True
    ) as owner:
        try:
            assert owner.stdout is not None
            pids = [int(p) for p in owner.stdout.readline().split()]
            assert len(pids) == 2 and all(alive(p) for p in pids)
            owner.send_signal(signal.SIGKILL)
            owner.wait(5)
            wait_until(lambda: not any(alive(p) for p in pids), 5, "orphaned workers to exit")
        finally:
            if owner.poll() is None:
                owner.kill()
                owner.wait(5)


async def test_worker_command_line_says_whose_wool_worker_it_is() -> None:
    async with wool.WorkerPool(spawn=1) as pool:
        (worker,) = pool.workers
        cmdline = psutil.Process(worker.pid).cmdline()
    assert "wool.worker" in cmdline
    assert cmdline[cmdline.index("--owner") + 1] == str(os.getpid())
    assert cmdline[cmdline.index("--id") + 1] == worker.id
    assert "--secret" not in " ".join(cmdline)


async def test_workers_run_with_the_tuned_grpc_settings(monkeypatch) -> None:
    monkeypatch.delenv("GRPC_EXPERIMENTS", raising=False)
    async with wool.WorkerPool(spawn=1) as pool:
        (worker,) = pool.workers
        env = psutil.Process(worker.pid).environ()
        assert await routines.add(2, 3) == 5
    assert env["GRPC_EXPERIMENTS"] == wool.tuning.GRPC_EXPERIMENTS


async def test_pool_exit_stops_every_worker_promptly() -> None:
    async with wool.WorkerPool(spawn=2) as pool:
        pids = [w.pid for w in pool.workers]
        await routines.add(1, 2)
    assert not any(alive(p) for p in pids)


def test_pool_exit_prints_nothing_on_stderr(tmp_path) -> None:
    """Workers stopping with a stream open and a routine running stay quiet."""
    script = tmp_path / "quiet.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, routines, wool

            async def main():
                for _ in range(5):
                    async with wool.WorkerPool(spawn=2) as pool:
                        for _ in range(50):
                            await routines.noop()
                        running = asyncio.create_task(routines.pid_then_sleep(30))
                        async with asyncio.timeout(10):  # the routine runs on a worker
                            while (await pool.statistics()).executed.in_flight != 1:
                                await asyncio.sleep(0.01)
                    try:
                        await running
                    except wool.WorkerLost:
                        pass

            asyncio.run(main())
            """
        )
    )
    here = os.path.dirname(routines.__file__)
    env = {**os.environ, "PYTHONPATH": here + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""


async def test_stop_while_starting_stops_the_workers_and_fails_the_start(monkeypatch) -> None:
    from wool.mesh import spawn

    stopped = threading.Event()
    real_wait_ready = spawn.wait_ready

    def wait_ready_after_stop(*args: object, **kwargs: object) -> None:
        assert stopped.wait(30), "the test never stopped the pool"
        real_wait_ready(*args, **kwargs)

    monkeypatch.setattr(spawn, "wait_ready", wait_ready_after_stop)
    pool = wool.WorkerPool(spawn=2)
    starting = asyncio.create_task(pool.astart())
    await until(lambda: len(pool.workers) == 2, 10, "the workers to be spawned")
    pids = [w.pid for w in pool.workers]
    await asyncio.to_thread(pool.stop)
    stopped.set()
    with pytest.raises(RuntimeError, match="stopped while it was starting"):
        await starting
    assert not pool.running
    assert not any(alive(p) for p in pids)


def test_interpreter_exit_stops_a_default_pool(tmp_path) -> None:
    script = tmp_path / "exit.py"
    script.write_text(
        "import wool\n"
        "pool = wool.WorkerPool(spawn=1).start(default=True)\n"
        "print(pool.workers[0].pid, flush=True)\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30, check=True
    )
    pid = int(out.stdout.split()[0])
    wait_until(lambda: not alive(pid), 5, "the worker to exit with its owner")


def test_a_worker_that_cannot_start_gives_a_typed_error(monkeypatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/nonexistent")
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(wool.WorkerStartError, match="exited"):
        wool.WorkerPool(spawn=1, start_timeout=10).start()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_a_pool_refuses_to_bind_beyond_loopback(host: str) -> None:
    with pytest.raises(ValueError, match="Use a loopback address") as refused:
        wool.WorkerPool(spawn=1, host=host)
    assert "mutual TLS" in str(refused.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_a_pool_accepts_loopback_hosts(host: str) -> None:
    assert wool.WorkerPool(spawn=1, host=host).host == host
