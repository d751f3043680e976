"""`wool worker`: a durable worker started by hand, dispatched to directly, drained by SIGTERM.

Every worker here is a `python -m wool worker` process this test starts on
127.0.0.1; each is stopped by its PID in a `finally` and proven gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import routines_cli
from support import alive, until, wait_until

import wool
from wool.credentials import WorkerCredentials
from wool.mesh import context
from wool.mesh.client import MeshClient
from wool.protocol.frames import PeerRecord
from wool.worker.lifeline import EXIT_HARD
from wool.worker.process import DRAIN_MARGIN

pytestmark = pytest.mark.timeout(90)

HERE = pathlib.Path(__file__).parent
SECRET = b"0123456789abcdef0123456789abcdef"
FLAGS = [
    "--listen",
    "--advertise",
    "--id",
    "--tag",
    "--join",
    "--discovery",
    "--secret-file",
    "--tls-ca",
    "--tls-cert",
    "--tls-key",
    "--insecure",
    "--drain-grace",
    "--ready-file",
    "--dry-run",
]


def _wool(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m wool ARGS` to completion (never a worker that binds)."""
    return subprocess.run(
        [sys.executable, "-m", "wool", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    ready: dict
    log: pathlib.Path

    def text(self) -> str:
        return self.log.read_text()


@contextlib.contextmanager
def durable_worker(tmp_path: pathlib.Path, *flags: str) -> Iterator[Worker]:
    """A `wool worker` on 127.0.0.1:0; killed by PID (if still running) and reaped on exit."""
    secret = tmp_path / "mesh.secret"
    secret.write_bytes(SECRET + b"\n")
    secret.chmod(0o600)
    ready = tmp_path / "ready.json"
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "wool", "worker", "--listen", "127.0.0.1:0",
               "--secret-file", str(secret), "--ready-file", str(ready), *flags]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, env=env
        )
    try:
        wait_until(lambda: ready.exists() or process.poll() is not None, 30, "the ready file")
        assert process.poll() is None, f"worker exited {process.returncode}: {log.read_text()}"
        yield Worker(process, json.loads(ready.read_text()), log)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        assert not alive(process.pid), f"worker {process.pid} still running"


@contextlib.asynccontextmanager
async def client(
    worker: Worker, credentials: WorkerCredentials | None = None
) -> AsyncIterator[MeshClient]:
    """A bare MeshClient that knows only this worker (no pool), as calls' mesh."""
    ready = worker.ready
    mesh = MeshClient(SECRET, credentials=credentials)
    mesh.set_peers([PeerRecord(ready["id"], ready["address"], ready["pid"], (), ready["control"])])
    token = context.enter(mesh)
    try:
        yield mesh
    finally:
        context.leave(token)
        await mesh.close_loop()


def test_help_explains_every_flag() -> None:
    top = _wool("--help")
    assert top.returncode == 0, top.stderr
    assert "worker" in top.stdout and "certs" in top.stdout
    shown = _wool("worker", "--help")
    assert shown.returncode == 0, shown.stderr
    missing = [flag for flag in FLAGS if flag not in shown.stdout]
    assert not missing, missing
    assert "examples:" in shown.stdout and "wool certs init" in shown.stdout
    certs = _wool("certs", "init", "--help")
    assert certs.returncode == 0 and "production" in certs.stdout


