"""KernelMesh scale / connect / disconnect against a stand-in pool.

The stand-in does what ``wool.WorkerPool`` promises (``ascale`` adds ready
workers and marks removed ones ``stopped``; a pool made with ``discovery=``
finds its workers), so what is asserted here is KernelMesh's part: what it
builds from the user's arguments, what it says, and the joins and leaves it logs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from IPython.core.interactiveshell import InteractiveShell

import wool
from wool.errors import CredentialsError
from wool_jupyter.config import Wool
from wool_jupyter.mesh import KernelMesh
from wool_jupyter.remote import RemoteMesh

SECRET = b"0123456789abcdef0123"


class FakePool:
    made: ClassVar[list[FakePool]] = []
    fail_start: ClassVar[BaseException | None] = None

    def __init__(self, *tags: str, **options: Any) -> None:
        self.tags = tags
        self.options = options
        self.running = False
        self.stopped = False
        self._workers: list[wool.WorkerInfo] = []
        self._next = 0
        FakePool.made.append(self)

    def _add(self, source: str, host: str = "127.0.0.1") -> str:
        self._next += 1
        worker_id = f"w{self._next}"
        address = f"{host}:{7700 + self._next}"
        self._workers.append(wool.WorkerInfo(worker_id, address, 100, (), "ready", source))
        return worker_id

    async def astart(self, *, default: bool = False) -> FakePool:
        await asyncio.sleep(0)
        if FakePool.fail_start is not None:
            raise FakePool.fail_start
        if "discovery" in self.options:
            self._add("seed", "host-a")
            self._add("gossip", "host-b")
        else:
            for _ in range(self.options["spawn"]):
                self._add("spawned")
        self.running = True
        return self

    async def ascale(self, n: int, *, drain: float = 10.0) -> tuple[list[str], list[str]]:
        live = [w for w in self._workers if w.state == "ready"]
        added = [self._add("spawned") for _ in range(n - len(live))]
        removed = [w.id for w in live[n:]]
        self._workers = [
            wool.WorkerInfo(w.id, w.address, w.pid, w.tags, "stopped", w.source)
            if w.id in removed
            else w
            for w in self._workers
        ]
        return added, removed

    @property
    def workers(self) -> tuple[wool.WorkerInfo, ...]:
        return tuple(self._workers)

    def statistics_sync(self, timeout: float = 2.0) -> wool.MeshStatistics:
        peers = tuple(
            wool.PeerStatistics(w.id, w.address, w.pid, state=w.state) for w in self.workers
        )
        return wool.MeshStatistics(taken_at=1.0, peers=peers)

    async def astop(self) -> None:
        self.stop()

    def stop(self) -> None:
        self.running = False
        self.stopped = True


class FakeSeedDiscovery:
    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses


class FakeCredentials:
    @classmethod
    def from_files(cls, **paths: str) -> dict[str, str]:
        return paths


@pytest.fixture
def mesh(shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> Iterator[KernelMesh]:
    FakePool.made = []
    FakePool.fail_start = None
    monkeypatch.setattr(wool, "WorkerPool", FakePool)
    monkeypatch.setattr(wool, "WorkerCredentials", FakeCredentials)
    monkeypatch.setattr(wool, "SeedDiscovery", FakeSeedDiscovery, raising=False)
    settings = Wool(parent=shell)
    settings.start_timeout = 5
    backend = KernelMesh(shell, settings)
    yield backend
    backend.close()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    paths = {}
    texts = {"ca": "CA", "cert": "CERT", "key": "KEY", "secret": SECRET.decode() + "\n"}
    for name, text in texts.items():
        path = tmp_path / f"{name}.pem"
        path.write_text(text)
        paths[name] = str(path)
    return paths


def remote(files: dict[str, str], **changes: str | None) -> RemoteMesh:
    args: dict[str, Any] = {
        "ca": files["ca"],
        "cert": files["cert"],
        "key": files["key"],
        "secret_file": files["secret"],
    }
    args.update(changes)
    return RemoteMesh(("host-a:7700",), **args)


async def test_scale_grows_and_shrinks_and_logs_joins_and_leaves(mesh: KernelMesh) -> None:
    mesh.start(1, [])
    async with asyncio.timeout(10):
        await mesh.wait_ready()
    async with asyncio.timeout(10):
        assert await mesh.scale(3) == "Added 2 local workers (w2, w3): now 3."
    assert mesh.describe() is not None and mesh.describe().startswith("3 local workers")
    async with asyncio.timeout(10):
        assert await mesh.scale(1) == "Removed 2 local workers (w2, w3): now 1."
        assert await mesh.scale(1) == "Wool already runs 1 local worker."
    assert mesh.describe() is not None and mesh.describe().startswith("1 local worker ")
    kinds = [(e.kind, e.id) for e in mesh.log.events]
    assert kinds == [("joined", "w1"), ("joined", "w2"), ("joined", "w3"),
                     ("left", "w2"), ("left", "w3")]  # fmt: skip
    text = repr(mesh.status())
    assert "w3 left (127.0.0.1, spawned)" in text and "w1 joined" in text


async def test_scale_when_stopped_says_so(mesh: KernelMesh) -> None:
    assert "not running" in await mesh.scale(2)


async def test_connect_builds_a_durable_pool_from_the_files(
    mesh: KernelMesh, files: dict[str, str]
) -> None:
    message = mesh.connect(remote(files))
    assert "joining the remote mesh via host-a:7700 (mutual TLS)" in message
    async with asyncio.timeout(10):
        await mesh.wait_ready()
    (pool,) = FakePool.made
    options = pool.options
    assert isinstance(options["discovery"], FakeSeedDiscovery)
    assert options["discovery"].addresses == ["host-a:7700"]
    assert options["credentials"] == {
        "ca_path": files["ca"],
        "key_path": files["key"],
        "cert_path": files["cert"],
    }
    assert options["secret"] == SECRET
    assert "spawn" not in options
    assert mesh.describe() == "remote mesh via host-a:7700 (mutual TLS): 2 peers ready"
    status = repr(mesh.status())
    assert "host-b" in status and "gossip" in status and "seed" in status

    assert "changes local workers only" in await mesh.scale(3)
    assert await mesh.disconnect() == (
        "Disconnected from the remote mesh via host-a:7700 (mutual TLS); its workers keep running."
    )
    assert pool.stopped and mesh.describe() is None
    assert "not connected" in await mesh.disconnect()


async def test_disconnect_leaves_local_workers_alone(mesh: KernelMesh) -> None:
    mesh.start(1, [])
    async with asyncio.timeout(10):
        await mesh.wait_ready()
    assert "%wool stop stops its local workers" in await mesh.disconnect()
    assert mesh.describe() is not None


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"ca": "/nonexistent/ca.pem"}, "cannot read the CA certificate /nonexistent/ca.pem"),
        ({"secret_file": "/nonexistent/mesh.secret"}, "cannot read .*/nonexistent/mesh.secret"),
    ],
)
def test_unreadable_files_are_credentials_errors(
    mesh: KernelMesh, files: dict[str, str], change: dict[str, str], says: str
) -> None:
    with pytest.raises(CredentialsError, match=says):
        mesh.connect(remote(files, **change))
    assert FakePool.made == [] and mesh.describe() is None


def test_an_empty_secret_file_is_refused(
    mesh: KernelMesh, files: dict[str, str], tmp_path: Path
) -> None:
    empty = tmp_path / "empty.secret"
    empty.write_text("\n")
    with pytest.raises(CredentialsError, match="holds 0 bytes"):
        mesh.connect(remote(files, secret_file=str(empty)))


async def test_an_unreachable_mesh_fails_like_a_start(
    mesh: KernelMesh, files: dict[str, str]
) -> None:
    FakePool.fail_start = wool.WorkerLost("no peer answered at host-a:7700")
    mesh.connect(remote(files, ca=None, cert=None, key=None))
    with pytest.raises(wool.WorkerStartError, match="no peer answered"):
        async with asyncio.timeout(10):
            await mesh.wait_ready()
    status = str(mesh.status())
    assert status.startswith(
        "Wool did not start (remote mesh via host-a:7700 (no TLS)): WorkerLost"
    )
    assert "Run %wool connect to try again." in status
