"""Discovery across processes and hosts: LAN (zeroconf), LocalDiscovery pools, DNS names."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import netns
import pytest
from mesh import (
    CLIENT,
    PORT,
    assert_running,
    missing,
    read_json,
    start_worker,
    wait_exit,
    wait_ready,
    worker_id,
)

pytestmark = pytest.mark.timeout(120)


def _crossed(report: dict, workers: list[str]) -> None:
    counters = report["counters"]
    assert set(workers) <= set(counters), counters
    for peer in workers:
        assert counters[peer]["executed"] > 1, f"{peer} took no nested calls: {counters}"


@pytest.mark.skipif(
    (why := missing("wool.cli", "wool.discovery", "zeroconf", "cryptography")) is not None,
    reason=f"{why} (issue 11, H12/H13, the lan extra)",
)
def test_lan_discovery_finds_workers_on_other_hosts(net: netns.Network, certs: Path) -> None:
    h1, h2, h3 = net.hosts
    workers = [start_worker(h, certs, discovery="lan") for h in (h1, h2)]
    wait_ready(workers)
    report = h3.python(
        CLIENT, "run", "--discovery", "lan", "--certs", str(certs), "--expect", "2",
        "--converged", "--fib", "14", timeout=90,
    )  # fmt: skip
    assert report["result"] == 377
    _crossed(report, [worker_id(h1), worker_id(h2)])
    assert_running(workers)


@pytest.mark.skipif(
    (why := missing("wool.cli", "wool.discovery", "cryptography")) is not None,
    reason=f"{why} (issue 11, H12/H13)",
)
def test_dns_join_resolves_a_name_to_every_address(net: netns.Network, certs: Path) -> None:
    h1, h2, h3 = net.hosts
    entries = [(h1.address, "wool-mesh"), (h2.address, "wool-mesh")]
    for host in net.hosts:
        host.hosts_file(entries)
    join = f"dns:wool-mesh:{PORT}"
    workers = [start_worker(h, certs, join=[join]) for h in (h1, h2)]
    wait_ready(workers)
    report = h3.python(
        CLIENT, "run", "--discovery", join, "--certs", str(certs), "--expect", "2",
        "--converged", "--fib", "14", timeout=90,
    )  # fmt: skip
    assert report["result"] == 377
    assert set(report["peers"]) == {worker_id(h1), worker_id(h2)}
    _crossed(report, [worker_id(h1), worker_id(h2)])
    assert_running(workers)


@pytest.mark.skipif(
    (why := missing("wool.cli", "wool.discovery", "cryptography")) is not None,
    reason=f"{why} (issue 11, H12/H13)",
)
def test_local_discovery_durable_and_hybrid_pools_across_processes(
    net: netns.Network, certs: Path
) -> None:
    host = net.hosts[0]  # one host: LocalDiscovery is for processes on the same machine
    namespace = f"{net.suffix}-local"
    durable = [
        start_worker(host, certs, discovery=f"local:{namespace}", secret_only=True,
                     listen=f"127.0.0.1:{PORT + i}", name=f"local-{i}")
        for i in (1, 2)
    ]  # fmt: skip
    wait_ready(durable)
    report = host.python(
        CLIENT, "run", "--discovery", f"local:{namespace}", "--secret", str(certs),
        "--expect", "2", "--fib", "12", timeout=90,
    )  # fmt: skip
    assert report["result"] == 144
    assert set(report["counters"]) == {"local-1", "local-2"}, "a durable pool spawns nothing"
    assert_running(durable)  # a durable pool stops nothing on exit

    hybrid = host.spawn(
        [sys.executable, str(CLIENT), "hybrid", "--discovery", f"local:{namespace}",
         "--secret", str(certs), "--expect", "3"],
        stdin=subprocess.PIPE,
    )  # fmt: skip
    ready = read_json(hybrid, 60)
    (spawned,) = ready["spawned"]
    net.pids.append(spawned)  # a grandchild: proven gone by PID at teardown too
    assert len(ready["peers"]) == 3
    other = host.python(
        CLIENT, "run", "--discovery", f"local:{namespace}", "--secret", str(certs),
        "--expect", "3", "--fib", "12", timeout=90,
    )  # fmt: skip
    # A second process finds the hybrid pool's own worker next to the durable ones, and uses it.
    assert set(other["peers"]) == set(ready["peers"]), (other, ready)
    assert spawned in other["pids"].values(), other
    assert hybrid.stdin is not None
    hybrid.stdin.write("stop\n")
    hybrid.stdin.flush()
    assert wait_exit(hybrid, 30) == 0
    deadline = time.monotonic() + 10
    while netns.pid_alive(spawned):  # the hybrid pool stops the worker it spawned
        assert time.monotonic() < deadline, f"the hybrid's worker {spawned} outlived it"
        time.sleep(0.05)
    assert_running(durable)
