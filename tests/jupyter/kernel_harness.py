"""A real IPython kernel driven through jupyter_client, with every wait bounded.

:class:`Kernel` starts a ``python3`` kernel, runs cells and collects what they
publish (with the time each message arrived), interrupts, restarts, shuts
down or kills it, and keeps account of the wool worker processes it spawned
so that :meth:`Kernel.close` can prove none of them outlived it. Processes
are only ever signalled by PID, and only those this kernel started.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from jupyter_client import KernelManager
from jupyter_client.blocking.client import BlockingKernelClient

WORKERS = 2
"""Workers per mesh in these tests: the machine has two shared cores."""
START_TIMEOUT = 60.0
CELL_TIMEOUT = 60.0
EXIT_TIMEOUT = 10.0
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_OUTPUTS = frozenset({"stream", "execute_result", "display_data", "update_display_data", "error"})


def plain(text: str) -> str:
    """``text`` without terminal colour codes."""
    return _ANSI.sub("", text)


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``condition`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def alive(pid: int, created: float | None = None) -> bool:
    """Whether ``pid`` runs (zombies count as gone); ``created`` guards against PID reuse."""
    try:
        proc = psutil.Process(pid)
        if created is not None and abs(proc.create_time() - created) > 0.01:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass
class Message:
    """One output of a cell: ``kind`` is the IOPub message type."""

    at: float
    kind: str
    content: dict[str, Any]

    @property
    def text(self) -> str:
        """Stream text, a result's or display's ``text/plain``, or an error's traceback."""
        if self.kind == "stream":
            return self.content["text"]
        if self.kind == "error":
            return plain("\n".join(self.content["traceback"]))
        return self.content.get("data", {}).get("text/plain", "")


@dataclass
class Execution:
    """Everything one ``execute_request`` produced, with arrival times in seconds from sending."""

    code: str
    msg_id: str = ""
    messages: list[Message] = field(default_factory=list)
    reply: dict[str, Any] = field(default_factory=dict)
    replied_at: float = 0.0
    interrupted_at: float | None = None

    def stream(self, name: str = "stdout") -> str:
        """Everything the cell wrote to stream ``name``, in order."""
        return "".join(
            m.text for m in self.messages if m.kind == "stream" and m.content["name"] == name
        )

    @property
    def stdout(self) -> str:
        return self.stream("stdout")

    @property
    def stderr(self) -> str:
        return self.stream("stderr")

    @property
    def result(self) -> str | None:
        """``text/plain`` of the cell's result, if it had one."""
        results = [m.text for m in self.messages if m.kind == "execute_result"]
        return results[-1] if results else None

    @property
    def displays(self) -> list[dict[str, Any]]:
        return [m.content["data"] for m in self.messages if m.kind == "display_data"]

    @property
    def error(self) -> Message | None:
        errors = [m for m in self.messages if m.kind == "error"]
        return errors[-1] if errors else None

    @property
    def ename(self) -> str | None:
        error = self.error
        return error.content["ename"] if error else None

    def ok(self) -> Execution:
        """``self``, after checking the cell raised nothing."""
        assert self.error is None, f"cell failed:\n{self.code}\n{self.error.text}"
        assert self.reply.get("status") == "ok", self.reply
        return self


