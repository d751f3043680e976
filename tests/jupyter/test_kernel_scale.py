"""An elastic mesh in a real kernel: ``%wool scale`` adds and removes local workers live,
``%wool connect``/``disconnect`` join and leave a mesh of ``wool worker`` processes, and
``%wool status`` shows each peer's host, how it was found, and the joins and leaves.
"""

from __future__ import annotations

import ast
import inspect
import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from kernel_harness import EXIT_TIMEOUT, Kernel, alive, wait_until

pytestmark = pytest.mark.jupyter

ROUTINES = """
import asyncio, os, wool, wool_jupyter

@wool.routine
async def whoami():
    await asyncio.sleep(0.05)
    return os.getpid()
"""


def status_text(kernel: Kernel) -> str:
    return "".join(m.text for m in kernel.run("%wool status").messages)


def test_scale_up_fans_out_to_the_newcomer_and_scale_down_shows_the_leave(
    new_kernel: Callable[[], Kernel],
) -> None:
    kernel = new_kernel()
    kernel.run("%load_ext wool\n%config Wool.show_widget = False")
    kernel.run(ROUTINES)
    kernel.run("%wool start -n 1")
    assert kernel.value("await whoami()").isdigit()
    (first,) = kernel.worker_pids()

    grown = kernel.run("%wool scale 2")
    assert "Added 1 local worker" in grown.stdout, grown.stdout
    pids = kernel.worker_pids()
    assert len(pids) == 2 and first in pids
    (newcomer,) = pids - {first}

    # Every ready worker runs the cell: the newcomer is in the mesh.
    reached = ast.literal_eval(kernel.value("%%wool --all\nos.getpid()"))
    assert sorted(reached.values()) == sorted(pids)

    shrunk = kernel.run("%wool scale 1")
    assert "Removed 1 local worker" in shrunk.stdout, shrunk.stdout
    # Both idle: the newest goes, and its process ends.
    wait_until(
        lambda: not alive(newcomer, kernel.workers[newcomer]),
        EXIT_TIMEOUT,
        f"removed worker {newcomer} to exit",
    )
    assert {int(kernel.value("await whoami()")) for _ in range(4)} == {first}

    status = status_text(kernel)
    assert "joins and leaves" in status, status
    assert status.count(" joined (127.0.0.1, spawned)") == 2, status
    assert status.count(" left (127.0.0.1, spawned)") == 1, status
    header = next(line for line in status.splitlines() if line.startswith("id "))
    assert header.split()[:3] == ["id", "host", "found"]


class DurableWorkers:
    """``wool worker`` processes on loopback ports that this test starts and ends by PID."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.certs = directory / "certs"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.created: dict[int, float] = {}
        self.tls = False

    def make_certs(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "wool", "certs", "init", str(self.certs)],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self, name: str, join: str | None = None) -> dict[str, object]:
        ready = self.directory / f"{name}.ready"
        command = [sys.executable, "-m", "wool", "worker", "--listen", "127.0.0.1:0",
                   "--id", name, "--ready-file", str(ready),
                   "--secret-file", str(self.certs / "mesh.secret")]  # fmt: skip
        if self.tls:
            command += ["--tls-ca", str(self.certs / "ca.pem"),
                        "--tls-cert", str(self.certs / "worker.pem"),
                        "--tls-key", str(self.certs / "worker.key")]  # fmt: skip
        if join:
            command += ["--join", join]
        process = subprocess.Popen(command, cwd=self.directory)
        self.processes.append(process)
        self.created[process.pid] = psutil.Process(process.pid).create_time()
        wait_until(
            lambda: process.poll() is not None or (ready.exists() and ready.read_text().strip()),
            60,
            f"wool worker {name} to be ready",
        )
        assert process.poll() is None, f"wool worker {name} exited with {process.returncode}"
        return json.loads(ready.read_text())

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(EXIT_TIMEOUT + 10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(EXIT_TIMEOUT)
        assert not any(alive(pid, made) for pid, made in self.created.items())


@pytest.fixture
def durable(tmp_path: Path) -> Iterator[DurableWorkers]:
    workers = DurableWorkers(tmp_path)
    try:
        workers.make_certs()
        yield workers
    finally:
        workers.stop()


def _tls_supported() -> bool:
    from wool.mesh.client import MeshClient

    return "credentials" in inspect.signature(MeshClient).parameters


@pytest.mark.parametrize("tls", [False, True], ids=["secret-only", "mutual-tls"])
def test_connect_runs_calls_on_durable_workers_and_disconnect_leaves_them_running(
    new_kernel: Callable[[], Kernel], durable: DurableWorkers, tls: bool
) -> None:
    if tls and not _tls_supported():
        pytest.skip("MeshClient(credentials=) is not in this tree yet (transport security)")
    durable.tls = tls
    seed = durable.start("host-a")
    certs = durable.certs
    kernel = new_kernel()
    kernel.run("%load_ext wool\n%config Wool.show_widget = False")
    kernel.run(ROUTINES)
    options = f"--secret-file {certs / 'mesh.secret'}"
    if tls:
        options += (
            f" --tls-ca {certs / 'ca.pem'} --tls-cert {certs / 'client.pem'}"
            f" --tls-key {certs / 'client.key'}"
        )
    joined = kernel.run(f"%wool connect {seed['address']} {options}")
    assert "joining the remote mesh via" in joined.stdout, joined.stdout

    assert int(kernel.value("await whoami()")) == seed["pid"]
    assert kernel.worker_pids() == set(), "connect spawns no local worker"
    status = status_text(kernel)
    assert " host-a joined (127.0.0.1, seed)" in status, status
    assert "already running" in kernel.run("%wool start -n 1").stdout
    assert "changes local workers only" in kernel.run("%wool scale 2").stdout

    left = kernel.run("%wool disconnect")
    assert "its workers keep running" in left.stdout, left.stdout
    assert alive(int(seed["pid"]), durable.created[int(seed["pid"])])  # type: ignore[arg-type]
    error = kernel.execute("await whoami()")
    assert error.ename == "MeshNotRunning", [m.text for m in error.messages]
