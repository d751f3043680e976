"""Starting ``wool worker`` processes in namespace hosts, and what the tests need to check them.

A worker's command line is built here once, the way a user would type it
(issue 11: ``--listen``, ``--advertise``, ``--join``, TLS files, secret file),
so every test starts workers the same way and a CLI change breaks one place.
"""

from __future__ import annotations

import importlib.util
import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from netns import Host

PORT = 7700
READY: dict[int, tuple[Path, Path]] = {}
CLIENT = Path(__file__).with_name("client.py")


def missing(*modules: str) -> str | None:
    """The first of ``modules`` that cannot be imported, as a skip reason; None if all can."""
    for name in modules:
        try:
            found = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            found = None
        if found is None:
            return f"needs {name}"
    return None


def tls_args(certs: Path, role: str = "worker") -> list[str]:
    return [
        "--tls-ca", str(certs / "ca.pem"),
        "--tls-cert", str(certs / f"{role}.pem"),
        "--tls-key", str(certs / f"{role}.key"),
        "--secret-file", str(certs / "mesh.secret"),
    ]  # fmt: skip


def worker_id(host: Host) -> str:
    return f"{host.name}-worker"


def start_worker(
    host: Host,
    certs: Path | None,
    *,
    join: Sequence[str] = (),
    discovery: str | None = None,
    tags: Sequence[str] = (),
    listen: str | None = None,
    extra: Sequence[str] = (),
    secret_only: bool = False,
    name: str | None = None,
) -> subprocess.Popen[str]:
    """``python -m wool worker`` in ``host``, listening on its bridge address (TLS when certs)."""
    address = listen or f"{host.address}:{PORT}"
    args = [sys.executable, "-m", "wool", "worker", "--listen", address]
    args += ["--id", name or worker_id(host)]
    if listen is None:
        args += ["--advertise", address]
    for seed in join:
        args += ["--join", seed]
    if discovery:
        args += ["--discovery", discovery]
    for tag in tags:
        args += ["--tag", tag]
    if certs is not None and secret_only:  # loopback workers need the secret, not TLS
        args += ["--secret-file", str(certs / "mesh.secret")]
    elif certs is not None:
        args += tls_args(certs)
    log = host.network.logs / f"{name or worker_id(host)}-{len(host.procs)}.log"
    ready = log.with_suffix(".ready")
    proc = host.spawn([*args, "--ready-file", str(ready), *extra], log=log)
    READY[proc.pid] = (ready, log)
    return proc


def wait_ready(procs: Sequence[subprocess.Popen[str]], timeout: float = 30.0) -> list[dict]:
    """Wait (bounded) for each worker's ``--ready-file``; what each wrote (id, address, pid)."""
    deadline = time.monotonic() + timeout
    found = []
    for proc in procs:
        ready, log = READY[proc.pid]
        while not ready.exists() or not ready.read_text().strip():
            if proc.poll() is not None:
                raise AssertionError(f"worker exited {proc.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"worker {proc.pid} not ready in {timeout}s:\n{log.read_text()}"
                )
            time.sleep(0.02)
        found.append(json.loads(ready.read_text()))
    return found


def assert_running(procs: Sequence[subprocess.Popen[str]]) -> None:
    """Fail with a worker's own output if it exited (a bad flag, a refused start)."""
    for proc in procs:
        if proc.poll() is not None:
            log = READY[proc.pid][1]
            raise AssertionError(f"worker exited {proc.returncode}:\n{log.read_text()}")


def wait_exit(proc: subprocess.Popen[str], timeout: float) -> int:
    """Wait (bounded) for ``proc`` to exit by itself; its exit code."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"pid {proc.pid} still running after {timeout}s")
        time.sleep(0.02)
    return proc.returncode


def read_json(proc: subprocess.Popen[str], timeout: float) -> dict:
    """The next JSON line ``proc`` prints, within ``timeout`` (its stderr if it exits first)."""
    found: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("{"):
                found.put(line)
                return
        found.put("")

    threading.Thread(target=read, daemon=True).start()
    try:
        line = found.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"pid {proc.pid} printed nothing within {timeout}s") from None
    if not line:
        err = proc.stderr.read() if proc.stderr else ""
        raise AssertionError(f"pid {proc.pid} ended without a result:\n{err}")
    return json.loads(line)


def log_lines(proc_log: Path) -> list[str]:
    return proc_log.read_text(errors="replace").splitlines() if proc_log.exists() else []