def test_dry_run_prints_the_configuration_without_secrets(tmp_path: pathlib.Path) -> None:
    ready = tmp_path / "ready.json"
    shown = _wool(
        "worker", "--listen", "0.0.0.0:7700", "--advertise", "host-b:7700", "--id", "b",
        "--tag", "gpu", "--tag", "big", "--join", "host-a:7700", "--join", "dns:wool:7700",
        "--discovery", "local:lab", "--tls-ca", "/etc/wool/ca.pem",
        "--tls-cert", "/etc/wool/worker.pem", "--tls-key", "/etc/wool/worker.key",
        "--drain-grace", "25", "--ready-file", str(ready), "--dry-run",
        env={"WOOL_SECRET": "the-secret-value-never-shown"},
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "the-secret-value-never-shown" not in shown.stdout + shown.stderr
    config = json.loads(shown.stdout)
    assert config["listen"] == "0.0.0.0:7700"
    assert config["advertise"] == "host-b:7700"
    assert config["id"] == "b"
    assert config["tags"] == ["gpu", "big"]
    assert config["join"] == ["host-a:7700", "dns:wool:7700"]
    assert config["discovery"] == "local:lab"
    assert config["secret"] == {"env": "WOOL_SECRET", "value": "<set>"}
    assert config["tls"]["key"] == "/etc/wool/worker.key"
    assert config["drain_grace"] == 25
    assert config["warnings"] == []
    assert not ready.exists()  # nothing was started


@pytest.mark.parametrize(
    "flags",
    [
        [],
        ["--tls-ca", "ca.pem", "--tls-cert", "w.pem", "--tls-key", "w.key"],  # no secret
        ["--secret-file", "s"],  # no TLS
    ],
    ids=["nothing", "tls-without-secret", "secret-without-tls"],
)
def test_listening_beyond_loopback_is_refused_without_tls_and_secret(
    tmp_path: pathlib.Path, flags: list[str]
) -> None:
    ready = tmp_path / "ready.json"
    env = {"WOOL_SECRET": ""}
    refused = _wool("worker", "--listen", "0.0.0.0:0", "--ready-file", str(ready), *flags, env=env)
    assert refused.returncode == 2, refused.stderr
    assert "refusing to listen on 0.0.0.0:0" in refused.stderr
    assert "--insecure" in refused.stderr and "wool certs init" in refused.stderr
    assert not ready.exists()


def test_insecure_is_allowed_and_warned_about(tmp_path: pathlib.Path) -> None:
    shown = _wool(
        "worker", "--listen", "0.0.0.0:7700", "--secret-file", "s", "--insecure", "--dry-run"
    )
    assert shown.returncode == 0, shown.stderr
    assert "warning: --insecure" in shown.stderr
    assert json.loads(shown.stdout)["warnings"][0].startswith("--insecure")


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--listen", "nowhere"], "expected HOST:PORT"),
        (["--join", "host-a"], "--join 'host-a'"),
        (["--discovery", "cloud"], "expected 'lan' or 'local:NAMESPACE'"),
        (["--tls-ca", "ca.pem"], "go together"),
        (["--drain-grace", "-1"], "--drain-grace must be >= 0"),
    ],
)
def test_bad_flags_are_refused_with_what_is_wrong(flags: list[str], says: str) -> None:
    refused = _wool("worker", *flags, "--dry-run")
    assert refused.returncode == 2
    assert says in refused.stderr


def test_a_worker_without_a_secret_refuses_to_start(tmp_path: pathlib.Path) -> None:
    ready = tmp_path / "ready.json"
    refused = _wool(
        "worker", "--listen", "127.0.0.1:0", "--ready-file", str(ready), env={"WOOL_SECRET": ""}
    )
    assert refused.returncode == 2
    assert "no mesh secret" in refused.stderr
    assert not ready.exists()


async def test_a_client_dispatches_to_a_durable_worker(tmp_path: pathlib.Path) -> None:
    with durable_worker(tmp_path, "--id", "solo", "--tag", "cpu") as worker:
        assert worker.ready["id"] == "solo"
        assert worker.ready["address"].startswith("127.0.0.1:")
        async with asyncio.timeout(30), client(worker) as mesh:
            assert await routines_cli.add(2, 3) == 5
            assert await routines_cli.pid() == worker.process.pid
            stats = await mesh.peer_stats(5.0)
            assert stats["solo"].tags == ("cpu",)
        intruder = MeshClient(b"not the mesh secret at all......")
        intruder.set_peers(mesh.peers)
        with pytest.raises(wool.AuthenticationError):
            await intruder.connect()
        await intruder.close_loop()
        assert "wool worker solo listening on 127.0.0.1:" in worker.text()
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(timeout=15) == 0
    assert "stopped" in worker.text()


async def test_sigterm_drains_in_flight_calls_then_exits_0(tmp_path: pathlib.Path) -> None:
    grace = 3.0
    with durable_worker(tmp_path, "--drain-grace", str(grace)) as worker:
        async with asyncio.timeout(60), client(worker):
            short_started, long_started = tmp_path / "short", tmp_path / "long"
            long = asyncio.create_task(routines_cli.nap(120, str(long_started)))
            short = asyncio.create_task(routines_cli.nap(1.0, str(short_started)))
            await until(lambda: short_started.exists() and long_started.exists(), 20, "calls")
            signalled = time.monotonic()
            worker.process.send_signal(signal.SIGTERM)
            await until(lambda: "draining" in worker.text(), 10, "the drain to start")
            with pytest.raises(wool.WorkerLost, match="shutting down"):
                await routines_cli.add(1, 1)
            assert await short == str(short_started)
            with pytest.raises(wool.WorkerLost):
                await long
            status = await asyncio.to_thread(worker.process.wait, 20)
            took = time.monotonic() - signalled
        print(f"SIGTERM to exit: {took:.2f}s (grace {grace}s)")
        assert status == 0, worker.text()
        assert not alive(worker.process.pid)
        assert grace <= took < grace + DRAIN_MARGIN
        log = worker.text()
        assert "draining: 2 call(s) in flight" in log
        assert "cancelling 1 call(s)" in log
        assert log.index("draining") < log.index("cancelling") < log.index("stopped")


async def test_sigterm_while_a_routine_blocks_the_loop_still_drains(
    tmp_path: pathlib.Path,
) -> None:
    """A spawned worker exits hard when its loop is blocked 0.5 s; a durable one waits."""
    with durable_worker(tmp_path, "--drain-grace", "5") as worker:
        async with asyncio.timeout(60), client(worker):
            started = tmp_path / "blocked"
            blocked = asyncio.create_task(routines_cli.block(1.5, str(started)))
            await until(started.exists, 20, "the blocking call")
            worker.process.send_signal(signal.SIGTERM)
            assert await blocked == str(started)
            status = await asyncio.to_thread(worker.process.wait, 20)
        assert status == 0, worker.text()
        assert "draining" in worker.text()


