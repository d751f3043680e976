"""Local worker processes: start them, learn their addresses, tell them their peers, stop them.

Workers are started with ``python -m wool.worker`` (never fork: gRPC is not
fork-safe, and a notebook's ``__main__`` cannot be re-imported). Each gets
a private control pipe on stdin and a report pipe; every wait here has a
deadline.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from wool import tuning
from wool.credentials import WorkerCredentials
from wool.errors import WorkerStartError
from wool.protocol.frames import PeerRecord


@dataclass
class LocalWorker:
    """A worker process this process spawned and owns."""

    id: str
    tags: tuple[str, ...]
    process: subprocess.Popen
    report: BinaryIO
    record: PeerRecord | None = None
    _buffer: str = field(default="", repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def read_line(self) -> str | None:
        """One complete line from the report pipe if available, else None (non-blocking)."""
        while "\n" not in self._buffer:
            try:
                chunk = os.read(self.report.fileno(), 65536)
            except BlockingIOError:
                return None
            if not chunk:
                raise EOFError
            self._buffer += chunk.decode()
        line, self._buffer = self._buffer.split("\n", 1)
        return line


def spawn(
    count: int,
    tags: tuple[str, ...],
    secret: bytes,
    host: str,
    credentials: WorkerCredentials | None = None,
    max_payload: int | None = None,
) -> list[LocalWorker]:
    """Start ``count`` workers; returns at once (see wait_ready).

    ``credentials`` (PEM, on stdin like the secret) make them serve mutual TLS;
    ``max_payload`` becomes their ``WOOL_MAX_PAYLOAD``.
    """
    workers: list[LocalWorker] = []
    env = tuning.worker_environment(dict(os.environ))
    if max_payload is not None:
        env["WOOL_MAX_PAYLOAD"] = str(max_payload)
    env.setdefault("PYTHONUNBUFFERED", "1")
    sys_path = [os.path.abspath(p or os.curdir) for p in sys.path]
    try:
        for _ in range(count):
            worker_id = uuid.uuid4().hex[:8]
            read_fd, write_fd = os.pipe()
            os.set_blocking(read_fd, False)
            command = [sys.executable, "-m", "wool.worker", "--owner", str(os.getpid()),
                       "--id", worker_id, "--host", host]  # fmt: skip
            for tag in tags:
                command += ["--tag", tag]
            try:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.PIPE,
                    pass_fds=(write_fd,),
                    env=env,
                    start_new_session=True,
                    text=True,
                )
            except BaseException:
                os.close(read_fd)
                raise
            finally:
                os.close(write_fd)
            config = {
                "secret": secret.hex(),
                "ready_fd": write_fd,
                "sys_path": sys_path,
                # The kernel's parent-death signal follows the spawning *thread*:
                # only the main thread outlives the pool for sure.
                "death_signal": threading.current_thread() is threading.main_thread(),
            }
            if credentials is not None:
                config["tls"] = credentials.to_config()
            assert process.stdin is not None
            try:
                process.stdin.write(json.dumps(config) + "\n")
                process.stdin.flush()
            except OSError:
                pass  # it died at once; wait_ready reports how it exited
            workers.append(
                LocalWorker(worker_id, tags, process, os.fdopen(read_fd, "rb", buffering=0))
            )
    except BaseException:
        stop(workers, timeout=2.0)
        raise
    return workers


def _wait_lines(
    workers: list[LocalWorker],
    timeout: float,
    what: str,
    wanted: Callable[[dict], bool] = lambda line: True,
    skip_exited: bool = False,
) -> dict[str, dict]:
    """Read one ``wanted`` JSON line from each worker's report pipe, bounded by ``timeout``.

    A worker that exits first raises WorkerStartError, or is left out of the
    result with ``skip_exited``.
    """
    deadline = time.monotonic() + timeout
    waiting = {w.report.fileno(): w for w in workers}
    lines: dict[str, dict] = {}
    with selectors.DefaultSelector() as selector:
        for fd, worker in waiting.items():
            selector.register(fd, selectors.EVENT_READ, worker)
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerStartError(
                    f"{len(waiting)} of {len(workers)} workers did not {what} within {timeout:g}s"
                )
            for key, _ in selector.select(min(left, 0.5)):
                worker = key.data
                try:
                    report = _next_wanted(worker, wanted)
                except EOFError:
                    if skip_exited:
                        selector.unregister(key.fd)
                        del waiting[key.fd]
                        continue
                    code = worker.process.poll()
                    raise WorkerStartError(
                        f"worker {worker.id} (pid {worker.pid}) exited before it could {what}"
                        f" (exit code {code}); its stderr above says why"
                    ) from None
                if report is not None:
                    lines[worker.id] = report
                    selector.unregister(key.fd)
                    del waiting[key.fd]
            for fd, worker in list(waiting.items()):
                if worker.alive():
                    continue
                if skip_exited:
                    selector.unregister(fd)
                    del waiting[fd]
                    continue
                raise WorkerStartError(
                    f"worker {worker.id} (pid {worker.pid}) exited with code "
                    f"{worker.process.returncode} before it could {what}"
                )
    return lines


def _next_wanted(worker: LocalWorker, wanted: Callable[[dict], bool]) -> dict | None:
    """The first wanted line the worker has sent so far; older lines (stale acks) are dropped."""
    while (line := worker.read_line()) is not None:
        report = json.loads(line)
        if wanted(report):
            return report
    return None


def wait_ready(workers: list[LocalWorker], timeout: float) -> None:
    for worker_id, report in _wait_lines(workers, timeout, "start").items():
        worker = next(w for w in workers if w.id == worker_id)
        worker.record = PeerRecord(
            worker.id, report["address"], report["pid"], worker.tags, report["control"]
        )


def send_peers(
    workers: list[LocalWorker],
    peers: list[PeerRecord],
    version: int,
    timeout: float,
    *,
    skip_exited: bool = False,
) -> list[LocalWorker]:
    """Give every worker the peer table and wait until each has applied it.

    Returns the workers that acknowledged this ``version``. A worker that
    exits meanwhile raises WorkerStartError, or is left out with ``skip_exited``.
    """
    message = {
        "version": version,
        "peers": [
            {
                "id": p.id,
                "address": p.address,
                "pid": p.pid,
                "tags": list(p.tags),
                "control": p.control,
            }
            for p in peers
        ],
    }
    line = json.dumps(message) + "\n"
    live = [w for w in workers if w.alive()]
    for worker in live:
        assert worker.process.stdin is not None
        try:
            worker.process.stdin.write(line)
            worker.process.stdin.flush()
        except (BrokenPipeError, OSError):
            continue
    acked = _wait_lines(
        [w for w in live if w.alive()],
        timeout,
        "take the peer table",
        lambda report: report.get("ack") == version,
        skip_exited,
    )
    return [w for w in live if w.id in acked]


def wait_exit(workers: list[LocalWorker], wake: int, timeout: float) -> list[LocalWorker]:
    """The workers that have exited, waiting (bounded) until one does or ``wake`` is readable.

    A worker's report pipe reaches end-of-file only when its process is gone,
    so this needs no polling. Stale lines on the pipes are dropped; exited
    workers are reaped.
    """
    with selectors.DefaultSelector() as selector:
        selector.register(wake, selectors.EVENT_READ, None)
        for worker in workers:
            selector.register(worker.report.fileno(), selectors.EVENT_READ, worker)
        exited = []
        for key, _ in selector.select(timeout):
            worker = key.data
            if worker is None:
                continue
            try:
                _next_wanted(worker, lambda report: False)
            except EOFError:
                exited.append(worker)
    _reap(exited, time.monotonic() + 2.0)
    return exited


def stop(workers: list[LocalWorker], timeout: float = 3.0) -> None:
    """Stop workers (see terminate) and close their pipes."""
    terminate(workers, timeout)
    close_pipes(workers)


def terminate(workers: list[LocalWorker], timeout: float = 3.0) -> None:
    """End workers: close their control pipes, then SIGTERM, then SIGKILL; all bounded."""
    for worker in workers:
        stdin = worker.process.stdin
        if stdin is not None:
            try:
                stdin.close()
            except OSError:
                pass
    _reap(workers, time.monotonic() + timeout)
    for sig, grace in ((signal.SIGTERM, 1.0), (signal.SIGKILL, 2.0)):
        left = [w for w in workers if w.alive()]
        if not left:
            break
        for worker in left:
            try:
                worker.process.send_signal(sig)
            except ProcessLookupError:
                pass
        _reap(left, time.monotonic() + grace)


def close_pipes(workers: list[LocalWorker]) -> None:
    """Close the report pipes (once nothing waits on them any more)."""
    for worker in workers:
        try:
            worker.report.close()
        except OSError:
            pass


def _reap(workers: list[LocalWorker], deadline: float) -> None:
    for worker in workers:
        try:
            worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
