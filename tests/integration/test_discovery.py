"""Discovery across real processes: pools find workers other processes published.

A host process (``discovery_host.py``) runs a hybrid pool that publishes its
workers; a durable pool here uses them through ``wool.LocalDiscovery`` (or
``wool.LanDiscovery`` on loopback), spawns nothing and stops nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import wool
from tests.integration import routines
from tests.integration.support import alive, until, wait_until
from wool.protocol.auth import new_secret
from wool.protocol.frames import PeerRecord

HOST = Path(__file__).with_name("discovery_host.py")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Host:
    process: subprocess.Popen
    workers: list[dict]

    @property
    def pids(self) -> set[int]:
        return {w["pid"] for w in self.workers}


class Hosts:
    def __init__(self) -> None:
        self.started: list[Host] = []

    def start(self, namespace: str, secret: bytes, *args: str) -> Host:
        env = {**os.environ, "WOOL_TEST_SECRET": secret.hex(), "PYTHONPATH": str(ROOT)}
        process = subprocess.Popen(
            [sys.executable, str(HOST), "--namespace", namespace, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, "the host process exited before its pool was up"
        host = Host(process, json.loads(line)["workers"])
        self.started.append(host)
        return host

    def stop(self, host: Host) -> None:
        assert host.process.stdin is not None and host.process.stdout is not None
        host.process.stdin.close()
        try:
            assert host.process.wait(20) == 0
        finally:
            if host.process.poll() is None:
                host.process.kill()
                host.process.wait(5)
            host.process.stdout.close()
        for pid in host.pids | {host.process.pid}:
            wait_until(lambda pid=pid: not alive(pid), 10, f"pid {pid} to exit")

    def close(self) -> None:
        for host in self.started:
            if host.process.returncode is None:
                self.stop(host)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    h = Hosts()
    try:
        yield h
    finally:
        h.close()


def _namespace() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


async def _pids(pool: wool.WorkerPool, calls: int) -> set[int]:
    async with pool:
        return {await routines.whoami() for _ in range(calls)}


async def test_durable_pool_uses_workers_another_process_published(hosts: Hosts) -> None:
    ns, secret = _namespace(), new_secret()
    host = hosts.start(ns, secret, "--spawn", "2")
    found = wool.LocalDiscovery(ns)
    assert sorted(r.pid for r in found.records_now()) == sorted(host.pids)

    pool = wool.WorkerPool(discovery=found, secret=secret, start_timeout=10)
    used: set[int] = set()
    async with pool:
        assert {(w.pid, w.source) for w in pool.workers} == {(p, "local") for p in host.pids}
        for _ in range(20):
            used.add(await routines.whoami())
    assert used and used <= host.pids  # ran on the other process's workers
    assert all(alive(p) for p in host.pids)  # and a durable pool stopped none of them
    assert sorted(r.pid for r in found.records_now()) == sorted(host.pids)  # nor withdrew them

    hosts.stop(host)  # the hybrid pool withdraws what it published
    assert found.records_now() == []


async def test_tags_filter_and_lease_caps_discovered_workers(hosts: Hosts) -> None:
    ns, secret = _namespace(), new_secret()
    gpu = hosts.start(ns, secret, "--spawn", "1", "--tag", "gpu")
    plain = hosts.start(ns, secret, "--spawn", "2")

    tagged = wool.WorkerPool("gpu", discovery=wool.LocalDiscovery(ns), secret=secret)
    assert await _pids(tagged, 6) == gpu.pids

    everyone = wool.WorkerPool(discovery=wool.LocalDiscovery(ns), secret=secret)
    async with everyone:
        assert {w.pid for w in everyone.workers} == gpu.pids | plain.pids

    short = wool.WorkerPool(discovery=wool.LocalDiscovery(ns), secret=secret, quorum=4,
                            start_timeout=1.0)  # fmt: skip
    with pytest.raises(wool.NoWorkersAvailable, match=r"quorum 4: 3 usable"):
        await short.astart()

    leased = wool.WorkerPool(discovery=wool.LocalDiscovery(ns), secret=secret, lease=2)
    async with leased:
        assert len(leased.workers) == 2
        used = {await routines.whoami() for _ in range(10)}
        assert used <= {w.pid for w in leased.workers}


async def test_hybrid_pool_spawns_publishes_and_uses_what_it_finds(hosts: Hosts) -> None:
    ns, secret = _namespace(), new_secret()
    other = hosts.start(ns, secret, "--spawn", "1")
    found = wool.LocalDiscovery(ns)
    pool = wool.WorkerPool(spawn=1, discovery=found, secret=secret)
    async with pool:
        by_source = {w.source: w for w in pool.workers}
        assert set(by_source) == {"spawned", "local"}
        assert by_source["local"].pid in other.pids
        published = {r.pid for r in found.records_now()}
        assert published == other.pids | {by_source["spawned"].pid}
        mine = by_source["spawned"].pid
    wait_until(lambda: not alive(mine), 10, "the hybrid pool's own worker to stop")
    assert {r.pid for r in found.records_now()} == other.pids  # its own withdrawn, not others'


async def test_a_running_pool_follows_what_discovery_finds(hosts: Hosts) -> None:
    ns, secret = _namespace(), new_secret()
    first = hosts.start(ns, secret, "--spawn", "1")
    pool = wool.WorkerPool(discovery=wool.LocalDiscovery(ns), secret=secret)
    async with pool:
        second = hosts.start(ns, secret, "--spawn", "1")
        both = first.pids | second.pids
        await until(lambda: {w.pid for w in pool.workers} == both, 10.0, "the newcomer")
        began = time.monotonic()
        await asyncio.to_thread(hosts.stop, first)
        await until(lambda: {w.pid for w in pool.workers} == second.pids, 10.0, "a drop")
        print(f"withdrawn worker dropped {time.monotonic() - began:.2f}s after its host stopped")
        assert await routines.whoami() in second.pids


async def test_a_durable_pool_that_finds_nothing_refuses_to_start() -> None:
    pool = wool.WorkerPool(discovery=wool.LocalDiscovery(_namespace()), start_timeout=1.0)
    began = time.monotonic()
    with pytest.raises(wool.NoWorkersAvailable, match=r"found no usable worker within 1s"):
        await pool.astart()
    print(f"refused after {time.monotonic() - began:.2f}s")
    assert not pool.running


async def test_discovery_is_a_hint_a_wrong_secret_is_never_used(hosts: Hosts) -> None:
    ns = _namespace()
    host = hosts.start(ns, new_secret(), "--spawn", "1")
    pool = wool.WorkerPool(discovery=wool.LocalDiscovery(ns), secret=new_secret(),
                           start_timeout=1.5)  # fmt: skip
    with pytest.raises(wool.NoWorkersAvailable, match="AuthenticationError") as err:
        await pool.astart()
    assert host.workers[0]["address"] in str(err.value)


def test_stale_entries_are_skipped_and_cleaned() -> None:
    found = wool.LocalDiscovery(_namespace())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    found.publish(PeerRecord("gone", "127.0.0.1:1", int(dead.stdout)))
    found.publish(PeerRecord("here", "127.0.0.1:2", os.getpid(), ("t",)))
    (found.directory / "junk.json").write_text("{not json")
    assert [r.id for r in found.records_now()] == ["here"]
    assert not (found.directory / "gone.json").exists()
    assert oct(found.directory.stat().st_mode & 0o777) == "0o700"
    found.unpublish(PeerRecord("here", "127.0.0.1:2", os.getpid()))
    assert found.records_now() == []
    with pytest.raises(ValueError, match="namespace"):
        wool.LocalDiscovery("../escape")


async def test_lan_discovery_on_loopback(hosts: Hosts) -> None:
    pytest.importorskip("zeroconf", reason="LanDiscovery needs the lan extra")
    ns, secret = _namespace().replace("-", ""), new_secret()
    host = hosts.start(ns, secret, "--spawn", "1", "--lan")
    lan = wool.LanDiscovery(ns, interfaces=["127.0.0.1"], wait=1.0)
    pool = wool.WorkerPool(discovery=lan, secret=secret, start_timeout=10)
    async with pool:
        assert [(w.pid, w.source) for w in pool.workers] == [(p, "lan") for p in host.pids]
        assert await routines.whoami() in host.pids