async def test_a_worker_joins_through_one_peer_and_is_seen_leaving(
    tmp_path: pathlib.Path,
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with durable_worker(tmp_path / "a", "--id", "a") as a:
        join = ["--id", "b", "--join", a.ready["address"], "--drain-grace", "2"]
        with durable_worker(tmp_path / "b", *join) as b:
            joined = re.compile(r"peer b \(127\.0\.0\.1:\d+\) joined")
            await until(lambda: joined.search(a.text()), 15, "a to log that b joined")
            async with asyncio.timeout(30), client(a):  # the client knows only a
                assert await routines_cli.pid_on("b") == b.process.pid
            b.process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(b.process.wait, 15) == 0
            assert "told its peers it leaves" in b.text()
            await until(lambda: "peer b (" in a.text() and "left" in a.text(), 10, "b's leave")
        assert "peer a (" in b.text()
        a.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(a.process.wait, 15) == 0


def test_certs_init_writes_a_ca_certificates_and_a_secret(tmp_path: pathlib.Path) -> None:
    made = _wool("certs", "init", str(tmp_path / "certs"))
    assert made.returncode == 0, made.stderr
    assert "production" in made.stderr
    for name in ("ca.pem", "worker.pem", "client.pem"):
        assert (tmp_path / "certs" / name).read_bytes().startswith(b"-----BEGIN CERTIFICATE")
    for name in ("ca.key", "worker.key", "client.key", "mesh.secret"):
        assert (tmp_path / "certs" / name).stat().st_mode & 0o777 == 0o600, name
        assert name in made.stdout


def test_unreadable_tls_files_are_refused_before_binding(tmp_path: pathlib.Path) -> None:
    secret = tmp_path / "mesh.secret"
    secret.write_bytes(SECRET)
    ready = tmp_path / "ready.json"
    refused = _wool(
        "worker", "--listen", "127.0.0.1:0", "--secret-file", str(secret),
        "--tls-ca", str(tmp_path / "missing-ca.pem"), "--tls-cert", str(tmp_path / "w.pem"),
        "--tls-key", str(tmp_path / "w.key"), "--ready-file", str(ready),
    )  # fmt: skip
    assert refused.returncode == 2
    assert "missing-ca.pem" in refused.stderr
    assert not ready.exists()


async def test_a_tls_worker_serves_a_client_holding_a_certificate(tmp_path: pathlib.Path) -> None:
    certs = tmp_path / "certs"
    assert _wool("certs", "init", str(certs)).returncode == 0
    tls = ["--tls-ca", str(certs / "ca.pem"), "--tls-cert", str(certs / "worker.pem"),
           "--tls-key", str(certs / "worker.key")]  # fmt: skip
    creds = WorkerCredentials.from_files(
        ca_path=certs / "ca.pem", key_path=certs / "client.key", cert_path=certs / "client.pem"
    )
    with durable_worker(tmp_path, *tls) as worker:
        assert "mutual TLS" in worker.text()
        async with asyncio.timeout(30), client(worker, creds) as mesh:
            assert await routines_cli.add(20, 22) == 42
        plain = MeshClient(SECRET)
        plain.set_peers(mesh.peers)
        with pytest.raises(wool.WoolError):
            await asyncio.wait_for(plain.connect(), 20)
        await plain.close_loop()
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(timeout=15) == 0


async def test_workers_find_each_other_by_local_discovery(tmp_path: pathlib.Path) -> None:
    namespace = f"local:test-cli-{os.getpid()}-{time.monotonic_ns()}"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        durable_worker(tmp_path / "a", "--id", "a", "--discovery", namespace) as a,
        durable_worker(tmp_path / "b", "--id", "b", "--discovery", namespace) as b,
    ):
        await until(lambda: "peer b (" in a.text(), 15, "a to log that b joined")
        await until(lambda: "peer a (" in b.text(), 15, "b to log that a joined")
        for worker in (b, a):
            worker.process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(worker.process.wait, 15) == 0


async def test_a_second_sigterm_during_the_drain_exits_at_once(tmp_path: pathlib.Path) -> None:
    with durable_worker(tmp_path, "--drain-grace", "60") as worker:
        async with asyncio.timeout(60), client(worker):
            started = tmp_path / "long"
            long = asyncio.create_task(routines_cli.nap(120, str(started)))
            await until(started.exists, 20, "the long call")
            worker.process.send_signal(signal.SIGTERM)
            await until(lambda: "draining" in worker.text(), 10, "the drain to start")
            worker.process.send_signal(signal.SIGTERM)
            status = await asyncio.to_thread(worker.process.wait, 10)
            with pytest.raises(wool.WorkerLost):
                await long
        assert status == EXIT_HARD
        assert "stopped" not in worker.text()