class Kernel:
    """One kernel process and the wool workers it starts."""

    def __init__(self, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.cwd = cwd
        self.env = env
        self.km = KernelManager(kernel_name="python3")
        self.kc: BlockingKernelClient | None = None
        self.workers: dict[int, float] = {}
        """Every worker PID seen as this kernel's child, with its creation time."""
        self.kernels: dict[int, float] = {}
        """Every kernel process this object started (restarts add one)."""
        self.late: list[tuple[str, Message]] = []
        """Outputs that arrived for a cell after it had finished, with its ``msg_id``."""

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> Kernel:
        environment = {**os.environ, **(self.env or {})}
        self.km.start_kernel(cwd=str(self.cwd), env=environment)
        self._connect()
        return self

    def _connect(self) -> None:
        if self.kc is not None:
            self.kc.stop_channels()
        self.kc = self.km.blocking_client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=START_TIMEOUT)
        pid = self.pid
        self.kernels[pid] = psutil.Process(pid).create_time()

    @property
    def pid(self) -> int:
        provisioner = self.km.provisioner
        assert provisioner is not None and provisioner.pid is not None
        return int(provisioner.pid)

    def interrupt(self) -> None:
        self.km.interrupt_kernel()

    def restart(self) -> None:
        """Restart at once (the old process is killed); refreshes the worker list first."""
        self.worker_pids()
        self.km.restart_kernel(now=True)
        self._connect()

    def shutdown(self) -> None:
        """Ask the kernel to shut down cleanly and wait (bounded) for its process to end."""
        self.worker_pids()
        pid = self.pid
        assert self.kc is not None
        self.kc.stop_channels()
        self.kc = None
        self.km.shutdown_kernel(now=False)
        wait_until(lambda: not alive(pid), EXIT_TIMEOUT, f"kernel {pid} to exit")

    def kill(self) -> None:
        """``kill -9`` the kernel process, as a crash or the OOM killer would."""
        self.worker_pids()
        pid = self.pid
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not alive(pid), EXIT_TIMEOUT, f"kernel {pid} to die")

    def close(self) -> list[int]:
        """Stop the kernel (by PID if need be); return the workers still alive after a
        bounded wait, having killed them."""
        if self.kc is not None:
            self.kc.stop_channels()
            self.kc = None
        if self.km.has_kernel:
            self.worker_pids()
            try:
                self.km.shutdown_kernel(now=True)
            except Exception:
                pass
        for pid, created in self.kernels.items():
            if alive(pid, created):
                os.kill(pid, signal.SIGKILL)
        return self.reap_workers()

    def reap_workers(self, timeout: float = EXIT_TIMEOUT) -> list[int]:
        """Wait for every recorded worker to end; kill and return those that did not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.live_workers():
            time.sleep(0.05)
        survivors = self.live_workers()
        for pid in survivors:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return survivors

    # -- processes --------------------------------------------------------------

    def worker_pids(self) -> set[int]:
        """The wool workers that are children of the kernel now (and record them)."""
        found: set[int] = set()
        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except (psutil.NoSuchProcess, AssertionError):
            return found
        for child in children:
            try:
                if "wool.worker" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                    found.add(child.pid)
                    self.workers.setdefault(child.pid, child.create_time())
            except psutil.Error:
                continue
        return found

    def live_workers(self) -> list[int]:
        """Recorded workers still running."""
        return sorted(pid for pid, created in self.workers.items() if alive(pid, created))

    # -- cells ------------------------------------------------------------------

    def execute(
        self,
        code: str,
        *,
        timeout: float = CELL_TIMEOUT,
        interrupt_after: float | None = None,
        interrupt_when: Callable[[Execution], bool] | None = None,
        watch: Callable[[Execution], object] | None = None,
    ) -> Execution:
        """Run ``code`` and collect its outputs until the kernel is idle and has replied.

        The kernel is interrupted ``interrupt_after`` seconds after sending, or
        as soon as ``interrupt_when(execution)`` is true. ``watch(execution)``
        is called on every poll while the cell runs, to act on what it has
        published so far. Past ``timeout`` the kernel is interrupted and the
        call fails.
        """
        kc = self.kc
        assert kc is not None, "kernel is not running"
        msg_id = kc.execute(code)
        execution = Execution(code, msg_id)
        sent = time.monotonic()
        deadline = sent + timeout
        idle = False
        while not idle:
            now = time.monotonic()
            if now > deadline:
                self.interrupt()
                raise AssertionError(f"cell did not finish within {timeout}s:\n{code}")
            if execution.interrupted_at is None and (
                (interrupt_after is not None and now - sent >= interrupt_after)
                or (interrupt_when is not None and interrupt_when(execution))
            ):
                self.interrupt()
                execution.interrupted_at = time.monotonic() - sent
            if watch is not None:
                watch(execution)
            try:
                msg = kc.get_iopub_msg(timeout=0.02)
            except queue.Empty:
                continue
            kind = msg["msg_type"]
            parent = msg["parent_header"].get("msg_id", "")
            if kind not in _OUTPUTS and not (parent == msg_id and kind == "status"):
                continue
            message = Message(time.monotonic() - sent, kind, msg["content"])
            if parent != msg_id:
                self.late.append((parent, message))
            elif kind == "status":
                idle = msg["content"]["execution_state"] == "idle"
            else:
                execution.messages.append(message)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no execute_reply within {timeout}s:\n{code}")
            reply = kc.get_shell_msg(timeout=left)
            if reply["parent_header"].get("msg_id") == msg_id:
                execution.reply = reply["content"]
                execution.replied_at = time.monotonic() - sent
                break
        self.worker_pids()
        return execution

    def run(self, code: str, **options: Any) -> Execution:
        """:meth:`execute`, checking that the cell succeeded."""
        return self.execute(code, **options).ok()

    def value(self, expression: str, **options: Any) -> str:
        """The ``text/plain`` result of a cell holding ``expression``."""
        result = self.run(expression, **options).result
        assert result is not None, f"{expression!r} gave no result"
        return result
