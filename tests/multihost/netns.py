"""Hosts in Linux network namespaces on one bridge, for tests that need several machines.

``Network`` makes a bridge with no address in the root namespace and, per
host, a namespace joined to it by a veth pair: the namespaces reach one
another and nothing else (no default route), so whatever address a bug
dials, no packet leaves the machine. Names carry a per-run suffix (``w<pid>``)
and stay within Linux's 15-character limit for interfaces.

Every process is started through :meth:`Host.spawn` (``ip netns exec``,
which execs, so the PID recorded is the program's own), and :meth:`close`
ends every recorded process by its PID, proves each one gone, and deletes
every namespace, link and ``/etc/netns`` directory it made, even after a
failure. Callers can rely on ``close`` never touching anything it did not
create.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "198.18.7"
"""The hosts' /24 (RFC 2544's benchmarking range); routed nowhere, outside the namespaces."""
ETC_NETNS = Path("/etc/netns")
STOP_TIMEOUT = 10.0
REPO = Path(__file__).resolve().parents[2]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def can_run() -> str | None:
    """Why namespace hosts cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces (run as root, or in CI)"
    if shutil.which("ip") is None:
        return "needs iproute2 (`ip`)"
    probe = f"wprobe{os.getpid()}"
    try:  # root without CAP_NET_ADMIN (a container) cannot make namespaces
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        return f"cannot create a network namespace here ({exc})"
    _ip("netns", "del", probe)
    return None


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@dataclass
class Host:
    """One namespace: its name, its address on the bridge, and the processes started in it."""

    network: Network
    name: str
    index: int
    address: str
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def command(self, args: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def spawn(
        self,
        args: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        stdin: int | None = None,
        log: Path | None = None,
    ) -> subprocess.Popen[str]:
        """Start ``args`` in this host; the PID is recorded for :meth:`Network.close`.

        With ``log``, stdout and stderr go to that file (a long-lived process
        never blocks on a full pipe); otherwise both are pipes.
        """
        out = open(log, "a") if log is not None else None  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(
            self.command(args),
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=out or subprocess.PIPE,
            stderr=out or subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**self.network.env, **(env or {})},
            start_new_session=True,
        )
        if out is not None:
            out.close()
        self.procs.append(proc)
        self.network.pids.append(proc.pid)
        return proc

    def python(
        self,
        script: str | Path,
        *args: str,
        timeout: float = 60.0,
        env: dict[str, str] | None = None,
    ) -> dict:
        """Run a Python script here to the end (bounded); the JSON its last line prints."""
        proc = self.spawn([sys.executable, str(script), *args], env=env)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate(timeout=STOP_TIMEOUT)
            raise AssertionError(
                f"{script} on {self.name} ran over {timeout}s\nstdout:\n{out}\nstderr:\n{err}"
            ) from None
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise AssertionError(
                f"{script} on {self.name} exited {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}"
            )
        return json.loads(lines[-1])

    def link(self, up: bool) -> None:
        """Take this host's only interface down (a cut cable) or bring it back."""
        _ip("-n", self.name, "link", "set", "eth0", "up" if up else "down")

    def hosts_file(self, entries: Sequence[tuple[str, str]]) -> Path:
        """Give this namespace its own /etc/hosts (``ip netns exec`` bind-mounts it)."""
        directory = ETC_NETNS / self.name
        directory.mkdir(parents=True, exist_ok=True)
        self.network.etc_dirs.append(directory)
        path = directory / "hosts"
        path.write_text(
            "127.0.0.1 localhost\n" + "".join(f"{addr} {name}\n" for addr, name in entries)
        )
        return path

    def pids_inside(self) -> list[int]:
        """Every PID the kernel says still runs in this namespace."""
        out = subprocess.run(
            ["ip", "netns", "pids", self.name], capture_output=True, text=True, timeout=30
        ).stdout
        return [int(p) for p in out.split()]


class Network:
    """A bridge and ``count`` hosts on it, named with ``suffix``; ``close()`` undoes all of it."""

    def __init__(
        self,
        count: int,
        *,
        suffix: str | None = None,
        multicast: bool = False,
        logs: Path | None = None,
    ) -> None:
        self.suffix = suffix or f"w{os.getpid()}"
        if len(self.suffix) > 11:
            raise ValueError(f"suffix {self.suffix!r} makes interface names over 15 characters")
        self.bridge = f"{self.suffix}br"
        self.hosts: list[Host] = []
        self.pids: list[int] = []
        self.etc_dirs: list[Path] = []
        self.logs = logs or Path(tempfile.mkdtemp(prefix=f"{self.suffix}-"))
        self._links: list[str] = []
        self._namespaces: list[str] = []
        self.made: set[str] = set()
        self._etc_existed = ETC_NETNS.exists()
        path = os.pathsep.join([str(REPO), str(REPO / "tests" / "multihost")])
        self.env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            self._links.append(self.bridge)
            self.made.add(self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i in range(1, count + 1):
                self._add_host(i, multicast)
        except BaseException:
            self.close()
            raise

    def _add_host(self, i: int, multicast: bool) -> None:
        name, veth, address = f"{self.suffix}h{i}", f"{self.suffix}v{i}", f"{SUBNET}.{10 + i}"
        _ip("netns", "add", name)
        self._namespaces.append(name)
        self.made.update((name, veth))
        _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
        self._links.append(veth)
        _ip("link", "set", veth, "master", self.bridge, "up")
        _ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", name, "link", "set", "eth0", "up")
        _ip("-n", name, "link", "set", "lo", "up")
        if multicast:
            _ip("-n", name, "route", "add", "224.0.0.0/4", "dev", "eth0")
        self.hosts.append(Host(self, name, i, address))

    def stop_all(self, timeout: float = STOP_TIMEOUT) -> list[int]:
        """SIGTERM every recorded process, SIGKILL what outlives ``timeout``; the PIDs left."""
        procs = [p for h in self.hosts for p in h.procs]
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.0, deadline - time.monotonic()))
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(STOP_TIMEOUT)
        for proc in procs:
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        return [pid for pid in self.pids if pid_alive(pid)]

    def close(self) -> list[int]:
        """End every recorded process, delete every namespace and link; the PIDs still alive.

        A process found inside one of these namespaces that outlived the
        recorded ones (a grandchild) is killed by its PID and reported too.
        """
        left = set(self.stop_all())
        for host in self.hosts:
            for pid in host.pids_inside():
                left.add(pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for name in self._namespaces:
            with contextlib.suppress(subprocess.SubprocessError):
                _ip("netns", "del", name)
        for link in reversed(self._links):
            with contextlib.suppress(subprocess.SubprocessError):
                _ip("link", "del", link)  # a veth goes with its namespace: this may fail
        for directory in self.etc_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        if not self._etc_existed:
            with contextlib.suppress(OSError):
                ETC_NETNS.rmdir()  # only if empty: another run may be using it
        self._namespaces, self._links, self.etc_dirs = [], [], []
        return sorted(left)

    def leftovers(self) -> list[str]:
        """Every namespace or link this network made that still exists (after close: none)."""
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        present = {line.split()[0] for line in names.splitlines() if line.strip()}
        present |= {line.split(":")[1].strip().split("@")[0] for line in links.splitlines()}
        return sorted(present & self.made)

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
